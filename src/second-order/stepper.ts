import type { Chain } from "../chain/chain.js";
import type { FloatArray } from "../core/dtype.js";
import { combineInto, dotOf, sameKind } from "../core/kernels.js";
import type { Batch } from "../objectives/batch.js";
import type { Objective } from "../objectives/objective.js";
import { objectiveValue } from "../oracles/first-order.js";
import { type GaussNewtonImplementation, prepareGaussNewton } from "./gauss-newton.js";
import { prepareGgn } from "./ggn.js";
import type { GramOptions } from "./gram.js";
import { NewtonNotPositiveDefiniteError, prepareNewton } from "./newton-dp.js";

// An optimizer-like stepping API for training loops over the second-order steps.
//
// Two modes, as in the papers (Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (long version with appendices) Sec. 3.1; Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019) Eqs. (13)-(14)):
// - proximal (lineSearch false): w ← w + d(μ) with μ = 1/γ (γ = stepSize), always accepted;
// - direction + Armijo (lineSearch true): d(μ) with μ = damping, accepted when
//   F(w + d) ≤ F(w) + c ⟨∇F(w), d⟩; on failure μ ← 10 μ and the direction is recomputed (the Gram
//   matrix / stage matrices are reused), up to `maxTries` times; then w is left unchanged.
// For GGN (Cai et al., "Gram-Gauss-Newton Method" (arXiv:1905.11675)) μ is the λ of (J Jᵀ + λ I) and stepSize the η of the update.

/** The second-order methods. */
export type SecondOrderMethod = "gauss-newton" | "ggn" | "newton";

/** Options of {@link createSecondOrderStepper}. */
export interface SecondOrderStepperOptions extends GramOptions {
  method: SecondOrderMethod;
  /**
   * Initial regularization μ of the subproblem: the (μ/2)‖d‖² term (Gauss-Newton, Newton) or the λ
   * of J Jᵀ + λI (GGN). Default: 1/stepSize in proximal mode, else 1 (Gauss-Newton, Newton); 1e-3 for GGN.
   */
  damping?: number;
  /** γ of the proximal step (Gauss-Newton, Newton: μ = 1/γ when `damping` is absent); η for GGN (default 1). */
  stepSize?: number;
  /** Armijo backtracking on μ (×`dampingIncrease` on failure). Default: true, except GGN (false). */
  lineSearch?: boolean;
  /** Gauss-Newton implementation: "gram" (fast, default) or "dual" (the papers' 2q+1 oracle calls). */
  implementation?: GaussNewtonImplementation;
  /** Armijo constant c (default 1e-4). */
  armijo?: number;
  /** Factor by which μ grows after a failed Armijo test (default 10, the papers'). */
  dampingIncrease?: number;
  /** Factor by which μ shrinks after an accepted step (default 1: never, as in the papers). */
  dampingDecrease?: number;
  /** Lower bound on μ after shrinking (default 1e-12). */
  minDamping?: number;
  /** Directions tried per step before giving up (default 20). */
  maxTries?: number;
}

/** Mutable per-run state of a stepper. */
export interface SecondOrderState {
  /** The regularization μ (λ for GGN) the next step starts from. */
  damping: number;
  /** Steps taken (accepted or not). */
  steps: number;
}

/** Result of {@link SecondOrderStepper.step}. */
export interface SecondOrderStepResult {
  /** F(w) before the step. */
  value: number;
  /** F(w) after it (equal to `value` when rejected). */
  newValue: number;
  /** The μ (λ for GGN) of the accepted direction (or the last tried). */
  damping: number;
  accepted: boolean;
  /** Directions computed (1 without line search). */
  tries: number;
}

/** A stepper: `step` updates w in place. */
export interface SecondOrderStepper {
  readonly options: Readonly<SecondOrderStepperOptions>;
  /** Fresh state (the initial damping). */
  initialState(): SecondOrderState;
  /** One step on a batch; w is updated in place when accepted. Without `state`, the stepper's own is used. */
  step(chain: Chain, objective: Objective, w: FloatArray, batch: Batch, state?: SecondOrderState): SecondOrderStepResult;
}

/** Creates a second-order stepper (Gauss-Newton, Gram-Gauss-Newton or Newton-by-DP). */
export function createSecondOrderStepper(options: SecondOrderStepperOptions): SecondOrderStepper {
  const method = options.method;
  if (method !== "gauss-newton" && method !== "ggn" && method !== "newton") {
    throw new Error(`method: expected "gauss-newton", "ggn" or "newton", got "${method as string}"`);
  }
  const lineSearch = options.lineSearch ?? method !== "ggn";
  if (options.stepSize !== undefined && !(options.stepSize > 0))
    throw new Error(`stepSize: expected a positive number, got ${options.stepSize}`);
  if (options.damping !== undefined && !(options.damping >= 0))
    throw new Error(`damping: expected a non-negative number, got ${options.damping}`);
  const initialDamping =
    options.damping ?? (method === "ggn" ? 1e-3 : !lineSearch && options.stepSize !== undefined ? 1 / options.stepSize : 1);
  const armijo = options.armijo ?? 1e-4;
  const increase = options.dampingIncrease ?? 10;
  const decrease = options.dampingDecrease ?? 1;
  const minDamping = options.minDamping ?? 1e-12;
  const maxTries = lineSearch ? (options.maxTries ?? 20) : 1;
  const eta = method === "ggn" ? (options.stepSize ?? 1) : 1;
  const gram: GramOptions = {
    training: options.training,
    state: options.state,
    maxJacobianBytes: options.maxJacobianBytes,
    path: options.path,
  };
  const own: SecondOrderState = { damping: initialDamping, steps: 0 };
  let directionBuffer: Float64Array | undefined;
  let trialBuffer: FloatArray | undefined;

  return {
    options: { ...options },
    initialState: () => ({ damping: initialDamping, steps: 0 }),
    step(chain, objective, w, batch, state = own) {
      state.steps++;
      const sub =
        method === "gauss-newton"
          ? prepareGaussNewton(chain, objective, w, batch, { ...gram, implementation: options.implementation })
          : method === "ggn"
            ? prepareGgn(chain, objective, w, batch, gram)
            : prepareNewton(chain, objective, w, batch, { training: options.training, state: options.state });
      const direction = (mu: number): Float64Array | null => {
        try {
          if (method === "gauss-newton") {
            // One direction buffer per stepper, reused across steps and tries (no fresh p-vector per try).
            if (directionBuffer?.length !== w.length) directionBuffer = new Float64Array(w.length);
            return (sub as ReturnType<typeof prepareGaussNewton>).direction(mu, directionBuffer);
          }
          return method === "ggn" ? (sub as ReturnType<typeof prepareGgn>).direction(mu, eta) : sub.direction(mu);
        } catch (e) {
          // A non-PD Newton subproblem counts as a failed try (more damping), like a failed Armijo test.
          if (e instanceof NewtonNotPositiveDefiniteError && lineSearch) return null;
          throw e;
        }
      };
      // One trial buffer per stepper, reused across steps (a fresh p-vector costs its page faults).
      if (trialBuffer?.length !== w.length || !sameKind(trialBuffer, w)) trialBuffer = w.slice();
      const trial = trialBuffer;
      let mu = state.damping;
      try {
        for (let t = 1; t <= maxTries; t++) {
          const d = direction(mu);
          if (d) {
            combineInto(chain.backend, w.length, 1, w, 1, d, trial); // trial = w + d, rounded to w's precision
            const newValue = objectiveValue(chain, objective, trial, batch, { training: options.training ?? true, state: options.state });
            const slope = dotOf(chain.backend, d.length, sub.gradient, d);
            if (!lineSearch || (Number.isFinite(newValue) && newValue <= sub.value + armijo * slope)) {
              w.set(trial);
              state.damping = lineSearch ? Math.max(mu / decrease, minDamping) : mu;
              return { value: sub.value, newValue, damping: mu, accepted: true, tries: t };
            }
          }
          if (t < maxTries) mu *= increase;
        }
        state.damping = mu;
        return { value: sub.value, newValue: sub.value, damping: mu, accepted: false, tries: maxTries };
      } finally {
        // The Gauss-Newton subproblem's Gram matrix and gradient go back to the chain's pool.
        if (method === "gauss-newton") (sub as ReturnType<typeof prepareGaussNewton>).release();
      }
    },
  };
}
