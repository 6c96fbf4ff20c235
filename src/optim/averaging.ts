import type { Backend, ElementwiseKernels } from "../core/backend.js";
import { allocate, dtypeOf, type FloatArray } from "../core/dtype.js";
import { NATIVE_MIN_LENGTH, sameKind } from "../core/kernels.js";

// Iterate averaging for evaluation: the optimizer steps on w_t, the averaged iterate w̄_t is what is
// evaluated. Polyak–Juditsky averaging (SIAM J. Control Optim. 30(4), 1992; lecture 6, slide
// "Stochastic Gradient Descent: Rates": "iterate (Polyak) averaging") recovers the optimal O(1/t)
// rate of SGD with slowly decaying steps in the strongly convex case.

/** The checkpointable state of an averager. */
export type AverageState = { count: number; averaged: FloatArray };

/** Common interface of {@link PolyakAverage} and {@link EmaAverage}. */
export interface IterateAverage {
  /** The averaged parameters (same precision and length as the parameters). */
  readonly averaged: FloatArray;
  /** Number of iterates averaged so far. */
  readonly count: number;
  /** Includes the current iterate. */
  update(params: ArrayLike<number>): void;
  /** The live state (for stateToTensors). */
  state(): AverageState;
  /** Restores a state (e.g. from stateFromTensors). */
  restore(state: AverageState): void;
}

/** Options every averager takes. */
export interface AverageOptions {
  /** Runs the update on this backend's native kernel when it has one (the chain's backend; same bits as the loop). */
  backend?: Backend;
}

abstract class AverageBase implements IterateAverage {
  readonly averaged: FloatArray;
  count = 0;
  protected readonly backend: Backend | undefined;

  constructor(template: FloatArray, options: AverageOptions) {
    this.averaged = allocate(dtypeOf(template), template.length);
    this.backend = options.backend;
  }

  /** The native averaging kernel, when the backend has one and params match the average's precision. */
  protected kernel(params: ArrayLike<number>): ElementwiseKernels["averageUpdate"] | null {
    const k = this.backend?.kernels?.averageUpdate;
    const typed = params instanceof Float32Array || params instanceof Float64Array;
    return k && typed && sameKind(this.averaged, params) && params.length >= NATIVE_MIN_LENGTH ? k : null;
  }

  abstract update(params: ArrayLike<number>): void;

  protected check(params: ArrayLike<number>): void {
    if (params.length !== this.averaged.length) throw new Error(`average: ${params.length} parameters, expected ${this.averaged.length}`);
  }

  state(): AverageState {
    return { count: this.count, averaged: this.averaged };
  }

  restore(state: AverageState): void {
    this.check(state.averaged);
    this.averaged.set(state.averaged);
    this.count = state.count;
  }

  /** Forgets the iterates seen so far. */
  reset(): void {
    this.count = 0;
    this.averaged.fill(0);
  }
}

/**
 * Polyak averaging: w̄_n = (1/n) Σ_{s=1}^n w_s, updated as w̄_n = w̄_{n−1} + (w_n − w̄_{n−1})/n
 * (the incremental mean, stable in float32). Iterates passed before `start` calls of update are
 * skipped (tail averaging; default 0).
 */
export class PolyakAverage extends AverageBase {
  private readonly start: number;
  private seen = 0;

  constructor(template: FloatArray, options: { start?: number } & AverageOptions = {}) {
    super(template, options);
    this.start = options.start ?? 0;
    if (!Number.isInteger(this.start) || this.start < 0) throw new Error(`PolyakAverage: start must be an integer ≥ 0, got ${this.start}`);
  }

  update(params: ArrayLike<number>): void {
    this.check(params);
    if (this.seen++ < this.start) return;
    const n = ++this.count;
    const a = this.averaged;
    if (n === 1) a.set(params);
    else {
      const inv = 1 / n;
      const kernel = this.kernel(params);
      if (kernel) kernel(a.length, a, params as FloatArray, 0, inv, 0);
      else for (let i = 0; i < a.length; i++) a[i] += (params[i] - a[i]) * inv;
    }
  }

  override restore(state: AverageState): void {
    super.restore(state);
    this.seen = this.start + state.count;
  }

  override reset(): void {
    super.reset();
    this.seen = 0;
  }
}

/**
 * Exponential moving average of the iterates: w̄_1 = w_1, w̄_n = β w̄_{n−1} + (1 − β) w_n (as
 * torch.optim.swa_utils.AveragedModel with an EMA averaging function; the first iterate is copied,
 * so no bias correction is needed).
 */
export class EmaAverage extends AverageBase {
  readonly decay: number;

  constructor(template: FloatArray, options: { decay?: number } & AverageOptions = {}) {
    super(template, options);
    this.decay = options.decay ?? 0.999;
    if (!(this.decay >= 0 && this.decay < 1)) throw new Error(`EmaAverage: decay must be in [0, 1), got ${this.decay}`);
  }

  update(params: ArrayLike<number>): void {
    this.check(params);
    const n = ++this.count;
    const a = this.averaged;
    if (n === 1) a.set(params);
    else {
      const b = this.decay;
      const c = 1 - b;
      const kernel = this.kernel(params);
      if (kernel) kernel(a.length, a, params as FloatArray, 1, b, c);
      else for (let i = 0; i < a.length; i++) a[i] = b * a[i] + c * params[i];
    }
  }
}

/** An averager by name (`polyak | ema`), as selected on the command line. */
export function createAverage(
  name: string,
  template: FloatArray,
  options: { decay?: number; start?: number } & AverageOptions = {},
): IterateAverage {
  if (name === "polyak") return new PolyakAverage(template, { start: options.start, backend: options.backend });
  if (name === "ema") return new EmaAverage(template, { decay: options.decay, backend: options.backend });
  throw new Error(`average: must be one of polyak | ema, got ${JSON.stringify(name)}`);
}
