import type { FloatArray } from "../core/dtype.js";
import type { Batch } from "./batch.js";
import type { Loss, LossBounds, LossConstants } from "./loss.js";
import { SquaredLoss } from "./squared.js";

/**
 * The auto-encoder objective (Roulet & Harchaoui, "An Elementary Approach…" (Allerton 2019), Sec. 2.2 "Auto-encoders": a chain with
 * δ_0 = δ_τ = d and f(ψ(w)) = Σ_i ‖x_i − ψ_i(w)‖²), averaged over the batch as the squared loss:
 * f(Ψ) = (1/(2N)) Σ_i ‖ψ_i − x_i‖², the squared loss whose targets are the batch's own inputs.
 * ∇f = (Ψ − X)/N, ∇²f = I/N. The chain's output size must equal its input size.
 */
export class AutoencoderLoss implements Loss {
  readonly type = "autoencoder";
  private readonly squared = new SquaredLoss();

  private asTargets(batch: Batch, outputSize: number): Batch {
    if (batch.x.length !== batch.size * outputSize) {
      throw new Error(
        `autoencoder: the chain's output size (${outputSize}) must equal its input size (${batch.x.length / batch.size}): the objective reconstructs the inputs`,
      );
    }
    return { x: batch.x, size: batch.size, targets: batch.x };
  }

  evaluate(output: FloatArray, batch: Batch, outputSize: number, grad: FloatArray | null): number {
    return this.squared.evaluate(output, this.asTargets(batch, outputSize), outputSize, grad);
  }

  hessianVector(output: FloatArray, batch: Batch, outputSize: number, v: FloatArray, out: FloatArray): void {
    this.squared.hessianVector(output, this.asTargets(batch, outputSize), outputSize, v, out);
  }

  /**
   * The squared loss's constants with targets X, ‖X‖_F ≤ T = `bounds.targetNorm` (the bound on
   * the input batch, m_0 of the certificate): ℓ_f = (m + T)/N, L_f = 1/N, f ≤ (m + T)²/(2N).
   */
  smoothness(bounds: LossBounds): LossConstants {
    if (bounds.targetNorm === undefined) {
      throw new Error("autoencoder: the constants need the bound on the inputs (targetNorm = the input batch norm)");
    }
    return this.squared.smoothness(bounds);
  }
}
