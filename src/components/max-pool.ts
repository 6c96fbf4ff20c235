import type { z } from "zod";
import type { Backend } from "../core/backend.js";
import type { DType, FloatArray } from "../core/dtype.js";
import { type Component, type ComponentContext, type LayerIO, plainLayouts } from "./component.js";
import { Pool2d, poolSpecSchema } from "./pool2d.js";
import type { InputBounds, NonlinearConstants, SmoothingRule } from "./smoothness.js";

/** Spec schema of `{ type: "maxPool2d", size, stride, padding }`. */
export const maxPoolSpecSchema = poolSpecSchema("maxPool2d");
/** A validated `maxPool2d` layer spec. */
export type MaxPoolSpec = z.output<typeof maxPoolSpecSchema>;

/** Intermediates of a {@link MaxPool2d} call. */
export interface MaxPoolTape {
  /** For each output entry, the index (into the batch's input array) of the maximum of its window. */
  readonly argmax: Int32Array;
  /**
   * When the last forward ran on oneDNN: its workspace (the selected window offsets, read by
   * oneDNN's backward), and `argmax` is stale until {@link MaxPool2d} recomputes it for a JVP.
   */
  dnn: { workspace: Uint8Array; argmaxStale: boolean } | null;
}

/**
 * Max pooling y[n,c,oh,ow] = max over the window {(oh·s_h − p_h + i, ow·s_w − p_w + j)} of x[n,c,·,·]
 * (padding counts as −∞, i.e. padded positions are never selected, as in PyTorch). A reduction of
 * dimension π_t (Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), App. B-3); 1-Lipschitz but not differentiable where the maximum
 * is tied (Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019), Sec. 5.1: ℓ_maxpool = 1, L_maxpool undefined).
 *
 * Away from ties, y = S x with S the 0/1 selection matrix of the argmax (stored in the tape): the
 * VJP is dx = Sᵀ dy (each slope routed to its argmax, accumulated where windows overlap) and the
 * JVP is dy = S dx (the tangent gathered at the argmax). On ties the first maximum in row-major
 * window order is chosen, as PyTorch does; NaNs propagate.
 */
export class MaxPool2d extends Pool2d<MaxPoolSpec> implements Component<MaxPoolTape> {
  readonly type = "maxPool2d";

  /**
   * Smoothness constants (docs/certificates.md). For windows S_o, |max_{S_o} x − max_{S_o} y| ≤ max_{i∈S_o} |x_i − y_i|,
   * so ‖π(x) − π(y)‖² ≤ Σ_o max_{i∈S_o} (x_i − y_i)² ≤ c ‖x − y‖² with c = max_i |{o : i ∈ S_o}|
   * the largest number of windows holding one pixel (c_h·c_w, per axis, computed exactly): ℓ = √c,
   * = 1 for non-overlapping windows (Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019), Sec. 5.1: ℓ_maxpool = 1, which holds
   * only without overlap). Not differentiable at ties: L = ∞. π(0) = 0 (padding is −∞, every
   * window holds a pixel), ‖π(x)‖ ≤ √c ‖x‖ likewise.
   */
  smoothness(input: InputBounds): NonlinearConstants {
    const ell = Math.sqrt(this.windowCoverage());
    return { kind: "nonlinear", bound: ell * input.norm, lipschitz: ell, smoothness: Infinity, valueAtZero: 0, jacobianAtZero: ell };
  }
  /**
   * Smoothing (docs/smoothing.md): max-pool → smoothMaxPool2d, each window's max replaced by
   * lse_μ = μ log Σ exp(x_i/μ) (src/components/smooth-max-pool.ts), with 0 ≤ lse_μ − max ≤ μ log k
   * for a window of k pixels. With η = batch·outputSize windows and k_max the largest window, an
   * ℓ2-accuracy δ takes μ = δ/(√η log k_max) (Lemma 24 item 1); a_μ is √c/(2μ)-smooth (c windows
   * per pixel, see SmoothMaxPool2d.smoothness) and √c-Lipschitz like max-pool:
   * (L, K) = (0, √c √η log(k_max)/2). A 1×1 window (k_max = 1) is the identity: K = 0.
   */
  smoothing(input: InputBounds): SmoothingRule {
    const c = this.windowCoverage();
    const logK = Math.log(this.maxWindowSize());
    const eta = input.batch * this.outputSize;
    // A 1×1 window is the identity (lse_μ of one entry is the entry): any μ is exact.
    const temperature = (accuracy: number): number => (logK > 0 ? accuracy / (Math.sqrt(eta) * logK) : 1);
    const { size, stride, padding } = this.spec;
    return {
      lipschitz: Math.sqrt(c),
      smoothness: 0,
      smoothnessPerAccuracy: (Math.sqrt(c) * Math.sqrt(eta) * logK) / 2,
      spec: (accuracy) => ({
        type: "smoothMaxPool2d",
        size,
        ...(stride !== undefined ? { stride } : {}),
        padding,
        mu: temperature(accuracy),
      }),
      parameter: temperature,
      description: "maxPool2d → smoothMaxPool2d(μ = δ/(√η log k)): 0 ≤ lse_μ − max ≤ μ log k, √c/(2μ)-smooth",
    };
  }

  createTape(batch: number, _dtype: DType): MaxPoolTape {
    if (batch * this.inputSize > 0x7fffffff) throw new Error("maxPool2d: batch too large for 32-bit argmax indices");
    return { argmax: new Int32Array(batch * this.outputSize), dnn: null };
  }

  /** Whether a call at `batch` runs on oneDNN pooling (as dnnFor decides), which takes blocked layouts. */
  acceptsBlockedLayouts(backend: Backend, batch: number, dtype: DType): boolean {
    return dtype === "float32" && backend.dnn !== undefined && backend.dnn.supportsPool(this.windowGeometry(batch));
  }

  forward(ctx: ComponentContext, io: LayerIO<MaxPoolTape>): void {
    const { x, y } = io;
    const dnn = this.dnnFor(ctx, x);
    if (dnn) {
      // oneDNN's pooling_forward (max; its ties and NaNs: see docs/performance.md), keeping the
      // workspace its backward reads. The JVP recomputes the argmax only if it is asked for.
      const g = this.windowGeometry(ctx.batch);
      const bytes = dnn.poolWorkspaceBytes(g, true, io.xLayout);
      let ws = io.tape.dnn?.workspace;
      if (!ws || ws.length < bytes) ws = new Uint8Array(bytes);
      dnn.poolForward(g, true, x as Float32Array, y as Float32Array, ws, io.xLayout, io.yLayout);
      io.tape.dnn = { workspace: ws, argmaxStale: true };
      return;
    }
    plainLayouts(io, this.type);
    io.tape.dnn = null;
    this.selectMax(ctx.batch, x, y, io.tape.argmax);
  }

  /** y and argmax by the first-maximum rule (the portable forward). */
  private selectMax(batch: number, x: FloatArray, y: FloatArray, argmax: Int32Array): void {
    const { c, h, w, kh, kw, sh, sw, ph, pw, oh: OH, ow: OW } = this.geometry;
    const { hLo, hHi, wLo, wHi } = this.windows;
    const planes = batch * c;
    const plane = h * w;
    if (x instanceof Float32Array && kh === 2 && kw === 2 && sh === 2 && sw === 2 && ph === 0 && pw === 0) {
      forward2x2Float32(x, y, argmax, planes, h, w, OH, OW);
      return;
    }
    let o = 0;
    for (let q = 0; q < planes; q++) {
      const base = q * plane;
      for (let oh = 0; oh < OH; oh++) {
        const h0 = hLo[oh];
        const h1 = hHi[oh];
        for (let ow = 0; ow < OW; ow++) {
          const w0 = wLo[ow];
          const w1 = wHi[ow];
          let best = base + h0 * w + w0;
          let m = x[best];
          for (let ih = h0; ih < h1; ih++) {
            const r = base + ih * w;
            for (let iw = w0; iw < w1; iw++) {
              const v = x[r + iw];
              // v > m, or v is NaN while m is not (NaNs propagate, as in PyTorch).
              if (!(v <= m) && m >= Number.NEGATIVE_INFINITY) {
                m = v;
                best = r + iw;
              }
            }
          }
          argmax[o] = best;
          y[o] = m;
          o++;
        }
      }
    }
  }

  /** Makes tape.argmax valid after a oneDNN forward (the JVP and the second-order pass read it). */
  private ensureArgmax(ctx: ComponentContext, io: LayerIO<MaxPoolTape>): void {
    const d = io.tape.dnn;
    if (!d?.argmaxStale) return;
    // Into a scratch output: io.y is left as the forward wrote it.
    const n = ctx.batch * this.outputSize;
    this.selectMax(ctx.batch, io.x, io.x instanceof Float32Array ? new Float32Array(n) : new Float64Array(n), io.tape.argmax);
    d.argmaxStale = false;
  }

  backward(ctx: ComponentContext, io: LayerIO<MaxPoolTape>, dy: FloatArray, dx: FloatArray | null): void {
    if (!dx) return;
    const d = io.tape.dnn;
    const dnn = d ? this.dnnFor(ctx, io.x) : null;
    if (d && dnn) {
      dnn.poolBackward(this.windowGeometry(ctx.batch), true, dy as Float32Array, dx as Float32Array, d.workspace, io.xLayout, io.yLayout);
      return;
    }
    plainLayouts(io, this.type);
    this.ensureArgmax(ctx, io);
    const argmax = io.tape.argmax;
    const n = ctx.batch * this.outputSize;
    dx.fill(0, 0, ctx.batch * this.inputSize);
    for (let o = 0; o < n; o++) dx[argmax[o]] += dy[o];
  }

  jvp(ctx: ComponentContext, io: LayerIO<MaxPoolTape>, dx: FloatArray | null, _dparams: FloatArray | null, dy: FloatArray): void {
    const n = ctx.batch * this.outputSize;
    if (!dx) {
      dy.fill(0, 0, n);
      return;
    }
    this.ensureArgmax(ctx, io);
    const argmax = io.tape.argmax;
    for (let o = 0; o < n; o++) dy[o] = dx[argmax[o]];
  }

  /**
   * Piecewise linear (the selection is locally constant), so zero curvature almost everywhere: the
   * second-order backward is the backward of ddy through the stored arg-max (Component.backwardTangent).
   */
  backwardTangent(
    ctx: ComponentContext,
    io: LayerIO<MaxPoolTape>,
    _dy: FloatArray,
    ddy: FloatArray,
    _dx: FloatArray | null,
    _dparams: FloatArray | null,
    ddx: FloatArray | null,
  ): void {
    this.backward(ctx, io, ddy, ddx);
  }
}

/** 2⁻³²: scales an int32 difference into (−1, 1). */
const TWO_TO_MINUS_32 = 2.3283064365386963e-10;

/**
 * Max pooling 2×2, stride 2, no padding, on float32, without data-dependent branches (the
 * comparisons of the scalar loop mispredict on random data: measured 4× slower on 128×32×32×32).
 * Each float32 is mapped to an int32 key that orders like the floats: k = b ^ ((b >> 31) & 0x7fffffff)
 * reverses the negatives (whose bits order backwards), and adding b >>> 31 (1 for negatives) makes
 * −0 tie with +0. For two keys a, b, s = ⌊(a − b)·2⁻³²⌋ is −1 iff a < b and 0 otherwise (|a − b| < 2³²),
 * so a ^ ((a ^ b) & s) selects b only when it is strictly larger: the first maximum in row-major window
 * order wins, as in the scalar loop and PyTorch. A window holding a NaN (its sum is NaN) is redone by
 * the scalar rule, so that NaNs propagate as there.
 */
function forward2x2Float32(
  x: Float32Array,
  y: FloatArray,
  argmax: Int32Array,
  planes: number,
  h: number,
  w: number,
  OH: number,
  OW: number,
): void {
  const xi = new Int32Array(x.buffer, x.byteOffset, x.length);
  const plane = h * w;
  let o = 0;
  for (let q = 0; q < planes; q++) {
    const base = q * plane;
    for (let oh = 0; oh < OH; oh++) {
      const r0 = base + 2 * oh * w;
      const r1 = r0 + w;
      for (let ow = 0; ow < OW; ow++) {
        const i0 = r0 + 2 * ow;
        const i1 = i0 + 1;
        const i2 = r1 + 2 * ow;
        const i3 = i2 + 1;
        let a = xi[i0];
        a = (a ^ ((a >> 31) & 0x7fffffff)) + (a >>> 31);
        let b = xi[i1];
        b = (b ^ ((b >> 31) & 0x7fffffff)) + (b >>> 31);
        let c = xi[i2];
        c = (c ^ ((c >> 31) & 0x7fffffff)) + (c >>> 31);
        let d = xi[i3];
        d = (d ^ ((d >> 31) & 0x7fffffff)) + (d >>> 31);
        let s = Math.floor((a - b) * TWO_TO_MINUS_32);
        const k01 = a ^ ((a ^ b) & s);
        const j01 = i0 ^ ((i0 ^ i1) & s);
        s = Math.floor((c - d) * TWO_TO_MINUS_32);
        const k23 = c ^ ((c ^ d) & s);
        const j23 = i2 ^ ((i2 ^ i3) & s);
        s = Math.floor((k01 - k23) * TWO_TO_MINUS_32);
        let best = j01 ^ ((j01 ^ j23) & s);
        const sum = x[i0] + x[i1] + x[i2] + x[i3];
        if (Number.isNaN(sum)) {
          // A NaN (or +∞ and −∞) in the window: the scalar rule (rare, so this branch predicts well).
          best = i0;
          let m = x[i0];
          for (const i of [i1, i2, i3]) {
            const v = x[i];
            if (!(v <= m) && m >= Number.NEGATIVE_INFINITY) {
              m = v;
              best = i;
            }
          }
        }
        argmax[o] = best;
        y[o] = x[best];
        o++;
      }
    }
  }
}
