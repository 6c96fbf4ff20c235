import type { Chain } from "../chain/chain.js";
import { allocate, type FloatArray } from "../core/dtype.js";
import type { Batch } from "../objectives/batch.js";
import type { Objective } from "../objectives/objective.js";
import { type GramInfo, type GramOptions, gramFromWorkspace } from "./gram.js";
import { Linearization, solveShifted } from "./linearize.js";

// Gram-Gauss-Newton (Cai et al., "Gram-Gauss-Newton Method" (arXiv:1905.11675)): linearize the network at w_t,
// f(w, x) ≈ f(w_t, x) + ∇_w f(w_t, x)·(w − w_t), and solve f(w_{t+1}, x_i) = y_i on the mini-batch in
// the least-norm sense, damped:
//
//   w_{t+1} = w_t − η Jᵀ (J Jᵀ + λ I)⁻¹ (f(w_t) − y),
//
// J the q × p Jacobian of the outputs on the batch (q = batch × outputs) and J Jᵀ the empirical
// NTK (gram.ts, shared with the Gauss-Newton step (b)). For the squared loss f = (1/(2N))‖ŷ − y‖²
// without L2 it is the Gauss-Newton direction of gauss-newton.ts with μ = λ/N (η = 1): by Woodbury,
// (JᵀJ/N + μI)⁻¹ Jᵀ r/N = Jᵀ (J Jᵀ + NμI)⁻¹ r. Cost: one forward pass, one structured backward at
// batch q (dense chains) or q VJPs, a q × q Cholesky, one VJP.

/** Options of {@link prepareGgn}. */
export type GgnOptions = GramOptions;

/** The GGN subproblem at a point (see {@link prepareGgn}). */
export interface GgnSubproblem {
  /** F(w) on the batch (loss + L2 term of the objective). */
  readonly value: number;
  /** ∇F(w) (float64), for line searches. */
  readonly gradient: Float64Array;
  /** The residual r = f(w) − y (float64, q entries). */
  readonly residual: Float64Array;
  /** The empirical NTK J Jᵀ (float64, q × q). */
  readonly ntk: Float64Array;
  readonly gramInfo: GramInfo;
  /** The GGN direction −η Jᵀ (J Jᵀ + λ I)⁻¹ r (float64). */
  direction(damping: number, stepSize?: number): Float64Array;
}

/** Prepares a GGN step of a squared-loss objective at w (w is copied). */
export function prepareGgn(chain: Chain, objective: Objective, w: FloatArray, batch: Batch, options: GgnOptions = {}): GgnSubproblem {
  chain.checkParams(w);
  if (objective.loss.type !== "squared") {
    throw new Error(`ggn: Gram-Gauss-Newton is defined for regression with the squared loss, got the ${objective.loss.type} loss`);
  }
  const training = options.training ?? true;
  const n = batch.size;
  const k = chain.outputSize;
  const q = n * k;
  const w0 = w.slice();
  const lin = new Linearization(chain, w0, batch, training, options.state);
  const slope = allocate(chain.dtype, q);
  const loss = objective.loss.evaluate(lin.output, batch, k, slope);
  // ∇f = (ŷ − y)/N for the batch-mean squared loss, so r = N ∇f.
  const residual = new Float64Array(q);
  for (let i = 0; i < q; i++) residual[i] = n * slope[i];
  const gradC = allocate(chain.dtype, chain.paramSize);
  lin.vjp(slope, gradC);
  const gradient = new Float64Array(chain.paramSize);
  let r2 = 0;
  for (let i = 0; i < gradient.length; i++) {
    gradient[i] = gradC[i] + objective.l2 * w0[i];
    r2 += w0[i] * w0[i];
  }
  const { gram, info } = gramFromWorkspace(chain, lin.workspace(), w0, n, null, training, options);
  const scratch = allocate(chain.dtype, chain.paramSize);
  let work: Float64Array | undefined;
  return {
    value: loss + 0.5 * objective.l2 * r2,
    gradient,
    residual,
    ntk: gram,
    gramInfo: info,
    direction(damping: number, stepSize = 1): Float64Array {
      if (!(damping >= 0)) throw new Error(`damping: expected λ ≥ 0, got ${damping}`);
      work ??= new Float64Array(q * q);
      const c = solveShifted(chain.backend, gram, q, damping, residual, "ggn", work);
      lin.vjp(c, scratch);
      const d = new Float64Array(chain.paramSize);
      for (let i = 0; i < d.length; i++) d[i] = -stepSize * scratch[i];
      return d;
    },
  };
}

/** One GGN step w ← w − η Jᵀ(J Jᵀ + λI)⁻¹(f(w) − y), in place; returns F(w) before it and the step. */
export function ggnStep(
  chain: Chain,
  objective: Objective,
  w: FloatArray,
  batch: Batch,
  options: GgnOptions & { damping: number; stepSize?: number },
): { value: number; direction: Float64Array } {
  const sub = prepareGgn(chain, objective, w, batch, options);
  const d = sub.direction(options.damping, options.stepSize ?? 1);
  for (let i = 0; i < w.length; i++) w[i] += d[i];
  return { value: sub.value, direction: d };
}
