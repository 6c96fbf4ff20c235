import type { Backend } from "../core/backend.js";
import type { FloatArray } from "../core/dtype.js";
import type { Batch } from "./batch.js";

/**
 * A loss f(ŷ) = (1/N) Σ_i ℓ(ŷ_i, y_i) of the chain's outputs ŷ (`N × K`, one row per sample),
 * averaged over the batch as PyTorch's losses are (the papers sum; the mean only rescales).
 */
export interface Loss {
  /** `clustering` and `autoencoder` are the unsupervised objectives (clustering.ts, autoencoder.ts). */
  readonly type: "squared" | "logistic" | "clustering" | "autoencoder";
  /**
   * f(ŷ); when `grad` is given it receives ∂f/∂ŷ (`N × K`). Throws when the batch lacks the
   * labels/targets the loss needs. `backend`: the chain's, whose native kernels a loss may use
   * (the logistic loss: {@link Backend.kernels}' `logistic`); without it, the TypeScript loops.
   */
  evaluate(output: FloatArray, batch: Batch, outputSize: number, grad: FloatArray | null, backend?: Backend): number;
  /** out ← ∇²f(ŷ) v, the Hessian of f with respect to the outputs applied to v (`N × K`). */
  hessianVector(output: FloatArray, batch: Batch, outputSize: number, v: FloatArray, out: FloatArray): void;
  /**
   * The per-sample blocks H_i = ∇²ℓ(ŷ_i, y_i) of a loss that averages per-sample terms (N blocks
   * of K × K, row-major, float64) written to `out`, with the values {@link Loss.hessianVector}
   * gives column by column. Optional: without it the blocks are read off K Hessian-vector
   * products (src/second-order/linearize.ts, lossHessianBlocks).
   */
  hessianBlocks?(output: FloatArray, batch: Batch, outputSize: number, out: Float64Array): void;
  /**
   * Smoothness constants of f on the outputs ŷ (`N × K`, one vector) with ‖ŷ‖ ≤ bounds.norm
   * (docs/certificates.md; used by `src/certify/`). Optional: an objective whose loss lacks it is not certified.
   */
  smoothness?(bounds: LossBounds): LossConstants;
  /**
   * State the loss carries from one evaluation to the next (e.g. the clustering objective's warm
   * start), or null when it has none yet: saved in trainer snapshots and checkpoints so that a
   * resumed run is bit-identical to an uninterrupted one. Optional: stateless losses omit it.
   */
  saveState?(): FloatArray | null;
  /** Restores what {@link Loss.saveState} returned (used by the next evaluation). */
  restoreState?(state: FloatArray): void;
}

/** Where a loss's constants are stated: batches of `batch` outputs of size `outputSize`, ‖ŷ‖_F ≤ `norm`. */
export interface LossBounds {
  readonly batch: number;
  readonly outputSize: number;
  readonly norm: number;
  /**
   * Bound on the Frobenius norm of the targets (squared loss): √batch for one-hot labels (the
   * default), to be given for real-valued targets.
   */
  readonly targetNorm?: number;
}

/** Constants of a loss f on bounded outputs, w.r.t. the Euclidean norm of the whole `N × K` output. */
export interface LossConstants {
  /** sup f (a bound on the loss; losses here are ≥ 0). */
  readonly bound: number;
  /** ℓ_f: Lipschitz constant of f on the ball. */
  readonly lipschitz: number;
  /** L_f: Lipschitz constant of ∇f on the ball. */
  readonly smoothness: number;
}

/** Number of correctly classified samples (arg-max of each output row equals the label). */
export function countCorrect(output: FloatArray, labels: Int32Array, size: number, outputSize: number): number {
  let correct = 0;
  for (let i = 0; i < size; i++) {
    const o = i * outputSize;
    let best = 0;
    for (let k = 1; k < outputSize; k++) if (output[o + k] > output[o + best]) best = k;
    if (best === labels[i]) correct++;
  }
  return correct;
}
