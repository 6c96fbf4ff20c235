import type { Backend } from "../core/backend.js";
import type { FloatArray } from "../core/dtype.js";
import type { Batch } from "./batch.js";
import type { Loss, LossBounds, LossConstants } from "./loss.js";

/**
 * Logistic (softmax cross-entropy) loss with integer labels (Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019), App. B.1):
 * ℓ(z, y) = log Σ_k e^{z_k} − z_y, computed as m + log Σ_k e^{z_k − m} with m = max_k z_k so that
 * no exponential overflows. ∇_z ℓ = softmax(z) − e_y; ∇²_z ℓ = diag(p) − p pᵀ with p = softmax(z).
 */
export class LogisticLoss implements Loss {
  readonly type = "logistic";

  /**
   * Smoothness constants (docs/certificates.md) of f(Ẑ) = (1/N) Σ_i [LSE(z_i) − z_{i,y_i}] on ‖Ẑ‖_F ≤ m,
   * with p_i = softmax(z_i):
   * - ∇f = (P − Y)/N and ‖p − e_y‖² = Σ_{j≠y} p_j² + (1 − p_y)² ≤ 2(1 − p_y)² ≤ 2, so
   *   ‖∇f‖_F ≤ √(2N)/N: ℓ_f = √(2/N).
   * - ∇²f is block diagonal with blocks (diag(p_i) − p_i p_iᵀ)/N, and vᵀ(diag p − p pᵀ)v = Var_p(v)
   *   ≤ (max v − min v)²/4 ≤ ‖v‖²/2 (Popoviciu; max v − min v ≤ √2‖v‖): L_f = 1/(2N), attained
   *   for K = 2 at z = 0.
   * - 0 ≤ LSE(z) − z_y ≤ log K + max_j z_j − z_y ≤ log K + √2‖z‖, and Σ_i ‖z_i‖ ≤ √N ‖Ẑ‖_F:
   *   f ≤ log K + √2 m/√N.
   * Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), App. C-1 b prints ℓ_log ≤ 2, L_log ≤ 2 per sample (loose by √2 and 4).
   */
  smoothness(bounds: LossBounds): LossConstants {
    const n = bounds.batch;
    return {
      bound: Math.log(bounds.outputSize) + (Math.SQRT2 * bounds.norm) / Math.sqrt(n),
      lipschitz: Math.sqrt(2 / n),
      smoothness: 1 / (2 * n),
    };
  }

  evaluate(output: FloatArray, batch: Batch, k: number, grad: FloatArray | null, backend?: Backend): number {
    const labels = requireLabels(batch, k);
    const n = batch.size;
    // The backend's multi-threaded kernel of the same loop (equal up to the last bit of exp/log).
    const kernel = backend?.kernels?.logistic;
    const samePrecision = grad === null || grad instanceof Float32Array === output instanceof Float32Array;
    if (kernel && n > 0 && samePrecision) return kernel(n, k, output, labels, grad);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const o = i * k;
      let m = output[o];
      for (let j = 1; j < k; j++) if (output[o + j] > m) m = output[o + j];
      let s = 0;
      for (let j = 0; j < k; j++) s += Math.exp(output[o + j] - m);
      const lse = m + Math.log(s);
      const y = labels[i];
      total += lse - output[o + y];
      if (grad) {
        for (let j = 0; j < k; j++) grad[o + j] = Math.exp(output[o + j] - lse) / n;
        grad[o + y] -= 1 / n;
      }
    }
    return total / n;
  }

  /**
   * H_i = (diag(p_i) − p_i p_iᵀ)/N, p_i = softmax(ŷ_i): ℓ = log Σ_l exp ŷ_l − ŷ_y has gradient
   * p − e_y and ∂p_r/∂ŷ_j = p_r(δ_rj − p_j). In one pass (softmax once per sample); entry
   * (r, j) is p_r·(δ_rj − p_j)/N, the value hessianVector gives for v = e_j (⟨p, e_j⟩ = p_j exactly).
   */
  hessianBlocks(output: FloatArray, batch: Batch, k: number, out: Float64Array): void {
    const n = batch.size;
    requireLabels(batch, k);
    const p = new Float64Array(k);
    for (let i = 0; i < n; i++) {
      softmaxRow(output, i * k, k, p);
      const b = i * k * k;
      for (let r = 0; r < k; r++) for (let j = 0; j < k; j++) out[b + r * k + j] = (p[r] * ((r === j ? 1 : 0) - p[j])) / n;
    }
  }

  hessianVector(output: FloatArray, batch: Batch, k: number, v: FloatArray, out: FloatArray): void {
    const n = batch.size;
    requireLabels(batch, k);
    const p = new Float64Array(k);
    for (let i = 0; i < n; i++) {
      const o = i * k;
      softmaxRow(output, o, k, p);
      // (diag(p) − p pᵀ) v = p ⊙ (v − ⟨p, v⟩), scaled by 1/n for the batch mean.
      let pv = 0;
      for (let j = 0; j < k; j++) pv += p[j] * v[o + j];
      for (let j = 0; j < k; j++) out[o + j] = (p[j] * (v[o + j] - pv)) / n;
    }
  }
}

/** p ← softmax of the k outputs at offset o, p_j = exp(ŷ_j − max ŷ) / Σ_l exp(ŷ_l − max ŷ) (shifted for range). */
function softmaxRow(output: FloatArray, o: number, k: number, p: Float64Array): void {
  let m = output[o];
  for (let j = 1; j < k; j++) if (output[o + j] > m) m = output[o + j];
  let s = 0;
  for (let j = 0; j < k; j++) {
    p[j] = Math.exp(output[o + j] - m);
    s += p[j];
  }
  for (let j = 0; j < k; j++) p[j] /= s;
}

function requireLabels(batch: Batch, k: number): Int32Array {
  const labels = batch.labels;
  if (!labels) throw new Error("logistic loss: the batch has no labels (regression targets need the squared loss)");
  if (labels.length < batch.size) throw new Error(`logistic loss: ${labels.length} labels for ${batch.size} samples`);
  for (let i = 0; i < batch.size; i++) {
    const y = labels[i];
    if (!(y >= 0 && y < k)) throw new Error(`logistic loss: label ${y} of sample ${i} is outside [0, ${k}) (the model has ${k} outputs)`);
  }
  return labels;
}
