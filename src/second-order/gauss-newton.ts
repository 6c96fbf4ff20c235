import type { Chain } from "../chain/chain.js";
import { allocate, type DType, type FloatArray } from "../core/dtype.js";
import { combineInto, dotOf } from "../core/kernels.js";
import type { Batch } from "../objectives/batch.js";
import type { Objective } from "../objectives/objective.js";
import { jvp, valueAndGradient, vjp } from "../oracles/first-order.js";
import { type GramInfo, type GramOptions, gramUpperFromWorkspace, phaseClock } from "./gram.js";
import { psdFactor, solveInPlace, solveSpdShiftedInPlace } from "./linalg.js";
import { applyBlocks, applyBlocksTransposed, Linearization, lossHessianBlocks } from "./linearize.js";

// Regularized Gauss-Newton step (Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (long version with appendices) Sec. 3.1 Eq. (13); Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019) Eq. (13),
// Prop. 3.3) for F(w) = f(ψ(w)) + (λ/2)‖w‖² with f convex (squared or logistic loss):
//
//   d(μ) = argmin_d q_f(ψ(w) + J d; ψ(w)) + q_r(w + d; w) + (μ/2)‖d‖²,
//
// J = ∂ψ/∂w ∈ R^{q×p}, g = ∇f(ψ(w)), H = ∇²f(ψ(w)) (block diagonal, PSD). With κ = λ + μ the
// optimality condition is (Jᵀ H J + κ I) d = −(Jᵀ g + λ w) = −∇F(w). The papers' proximal step
// with step size γ is w⁺ = w + d(1/γ); the direction mode uses d(μ) with Armijo backtracking on μ
// (×10 on failure), see stepper.ts.
//
// (a) "dual" (the reference, Prop. 3.3): with q̃_f(y) = gᵀy + ½yᵀHy and q̃_r(d) = λwᵀd + (κ/2)‖d‖²,
//     the dual is min_s q̃_f*(s) + q̃_r*(−Jᵀs), q̃_r*(v) = ‖v − λw‖²/(2κ), and the primal step is
//     d = ∇q̃_r*(−Jᵀs*) = −(Jᵀ s* + λ w)/κ. Writing s = g + H t (q̃_f* is finite only there when H is
//     singular, as for the logistic loss), its optimality condition is the q × q linear system
//         (κ I + H G) s = κ g − λ H J w,   G = J Jᵀ,
//     solved by LU. G is formed column by column with 2q calls to the automatic-differentiation
//     oracle (Def. 3.2): a_r = Jᵀ e_r (a VJP) then G e_r = J a_r (a JVP), each call re-running the
//     forward pass; +1 call for ψ(w), ∇f and ∇F, +1 for J w when λ > 0, +1 for Jᵀ s* per direction.
//     So 2q + 2 calls per step (2q + 3 with λ > 0); the papers count 2q + 1 by not counting the
//     first evaluation. J is never stored (one p-vector at a time).
// (b) "gram" (fast): factor H = S Sᵀ with S = blockdiag(S_i) (pivoted Cholesky of each k × k block,
//     linalg.ts psdFactor; S_i = I/√N for the squared loss; zero columns dropped, so S_i is k × r with
//     r = k − 1 for the logistic loss) and M = Sᵀ J. By the Woodbury identity
//         d = −(1/κ) (b − Mᵀ (M Mᵀ + κ I)⁻¹ M b),   b = ∇F(w),
//     with M Mᵀ = Sᵀ J Jᵀ S the (N·r) × (N·r) Gram matrix from gram.ts (one structured backward pass at batch
//     q for dense chains, else q VJPs reusing ONE forward pass), M b by one JVP, Mᵀ c by one VJP,
//     the solve by Cholesky from the backend. Memory: one q × q float64 matrix whose upper triangle
//     holds the Gram matrix, its lower triangle the solver's workspace (native: dsposv's algorithm,
//     single-precision Cholesky of M Mᵀ + κ I refined in double to a backward error at
//     double-precision level, with a q × q float32 copy; else double Cholesky), plus a
//     q × q scratch in the chain's precision and the work buffers reported in GramInfo; J (q × p)
//     is never formed on the structured path, and only within `maxJacobianBytes` on the generic one.

/** The two implementations of the Gauss-Newton step: (a) "dual" (reference), (b) "gram" (fast). */
export type GaussNewtonImplementation = "gram" | "dual";

/** Options of {@link prepareGaussNewton}. */
export interface GaussNewtonOptions extends GramOptions {
  /** (a) "dual" or (b) "gram" (default). */
  implementation?: GaussNewtonImplementation;
}

/** The Gauss-Newton subproblem at a point, ready to be solved for any regularization μ. */
export interface GaussNewtonSubproblem {
  readonly implementation: GaussNewtonImplementation;
  /** F(w) on the batch. */
  readonly value: number;
  /** ∇F(w) (float64). */
  readonly gradient: Float64Array;
  /** Automatic-differentiation oracle calls so far (forward + backward or forward + JVP each; "dual"). */
  readonly oracleCalls: number;
  /** How the Gram matrix was built ("gram"). */
  readonly gramInfo: GramInfo | null;
  /**
   * The Gauss-Newton direction d(μ) solving (Jᵀ H J + (λ + μ) I) d = −∇F(w) (float64). Cheap to
   * call again with another μ: the Gram matrix is reused (one VJP, plus a forward pass when the
   * chain's workspace was used in between). Written to `out` (p entries) when given, which is
   * returned: a reused buffer spares the page faults of a fresh p-vector per step ("gram").
   */
  direction(damping: number, out?: Float64Array): Float64Array;
  /**
   * Hands the subproblem's large buffers (the q × q Gram matrix and ∇F) back to a pool of the chain
   * for the next {@link prepareGaussNewton} on it: fresh multi-megabyte arrays cost page faults
   * (docs/second-order.md, "Cost of a step"). Afterwards `gradient` may be overwritten and
   * `direction` throws. Optional to call; calling it twice is harmless.
   */
  release(): void;
}

/** Prepares the Gauss-Newton subproblem of F at w on a batch (w is copied; later changes to it do not matter). */
export function prepareGaussNewton(
  chain: Chain,
  objective: Objective,
  w: FloatArray,
  batch: Batch,
  options: GaussNewtonOptions = {},
): GaussNewtonSubproblem {
  chain.checkParams(w);
  if ((options.implementation ?? "gram") === "dual") return prepareDual(chain, objective, w.slice(), batch, options);
  const w0 = poolOf(chain).take("params", chain.dtype, chain.paramSize);
  w0.set(w);
  return prepareGram(chain, objective, w0, batch, options);
}

/** The Gauss-Newton direction d(μ) (see {@link GaussNewtonSubproblem.direction}). */
export function gaussNewtonDirection(
  chain: Chain,
  objective: Objective,
  w: FloatArray,
  batch: Batch,
  damping: number,
  options: GaussNewtonOptions = {},
): Float64Array {
  return prepareGaussNewton(chain, objective, w, batch, options).direction(damping);
}

/**
 * The papers' proximal Gauss-Newton step (13) with step size γ: w ← w + d(1/γ), in place.
 * Returns F(w) before the step and the step taken.
 */
export function gaussNewtonStep(
  chain: Chain,
  objective: Objective,
  w: FloatArray,
  batch: Batch,
  stepSize: number,
  options: GaussNewtonOptions = {},
): { value: number; direction: Float64Array } {
  if (!(stepSize > 0)) throw new Error(`stepSize: expected a positive number, got ${stepSize}`);
  const sub = prepareGaussNewton(chain, objective, w, batch, options);
  const d = sub.direction(1 / stepSize);
  for (let i = 0; i < w.length; i++) w[i] += d[i];
  return { value: sub.value, direction: d };
}

/**
 * Buffers of a chain's Gauss-Newton subproblems, by role, handed back by
 * {@link GaussNewtonSubproblem.release} (or at the end of the preparation, for those it alone uses)
 * and taken by the next {@link prepareGaussNewton} on the chain. Fresh arrays cost their first
 * touch: a page fault per 4 KiB, about 15 µs each on the VM of BENCHMARKS.md, so the 2.7 MB copy
 * of 670 k float32 parameters alone took 10 ms, more than a gradient step (docs/second-order.md,
 * "Cost of a step"). A subproblem takes a buffer out of the pool, so two live subproblems never
 * share one.
 */
class BufferPool {
  private readonly free = new Map<string, FloatArray>();

  /** A buffer of `length` entries in `dtype` for `role` (content undefined): the pooled one when it fits. */
  take(role: string, dtype: DType, length: number): FloatArray {
    const b = this.free.get(role);
    if (b && b.length === length && (dtype === "float64") === b instanceof Float64Array) {
      this.free.delete(role);
      return b;
    }
    return allocate(dtype, length);
  }

  /** {@link BufferPool.take} in float64. */
  float64(role: string, length: number): Float64Array {
    return this.take(role, "float64", length) as Float64Array;
  }

  give(role: string, buffer: FloatArray): void {
    this.free.set(role, buffer);
  }
}
const pools = new WeakMap<Chain, BufferPool>();

function poolOf(chain: Chain): BufferPool {
  let pool = pools.get(chain);
  if (!pool) {
    pool = new BufferPool();
    pools.set(chain, pool);
  }
  return pool;
}

const paramScratches = new WeakMap<Chain, FloatArray>();

/** A chain-precision scratch vector of the chain's parameter size, one per chain. */
function paramScratch(chain: Chain): FloatArray {
  let s = paramScratches.get(chain);
  if (!s || s.length !== chain.paramSize) {
    s = allocate(chain.dtype, chain.paramSize);
    paramScratches.set(chain, s);
  }
  return s;
}

function kappaOf(objective: Objective, damping: number): number {
  const kappa = objective.l2 + damping;
  if (!(kappa > 0) || !Number.isFinite(kappa)) {
    throw new Error(`damping: the Gauss-Newton subproblem needs λ + μ > 0 (got l2 = ${objective.l2}, damping = ${damping})`);
  }
  return kappa;
}

function prepareGram(chain: Chain, objective: Objective, w0: FloatArray, batch: Batch, options: GramOptions): GaussNewtonSubproblem {
  const training = options.training ?? true;
  const n = batch.size;
  const k = chain.outputSize;
  const q = n * k;
  const p = chain.paramSize;
  const lambda = objective.l2;
  const backend = chain.backend;
  const pool = poolOf(chain);
  const lap = phaseClock(options.onPhase);
  const lin = new Linearization(chain, w0, batch, training, options.state);
  lap("forward");
  const output = lin.output;
  const g = pool.take("loss gradient", chain.dtype, q);
  const loss = objective.loss.evaluate(output, batch, k, g);
  lap("loss");
  // S = blockdiag(S_i), S_i S_iᵀ = H_i (pivoted Cholesky of each k × k block), keeping only the
  // r = max rank_i leading columns: M = Sᵀ J has N·r rows (r = k − 1 for the logistic loss).
  const blocks = lossHessianBlocks(objective.loss, output, batch, k, pool.float64("loss Hessian", n * k * k));
  const full = pool.float64("loss Hessian factor", n * k * k);
  let r = 1;
  for (let i = 0; i < n; i++)
    r = Math.max(r, psdFactor(blocks.subarray(i * k * k, (i + 1) * k * k), k, full.subarray(i * k * k, (i + 1) * k * k)));
  const factor = pool.float64("factor", n * k * r);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < k; j++) for (let c = 0; c < r; c++) factor[(i * k + j) * r + c] = full[(i * k + j) * k + c];
  pool.give("loss Hessian", blocks);
  pool.give("loss Hessian factor", full);
  const qr = n * r;
  lap("loss Hessian factor");
  // One chain-precision p-vector per chain for the two VJP outputs (prepare's Jᵀ g and direction's
  // Mᵀ c), each used within one call: no 2.7 MB allocation (and page faults) per step.
  const scratch = paramScratch(chain);
  const gradC = scratch;
  lin.vjp(g, gradC);
  lap("gradient (backward)");
  // b = ∇F(w) = Jᵀg + λw: in float64 for the subproblem, and rounded in place into gradC (same
  // float64 value per entry) for the JVP below.
  const gradient = pool.float64("gradient", p);
  combineInto(backend, p, 1, gradC, lambda, w0, gradient);
  combineInto(backend, p, 1, gradC, lambda, w0, gradC);
  const r2 = dotOf(backend, p, w0, w0);
  lap("gradient (float64 copy)");
  const mb = applyBlocksTransposed(factor, n, k, lin.jvp(gradC), pool.float64("M b", qr), r);
  lap("M b (JVP)");
  const { gram, info } = gramUpperFromWorkspace(
    chain,
    lin.workspace(),
    w0,
    n,
    { data: factor, cols: r },
    training,
    options,
    pool.float64("gram", qr * qr),
  );
  lap("gram: total");
  const c = pool.float64("c", qr);
  const slopes = pool.float64("slopes", q);
  let released = false;
  return {
    implementation: "gram",
    value: loss + 0.5 * lambda * r2,
    gradient,
    oracleCalls: 1,
    gramInfo: info,
    release(): void {
      if (released) return;
      released = true;
      pool.give("params", w0);
      pool.give("loss gradient", g);
      pool.give("factor", factor);
      pool.give("gradient", gradient);
      pool.give("M b", mb);
      pool.give("gram", gram);
      pool.give("c", c);
      pool.give("slopes", slopes);
    },
    direction(damping: number, out?: Float64Array): Float64Array {
      if (released) throw new Error("Gauss-Newton: direction() after release()");
      const kappa = kappaOf(objective, damping);
      const lap = phaseClock(options.onPhase);
      // (M Mᵀ + κ I) c = M b from the upper triangle; the lower one is the solver's workspace.
      c.set(mb);
      if (!solveSpdShiftedInPlace(backend, gram, qr, kappa, c))
        throw new Error("Gauss-Newton: the regularized Gram matrix is not positive definite (increase the damping)");
      lap("solve: Cholesky + solves");
      lin.vjp(applyBlocks(factor, n, k, c, slopes, r), scratch);
      lap("Mᵀ c (VJP)");
      const d = out ?? new Float64Array(p);
      if (d.length !== p) throw new RangeError(`direction: out has ${d.length} entries, expected ${p}`);
      // d = −(b − Mᵀc)/κ, as (−1/κ)·b + (1/κ)·Mᵀc.
      combineInto(backend, p, -1 / kappa, gradient, 1 / kappa, scratch, d);
      lap("direction (float64)");
      return d;
    },
  };
}

function prepareDual(chain: Chain, objective: Objective, w0: FloatArray, batch: Batch, options: GramOptions): GaussNewtonSubproblem {
  const training = options.training ?? true;
  const fwd = { training, state: options.state };
  const n = batch.size;
  const k = chain.outputSize;
  const q = n * k;
  const p = chain.paramSize;
  const lambda = objective.l2;
  let calls = 0;
  // Call 1: ψ(w), ∇f(ψ(w)) and ∇F(w).
  const vg = valueAndGradient(chain, objective, w0, batch, fwd);
  calls++;
  const value = vg.value;
  const gradient = new Float64Array(vg.grad);
  const output = vg.output.slice();
  const g = new Float64Array(q);
  const gC = allocate(chain.dtype, q);
  objective.loss.evaluate(output, batch, k, gC);
  g.set(gC);
  const blocks = lossHessianBlocks(objective.loss, output, batch, k);
  // G = J Jᵀ column by column: a_r = Jᵀ e_r (VJP call), G e_r = J a_r (JVP call).
  const gram = new Float64Array(q * q);
  const e = new Float64Array(q);
  for (let r = 0; r < q; r++) {
    e.fill(0);
    e[r] = 1;
    const { dw } = vjp(chain, w0, batch.x, n, e, fwd);
    const col = jvp(chain, w0, batch.x, n, dw, null, fwd);
    calls += 2;
    for (let s = 0; s < q; s++) gram[s * q + r] = col[s];
  }
  // H G (block-diagonal H applied to each column) and λ H J w.
  const hg = new Float64Array(q * q);
  const colIn = new Float64Array(q);
  const colOut = new Float64Array(q);
  for (let r = 0; r < q; r++) {
    for (let s = 0; s < q; s++) colIn[s] = gram[s * q + r];
    applyBlocks(blocks, n, k, colIn, colOut);
    for (let s = 0; s < q; s++) hg[s * q + r] = colOut[s];
  }
  const lhjw = new Float64Array(q);
  if (lambda !== 0) {
    const jw = jvp(chain, w0, batch.x, n, w0, null, fwd);
    calls++;
    applyBlocks(blocks, n, k, jw, lhjw);
    for (let s = 0; s < q; s++) lhjw[s] *= lambda;
  }
  const sub: GaussNewtonSubproblem & { oracleCalls: number } = {
    implementation: "dual",
    value,
    gradient,
    oracleCalls: calls,
    gramInfo: null,
    release(): void {},
    direction(damping: number, out?: Float64Array): Float64Array {
      const kappa = kappaOf(objective, damping);
      const a = new Float64Array(hg);
      for (let i = 0; i < q; i++) a[i * q + i] += kappa;
      const s = new Float64Array(q);
      for (let i = 0; i < q; i++) s[i] = kappa * g[i] - lhjw[i];
      if (!solveInPlace(chain.backend, a, q, s, 1)) throw new Error("Gauss-Newton (dual): κI + H G is singular");
      const { dw } = vjp(chain, w0, batch.x, n, s, fwd);
      sub.oracleCalls++;
      const d = out ?? new Float64Array(p);
      for (let i = 0; i < p; i++) d[i] = -(dw[i] + lambda * w0[i]) / kappa;
      return d;
    },
  };
  return sub;
}
