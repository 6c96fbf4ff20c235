import { type Chain, type ChainWorkspace, componentContext } from "../chain/chain.js";
import type { LayerIO } from "../components/component.js";
import { Dense } from "../components/dense.js";
import type { Backend } from "../core/backend.js";
import { allocate, type FloatArray } from "../core/dtype.js";
import { now } from "../core/host.js";
import { portableBackend } from "../core/portable.js";
import { runForward } from "../oracles/first-order.js";
import { transposeUpperToLower } from "./linalg.js";
import { vjpFromWorkspace } from "./linearize.js";

// Gram matrices J Jᵀ of the chain's Jacobian J = ∂ψ/∂w ∈ R^{q×p}, q = batch × outputs: the
// empirical neural tangent kernel of Cai et al., "Gram-Gauss-Newton Method" (arXiv:1905.11675) (Cai et al., "Gram-Gauss-Newton"), and, with the
// output-space factor S of the loss Hessian, the q × q matrix Sᵀ J Jᵀ S of the Gauss-Newton step
// (implementation (b), see gauss-newton.ts). J itself is not materialized unless it fits a budget.

/** Options of {@link empiricalNtk} and the Gram-based steps. */
export interface GramOptions {
  /** Training mode of the components (default true, as for gradients). */
  training?: boolean;
  /** Non-trainable state (batch-norm running statistics) for evaluation mode. */
  state?: FloatArray;
  /**
   * Memory budget in bytes for Jacobian rows held at once by the generic path (default 256 MiB).
   * When q rows of p entries do not fit, the Gram matrix is built block by block from recomputed
   * rows (more backward passes, bounded memory).
   */
  maxJacobianBytes?: number;
  /** "auto" (default): the structured path when the chain allows it; "generic": always VJP rows. */
  path?: "auto" | "generic";
  /**
   * Profiling hook: called after each phase of the computation with its name and wall time in ms
   * (bench/second-order.ts `--profile`). Phases of one step with the same name add up.
   */
  onPhase?: (phase: string, ms: number) => void;
}

/** A phase clock for {@link GramOptions.onPhase}: `lap(name)` reports the time since the previous lap. */
export function phaseClock(onPhase: GramOptions["onPhase"]): (phase: string) => void {
  if (!onPhase) return () => {};
  let t = now();
  return (phase: string) => {
    const tNow = now();
    onPhase(phase, tNow - t);
    t = tNow;
  };
}

/** How a Gram matrix was computed, for reports and benchmarks. */
export interface GramInfo {
  path: "structured" | "generic";
  /** Order of the Gram matrix: batch × output-factor columns (N·r; batch × outputs for the NTK). */
  rows: number;
  /** Backward passes through the chain (generic path: one per Jacobian row computed). */
  backwardPasses: number;
  /** Peak bytes of the work buffers (besides the q × q result and the chain's workspace). */
  workBytes: number;
}

/**
 * The empirical neural tangent kernel Θ = J Jᵀ ∈ R^{q×q} (q = batch × outputSize, row index
 * i·outputSize + k for output k of sample i) of the chain at parameters w on the `batch` samples
 * of x: Θ_{(i,k),(j,l)} = ⟨∇_w ψ_k(w, x_i), ∇_w ψ_l(w, x_j)⟩ (Cai et al., "Gram-Gauss-Newton Method" (arXiv:1905.11675): the matrix J_t J_tᵀ of the
 * Gram-Gauss-Newton update, "whose size is #data times #data"). Float64, row-major.
 */
export function empiricalNtk(chain: Chain, w: FloatArray, x: ArrayLike<number>, batch: number, options: GramOptions = {}): Float64Array {
  const training = options.training ?? true;
  const ws = runForward(chain, w, x, batch, training, options.state, false);
  return gramFromWorkspace(chain, ws, w, batch, null, training, options).gram;
}

/**
 * M Mᵀ with M = Sᵀ J, S = blockdiag(S_1, …, S_N) with k × r blocks (`factor`: float64, N·k·r
 * entries, row-major, r = factor.cols) or the identity when null (r = k); M Mᵀ is (N·r) × (N·r), for the chain linearized at the forward pass held by
 * `ws`. Rows of M are VJP slopes: row (i, c) of M is Jᵀ applied to column c of S_i placed at sample i.
 *
 * Structured path (chains of dense layers and per-sample, tape-free components: activations,
 * flatten, softmax, average pooling): the q slopes are back-propagated together as one batch of q
 * rows (each row carrying the activations of its sample), and each dense layer t adds
 * (Δ_t Δ_tᵀ) ⊙ (X_t X_tᵀ + 1) expanded over outputs, since the parameter gradient of a dense layer
 * for a slope δ at sample i is (δ x_iᵀ, δ): ⟨(δ x_iᵀ, δ), (δ′ x_jᵀ, δ′)⟩ = ⟨δ, δ′⟩(⟨x_i, x_j⟩ + 1).
 * Cost: one backward pass at batch q without parameter gradients, plus q(q+1)/2 Σ_t m_t multiply-adds
 * for the Gram products (SYRK, upper triangle); memory: 2 q × max width slopes, the replicated activations (q × width per
 * component) and one q × q scratch, never the q × p Jacobian.
 *
 * Generic path (any chain): Jacobian rows by VJPs (one backward each) reusing the single forward
 * pass, blocked so that at most `maxJacobianBytes` of rows are held; G = Σ blocks R_I R_Jᵀ by GEMM.
 */
export function gramFromWorkspace(
  chain: Chain,
  ws: ChainWorkspace,
  w: FloatArray,
  batch: number,
  factor: OutputFactor | null,
  training: boolean,
  options: GramOptions = {},
): { gram: Float64Array; info: GramInfo } {
  const out = gramUpperFromWorkspace(chain, ws, w, batch, factor, training, options);
  const q = batch * (factor ? factor.cols : chain.outputSize);
  transposeUpperToLower(out.gram, q);
  return out;
}

/**
 * {@link gramFromWorkspace} with only the upper triangle (column ≥ row, diagonal included) to be
 * read: the strictly lower triangle is not part of the result (zero on the structured path without `out`), free
 * for a Cholesky factor (gauss-newton.ts). `out` (q² entries, any content) receives it when given.
 */
export function gramUpperFromWorkspace(
  chain: Chain,
  ws: ChainWorkspace,
  w: FloatArray,
  batch: number,
  factor: OutputFactor | null,
  training: boolean,
  options: GramOptions = {},
  out?: Float64Array,
): { gram: Float64Array; info: GramInfo } {
  const q = batch * (factor ? factor.cols : chain.outputSize);
  if (out && out.length !== q * q) throw new RangeError(`gram: out has ${out.length} entries, expected q² = ${q * q}`);
  if ((options.path ?? "auto") === "auto" && structuredGramApplies(chain, ws)) {
    // Every dense layer's term covers the whole upper triangle; without a dense layer the Gram is zero.
    const gram = out ?? new Float64Array(q * q);
    if (out && !chain.components.some((c) => c instanceof Dense)) out.fill(0);
    return structuredGram(chain, ws, w, batch, factor, training, phaseClock(options.onPhase), gram);
  }
  return genericGram(chain, ws, w, batch, factor, training, options.maxJacobianBytes ?? 256 * 2 ** 20, out ?? new Float64Array(q * q));
}

/** Whether {@link gramFromWorkspace}'s structured path handles this chain. */
export function structuredGramApplies(chain: Chain, ws: ChainWorkspace): boolean {
  // Dense layers, and parameter-free, state-free, tape-free components (element-wise activations,
  // flatten, softmax, average pooling): per-sample maps whose backward reads only x and y.
  return chain.components.every((c, i) => c instanceof Dense || (c.paramSize === 0 && c.stateSize === 0 && ws.io[i].tape === null));
}

/** An output-space factor S = blockdiag(S_i), S_i of size k × cols stored row-major one after the other. */
export interface OutputFactor {
  data: Float64Array;
  cols: number;
}

/** The slope rows S e_r (row r = (i, c): column c of S_i), as a q × k matrix in the chain's precision. */
function seedRows(chain: Chain, batch: number, factor: OutputFactor | null): FloatArray {
  const k = chain.outputSize;
  const cols = factor ? factor.cols : k;
  const q = batch * cols;
  const d = allocate(chain.dtype, q * k);
  for (let i = 0; i < batch; i++) {
    for (let c = 0; c < cols; c++) {
      const r = i * cols + c;
      if (factor) for (let j = 0; j < k; j++) d[r * k + j] = factor.data[i * k * cols + j * cols + c];
      else d[r * k + c] = 1;
    }
  }
  return d;
}

/** Row-tile height of the upper-triangular Gram products by GEMM (backends without SYRK). */
const TILE = 256;

/** Work buffers of the structured path, kept per chain and q between calls (no garbage per step). */
interface GramBuffers {
  scratch: FloatArray;
  deltas: [FloatArray, FloatArray];
  inputs: FloatArray[];
  outputs: FloatArray[];
  p: FloatArray;
}
const buffersCache = new WeakMap<Chain, Map<number, GramBuffers>>();

function gramBuffers(chain: Chain, batch: number, cols: number): GramBuffers {
  const q = batch * cols;
  let byQ = buffersCache.get(chain);
  if (!byQ) {
    byQ = new Map();
    buffersCache.set(chain, byQ);
  }
  let b = byQ.get(q);
  if (!b) {
    let width = chain.outputSize;
    for (const c of chain.components) width = Math.max(width, c.inputSize, c.outputSize);
    const empty = allocate(chain.dtype, 0);
    b = {
      scratch: allocate(chain.dtype, q * q),
      deltas: [allocate(chain.dtype, q * width), allocate(chain.dtype, q * width)],
      inputs: chain.components.map((c) => (c instanceof Dense ? empty : allocate(chain.dtype, q * c.inputSize))),
      outputs: chain.components.map((c) => (c instanceof Dense ? empty : allocate(chain.dtype, q * c.outputSize))),
      p: allocate(chain.dtype, batch * batch),
    };
    byQ.clear(); // keep one size per chain
    byQ.set(q, b);
  }
  return b;
}

function structuredGram(
  chain: Chain,
  ws: ChainWorkspace,
  w: FloatArray,
  batch: number,
  factor: OutputFactor | null,
  training: boolean,
  lap: (phase: string) => void,
  gram: Float64Array,
): { gram: Float64Array; info: GramInfo } {
  const k = chain.outputSize;
  const cols = factor ? factor.cols : k;
  const q = batch * cols;
  const comps = chain.components;
  const backend = chain.backend;
  const ctx = componentContext(chain, q, training, false);
  const buf = gramBuffers(chain, batch, cols);
  const scratch = buf.scratch;
  const eb = chain.dtype === "float32" ? 4 : 8;
  const workBytes =
    eb * (scratch.length + 2 * buf.deltas[0].length + buf.p.length) +
    buf.inputs.reduce((s, a, i) => s + eb * (a.length + buf.outputs[i].length), 0);
  const first = comps.findIndex((c) => c.paramSize > 0);
  let firstTerm = true;
  let which = 0;
  // Δ at the output of component i (q × outputSize).
  let delta = buf.deltas[0].subarray(0, q * k);
  delta.set(seedRows(chain, batch, factor));
  lap("gram: setup");
  for (let i = comps.length - 1; i >= Math.max(first, 0); i--) {
    const c = comps[i];
    const x = ws.activations[i];
    if (c instanceof Dense) {
      const n = c.inputSize;
      const m = c.outputSize;
      const bias = c.paramSize > m * n ? 1 : 0;
      // T = Δ Δᵀ (q × q) and P = X Xᵀ (N × N), upper triangles only; G += T ⊙ (P + bias) expanded
      // over outputs, upper triangle. SYRK when the backend has it (half the multiply-adds of a GEMM;
      // T in the chain's precision: every product and sum of the Hadamard step is formed in float64,
      // so the float64 Gram sums float32 inner products Σ_l Δ_rl Δ_sl, each with relative error
      // ≤ m·u₃₂ ‖Δ_r‖‖Δ_s‖/|T_rs| (Higham, "Accuracy and Stability of Numerical Algorithms", Sec. 3.1),
      // the same as the float32 backward pass that produces Δ), else GEMM tiles of TILE rows
      // against the columns right of their start.
      const p = buf.p;
      if (backend.syrk) backend.syrk(true, false, batch, n, 1, x, n, 0, p, batch);
      else backend.gemm(false, true, batch, batch, n, 1, x, n, x, n, 0, p, batch);
      lap("gram: X Xᵀ");
      if (backend.syrk) backend.syrk(true, false, q, m, 1, delta, m, 0, scratch, q);
      else {
        for (let r0 = 0; r0 < q; r0 += TILE) {
          const r1 = Math.min(q, r0 + TILE);
          backend.gemm(
            false,
            true,
            r1 - r0,
            q - r0,
            m,
            1,
            delta.subarray(r0 * m),
            m,
            delta.subarray(r0 * m),
            m,
            0,
            scratch.subarray(r0 * q + r0),
            q,
          );
        }
      }
      lap("gram: Δ Δᵀ");
      // The first dense layer met (the top one) overwrites the upper triangle: no zero fill.
      if (backend.gramHadamard) backend.gramHadamard(q, cols, batch, bias, scratch, p, gram, !firstTerm);
      else portableGramHadamard(q, cols, batch, bias, scratch, p, gram, !firstTerm);
      firstTerm = false;
      lap("gram: Hadamard");
      if (i > first) {
        which = 1 - which;
        const next = buf.deltas[which].subarray(0, q * n);
        backend.gemm(false, false, q, n, m, 1, delta, m, chain.paramBlock(w, i), n, 0, next, n);
        delta = next;
        lap("gram: backward Δ (dense)");
      }
    } else {
      // Replicate the component's input and output rows: row r of the q-batch is sample ⌊r/cols⌋.
      const xe = replicateRows(x, batch, c.inputSize, cols, buf.inputs[i]);
      const ye = replicateRows(ws.activations[i + 1], batch, c.outputSize, cols, buf.outputs[i]);
      const io: LayerIO<unknown> = { x: xe, y: ye, params: ws.io[i].params, state: ws.io[i].state, tape: null };
      which = 1 - which;
      const next = buf.deltas[which].subarray(0, q * c.inputSize);
      c.backward(ctx, io, delta, next, null);
      delta = next;
      lap("gram: backward Δ (activations)");
    }
  }
  return { gram, info: { path: "structured", rows: q, backwardPasses: 1, workBytes } };
}

/** The portable Gram Hadamard update (src/core/portable.ts), for backends without their own. */
const portableGramHadamard: NonNullable<Backend["gramHadamard"]> = (q, cols, batch, bias, t, p, g, accumulate) =>
  portableBackend.gramHadamard?.(q, cols, batch, bias, t, p, g, accumulate);

function replicateRows(a: FloatArray, batch: number, size: number, times: number, out: FloatArray): FloatArray {
  for (let i = 0; i < batch; i++) {
    const row = a.subarray(i * size, (i + 1) * size);
    for (let t = 0; t < times; t++) out.set(row, (i * times + t) * size);
  }
  return out;
}

function genericGram(
  chain: Chain,
  ws: ChainWorkspace,
  w: FloatArray,
  batch: number,
  factor: OutputFactor | null,
  training: boolean,
  maxBytes: number,
  gram: Float64Array,
): { gram: Float64Array; info: GramInfo } {
  const k = chain.outputSize;
  const cols = factor ? factor.cols : k;
  const q = batch * cols;
  const p = chain.paramSize;
  const bytes = chain.dtype === "float32" ? 4 : 8;
  const seeds = seedRows(chain, batch, factor);
  const slope = allocate(chain.dtype, batch * k);
  let passes = 0;
  // Rows r0..r1−1 of M = Sᵀ J into buf (row-major, p entries each): one VJP per row.
  const rows = (r0: number, r1: number, buf: FloatArray): void => {
    for (let r = r0; r < r1; r++) {
      slope.fill(0);
      const i = Math.floor(r / cols);
      for (let j = 0; j < k; j++) slope[i * k + j] = seeds[r * k + j];
      vjpFromWorkspace(chain, ws, w, batch, slope, buf.subarray((r - r0) * p, (r - r0 + 1) * p), training);
      passes++;
    }
  };
  const fitsAll = q * p * bytes <= maxBytes;
  const blk = fitsAll ? q : Math.max(1, Math.floor(maxBytes / (2 * p * bytes)));
  const bufA = allocate(chain.dtype, blk * p);
  const bufB = fitsAll ? bufA : allocate(chain.dtype, blk * p);
  const tile = allocate(chain.dtype, blk * blk);
  for (let a0 = 0; a0 < q; a0 += blk) {
    const a1 = Math.min(q, a0 + blk);
    rows(a0, a1, bufA);
    for (let b0 = a0; b0 < q; b0 += blk) {
      const b1 = Math.min(q, b0 + blk);
      const other = b0 === a0 ? bufA : bufB;
      if (b0 !== a0) rows(b0, b1, bufB);
      const na = a1 - a0;
      const nb = b1 - b0;
      chain.backend.gemm(false, true, na, nb, p, 1, bufA, p, other, p, 0, tile, nb);
      for (let r = 0; r < na; r++)
        for (let s = 0; s < nb; s++) {
          gram[(a0 + r) * q + b0 + s] = tile[r * nb + s];
          gram[(b0 + s) * q + a0 + r] = tile[r * nb + s];
        }
    }
  }
  const workBytes = bufA.byteLength + (bufB === bufA ? 0 : bufB.byteLength) + tile.byteLength;
  return { gram, info: { path: "generic", rows: q, backwardPasses: passes, workBytes } };
}
