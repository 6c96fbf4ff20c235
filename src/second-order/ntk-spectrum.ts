import type { Chain } from "../chain/chain.js";
import type { FloatArray } from "../core/dtype.js";
import { empiricalNtk } from "./gram.js";

// The spectrum of the empirical NTK Gram matrix Θ = J Jᵀ (gram.ts) and what it implies for gradient
// descent on the squared loss f(ŷ) = ‖ŷ − y‖²/(2N) of chainopt (docs/diagnostics.md).

/** Result of {@link ntkSpectrum}. */
export interface NtkSpectrum {
  /** Samples N and outputs per sample k; Θ is q × q with q = N·k. */
  readonly samples: number;
  readonly outputs: number;
  /** Eigenvalues of Θ, ascending. */
  readonly eigenvalues: Float64Array;
  readonly lambdaMin: number;
  readonly lambdaMax: number;
  /** λ_max/λ_min (∞ when λ_min ≤ 0). */
  readonly condition: number;
  /**
   * Linearized gradient descent w ← w − η∇F on F = ‖ψ(w) − y‖²/(2N): the residual r = ψ − y
   * follows r⁺ = (I − (η/N)Θ) r, so with η = N/λ_max (`step`) every mode contracts and the
   * slowest by `rate` = 1 − λ_min/λ_max per step (the loss by rate²).
   */
  readonly step: number;
  readonly rate: number;
  /** η* = 2N/(λ_min + λ_max), the best constant step of the linear model: rate (κ − 1)/(κ + 1). */
  readonly optimalStep: number;
  readonly optimalRate: number;
  /**
   * The form of Du, Zhai, Póczos & Singh, "Gradient Descent Provably Optimizes Over-parameterized
   * Neural Networks" (ICLR 2019, arXiv:1810.02054), Thm 4.1: ‖r_k‖² ≤ (1 − ηλ₀/2)^k ‖r_0‖² for
   * η = O(λ₀/n²) on ½‖r‖² (an unspecified constant), here with λ₀ := λ_min(Θ) (the empirical
   * Gram at the current w, not their infinite-width H^∞) and the linearized model's safe step
   * η = 1/λ_max on ½‖r‖², i.e. the chainopt learning rate N/λ_max (= `step`): `duRate` = 1 − λ_min/(2λ_max).
   * (Their η = λ₀/n² with constant 1 may exceed 2/λ_max on small N; it is not printed.)
   */
  readonly duRate: number;
}

/** The spectrum of the empirical NTK of `chain` at w on `samples` inputs of x, and the implied steps and rates. */
export function ntkSpectrum(
  chain: Chain,
  w: FloatArray,
  x: ArrayLike<number>,
  samples: number,
  options: { state?: FloatArray } = {},
): NtkSpectrum {
  const gram = empiricalNtk(chain, w, x, samples, { training: options.state === undefined, state: options.state });
  const q = samples * chain.outputSize;
  const eig = chain.backend.symmetricEigen?.(gram, q, false);
  if (!eig) throw new Error(`ntk: backend ${chain.backend.name} has no symmetric eigensolver`);
  const eigenvalues = Float64Array.from(eig.subarray(0, q)).sort();
  const lambdaMin = eigenvalues[0];
  const lambdaMax = eigenvalues[q - 1];
  const n = samples;
  const positive = lambdaMin > 0;
  const condition = positive ? lambdaMax / lambdaMin : Infinity;
  return {
    samples,
    outputs: chain.outputSize,
    eigenvalues,
    lambdaMin,
    lambdaMax,
    condition,
    step: n / lambdaMax,
    rate: positive ? 1 - lambdaMin / lambdaMax : 1,
    optimalStep: (2 * n) / (Math.max(lambdaMin, 0) + lambdaMax),
    optimalRate: positive ? (condition - 1) / (condition + 1) : 1,
    duRate: positive ? 1 - lambdaMin / (2 * lambdaMax) : 1,
  };
}
