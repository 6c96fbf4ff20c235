import type { FloatArray } from "../core/dtype.js";
import { NATIVE_MIN_LENGTH, norm2Of, scalInPlace } from "../core/kernels.js";
import type { EmptyState, GradientTransformation } from "./transform.js";

// Gradient clipping: the lecture (slide "Challenge: curvature") motivates it by the very large
// Lipschitz constants of deep or recurrent compositions (Pascanu, Mikolov & Bengio, ICML 2013).

/** The global Euclidean norm ‖u‖₂ of the flat vector, accumulated in float64. */
export function globalNorm(u: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < u.length; i++) s += u[i] * u[i];
  return Math.sqrt(s);
}

/**
 * Clipping by global norm (Pascanu et al., 2013, Alg. 2; Optax's `clip_by_global_norm`):
 * u ← u · min(1, c/‖u‖₂). The norm is over the whole flat vector (all layers). PyTorch's
 * `clip_grad_norm_` divides by ‖u‖ + 1e-6 instead; this is the exact projection onto the ball.
 * A non-finite norm leaves the updates unchanged (and so visible to the caller's checks).
 */
export function clipByGlobalNorm(maxNorm: number): GradientTransformation<EmptyState> {
  if (!Number.isFinite(maxNorm) || maxNorm <= 0) throw new Error(`clipByGlobalNorm: maxNorm must be a finite number > 0, got ${maxNorm}`);
  return {
    name: "clipByGlobalNorm",
    init: () => ({}),
    update(u, state, _params, ctx) {
      // The backend's norm and scaling (BLAS nrm2 and scal on the native backend).
      const n = norm2Of(ctx.backend, u.length, u);
      if (n > maxNorm && Number.isFinite(n)) scalInPlace(ctx.backend, u.length, maxNorm / n, u);
      return state;
    },
  };
}

/** Clipping by value: u_i ← max(−c, min(c, u_i)) (PyTorch's `clip_grad_value_`, Optax's `clip`). */
export function clipByValue(maxAbs: number): GradientTransformation<EmptyState> {
  if (!Number.isFinite(maxAbs) || maxAbs <= 0) throw new Error(`clipByValue: maxAbs must be a finite number > 0, got ${maxAbs}`);
  return {
    name: "clipByValue",
    init: () => ({}),
    update(u, state, _params, ctx) {
      const k = ctx.backend.kernels;
      if (k?.clipValue && u.length >= NATIVE_MIN_LENGTH) {
        k.clipValue(u.length, u, maxAbs);
        return state;
      }
      for (let i = 0; i < u.length; i++) {
        const x = u[i];
        if (x > maxAbs) u[i] = maxAbs;
        else if (x < -maxAbs) u[i] = -maxAbs;
      }
      return state;
    },
  };
}

/** Summary of the gradient norms recorded by a {@link GradientNormTracker}. */
export interface GradientNormSummary {
  count: number;
  mean: number;
  max: number;
  min: number;
  last: number;
  /** Norm of the mean of the recorded gradients (‖(1/n)Σ g‖), when tracked; otherwise NaN. */
  normOfMean: number;
}

/**
 * Tracks gradient norms over an epoch, to check empirically whether (S)GD approaches a critical
 * point (lecture 6, slide "Challenges: Curvature": "Gradient descent may not arrive at a critical
 * point of any kind — can be checked empirically!"). With `trackMean`, also accumulates the mean
 * gradient, whose norm estimates ‖∇R‖ of the full objective (mini-batch norms include noise).
 */
export class GradientNormTracker {
  private count = 0;
  private sum = 0;
  private max = 0;
  private min = Number.POSITIVE_INFINITY;
  private last = Number.NaN;
  private readonly meanGrad: Float64Array | null;

  constructor(options: { size?: number; trackMean?: boolean } = {}) {
    this.meanGrad = options.trackMean ? new Float64Array(options.size ?? 0) : null;
    if (options.trackMean && options.size === undefined) throw new Error("GradientNormTracker: trackMean needs size");
  }

  /** Records the gradient of one step; returns its norm. */
  record(grad: FloatArray): number {
    const n = globalNorm(grad);
    this.count++;
    this.sum += n;
    if (n > this.max) this.max = n;
    if (n < this.min) this.min = n;
    this.last = n;
    const m = this.meanGrad;
    if (m) {
      if (m.length !== grad.length) throw new Error(`GradientNormTracker: gradient of ${grad.length} entries, expected ${m.length}`);
      for (let i = 0; i < m.length; i++) m[i] += grad[i];
    }
    return n;
  }

  summary(): GradientNormSummary {
    const c = this.count;
    let normOfMean = Number.NaN;
    if (this.meanGrad && c > 0) normOfMean = globalNorm(this.meanGrad) / c;
    return {
      count: c,
      mean: c > 0 ? this.sum / c : Number.NaN,
      max: c > 0 ? this.max : Number.NaN,
      min: c > 0 ? this.min : Number.NaN,
      last: this.last,
      normOfMean,
    };
  }

  /** Starts a new epoch. */
  reset(): void {
    this.count = 0;
    this.sum = 0;
    this.max = 0;
    this.min = Number.POSITIVE_INFINITY;
    this.last = Number.NaN;
    this.meanGrad?.fill(0);
  }
}
