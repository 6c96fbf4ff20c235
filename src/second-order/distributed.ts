import type { Chain } from "../chain/chain.js";
import { componentContext } from "../chain/chain.js";
import type { LayerIO } from "../components/component.js";
import { Dense } from "../components/dense.js";
import { allreduceSumOrdered, type Collective, shareOf } from "../core/collective.js";
import { allocate, type FloatArray } from "../core/dtype.js";
import { now as hostNow } from "../core/host.js";
import type { Batch } from "../objectives/batch.js";
import type { Objective } from "../objectives/objective.js";
import { structuredGramApplies } from "./gram.js";
import { Linearization, solveShifted } from "./linearize.js";

// Gram-Gauss-Newton with the Gram matrix split by rows across the ranks of a job (docs/distributed.md).
//
// The GGN step (Cai et al., "Gram-Gauss-Newton Method: Learning Overparameterized Neural
// Networks for Regression Problems", arXiv:1905.11675, eq. (7); ggn.ts) on a global batch of B
// samples, q = B·k outputs:
//
//   w⁺ = w − η Jᵀ (J Jᵀ + λ I)⁻¹ r,   r = f(w) − y,   J = ∂f/∂w ∈ R^{q×p}.
//
// Rank ρ owns the contiguous share S_ρ of the batch (shareOf) and the q_ρ rows J_ρ of J for its
// samples. Row-block ρ of the Gram matrix is (J Jᵀ)[S_ρ, :] = J_ρ Jᵀ, so rank ρ needs what
// determines the other ranks' rows:
// - structured chains (gram.ts, structuredGramApplies): per dense layer t the slopes Δ_t at its
//   output and its inputs X_t, since the gradient of a dense layer for slope δ at input x is
//   (δ xᵀ, δ) and ⟨(δ xᵀ, δ), (δ′ x′ᵀ, δ′)⟩ = ⟨δ, δ′⟩(⟨x, x′⟩ + 1): an all-gather of q·m_t + B·n_t
//   numbers per layer, then (J Jᵀ)[S_ρ, :] = Σ_t (Δ_t[ρ] Δ_tᵀ) ⊙ (X_t[ρ] X_tᵀ + 1) by two GEMMs, and
//   Jᵀ c = Σ_ρ J_ρᵀ c_ρ by one VJP per rank and an all-reduce;
// - other chains: J_ρ by one VJP per row, an all-gather of J (q·p numbers), J_ρ Jᵀ by one GEMM and
//   Jᵀ c from the gathered rows.
// A second all-gather assembles the q × q matrix and every rank solves the same system (Cholesky,
// q³/3 flops, repeated on each rank), so every rank ends with the same direction. All-gathers
// carry equal counts (MPI_Allgather), so the per-rank blocks are padded to the largest share
// (⌈B/N⌉ samples) with zero rows, dropped when the matrix is assembled.

/** The rows [lo, hi) of a batch, as views. */
export function sliceBatch(batch: Batch, lo: number, hi: number): Batch {
  if (lo === 0 && hi === batch.size) return batch;
  const inSize = batch.size > 0 ? batch.x.length / batch.size : 0;
  const out: { x: FloatArray; size: number; labels?: Int32Array; targets?: FloatArray } = {
    x: batch.x.subarray(lo * inSize, hi * inSize),
    size: hi - lo,
  };
  if (batch.labels) out.labels = batch.labels.subarray(lo, hi);
  if (batch.targets) {
    const t = batch.targets.length / batch.size;
    out.targets = batch.targets.subarray(lo * t, hi * t);
  }
  return out;
}

/** Seconds spent in each phase of {@link distributedGgnDirection} on this rank. */
export interface DistributedGgnTimings {
  /** Forward pass and this rank's Jacobian rows (one VJP per row). */
  jacobian: number;
  /** Its q_ρ × q block of J Jᵀ (GEMM). */
  gram: number;
  /** The q × q solve and Jᵀ c. */
  solve: number;
  /** All-gathers and all-reduces (communication, and waiting for the slowest rank). */
  communication: number;
}

/** Options of {@link distributedGgnDirection}. */
export interface DistributedGgnOptions {
  /** λ of J Jᵀ + λ I. */
  damping: number;
  /** η (default 1). */
  stepSize?: number;
  /** Training mode of the components (default true). */
  training?: boolean;
  state?: FloatArray;
  /** Sum the value and gradient in rank order (bit-reproducible for a given N). */
  deterministic?: boolean;
  /** "auto" (default): gather the dense layers' factors when the chain allows it; "generic": gather Jacobian rows. */
  path?: "auto" | "generic";
}

/** What {@link distributedGgnDirection} returns, the same on every rank. */
export interface DistributedGgnResult {
  /** F(w) on the global batch (loss + L2 term). */
  value: number;
  /** The GGN direction −η Jᵀ (J Jᵀ + λ I)⁻¹ r (float64, p entries). */
  direction: Float64Array;
  /** The global q × q Gram matrix J Jᵀ (float64). */
  ntk: Float64Array;
  timings: DistributedGgnTimings;
}

/**
 * The GGN direction of a squared-loss objective on the global `batch` (every rank passes the same
 * batch and parameters; each computes only its share), with the Gram matrix split by rows across
 * the ranks of `c`. With one rank it is {@link prepareGgn}'s direction up to rounding.
 */
export function distributedGgnDirection(
  c: Collective,
  chain: Chain,
  objective: Objective,
  w: FloatArray,
  batch: Batch,
  options: DistributedGgnOptions,
): DistributedGgnResult {
  if (objective.loss.type !== "squared") {
    throw new Error(`ggn: Gram-Gauss-Newton is defined for regression with the squared loss, got the ${objective.loss.type} loss`);
  }
  if (!(options.damping >= 0)) throw new Error(`damping: expected λ ≥ 0, got ${options.damping}`);
  chain.checkParams(w);
  const timings: DistributedGgnTimings = { jacobian: 0, gram: 0, solve: 0, communication: 0 };
  let t = hostNow();
  const lap = (phase: keyof DistributedGgnTimings) => {
    const now = hostNow();
    timings[phase] += (now - t) / 1000;
    t = now;
  };
  const N = c.size;
  const B = batch.size;
  const k = chain.outputSize;
  const p = chain.paramSize;
  const q = B * k;
  const maxShare = Math.ceil(B / N);
  const qm = maxShare * k; // padded rows per rank
  const { lo, hi } = shareOf(c.rank, N, B);
  const local = sliceBatch(batch, lo, hi);
  const nr = local.size;
  const qr = nr * k;
  const w0 = w.slice();
  const training = options.training ?? true;

  // This rank's residual, loss and gradient.
  const packed = new Float64Array(qm + 1 + p); // residual rows, weighted loss, weighted data gradient
  const lin = nr > 0 ? new Linearization(chain, w0, local, training, options.state) : null;
  if (lin) {
    const slope = allocate(chain.dtype, qr);
    const loss = objective.loss.evaluate(lin.output, local, k, slope);
    // ∇f = (ŷ − y)/n_ρ for the share's mean squared loss, so r = n_ρ ∇f (ggn.ts).
    const gradC = allocate(chain.dtype, p);
    lin.vjp(slope, gradC);
    const weight = nr / B; // the global mean is Σ_ρ (n_ρ/B)·(share mean) (src/train/data-parallel.ts)
    for (let i = 0; i < p; i++) packed[qm + 1 + i] = weight * gradC[i];
    packed[qm] = weight * loss;
    for (let i = 0; i < qr; i++) packed[i] = nr * slope[i];
  }
  // Structured chains (every rank must agree: a rank with an empty share votes yes).
  const vote = new Float64Array([options.path === "generic" ? 0 : lin ? (structuredGramApplies(chain, lin.workspace()) ? 1 : 0) : 1]);
  c.allreduceSum(vote);
  const structured = vote[0] === N;
  const block = allocate(chain.dtype, qm * N * qm);
  let jAll: FloatArray | null = null;
  if (structured) {
    // Gather each dense layer's Δ_t and X_t (q·m_t + B·n_t numbers, not J's q·p) and form this
    // rank's block Σ_t (Δ_t[ρ] Δ_tᵀ) ⊙ (X_t[ρ] X_tᵀ + β_t) (gram.ts, structured path).
    const factors = lin ? structuredFactors(chain, lin, nr, training) : null;
    lap("jacobian");
    const dense = chain.components
      .map((comp, i) => ({ comp, i }))
      .filter((d) => d.comp instanceof Dense)
      .reverse();
    const tmp = allocate(chain.dtype, qm * N * qm);
    const pp = allocate(chain.dtype, maxShare * N * maxShare);
    for (const { comp, i } of dense) {
      const m = comp.outputSize;
      const n = comp.inputSize;
      const f = factors?.find((x) => x.layer === i);
      const dl = allocate(chain.dtype, qm * m);
      const xl = allocate(chain.dtype, maxShare * n);
      if (f) {
        dl.set(f.delta.subarray(0, qr * m));
        xl.set(f.x.subarray(0, nr * n));
      }
      const dAll = allocate(chain.dtype, N * qm * m);
      const xAll = allocate(chain.dtype, N * maxShare * n);
      const tc = hostNow();
      c.allgather(dl, dAll);
      c.allgather(xl, xAll);
      timings.communication += (hostNow() - tc) / 1000;
      t = hostNow();
      if (qr === 0) continue;
      const bias = comp.paramSize > m * n ? 1 : 0;
      const W = N * qm;
      const Ws = N * maxShare;
      chain.backend.gemm(false, true, qr, W, m, 1, dl, m, dAll, m, 0, tmp, W);
      chain.backend.gemm(false, true, nr, Ws, n, 1, xl, n, xAll, n, 0, pp, Ws);
      for (let a = 0; a < qr; a++) {
        const prow = Math.floor(a / k) * Ws;
        const base = a * W;
        for (let col = 0; col < W; col++) block[base + col] += tmp[base + col] * (pp[prow + Math.floor(col / k)] + bias);
      }
      lap("gram");
    }
  } else {
    // Generic chains: this rank's Jacobian rows J_ρ (one VJP each), all-gathered, J_ρ J_allᵀ.
    const jLocal = allocate(chain.dtype, qm * p);
    if (lin) {
      const seed = allocate(chain.dtype, qr);
      for (let r = 0; r < qr; r++) {
        seed.fill(0);
        seed[r] = 1;
        lin.vjp(seed, jLocal.subarray(r * p, (r + 1) * p));
      }
    }
    lap("jacobian");
    jAll = allocate(chain.dtype, N * qm * p);
    c.allgather(jLocal, jAll);
    lap("communication");
    if (qr > 0) chain.backend.gemm(false, true, qr, N * qm, p, 1, jLocal, p, jAll, p, 0, block, N * qm);
    lap("gram");
  }
  const residuals = new Float64Array(N * qm);
  c.allgather(packed.subarray(0, qm), residuals);
  const sums = packed.slice(qm);
  if (options.deterministic) allreduceSumOrdered(c, sums);
  else c.allreduceSum(sums);
  const block64 = block instanceof Float64Array ? block : Float64Array.from(block);
  const gramPadded = new Float64Array(N * qm * N * qm);
  c.allgather(block64, gramPadded);
  lap("communication");

  // Drop the padding: global row (sample i, output j) of rank ρ's share sits at padded row ρ·qm + (i − lo_ρ)·k + j.
  const rowOf = new Int32Array(q);
  for (let rho = 0, g = 0; rho < N; rho++) {
    const s = shareOf(rho, N, B);
    for (let r = 0; r < (s.hi - s.lo) * k; r++) rowOf[g++] = rho * qm + r;
  }
  const width = N * qm;
  const ntk = new Float64Array(q * q);
  const residual = new Float64Array(q);
  for (let a = 0; a < q; a++) {
    const ra = rowOf[a] * width;
    for (let b = 0; b < q; b++) ntk[a * q + b] = gramPadded[ra + rowOf[b]];
    residual[a] = residuals[rowOf[a]];
  }
  // Symmetrize: block ρ's entries and block σ's transposed ones are the same numbers summed in
  // possibly different orders by the GEMM; averaging makes the matrix exactly symmetric for Cholesky.
  for (let a = 0; a < q; a++)
    for (let b = 0; b < a; b++) {
      const m = 0.5 * (ntk[a * q + b] + ntk[b * q + a]);
      ntk[a * q + b] = m;
      ntk[b * q + a] = m;
    }
  const coef = solveShifted(chain.backend, ntk, q, options.damping, residual, "ggn");
  const jtc = allocate(chain.dtype, p);
  if (jAll) {
    // Jᵀ c from the gathered rows (padded rows get 0).
    const cPadded = allocate(chain.dtype, width);
    for (let a = 0; a < q; a++) cPadded[rowOf[a]] = coef[a];
    chain.backend.gemm(false, false, 1, p, width, 1, cPadded, width, jAll, p, 0, jtc, p); // cᵀ J (1 × p)
  } else {
    // Jᵀ c = Σ_ρ J_ρᵀ c_ρ: one VJP of this share's part of c, summed over ranks.
    if (lin) {
      const cr = allocate(chain.dtype, qr);
      for (let a = 0; a < qr; a++) cr[a] = coef[lo * k + a];
      lin.vjp(cr, jtc);
    }
    lap("solve");
    if (options.deterministic) allreduceSumOrdered(c, jtc);
    else c.allreduceSum(jtc);
    lap("communication");
  }
  const eta = options.stepSize ?? 1;
  const direction = new Float64Array(p);
  for (let i = 0; i < p; i++) direction[i] = -eta * jtc[i];
  lap("solve");
  let r2 = 0;
  for (let i = 0; i < p; i++) r2 += w0[i] * w0[i];
  return { value: sums[0] + 0.5 * objective.l2 * r2, direction, ntk, timings };
}

/**
 * The per-dense-layer factors of this share's Jacobian rows, for chains where
 * {@link structuredGramApplies} (gram.ts): the q_ρ output slopes are back-propagated together and
 * each dense layer t keeps Δ_t (q_ρ × m_t, the slopes at its output) and X_t (n_ρ × n_t, its
 * inputs), so that ⟨∇_w ψ_a, ∇_w ψ_b⟩ = Σ_t ⟨Δ_t[a], Δ_t[b]⟩ (⟨X_t[i(a)], X_t[i(b)]⟩ + β_t),
 * β_t = 1 with a bias (gram.ts, structured path). Null when the chain is not structured.
 */
function structuredFactors(
  chain: Chain,
  lin: Linearization,
  nr: number,
  training: boolean,
): { layer: number; delta: FloatArray; x: FloatArray; bias: number }[] | null {
  const ws = lin.workspace();
  if (!structuredGramApplies(chain, ws)) return null;
  const k = chain.outputSize;
  const q = nr * k;
  const comps = chain.components;
  const ctx = componentContext(chain, q, training, false);
  const first = comps.findIndex((c) => c.paramSize > 0);
  const out: { layer: number; delta: FloatArray; x: FloatArray; bias: number }[] = [];
  let delta = allocate(chain.dtype, q * k);
  for (let r = 0; r < q; r++) delta[r * k + (r % k)] = 1; // row (i, c): e_c at sample i
  for (let i = comps.length - 1; i >= Math.max(first, 0); i--) {
    const c = comps[i];
    const x = ws.activations[i];
    if (c instanceof Dense) {
      const n = c.inputSize;
      const m = c.outputSize;
      out.push({ layer: i, delta, x: x.slice(0, nr * n), bias: c.paramSize > m * n ? 1 : 0 });
      if (i > first) {
        const next = allocate(chain.dtype, q * n);
        chain.backend.gemm(false, false, q, n, m, 1, delta, m, chain.paramBlock(lin.w0, i), n, 0, next, n);
        delta = next;
      }
    } else {
      // Row r of the q-batch is sample ⌊r/k⌋: replicate the component's input and output rows.
      const xe = replicate(x, nr, c.inputSize, k);
      const ye = replicate(ws.activations[i + 1], nr, c.outputSize, k);
      const io: LayerIO<unknown> = { x: xe, y: ye, params: ws.io[i].params, state: ws.io[i].state, tape: null };
      const next = allocate(chain.dtype, q * c.inputSize);
      c.backward(ctx, io, delta, next, null);
      delta = next;
    }
  }
  return out;
}

function replicate(a: FloatArray, batch: number, size: number, times: number): FloatArray {
  const out = allocate(a instanceof Float32Array ? "float32" : "float64", batch * size * times);
  for (let i = 0; i < batch; i++) {
    const row = a.subarray(i * size, (i + 1) * size);
    for (let t = 0; t < times; t++) out.set(row, (i * times + t) * size);
  }
  return out;
}
