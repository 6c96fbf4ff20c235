import { allocate, dtypeOf, type FloatArray } from "../core/dtype.js";

/** Options of {@link armijoStep}. */
export interface ArmijoOptions {
  /** First trial step s₀ > 0 (default 1). */
  initialStep?: number;
  /** Backtracking factor β ∈ (0, 1): s ← βs (default 0.5). */
  shrink?: number;
  /** Sufficient-decrease constant c ∈ (0, 1) (default 1e-4). */
  c?: number;
  /** Largest number of trial points (default 50). */
  maxTrials?: number;
  /** Search direction d (default −∇f); must be a descent direction, ⟨∇f, d⟩ < 0. */
  direction?: ArrayLike<number>;
  /** Scratch buffer for the trial point (allocated when absent). */
  scratch?: FloatArray;
}

/** Result of {@link armijoStep}. */
export interface ArmijoResult {
  /** Whether a step satisfying the Armijo condition was found (params were then updated). */
  accepted: boolean;
  /** The accepted step s (0 when none). */
  step: number;
  /** f at the new parameters (the old value when none was accepted). */
  value: number;
  /** Number of evaluations of f. */
  evaluations: number;
  /** ⟨∇f, d⟩, the directional derivative used in the condition. */
  slope: number;
}

/**
 * One step of gradient descent with Armijo backtracking line search (Armijo, Pacific J. Math. 16,
 * 1966; Nocedal & Wright, Numerical Optimization, 2nd ed., Alg. 3.1), for full-batch GD (the lecture's
 * "alternatively: use of line search", slide "Gradient Descent"). Tries s = s₀, βs₀, β²s₀, … until
 *
 *   f(w + s d) ≤ f(w) + c s ⟨∇f(w), d⟩        (with d = −∇f: f(w − s∇f) ≤ f(w) − c s ‖∇f‖²),
 *
 * then sets params ← w + s d in place. `value` = f(w) and `grad` = ∇f(w) are the caller's. For an
 * L-smooth f and d = −∇f the condition holds for every s ≤ 2(1 − c)/L, so the search ends after at
 * most ⌈log_β(2(1 − c)/(L s₀))⌉ + 1 trials. Non-finite trial values count as failures.
 */
export function armijoStep(
  f: (w: FloatArray) => number,
  params: FloatArray,
  grad: ArrayLike<number>,
  value: number,
  options: ArmijoOptions = {},
): ArmijoResult {
  const s0 = options.initialStep ?? 1;
  const beta = options.shrink ?? 0.5;
  const c = options.c ?? 1e-4;
  const maxTrials = options.maxTrials ?? 50;
  if (!(s0 > 0 && Number.isFinite(s0))) throw new Error(`armijoStep: initialStep must be > 0, got ${s0}`);
  if (!(beta > 0 && beta < 1)) throw new Error(`armijoStep: shrink must be in (0, 1), got ${beta}`);
  if (!(c > 0 && c < 1)) throw new Error(`armijoStep: c must be in (0, 1), got ${c}`);
  if (!(Number.isInteger(maxTrials) && maxTrials >= 1)) throw new Error(`armijoStep: maxTrials must be an integer ≥ 1, got ${maxTrials}`);
  if (grad.length !== params.length) throw new Error(`armijoStep: gradient of ${grad.length} entries for ${params.length} parameters`);
  const d = options.direction;
  if (d && d.length !== params.length) throw new Error(`armijoStep: direction of ${d.length} entries for ${params.length} parameters`);
  let slope = 0;
  for (let i = 0; i < params.length; i++) slope += grad[i] * (d ? d[i] : -grad[i]);
  if (!(slope < 0)) return { accepted: false, step: 0, value, evaluations: 0, slope };
  const trial = options.scratch ?? allocate(dtypeOf(params), params.length);
  if (trial.length !== params.length) throw new Error(`armijoStep: scratch of ${trial.length} entries for ${params.length} parameters`);
  let s = s0;
  for (let k = 1; k <= maxTrials; k++) {
    for (let i = 0; i < params.length; i++) trial[i] = params[i] + s * (d ? d[i] : -grad[i]);
    const v = f(trial);
    if (Number.isFinite(v) && v <= value + c * s * slope) {
      params.set(trial);
      return { accepted: true, step: s, value: v, evaluations: k, slope };
    }
    s *= beta;
  }
  return { accepted: false, step: 0, value, evaluations: maxTrials, slope };
}
