import { projectOntoBall, resolveRadii } from "../certify/certificate.js";
import type { Chain } from "../chain/chain.js";
import { Rng } from "../core/rng.js";
import { forward, vjp } from "../oracles/first-order.js";

// Witnesses of the smoothing error (docs/smoothing.md): the largest ‖ψ(x,u) − ψ_ε(x,u)‖ found over
// sampled parameters u ∈ B_R and inputs x, then improved by projected gradient ascent on
// g(u, x) = ½‖ψ(x,u) − ψ_ε(x,u)‖² (gradients by the two chains' VJPs: ∇g = J_ψᵀ d − J_ψεᵀ d with
// d = ψ − ψ_ε). A valid certificate ν is never below any witness; ν / witness measures tightness.

/** Options of {@link smoothingErrorWitness}. */
export interface SmoothingWitnessOptions {
  radii: number | readonly number[];
  /** Random starting points (default 4). */
  starts?: number;
  /** Gradient-ascent steps per start (default 20; 0: sampling only). */
  steps?: number;
  /** Scales of the random inputs, as multiples of √(input size) (default [1, 10]). */
  inputScales?: readonly number[];
  /** Fixed inputs to use instead of random ones (one sample each, of the chains' input size). */
  inputs?: readonly ArrayLike<number>[];
  /** Also ascend in x (default true; the accuracy holds for every x). */
  ascendInput?: boolean;
  seed?: number;
}

/** Result of {@link smoothingErrorWitness}. */
export interface SmoothingWitness {
  /** The largest ‖ψ(x,u) − ψ_ε(x,u)‖ found (one sample). */
  readonly maxError: number;
  /** The largest found by sampling alone (before gradient ascent). */
  readonly sampledError: number;
  /** Number of evaluations. */
  readonly evaluations: number;
}

function outputDiff(a: Chain, b: Chain, w: Float64Array, x: Float64Array): Float64Array {
  const ya = Float64Array.from(forward(a, w, x, 1));
  const yb = forward(b, w, x, 1);
  for (let i = 0; i < ya.length; i++) ya[i] -= yb[i];
  return ya;
}

function norm(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

/**
 * Lower bound on sup_{x, u ∈ B_R} ‖ψ(x,u) − ψ_ε(x,u)‖ for two float64 chains with the same
 * parameter layout (ψ_ε from {@link smooth}): random starts (each u_t on the sphere of radius R_t,
 * random inputs at several scales), then projected normalized-gradient ascent in u (and x), keeping
 * improving steps and halving the step otherwise.
 */
export function smoothingErrorWitness(original: Chain, smoothed: Chain, options: SmoothingWitnessOptions): SmoothingWitness {
  if (original.dtype !== "float64" || smoothed.dtype !== "float64") throw new Error("smoothingErrorWitness: use float64 chains");
  if (original.paramSize !== smoothed.paramSize) throw new Error("smoothingErrorWitness: the chains' parameter layouts differ");
  const radii = resolveRadii(original, options.radii);
  const rng = new Rng(options.seed ?? 0);
  const starts = options.starts ?? 4;
  const steps = options.steps ?? 20;
  const scales = options.inputScales ?? [1, 10];
  const ascendInput = options.ascendInput ?? true;
  const d0 = original.inputSize;
  let best = 0;
  let sampled = 0;
  let evaluations = 0;
  const value = (w: Float64Array, x: Float64Array): number => {
    evaluations++;
    return norm(outputDiff(original, smoothed, w, x));
  };
  const inputs: Float64Array[] = [];
  if (options.inputs) for (const x of options.inputs) inputs.push(Float64Array.from(x));
  for (let s = 0; s < starts; s++) {
    const w = original.initParams(rng) as Float64Array;
    for (let i = 0; i < w.length; i++) w[i] = rng.normal();
    // Every block on its sphere: the error grows with ‖u_t‖ (the factors R_t L_b).
    let t = 0;
    for (const layer of original.layers) {
      if (layer.biaffine < 0) continue;
      const u = original.paramBlock(w, layer.biaffine);
      const nu = norm(u);
      for (let i = 0; i < u.length; i++) u[i] *= nu > 0 ? radii[t] / nu : 0;
      t++;
    }
    const xs =
      inputs.length > 0
        ? inputs.map((x) => x.slice())
        : scales.map((sc) => {
            const x = new Float64Array(d0);
            for (let i = 0; i < d0; i++) x[i] = sc * rng.normal();
            return x;
          });
    for (const x of xs) {
      let f = value(w, x);
      sampled = Math.max(sampled, f);
      let stepU = 0.1;
      let stepX = 0.1;
      const wCur = w.slice();
      const xCur = x.slice();
      for (let k = 0; k < steps; k++) {
        const d = outputDiff(original, smoothed, wCur, xCur);
        const ga = vjp(original, wCur, xCur, 1, d, { withInput: ascendInput });
        const gw = Float64Array.from(ga.dw);
        const gx = ga.dx ? Float64Array.from(ga.dx) : null;
        const gb = vjp(smoothed, wCur, xCur, 1, d, { withInput: ascendInput });
        for (let i = 0; i < gw.length; i++) gw[i] -= gb.dw[i];
        if (gx && gb.dx) for (let i = 0; i < gx.length; i++) gx[i] -= gb.dx[i];
        const ngw = norm(gw);
        const ngx = gx ? norm(gx) : 0;
        if (!(ngw > 0) && !(ngx > 0)) break;
        // Normalized steps, relative to the radii and to ‖x‖.
        const rNorm = Math.hypot(...radii);
        const xNorm = Math.max(norm(xCur), 1e-12);
        const wTry = wCur.slice();
        for (let i = 0; i < wTry.length; i++) wTry[i] += ngw > 0 ? (stepU * rNorm * gw[i]) / ngw : 0;
        projectOntoBall(original, wTry, radii);
        const xTry = xCur.slice();
        if (gx && ngx > 0) for (let i = 0; i < xTry.length; i++) xTry[i] += (stepX * xNorm * gx[i]) / ngx;
        const fTry = value(wTry, xTry);
        if (fTry > f) {
          f = fTry;
          wCur.set(wTry);
          xCur.set(xTry);
          stepU *= 1.5;
          stepX *= 1.5;
        } else {
          stepU /= 2;
          stepX /= 2;
          if (stepU < 1e-6) break;
        }
      }
      best = Math.max(best, f);
    }
  }
  return { maxError: Math.max(best, sampled), sampledError: sampled, evaluations };
}
