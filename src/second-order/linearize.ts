import { type Chain, type ChainWorkspace, componentContext } from "../chain/chain.js";
import type { Backend } from "../core/backend.js";
import { allocate, type FloatArray } from "../core/dtype.js";
import type { Batch } from "../objectives/batch.js";
import type { Loss } from "../objectives/loss.js";
import { backwardFrom, runForward } from "../oracles/first-order.js";
import { choleskyInPlace, choleskySolveInPlace } from "./linalg.js";

// The linearized chain at w (Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019), Prop. 3.1; Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (long version with appendices) Sec. 3.1): after one forward
// pass the workspace holds every intermediate, and the maps dw ↦ J dw (JVP) and s ↦ Jᵀ s (VJP) of
// the chain's Jacobian J = ∂ψ/∂w can be applied any number of times without re-running forward
// (Def. 3.1/Algo. 3 of Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (long version with appendices): the forward pass is decorrelated from the slopes).

/** Options shared by the second-order oracles. */
export interface SecondOrderOptions {
  /** Training mode of the components (batch-norm statistics; default true, as for gradients). */
  training?: boolean;
  /** Non-trainable state (batch-norm running statistics) for evaluation mode. */
  state?: FloatArray;
}

/**
 * Two chain-precision buffers per chain for the intermediate tangents of {@link jvpFromWorkspace}
 * (batch × widest component each), kept between calls: a fresh 256 KiB array per layer and call
 * costs its page faults (docs/second-order.md, "Cost of a step").
 */
const tangentBuffers = new WeakMap<Chain, [FloatArray, FloatArray]>();

function tangentPair(chain: Chain, entries: number): [FloatArray, FloatArray] {
  let pair = tangentBuffers.get(chain);
  if (!pair || pair[0].length < entries) {
    pair = [allocate(chain.dtype, entries), allocate(chain.dtype, entries)];
    tangentBuffers.set(chain, pair);
  }
  return pair;
}

/** J dw for the chain linearized at the point of the last forward pass held by `ws` (a fresh array). */
export function jvpFromWorkspace(
  chain: Chain,
  ws: ChainWorkspace,
  w: FloatArray,
  batch: number,
  dw: ArrayLike<number>,
  training: boolean,
): FloatArray {
  const ctx = componentContext(chain, batch, training, false);
  const dwc = asChainArray(chain, dw);
  const comps = chain.components;
  let width = 0;
  for (const c of comps) width = Math.max(width, c.outputSize);
  const pair = tangentPair(chain, batch * width);
  let tangent: FloatArray | null = null;
  let slot = 0;
  comps.forEach((c, i) => {
    const dparams = c.paramSize > 0 ? chain.paramBlock(dwc, i) : null;
    if (tangent === null && dparams === null) return;
    // Intermediate tangents alternate between the two buffers (never the one being read); the last
    // component writes a fresh array, the result.
    const size = batch * c.outputSize;
    let out: FloatArray;
    if (i === comps.length - 1) out = allocate(chain.dtype, size);
    else {
      out = pair[slot].subarray(0, size);
      slot = 1 - slot;
    }
    const io = ws.io[i];
    io.params = chain.paramBlock(w, i);
    c.jvp(ctx, io, tangent, dparams, out);
    tangent = out;
  });
  return tangent ?? allocate(chain.dtype, batch * chain.outputSize);
}

/** dw ← Jᵀ s for the chain linearized at the point of the last forward pass held by `ws`. */
export function vjpFromWorkspace(
  chain: Chain,
  ws: ChainWorkspace,
  w: FloatArray,
  batch: number,
  slope: ArrayLike<number>,
  dw: FloatArray,
  training: boolean,
): FloatArray {
  const n = batch * chain.outputSize;
  const s = ws.slopes[0].subarray(0, n);
  for (let i = 0; i < n; i++) s[i] = slope[i];
  backwardFrom(chain, ws, w, batch, training, s, dw, null);
  return dw;
}

/** `v` as an array of the chain's precision (itself when it already is one). */
export function asChainArray(chain: Chain, v: ArrayLike<number>): FloatArray {
  const want = chain.dtype === "float32" ? Float32Array : Float64Array;
  if (v instanceof want) return v;
  const out = allocate(chain.dtype, v.length);
  for (let i = 0; i < v.length; i++) out[i] = v[i];
  return out;
}

/**
 * The per-sample blocks H_i = ∇²ℓ(ŷ_i, y_i) (k × k each, `batch` of them, float64) of the loss
 * Hessian ∇²f(ŷ) = blockdiag(H_i), by k calls to {@link Loss.hessianVector}: the losses average
 * per-sample terms, so the Hessian is block diagonal and e_j repeated on every sample returns the
 * j-th column of every block at once. Written to `out` (n·k·k entries, any content) when given.
 */
export function lossHessianBlocks(loss: Loss, output: FloatArray, batch: Batch, k: number, out?: Float64Array): Float64Array {
  const n = batch.size;
  if (out && out.length !== n * k * k) throw new RangeError(`lossHessianBlocks: out has ${out.length} entries, expected ${n * k * k}`);
  const blocks = out ?? new Float64Array(n * k * k);
  if (loss.hessianBlocks) {
    loss.hessianBlocks(output, batch, k, blocks);
    return blocks;
  }
  // v and H v in float64 whatever the chain's precision: the losses compute in double, and storing
  // H v in float32 would round each block by ≈ 6e-8 relative, enough to turn the exactly singular
  // logistic block diag(p) − p pᵀ (rows sum to p_i(1 − Σ p) = 0) into a full-rank one, whose
  // spurious k-th pivot (≈ 1e-8 · max diag, far above psdFactor's k·ε₆₄ cut) would add N rows to
  // the Gram matrix (q = 1280 instead of 1152 for N = 128, k = 10: +23 % Gram flops, +38 % Cholesky).
  const v = new Float64Array(n * k);
  const hv = new Float64Array(n * k);
  for (let j = 0; j < k; j++) {
    v.fill(0);
    for (let i = 0; i < n; i++) v[i * k + j] = 1;
    loss.hessianVector(output, batch, k, v, hv);
    for (let i = 0; i < n; i++) for (let r = 0; r < k; r++) blocks[i * k * k + r * k + j] = hv[i * k + r];
  }
  return blocks;
}

/** out ← blockdiag(B_i) v for `n` blocks of size k × r (float64; v has n·r entries, out n·k). */
export function applyBlocks(blocks: Float64Array, n: number, k: number, v: ArrayLike<number>, out: Float64Array, r = k): Float64Array {
  for (let i = 0; i < n; i++) {
    const bo = i * k * r;
    for (let row = 0; row < k; row++) {
      let s = 0;
      for (let c = 0; c < r; c++) s += blocks[bo + row * r + c] * v[i * r + c];
      out[i * k + row] = s;
    }
  }
  return out;
}

/**
 * A forward pass at a fixed point w₀ on a batch, kept for repeated JVPs/VJPs. {@link workspace}
 * returns the chain's workspace, re-running the forward pass only when another oracle call on the
 * same batch size overwrote it in between (detected by comparing the stored input and output).
 */
export class Linearization {
  private ws: ChainWorkspace;
  private readonly outputCopy: FloatArray;
  /** Forward passes run so far. */
  forwardPasses = 1;

  constructor(
    readonly chain: Chain,
    readonly w0: FloatArray,
    readonly batch: Batch,
    readonly training: boolean,
    readonly state: FloatArray | undefined,
  ) {
    this.ws = runForward(chain, w0, batch.x, batch.size, training, state, false);
    this.outputCopy = this.output.slice();
  }

  /** The chain's output at w₀ (workspace view). */
  get output(): FloatArray {
    return this.ws.activations[this.chain.components.length];
  }

  /** The workspace holding the forward pass at w₀. */
  workspace(): ChainWorkspace {
    const out = this.ws.activations[this.chain.components.length];
    const x = this.ws.activations[0];
    // A gradient pass in between may have left blocked activations (src/chain/layouts.ts).
    let intact = !this.ws.blockedLayouts;
    for (let i = 0; i < out.length && intact; i++) if (out[i] !== this.outputCopy[i]) intact = false;
    for (let i = 0; i < x.length && intact; i++) if (x[i] !== this.batch.x[i]) intact = false;
    if (!intact) {
      this.ws = runForward(this.chain, this.w0, this.batch.x, this.batch.size, this.training, this.state, false);
      this.forwardPasses++;
    }
    return this.ws;
  }

  /** J dw (fresh array, chain precision). */
  jvp(dw: ArrayLike<number>): FloatArray {
    return jvpFromWorkspace(this.chain, this.workspace(), this.w0, this.batch.size, dw, this.training);
  }

  /** dw ← Jᵀ s. */
  vjp(slope: ArrayLike<number>, dw: FloatArray): FloatArray {
    return vjpFromWorkspace(this.chain, this.workspace(), this.w0, this.batch.size, slope, dw, this.training);
  }
}

/**
 * Solves (A + κ I) x = b for symmetric PSD A (q × q, float64, not modified) by Cholesky; `work`
 * (q² entries, reused between calls by the caller) receives the factor.
 */
export function solveShifted(
  backend: Backend,
  a: Float64Array,
  q: number,
  kappa: number,
  b: ArrayLike<number>,
  what: string,
  work: Float64Array = new Float64Array(q * q),
): Float64Array {
  work.set(a);
  for (let i = 0; i < q; i++) work[i * q + i] += kappa;
  if (!choleskyInPlace(backend, work, q))
    throw new Error(`${what}: the regularized Gram matrix is not positive definite (increase the damping)`);
  const x = new Float64Array(q);
  for (let i = 0; i < q; i++) x[i] = b[i];
  choleskySolveInPlace(backend, work, q, x, 1);
  return x;
}

/** out ← blockdiag(B_i)ᵀ v for `n` blocks of size k × r (float64; v has n·k entries, out n·r). */
export function applyBlocksTransposed(
  blocks: Float64Array,
  n: number,
  k: number,
  v: ArrayLike<number>,
  out: Float64Array,
  r = k,
): Float64Array {
  for (let i = 0; i < n; i++) {
    const bo = i * k * r;
    for (let c = 0; c < r; c++) {
      let s = 0;
      for (let row = 0; row < k; row++) s += blocks[bo + row * r + c] * v[i * k + row];
      out[i * r + c] = s;
    }
  }
  return out;
}
