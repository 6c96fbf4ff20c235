import type { Chain } from "../chain/chain.js";
import type { FloatArray } from "../core/dtype.js";
import { Rng } from "../core/rng.js";
import type { Batch } from "../objectives/batch.js";
import type { Objective } from "../objectives/objective.js";
import { valueAndGradient } from "../oracles/first-order.js";
import { gaussNewtonVectorProduct, hessianVectorProduct, requireSecondOrder } from "../second-order/curvature.js";

// Curvature diagnostics of `chainopt train --diagnostics` (docs/diagnostics.md), on a fixed probe
// batch, in training mode (batch statistics), without touching the training state.

/** Numbers of one {@link curvatureDiagnostics} call. */
export interface CurvatureDiagnostics {
  /** ‖∇F(w)‖ on the probe batch. */
  readonly gradNorm: number;
  /** λ of largest magnitude of ∇²F(w) (signed Rayleigh quotient after power iteration); NaN when HVPs are unavailable. */
  readonly hessianTop: number;
  /** Largest eigenvalue of the Gauss-Newton matrix Jᵀ ∇²f J + λI (power iteration on GNVPs). */
  readonly gaussNewtonTop: number;
  /** ‖g‖²_H / ‖g‖² = gᵀ ∇²F g / gᵀ g, the curvature along the gradient; NaN without HVPs. */
  readonly gradientCurvature: number;
  /**
   * The lecture's ill-conditioning test (Deep Learning, lecture 6, "Gradient Descent"):
   * F(w − η g) ≈ F(w) − η‖g‖² + (η²/2)‖g‖²_H, and the step stops decreasing F when
   * (η/2)‖g‖²_H ≳ ‖g‖²: this is ratio = (η/2) gᵀHg / ‖g‖² (> 1: the second-order term wins).
   */
  readonly ratio: number;
}

/** Options of {@link curvatureDiagnostics}. */
export interface CurvatureDiagnosticsOptions {
  /** Power iterations for each eigenvalue (default 20). */
  iterations?: number;
  /** Seed of the starting vectors (default 0: the same start at every call). */
  seed?: number;
  /** Non-trainable state (batch-norm), read only. */
  state?: FloatArray;
}

function dotOf(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/**
 * Power iteration v ← Av/‖Av‖ for a symmetric operator A given by products; returns the Rayleigh
 * quotient vᵀAv at the last iterate (the eigenvalue of largest magnitude when it is separated:
 * Golub & Van Loan, Matrix Computations, Sec. 8.2.1), signed.
 */
export function powerIteration(apply: (v: Float64Array) => ArrayLike<number>, n: number, iterations: number, rng: Rng): number {
  let v = new Float64Array(n);
  for (let i = 0; i < n; i++) v[i] = rng.normal();
  let nv = Math.sqrt(dotOf(v, v));
  for (let i = 0; i < n; i++) v[i] /= nv;
  let lambda = 0;
  for (let k = 0; k < iterations; k++) {
    const av = apply(v);
    lambda = dotOf(v, av);
    nv = Math.sqrt(dotOf(av, av));
    if (!(nv > 0)) return 0;
    const next = new Float64Array(n);
    for (let i = 0; i < n; i++) next[i] = av[i] / nv;
    v = next;
  }
  return lambda;
}

/**
 * The curvature diagnostics at w on a probe batch for the step size η: top Hessian and
 * Gauss-Newton eigenvalues, the gradient norm, the curvature along the gradient and the lecture's
 * ratio (η/2)‖g‖²_H/‖g‖². Hessian products need every component's second-order backward; when
 * one lacks it, the Hessian numbers are NaN; when the loss has no second derivatives (clustering),
 * all curvature numbers are NaN and only the gradient norm is given.
 */
export function curvatureDiagnostics(
  chain: Chain,
  objective: Objective,
  w: FloatArray,
  probe: Batch,
  lr: number,
  options: CurvatureDiagnosticsOptions = {},
): CurvatureDiagnostics {
  const iterations = options.iterations ?? 20;
  const so = { training: true, state: options.state };
  const grad = Float64Array.from(valueAndGradient(chain, objective, w, probe, { training: true, state: options.state }).grad);
  const g2 = dotOf(grad, grad);
  const gradNorm = Math.sqrt(g2);
  let hessian = true;
  try {
    requireSecondOrder(chain, "diagnostics");
  } catch {
    hessian = false;
  }
  const n = chain.paramSize;
  // Losses without second derivatives (the clustering objective) throw in their Hessian products: NaN then.
  let gaussNewtonTop = Number.NaN;
  try {
    gaussNewtonTop = powerIteration(
      (v) => gaussNewtonVectorProduct(chain, objective, w, probe, v, so),
      n,
      iterations,
      new Rng(options.seed ?? 0),
    );
  } catch {
    hessian = false;
  }
  if (!hessian) return { gradNorm, hessianTop: Number.NaN, gaussNewtonTop, gradientCurvature: Number.NaN, ratio: Number.NaN };
  const hessianTop = powerIteration(
    (v) => hessianVectorProduct(chain, objective, w, probe, v, so),
    n,
    iterations,
    new Rng(options.seed ?? 0),
  );
  const gradientCurvature = g2 > 0 ? dotOf(grad, hessianVectorProduct(chain, objective, w, probe, grad, so)) / g2 : 0;
  return { gradNorm, hessianTop, gaussNewtonTop, gradientCurvature, ratio: (lr / 2) * gradientCurvature };
}
