import type { Backend } from "../core/backend.js";
import type { FloatArray } from "../core/dtype.js";
import { allFiniteOf, axpyInto, NATIVE_MIN_LENGTH, sameKind, scalInPlace } from "../core/kernels.js";
import type { Schedule } from "./schedules.js";

// Optimizers as composable gradient transformations, in the style of Optax (Babuschkin et al.,
// "The DeepMind JAX Ecosystem", 2020; optax.GradientTransformation). Parameters, gradients and
// updates are each ONE flat typed array w = (u_1; …; u_k) of the chain. A transformation maps the
// incoming updates (at first the gradient g_t) to outgoing updates IN PLACE, reading and mutating
// its explicit state; the last transformation of an optimizer scales by −η_t, and
// {@link applyUpdates} then performs w ← w + updates. Nothing is allocated per step: state buffers
// are allocated by `init` and mutated by `update`.

/**
 * The state of a transformation: a plain tree of typed arrays and numbers (arrays and objects of
 * them), with stable field names, so that {@link stateToTensors} can checkpoint it and a resumed
 * run continues bit-identically.
 */
export type StateTree = FloatArray | number | readonly StateTree[] | { readonly [key: string]: StateTree };

/** The state of a stateless transformation. */
export type EmptyState = Record<string, never>;

/**
 * A gradient transformation (Optax's `GradientTransformation`), with explicit state.
 *
 * - `init(params)` allocates the state for parameters shaped like `params`.
 * - `update(updates, state, params, ctx)` transforms `updates` in place and returns the state (the
 *   same object, mutated, for every transformation of this library). `params` are the current
 *   parameters w_t (needed by weight decay); `ctx` gives the 0-based index t of this update (used by
 *   learning-rate schedules) and the backend whose kernels the update runs on — the chain's, so
 *   that one backend computes everything (Optax passes such per-call facts as `extra_args`).
 *   Transformations whose rule depends on the number of updates seen (bias corrections) keep their
 *   own count in their state, so that it is checkpointed with it.
 */
/** Per-call facts of {@link GradientTransformation.update}. */
export interface UpdateContext {
  /** The 0-based index t of this update (read by learning-rate schedules). */
  readonly step: number;
  /** The kernels to run on: the chain's backend (`Chain.backend`). */
  readonly backend: Backend;
  /**
   * The objective on the batch of this gradient, for transformations that evaluate it (the Armijo
   * line search, `armijo.ts`); the trainer supplies it. Optional: other transformations ignore it.
   */
  readonly objective?: LineSearchObjective;
}

/**
 * The objective on the current (mini-)batch, which a line-search transformation needs besides the
 * gradient (Optax passes the same facts as the `value` and `value_fn` extra arguments of
 * `scale_by_backtracking_linesearch`).
 */
export interface LineSearchObjective {
  /** f(w_t), the value at the current parameters, on the batch of the gradient. */
  readonly value: number;
  /** f(w) at trial parameters w, on the same batch (no side effect on the training state). */
  at(params: FloatArray): number;
}

export interface GradientTransformation<S extends StateTree = StateTree> {
  /** Short description, e.g. `scaleByAdam`, for messages. */
  readonly name: string;
  init(params: FloatArray): S;
  update(updates: FloatArray, state: S, params: FloatArray, ctx: UpdateContext): S;
  /**
   * Optional fused path, as PyTorch's fused optimizers: `update` followed by
   * `applyUpdates(params, updates)` in one pass over memory, leaving the same state and the same
   * parameters bit for bit. Returns whether every parameter is finite afterwards, or null when the
   * fused path does not apply here (nothing was changed: call `update` and `applyUpdates`).
   * `updates` is left unspecified.
   */
  applyFused?(updates: FloatArray, state: S, params: FloatArray, ctx: UpdateContext): boolean | null;
}

/** The state of {@link chain}: the states of the transformations, in order. */
export type ChainState = StateTree[];

/**
 * Composes transformations: the updates pass through each in turn (Optax's `chain`). The state is
 * the array of their states (keys `0`, `1`, … in {@link stateToTensors}).
 */
export function chain(...transforms: GradientTransformation[]): GradientTransformation<ChainState> {
  return {
    name: `chain(${transforms.map((t) => t.name).join(", ")})`,
    init(params) {
      return transforms.map((t) => t.init(params));
    },
    update(updates, state, params, ctx) {
      if (state.length !== transforms.length) {
        throw new Error(`chain: state has ${state.length} entries for ${transforms.length} transformations`);
      }
      for (let i = 0; i < transforms.length; i++) state[i] = transforms[i].update(updates, state[i], params, ctx);
      return state;
    },
  };
}

/** The identity (leaves updates unchanged). */
export function identity(): GradientTransformation<EmptyState> {
  return {
    name: "identity",
    init: () => ({}),
    update: (_u, state) => state,
  };
}

/** u ← c·u for a constant c (Optax's `scale`). */
export function scaleByFactor(factor: number): GradientTransformation<EmptyState> {
  if (!Number.isFinite(factor)) throw new Error(`scaleByFactor: factor must be finite, got ${factor}`);
  return {
    name: "scaleByFactor",
    init: () => ({}),
    update(u, state) {
      for (let i = 0; i < u.length; i++) u[i] *= factor;
      return state;
    },
  };
}

/** A learning rate: a constant η or a schedule t ↦ η_t. */
export type LearningRate = number | Schedule;

/** The learning rate at step t. */
export function learningRateAt(lr: LearningRate, step: number): number {
  return typeof lr === "number" ? lr : lr(step);
}

function checkLearningRate(owner: string, lr: LearningRate): void {
  if (typeof lr === "function") return;
  if (typeof lr !== "number" || !Number.isFinite(lr) || lr < 0) {
    throw new Error(`${owner}: the learning rate must be a finite number ≥ 0 or a schedule, got ${String(lr)}`);
  }
}

/**
 * u ← −η_t·u: the descent step of every optimizer, θ(t+1) = θ(t) − η(t) ∇R(t) (lecture 6,
 * "Stochastic Gradient Descent"), applied after the direction has been formed. `lr` is a constant or
 * a schedule of the 0-based step.
 */
export function scaleByLearningRate(lr: LearningRate): GradientTransformation<EmptyState> {
  checkLearningRate("scaleByLearningRate", lr);
  return {
    name: "scaleByLearningRate",
    init: () => ({}),
    update(u, state, _params, ctx) {
      scalInPlace(ctx.backend, u.length, -learningRateAt(lr, ctx.step), u);
      return state;
    },
  };
}

/** u ← s(t)·u for a schedule s (no sign change; Optax's `scale_by_schedule`). */
export function scaleBySchedule(schedule: Schedule): GradientTransformation<EmptyState> {
  if (typeof schedule !== "function") throw new Error("scaleBySchedule: expected a schedule (a function of the step)");
  return {
    name: "scaleBySchedule",
    init: () => ({}),
    update(u, state, _params, ctx) {
      const a = schedule(ctx.step);
      for (let i = 0; i < u.length; i++) u[i] *= a;
      return state;
    },
  };
}

/**
 * w ← w + updates like {@link applyUpdates}, returning whether every entry of the new w is finite;
 * on a backend with the `addFinite` kernel both happen in one pass over w (the trainer's check of
 * the parameters after each step). Same bits as applyUpdates.
 */
export function applyUpdatesFinite(params: FloatArray, updates: FloatArray, backend: Backend): boolean {
  if (updates.length !== params.length) throw new Error(`applyUpdates: ${updates.length} updates for ${params.length} parameters`);
  const k = backend.kernels;
  if (k?.addFinite && params.length >= NATIVE_MIN_LENGTH && sameKind(params, updates)) return k.addFinite(params.length, params, updates);
  applyUpdates(params, updates, backend);
  return allFiniteOf(backend, params.length, params);
}

/** w ← w + updates (Optax's `apply_updates`), in place of `params`, on `backend`'s kernels (the chain's). */
export function applyUpdates(params: FloatArray, updates: ArrayLike<number>, backend: Backend): void {
  if (updates.length !== params.length) throw new Error(`applyUpdates: ${updates.length} updates for ${params.length} parameters`);
  if (updates instanceof Float32Array || updates instanceof Float64Array) axpyInto(backend, params.length, 1, updates, params);
  else for (let i = 0; i < params.length; i++) params[i] += updates[i];
}
