import { allocate, dtypeOf, type FloatArray } from "../core/dtype.js";
import { OptionReader } from "./options.js";
import type { GradientTransformation, StateTree, UpdateContext } from "./transform.js";

// Armijo backtracking line search for first-order training, as an Optax-style transformation that
// wraps the direction of another (SGD, heavy-ball momentum). See docs/line-search.md.

/** How the first trial step of an update is chosen. */
export type ArmijoReset = "constant" | "previous" | "increase";

/** Options of {@link armijoLineSearch}. */
export interface ArmijoLineSearchOptions {
  /** Largest (and, with reset `constant`, every) first trial step s₀ > 0 (default 1). */
  initialStep?: number;
  /** Sufficient-decrease constant c ∈ (0, 1) (default 1e-4, Nocedal & Wright Sec. 3.1). */
  c?: number;
  /** Backtracking factor β ∈ (0, 1): s ← βs after a failed trial (default 0.5). */
  shrink?: number;
  /**
   * First trial step of each update (default `increase`):
   * - `constant`: s₀ every time (Nocedal & Wright, Alg. 3.1);
   * - `previous`: the step accepted at the previous update (never increases);
   * - `increase`: min(s₀, γ·s_prev), γ = {@link ArmijoLineSearchOptions.increase}, the reset of
   *   Vaswani et al. 2019 ("Painless Stochastic Gradient", arXiv:1905.09997, Alg. 2, reset option 2).
   */
  reset?: ArmijoReset;
  /** γ > 1 of the `increase` reset (default 2). */
  increase?: number;
  /** Largest number of trial points per update (default 30); when all fail the update is zero. */
  maxTrials?: number;
}

/** State of {@link armijoLineSearch}: the inner transformation's, and the search's history. */
export interface ArmijoState {
  [key: string]: StateTree;
  /** State of the wrapped direction transformation. */
  inner: StateTree;
  /** Step accepted at the last update (s₀ before the first). */
  step: number;
  /** Trial points evaluated in total. */
  evaluations: number;
  /** Updates at which the direction was not a descent direction and −g was used instead. */
  fallbacks: number;
  /** Updates at which no trial step satisfied the condition (update zero). */
  failures: number;
}

/** The trial points and accepted steps of the last update, for tests and logging. */
export interface ArmijoTrace {
  /** f(w_t). */
  value: number;
  /** ⟨∇f(w_t), u⟩ for the unit-step update u (negative). */
  slope: number;
  /** Accepted step s (0 when none). */
  step: number;
  /** f(w_t + s u) at the accepted step. */
  newValue: number;
  /** Trial points evaluated. */
  trials: number;
  /** Whether −g replaced the inner direction. */
  fallback: boolean;
}

/**
 * Armijo backtracking line search (Armijo, Pacific J. Math. 16, 1966; Nocedal & Wright, Numerical
 * Optimization, 2nd ed., Alg. 3.1; in the stochastic setting on the mini-batch of the gradient,
 * Vaswani et al. 2019, arXiv:1905.09997, Eq. (1)), wrapping a direction transformation `inner`
 * built with learning rate 1 (e.g. `sgd({ lr: 1 })`, `momentum({ lr: 1 })`): `inner` turns the
 * gradient g into the unit-step update u (u = −g for SGD, u = −v for heavy ball), then the
 * search tries s = s_init, βs_init, β²s_init, … until
 *
 *   f(w + s u) ≤ f(w) + c s ⟨g, u⟩,
 *
 * and outputs the update s·u (so that `applyUpdates` gives w + s u). When u is not a descent
 * direction (⟨g, u⟩ ≥ 0, possible with momentum) the step uses u = −g instead (a "fallback",
 * counted in the state); when no trial succeeds in `maxTrials` the update is zero (a "failure").
 * f and its value at w come from `ctx.objective` ({@link LineSearchObjective}); without it the
 * update throws. For an L-smooth f and u = −g every s ≤ 2(1 − c)/L satisfies the condition, so the
 * accepted step is at least min(s_init, 2β(1 − c)/L).
 */
export function armijoLineSearch(
  inner: GradientTransformation,
  options: ArmijoLineSearchOptions = {},
): GradientTransformation<ArmijoState> & { readonly lastTrace: () => ArmijoTrace | null } {
  const r = new OptionReader("armijoLineSearch", options);
  const s0 = r.number("initialStep", 1, { above: 0 }) as number;
  const c = r.number("c", 1e-4, { above: 0, below: 1 }) as number;
  const beta = r.number("shrink", 0.5, { above: 0, below: 1 }) as number;
  const reset = r.choice("reset", ["constant", "previous", "increase"] as const, "increase");
  const gamma = r.number("increase", 2, { above: 1 }) as number;
  const maxTrials = r.number("maxTrials", 30, { min: 1, integer: true }) as number;
  r.done();
  if (!Number.isFinite(s0)) r.fail("initialStep", `must be finite, got ${s0}`);
  let grad: FloatArray | null = null;
  let trial: FloatArray | null = null;
  let trace: ArmijoTrace | null = null;
  return {
    name: `armijo(${inner.name})`,
    lastTrace: () => trace,
    init(params) {
      return { inner: inner.init(params), step: s0, evaluations: 0, fallbacks: 0, failures: 0 };
    },
    update(updates, state, params, ctx: UpdateContext) {
      const objective = ctx.objective;
      if (!objective) {
        throw new Error(
          "armijoLineSearch: the update context has no objective (UpdateContext.objective); the line search needs f on the batch",
        );
      }
      const n = updates.length;
      if (!grad || grad.length !== n || dtypeOf(grad) !== dtypeOf(updates)) {
        grad = allocate(dtypeOf(updates), n);
        trial = allocate(dtypeOf(updates), n);
      }
      const g = grad;
      const t = trial as FloatArray;
      g.set(updates);
      state.inner = inner.update(updates, state.inner, params, ctx);
      let slope = 0;
      for (let i = 0; i < n; i++) slope += g[i] * updates[i];
      let fallback = false;
      if (!(slope < 0)) {
        // Not a descent direction: this step follows −g (slope −‖g‖²).
        fallback = true;
        state.fallbacks += 1;
        slope = 0;
        for (let i = 0; i < n; i++) {
          updates[i] = -g[i];
          slope -= g[i] * g[i];
        }
      }
      const f0 = objective.value;
      let s = reset === "constant" ? s0 : reset === "previous" ? state.step : Math.min(s0, gamma * state.step);
      if (!(s > 0)) s = s0;
      let accepted = 0;
      let newValue = f0;
      let k = 0;
      if (slope < 0) {
        for (k = 1; k <= maxTrials; k++) {
          for (let i = 0; i < n; i++) t[i] = params[i] + s * updates[i];
          const v = objective.at(t);
          if (Number.isFinite(v) && v <= f0 + c * s * slope) {
            accepted = s;
            newValue = v;
            break;
          }
          s *= beta;
        }
        if (k > maxTrials) k = maxTrials;
      }
      state.evaluations += k;
      if (accepted > 0) state.step = accepted;
      else state.failures += 1;
      for (let i = 0; i < n; i++) updates[i] *= accepted;
      trace = { value: f0, slope, step: accepted, newValue, trials: k, fallback };
      return state;
    },
  };
}
