import type { FloatArray } from "../core/dtype.js";
import type { Batch } from "./batch.js";
import type { Loss, LossBounds, LossConstants } from "./loss.js";

/**
 * Squared loss f(ŷ) = (1/(2N)) Σ_i ‖ŷ_i − y_i‖² (the papers' ½‖·‖², averaged over the batch).
 * With integer labels instead of targets, y_i is the one-hot vector e_{label}.
 * ∇f = (ŷ − y)/N, ∇²f = I/N.
 */
export class SquaredLoss implements Loss {
  readonly type = "squared";

  /**
   * Smoothness constants (docs/certificates.md) of f(Ŷ) = ‖Ŷ − Y‖²_F/(2N) on ‖Ŷ‖_F ≤ m with ‖Y‖_F ≤ T
   * (T = √N for one-hot labels, the default): ∇f = (Ŷ − Y)/N so ℓ_f = (m + T)/N; ∇²f = I/N so
   * L_f = 1/N; f ≤ (m + T)²/(2N).
   */
  smoothness(bounds: LossBounds): LossConstants {
    const n = bounds.batch;
    const t = bounds.targetNorm ?? Math.sqrt(n);
    return { bound: (bounds.norm + t) ** 2 / (2 * n), lipschitz: (bounds.norm + t) / n, smoothness: 1 / n };
  }

  evaluate(output: FloatArray, batch: Batch, k: number, grad: FloatArray | null): number {
    const n = batch.size;
    const target = targetOf(batch, k);
    let total = 0;
    for (let i = 0; i < n * k; i++) {
      const r = output[i] - target(i);
      total += r * r;
      if (grad) grad[i] = r / n;
    }
    return total / (2 * n);
  }

  hessianVector(_output: FloatArray, batch: Batch, k: number, v: FloatArray, out: FloatArray): void {
    const n = batch.size;
    for (let i = 0; i < n * k; i++) out[i] = v[i] / n;
  }
}

function targetOf(batch: Batch, k: number): (i: number) => number {
  const { targets, labels, size } = batch;
  if (targets) {
    if (targets.length < size * k) throw new Error(`squared loss: targets hold ${targets.length} values, expected ${size} × ${k}`);
    return (i) => targets[i];
  }
  if (labels) return (i) => (labels[Math.floor(i / k)] === i % k ? 1 : 0);
  throw new Error("squared loss: the batch has neither targets nor labels");
}
