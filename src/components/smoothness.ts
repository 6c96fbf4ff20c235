import type { SmoothMaxPoolSpec } from "./smooth-max-pool.js";
import type { SmoothReluSpec } from "./smooth-relu.js";

// Types and shared helpers of the components' smoothness constants (docs/certificates.md). Each component
// file states its own constants, with their derivation, in its `smoothness` method; the chain and
// objective certificates that combine them live in `src/certify/`.
//
// Conventions. A component acts on a whole batch at once: its input is the `batch × size` matrix X,
// seen as one vector of ℝ^{batch·size} with the Euclidean (= Frobenius) norm. All constants are with
// respect to that norm (Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), Sec. III-A: m_f = sup ‖f(x)‖, ℓ_f its Lipschitz constant,
// L_f the Lipschitz constant of ∇f), `Infinity` where not finite (e.g. L of ReLU).
//
// A note on batches. Element-wise maps, pooling and softmax act on the batch block by block
// (sample by sample, coordinate by coordinate). The papers' Lemma 15 item 1 (Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021),
// App. C) states that a block-diagonal map a(x₁; …; x_n) = (α₁(x₁); …; α_n(x_n)) is ‖ℓ‖₂-Lipschitz
// with ℓ = (ℓ_i); its proof bounds Σ‖∇α_i(x_i) z_i‖ by Cauchy–Schwarz after a triangle inequality
// it does not need. Since the blocks are orthogonal, ‖∇a(x) z‖² = Σ_i ‖∇α_i(x_i) z_i‖² ≤
// max_i ℓ_i² ‖z‖², so a is max_i ℓ_i = ‖ℓ‖_∞-Lipschitz (as it is max_i L_i-smooth, which the lemma
// does state). We use ‖ℓ‖_∞: with ‖ℓ‖₂ an element-wise ReLU on a 224×224×64 batch of 128 would be
// 10⁵ times "less Lipschitz" than on one coordinate.

/**
 * The inputs on which smoothness constants are stated: a batch of `batch` samples (the whole batch
 * is one vector, norms are Frobenius norms of the `batch × size` matrix) whose norm is at most
 * `norm` (`Infinity` when unknown). Constants valid on all inputs are valid for every `norm`; some
 * components return tighter values on bounded inputs.
 */
export interface InputBounds {
  readonly batch: number;
  readonly norm: number;
}

/**
 * Constants of a nonlinear part a (activation, pooling, normalization, reshape) on the batch
 * (Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), Algorithm 1, input 3): suprema over inputs with ‖x‖ ≤ input.norm (global
 * values are valid too), `Infinity` where not finite.
 */
export interface NonlinearConstants {
  readonly kind: "nonlinear";
  /** m_a: bound on ‖a(x)‖. */
  readonly bound: number;
  /** ℓ_a: Lipschitz constant of a. */
  readonly lipschitz: number;
  /** L_a: Lipschitz constant of ∇a (`Infinity` when a is not continuously differentiable). */
  readonly smoothness: number;
  /** ‖a(0)‖. */
  readonly valueAtZero: number;
  /** ‖∇a(0)‖₂,₂ (for a non-differentiable a: a bound on its generalized Jacobians at 0). */
  readonly jacobianAtZero: number;
}

/**
 * Constants of a bi-affine part b(x, u) = β(x, u) + βᵘ(u) + βˣ(x) + β⁰ on the batch
 * (Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), Sec. III-B, the class B_{L,lᵘ,lˣ}, and Algorithm 1, input 2).
 */
export interface BiaffineConstants {
  readonly kind: "biaffine";
  /** L_b = ‖β‖₂,₂,₂, the tensor norm of the bilinear part: ‖β(x, u)‖ ≤ L_b ‖x‖ ‖u‖ (Lemma 14). */
  readonly bilinear: number;
  /** lᵘ = ‖βᵘ‖₂,₂ (the parameters' linear part: the bias added to every sample and position). */
  readonly paramLipschitz: number;
  /** lˣ = ‖βˣ‖₂,₂ (the input's linear part; 0 for dense and convolution). */
  readonly inputLipschitz: number;
  /** ‖b(0, 0)‖ = ‖β⁰‖. */
  readonly valueAtZero: number;
  /**
   * True when β and βᵘ read disjoint blocks of u (weights vs bias). Then
   * ‖β(x, u_W) + βᵘ(u_b)‖ ≤ L_b‖x‖‖u_W‖ + lᵘ‖u_b‖ ≤ √((L_b‖x‖)² + (lᵘ)²)·‖u‖ by Cauchy–Schwarz
   * (‖u_W‖² + ‖u_b‖² = ‖u‖²), which the tight certificate uses in place of L_b‖x‖ + lᵘ.
   */
  readonly disjointParamBlocks: boolean;
}

/** Smoothness constants of a component. */
export type ComponentConstants = NonlinearConstants | BiaffineConstants;

/** Constants of a scalar function α applied element-wise (Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), App. B-2). */
export interface ScalarConstants {
  /** sup |α| (Infinity if unbounded). */
  readonly sup: number;
  /** sup |α′|. */
  readonly lipschitz: number;
  /** sup |α″| (Infinity if α′ is not Lipschitz). */
  readonly smoothness: number;
  /** |α(0)|. */
  readonly value0: number;
  /** |α′(0)| (for a non-differentiable α: the largest generalized derivative at 0). */
  readonly derivative0: number;
  /** True when |α(x)| ≤ |x| for all x (ReLU, tanh, SmoothReLU): then ‖a(x)‖ ≤ ‖x‖. */
  readonly contractsToZero?: boolean;
}

/**
 * Constants of a(x) = (α(x_i))_i on `size` coordinates per sample, for a batch: by the corrected
 * Lemma 15 item 1 (see the note at the top of this file) the Lipschitz and smoothness constants of
 * α carry over; ‖a(0)‖ = |α(0)|·√(batch·size); ∇a(0) = α′(0)·I; ‖a(x)‖ ≤ sup|α|·√(batch·size), and
 * ‖a(x)‖ ≤ ‖x‖ when |α(x)| ≤ |x|.
 */
export function elementwiseConstants(alpha: ScalarConstants, size: number, input: InputBounds): NonlinearConstants {
  const sqrtD = Math.sqrt(input.batch * size);
  let bound = alpha.sup === Infinity ? Infinity : alpha.sup * sqrtD;
  if (alpha.contractsToZero) bound = Math.min(bound, input.norm);
  return {
    kind: "nonlinear",
    bound,
    lipschitz: alpha.lipschitz,
    smoothness: alpha.smoothness,
    valueAtZero: alpha.value0 * sqrtD,
    jacobianAtZero: alpha.derivative0,
  };
}

/** Constants of a linear isometric re-indexing (flatten): the identity's. */
export function identityConstants(input: InputBounds): NonlinearConstants {
  return { kind: "nonlinear", bound: input.norm, lipschitz: 1, smoothness: 0, valueAtZero: 0, jacobianAtZero: 1 };
}

/**
 * Sliding windows along one axis: window o ∈ [0, outSize) covers the input positions
 * [o·stride − pad, o·stride − pad + kernel) ∩ [0, inSize). Returns the largest number of windows
 * covering one input position, max_i |V_i| in Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), Lemma 17 (computed exactly, which
 * accounts for padding and borders; it is at most ⌈kernel/stride⌉).
 */
export function maxWindowCoverage(inSize: number, outSize: number, kernel: number, stride: number, pad: number): number {
  let best = 0;
  for (let i = 0; i < inSize; i++) {
    // o·s − p ≤ i ≤ o·s − p + k − 1  ⟺  (i + p − k + 1)/s ≤ o ≤ (i + p)/s.
    const lo = Math.max(0, Math.ceil((i + pad - kernel + 1) / stride));
    const hi = Math.min(outSize - 1, Math.floor((i + pad) / stride));
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

/**
 * For windows along one axis (as in {@link maxWindowCoverage}) whose value is divided by `divisor(o)`
 * elements: max_i Σ_{o ∋ i} 1/divisor(o). Average pooling's squared operator norm is at most the
 * product of this quantity over the two axes (see avg-pool.ts).
 */
export function maxInverseWindowWeight(
  inSize: number,
  outSize: number,
  kernel: number,
  stride: number,
  pad: number,
  divisor: (o: number) => number,
): number {
  let best = 0;
  for (let i = 0; i < inSize; i++) {
    const lo = Math.max(0, Math.ceil((i + pad - kernel + 1) / stride));
    const hi = Math.min(outSize - 1, Math.floor((i + pad) / stride));
    let s = 0;
    for (let o = lo; o <= hi; o++) s += 1 / divisor(o);
    best = Math.max(best, s);
  }
  return best;
}

/**
 * How a non-smooth component is smoothed (docs/smoothing.md; Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), Def. 5): a is (L, K)-smoothable
 * when for every accuracy δ > 0 there is a replacement a_δ with ‖a_δ(x) − a(x)‖ ≤ δ for every input
 * x of the batch (Euclidean norm of the whole `batch × size` block, as for the other constants) and
 * a_δ is (L + K/δ)-smooth, both a and a_δ being ℓ-Lipschitz. Declared by `Component.smoothing`;
 * used by Algorithm 2 (`src/smoothing/`). Smooth components need no rule (K = 0, a_δ = a).
 */
export interface SmoothingRule {
  /** ℓ: a Lipschitz constant valid for a and for every a_δ (Algorithm 2 multiplies these). */
  readonly lipschitz: number;
  /** L of the (L, K) pair: a_δ is (L + K/δ)-smooth. */
  readonly smoothness: number;
  /** K of the (L, K) pair (> 0: the component is non-smooth and gets smoothed). */
  readonly smoothnessPerAccuracy: number;
  /** The layer spec of a_δ, the δ-accurate replacement on a batch of `input.batch` samples. */
  spec(accuracy: number): SmoothReluSpec | SmoothMaxPoolSpec;
  /** The scalar parameter of a_δ (μ of smoothRelu, the temperature of smoothMaxPool2d). */
  parameter(accuracy: number): number;
  /** One line: what replaces what, and the source of the bound. */
  readonly description: string;
}
