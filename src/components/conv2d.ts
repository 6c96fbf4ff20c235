import { z } from "zod";
import type { Backend, ConvGeometry, DnnPrimitives } from "../core/backend.js";
import { allocate, type DType, type FloatArray } from "../core/dtype.js";
import { rowSums } from "../core/kernels.js";
import { Biaffine } from "./biaffine.js";
import { type Component, type ComponentContext, type LayerIO, plainLayouts, SpecError } from "./component.js";
import { type BiaffineConstants, type InputBounds, maxWindowCoverage } from "./smoothness.js";
import { initScheme, paddingPair, pair, positiveInt } from "./spec-fields.js";

/** Spec schema of `{ type: "conv2d", filters, kernel, stride, padding, bias, init }`. */
export const conv2dSpecSchema = z
  .object({
    type: z.literal("conv2d"),
    filters: positiveInt,
    kernel: pair,
    stride: pair.default(1),
    padding: paddingPair.default(0),
    bias: z.boolean().default(true),
    init: initScheme.default("he"),
  })
  .strict();
/** A validated `conv2d` layer spec. */
export type Conv2dSpec = z.output<typeof conv2dSpecSchema>;

/** `n` or `[h, w]` as `[h, w]`. */
export function toPair(v: number | readonly [number, number]): [number, number] {
  return typeof v === "number" ? [v, v] : [v[0], v[1]];
}

/**
 * Output extent of a sliding window (PyTorch's formula, floor mode):
 * ⌊(in + 2·padding − kernel)/stride⌋ + 1. Throws a {@link SpecError} when the window does not fit.
 */
export function slidingExtent(field: string, what: string, input: number, kernel: number, stride: number, padding: number): number {
  const span = input + 2 * padding - kernel;
  if (span < 0) {
    throw new SpecError(field, `${what} ${kernel} is larger than the padded input (${input} + 2·${padding})`);
  }
  return Math.floor(span / stride) + 1;
}

/** Checks that a layer gets `[C, H, W]` samples. */
export function requireImage(field: string, type: string, inputShape: readonly number[]): [number, number, number] {
  if (inputShape.length !== 3) {
    throw new SpecError(field, `${type} expects [channels, height, width] samples, got shape [${inputShape.join(", ")}]`);
  }
  return [inputShape[0], inputShape[1], inputShape[2]];
}

/**
 * Columns buffers are capped at this many entries (512 KiB in float32, about a core's L2 cache):
 * the batch is processed in chunks of samples whose columns fit, so that the GEMMs read columns
 * that im2col has just written, from cache, and backward recomputes them (cheaper than keeping the
 * whole batch's columns, 38 MB for the ConvNet preset's second convolution at batch 128, which
 * made every GEMM memory-bound: measured 2× slower at one thread). A sample whose columns alone
 * exceed the cap is one chunk.
 */
const COLUMN_CAP = 1 << 17;

/**
 * The columns of sample nn of a chunk: the view of a `K × (nb·P)` columns matrix starting at column
 * nn·P (row stride nb·P), for a per-sample GEMM.
 */
function columnBlock(cols: FloatArray, nn: number, P: number): FloatArray {
  return nn === 0 ? cols : cols.subarray(nn * P);
}

/** Intermediates of a {@link Conv2d} call. */
export interface Conv2dTape {
  /** Samples per chunk (= batch when the whole batch's columns fit under the cap). */
  readonly chunk: number;
  /** im2col of the input: `K × (chunk·P)`, K = inC·kh·kw, P = OH·OW. Valid after forward when chunk = batch. */
  readonly cols: FloatArray;
  /** Second columns buffer: ∂/∂cols in backward, im2col of the input tangent in jvp. */
  readonly dcols: FloatArray;
  /** Channel-major output or slope, `outC × (chunk·P)`. */
  readonly out: FloatArray;
  /**
   * Backward's input gradient as a convolution (stride-1 "same"-width convolutions, see
   * {@link Conv2d.transposed}): im2col of one sample's slope, `outC·kh·kw × inH·inW`.
   */
  readonly slopeCols?: FloatArray;
  /** The flipped, transposed kernel W′ (`inC × outC·kh·kw`) of that convolution. */
  readonly flipped?: FloatArray;
  /**
   * With {@link Conv2d.channelInner}: the weights (forward) or their gradient (backward) with the
   * patch index ordered (i, j, c), `outC × K`; tape.cols then holds columns in that order too.
   */
  readonly permuted?: FloatArray;
}

/**
 * 2-D convolution (cross-correlation, as PyTorch's Conv2d) on NCHW samples, stride s and zero
 * padding p: y[n,f,oh,ow] = b_f + Σ_{c,i,j} W[f,c,i,j]·x[n, c, oh·s_h − p_h + i, ow·s_w − p_w + j],
 * entries outside the input counting as 0. This is the bi-affine map of Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021),
 * App. B-1b, Eq. (12): Ξ_{j,k} = w_jᵀ Π_k z + w_j⁰ with Π_k the patch extraction; the matrix whose
 * columns are the Π_k z over all patches k (and all samples) is the im2col matrix X_col, so that
 * Y = W X_col + b 1ᵀ with W reshaped `outC × K`, K = inC·kh·kw.
 *
 * Derivatives (linear algebra on Y = W X_col): for a slope G (`outC × N·P`),
 * ∂⟨G, Y⟩/∂W = G X_colᵀ, ∂/∂b = G 1, ∂/∂X_col = Wᵀ G and ∂/∂x = col2im(Wᵀ G), col2im = im2colᵀ
 * (scatter-add of each column entry back to its input pixel). The JVP is bi-affine:
 * dY = W im2col(dx) + dW X_col + db 1ᵀ.
 *
 * Layout: X_col is `K × (nb·P)` for a chunk of nb samples (one column per output pixel), so
 * that each product is a GEMM `outC × K` by `K × P` with no transposed operand, and the weights
 * are used in PyTorch's storage order as is (or permuted to the channel-inner order, see
 * {@link Conv2d.channelInner}). One GEMM per sample writes y_n = W X_col,n (`outC × P`) straight
 * into the sample's NCHW block, after its bias rows: no channel-major buffer and no permutation.
 * Chunks are cache-sized ({@link COLUMN_CAP}): the GEMMs read the columns im2col has just
 * written from cache, and backward rebuilds each chunk's columns rather than keeping the whole
 * batch's (measured on the ConvNet preset's second convolution, batch 128, one thread: the whole
 * batch as one GEMM on 38 MB of columns took 28 ms, per-sample GEMMs on cached columns 15 ms).
 * Backward's input gradient is a convolution of the slope for stride-1 "same"-width layers
 * ({@link Conv2d.transposed}), else col2im of Wᵀ G.
 */
export class Conv2d extends Biaffine<Conv2dSpec> implements Component<Conv2dTape> {
  readonly type = "conv2d";

  /**
   * Smoothness constants (docs/certificates.md) of the convolution b(Z, u) = β(Z, W) + βᵘ(b) on a batch of N
   * images, u = (W, b):
   * - L_b: Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), Lemma 17 (one filter) with Lemma 16 (filters and samples
   *   concatenated): ‖β(z, w)‖² = Σ_k (wᵀ Π_k z)² ≤ ‖w‖² Σ_k ‖Π_k z‖² ≤ ‖w‖² max_i |V_i| ‖z‖², with
   *   |V_i| the number of windows (patches) holding input pixel i, so L_b = √(max_i |V_i|). The
   *   lemma's statement drops the square root of its own proof, and App. C-1 d then prints
   *   L_conv = (k/s)² (and Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019), Sec. 5.1, L_conv = √n_p, the root of the number
   *   of patches, which grows with the image): both loose. Windows are separable, so
   *   max_i |V_i| = c_h·c_w with c the largest per-axis coverage (≤ ⌈k/s⌉), computed exactly with
   *   padding and borders: L_b = √(c_h c_w), e.g. 3 for 3×3 stride-1 kernels (printed: 9). It is
   *   attained up to border effects by constant images and filters, and tested numerically.
   * - lᵘ: the bias adds b_j to the N·P entries of channel j (P = OH·OW): ‖βᵘ(b)‖ = √(N P) ‖b‖
   *   (Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019), Sec. 5.1: ℓ_conv = √(m n_p)); 0 without bias.
   * - βˣ = 0, β⁰ = 0; W and b are disjoint blocks of u.
   */
  smoothness(input: InputBounds): BiaffineConstants {
    const ch = maxWindowCoverage(this.inH, this.outH, this.kh, this.sh, this.ph);
    const cw = maxWindowCoverage(this.inW, this.outW, this.kw, this.sw, this.pw);
    return {
      kind: "biaffine",
      bilinear: Math.sqrt(ch * cw),
      paramLipschitz: this.spec.bias ? Math.sqrt(input.batch * this.outPixels) : 0,
      inputLipschitz: 0,
      valueAtZero: 0,
      disjointParamBlocks: true,
    };
  }
  readonly inputShape: readonly number[];
  readonly outputShape: readonly number[];
  readonly inputSize: number;
  readonly outputSize: number;
  readonly inC: number;
  readonly inH: number;
  readonly inW: number;
  readonly outC: number;
  readonly outH: number;
  readonly outW: number;
  readonly kh: number;
  readonly kw: number;
  readonly sh: number;
  readonly sw: number;
  readonly ph: number;
  readonly pw: number;
  /** K = inC·kh·kw, the rows of the columns matrix (fan-in of each output). */
  readonly patchSize: number;
  /** P = OH·OW, output pixels per channel. */
  readonly outPixels: number;
  /** Stride 1 and OW = W: im2col rows are shifted copies of the input planes (fast path). */
  readonly shifted: boolean;
  /**
   * For shifted convolutions with padding below the kernel size, the geometry of the input
   * gradient as a convolution: with stride 1, dx[c, h, w] = Σ_{f,i,j} W[f,c,i,j]·G[f, h + ph − i, w + pw − j]
   * (zero outside G); substituting i′ = kh − 1 − i, j′ = kw − 1 − j gives
   * dx[c, h, w] = Σ_{f,i′,j′} W′[c,f,i′,j′]·G[f, h − (kh − 1 − ph) + i′, w − (kw − 1 − pw) + j′] with
   * W′[c,f,i′,j′] = W[f,c,kh−1−i′,kw−1−j′]: a stride-1 convolution of G (outC channels, OH×OW) with
   * padding (kh − 1 − ph, kw − 1 − pw), whose output is H×W (OH + 2(kh − 1 − ph) − kh + 1 = H) and whose
   * output width equals its input width (OW = W), so it is shifted too. Backward then computes dx as
   * im2col(G) and one GEMM per sample, written straight into dx, instead of the scatter-adds of
   * col2im (measured 4× slower: one unvectorized read-modify-write per column entry). Null otherwise.
   */
  readonly transposed: ShiftGeometry | null;
  /**
   * Shifted with OH = H (stride 1, "same" padding: P = H·W): forward and backward order the patch
   * index of the columns (i, j, c) instead of (c, i, j), the weights permuted to match. For one
   * sample, the K × P columns of a kernel offset (i, j) over all channels c are then the input planes
   * shifted by one offset, consecutive in x (NCHW) and in the columns: ONE copy of C·H·W values
   * instead of C copies of H·W (measured 5× faster im2col on 32×16×16 inputs, where the per-copy
   * cost dominates). Likewise for the transposed convolution of backward.
   */
  readonly channelInner: boolean;

  constructor(spec: Conv2dSpec, inputShape: readonly number[], field = "conv2d") {
    const [c, h, w] = requireImage(field, "conv2d", inputShape);
    const [kh, kw] = toPair(spec.kernel);
    // W is `filters × C × kh × kw` (PyTorch's Conv2d layout), then b; fan-in = C·kh·kw.
    super(spec, [spec.filters, c, kh, kw], c * kh * kw);
    [this.kh, this.kw] = [kh, kw];
    [this.sh, this.sw] = toPair(spec.stride);
    [this.ph, this.pw] = toPair(spec.padding);
    this.inC = c;
    this.inH = h;
    this.inW = w;
    this.outC = spec.filters;
    this.outH = slidingExtent(`${field}.kernel`, "kernel height", h, this.kh, this.sh, this.ph);
    this.outW = slidingExtent(`${field}.kernel`, "kernel width", w, this.kw, this.sw, this.pw);
    this.inputShape = inputShape;
    this.outputShape = [this.outC, this.outH, this.outW];
    this.inputSize = c * h * w;
    this.outPixels = this.outH * this.outW;
    this.outputSize = this.outC * this.outPixels;
    this.patchSize = c * this.kh * this.kw;
    this.shifted = this.sh === 1 && this.sw === 1 && this.outW === w;
    this.channelInner = this.shifted && this.outH === h;
    this.transposed =
      this.shifted && this.ph <= this.kh - 1 && this.pw <= this.kw - 1
        ? {
            inC: this.outC,
            inH: this.outH,
            inW: this.outW,
            outH: h,
            outW: w,
            kh: this.kh,
            kw: this.kw,
            ph: this.kh - 1 - this.ph,
            pw: this.kw - 1 - this.pw,
            outPixels: h * w,
            inputSize: this.outC * this.outH * this.outW,
          }
        : null;
  }

  createTape(batch: number, dtype: DType): Conv2dTape {
    const perSample = this.patchSize * this.outPixels;
    const chunk = Math.max(1, Math.min(batch, Math.floor(COLUMN_CAP / perSample)));
    return {
      chunk,
      cols: allocate(dtype, perSample * chunk),
      dcols: allocate(dtype, perSample * chunk),
      out: allocate(dtype, this.outC * this.outPixels * chunk),
      ...(this.transposed
        ? {
            slopeCols: allocate(dtype, this.outC * this.kh * this.kw * this.inH * this.inW),
            flipped: allocate(dtype, this.inC * this.outC * this.kh * this.kw),
          }
        : {}),
      ...(this.channelInner ? { permuted: allocate(dtype, this.outC * this.patchSize) } : {}),
    };
  }

  /** The convolution's geometry on a batch, for the backend's primitives. */
  geometry(batch: number): ConvGeometry {
    const { inC, inH, inW, outC, outH, outW, kh, kw, sh, sw, ph, pw } = this;
    return { batch, inC, inH, inW, outC, outH, outW, kh, kw, sh, sw, ph, pw };
  }

  /** Whether a call at `batch` runs on oneDNN (as {@link Conv2d.dnnFor} decides), which takes blocked layouts. */
  acceptsBlockedLayouts(backend: Backend, batch: number, dtype: DType): boolean {
    return dtype === "float32" && backend.dnn !== undefined && backend.dnn.supportsConv(this.geometry(batch));
  }

  /**
   * The backend's oneDNN primitives when this call runs on them: float32 data, a backend that has
   * them, a geometry they support. The same answer for forward, backward and jvp of one call.
   */
  private dnnFor(ctx: ComponentContext, x: FloatArray): DnnPrimitives | null {
    const dnn = ctx.backend.dnn;
    return dnn && x instanceof Float32Array && dnn.supportsConv(this.geometry(ctx.batch)) ? dnn : null;
  }

  forward(ctx: ComponentContext, io: LayerIO<Conv2dTape>): void {
    const { x, y, params, tape } = io;
    const batch = ctx.batch;
    const K = this.patchSize;
    const F = this.outC;
    const P = this.outPixels;
    const nw = F * K;
    const bias = this.spec.bias ? params.subarray(nw, nw + F) : null;
    const dnn = this.dnnFor(ctx, x);
    if (dnn) {
      // oneDNN's convolution_forward on the NCHW batch (same formula, float32; see DnnPrimitives).
      dnn.convForward(
        this.geometry(batch),
        x as Float32Array,
        params.subarray(0, nw) as Float32Array,
        bias as Float32Array | null,
        y as Float32Array,
        io.xLayout,
        io.yLayout,
      );
      return;
    }
    plainLayouts(io, this.type);
    const ci = this.channelInner && tape.permuted ? tape.permuted : null;
    if (ci) this.permuteKernel(params, ci, false);
    const weights = ci ?? params;
    for (let n0 = 0; n0 < batch; n0 += tape.chunk) {
      const nb = Math.min(tape.chunk, batch - n0);
      const ld = nb * P;
      if (ci) im2colShiftedOf(this, x, n0, nb, tape.cols, true);
      else this.im2col(x, n0, nb, tape.cols);
      for (let nn = 0; nn < nb; nn++) {
        // y_n (F × P) = W (F × K) · X_col[:, nn·P … (nn+1)·P) (+ b 1ᵀ): one GEMM per sample writes its
        // NCHW block directly (no channel-major buffer to permute), with the bias rows filled in
        // first and β = 1. The chunk's columns are cache-sized, so the GEMMs read them from cache.
        const yn = y.subarray((n0 + nn) * F * P, (n0 + nn + 1) * F * P);
        if (bias) for (let f = 0; f < F; f++) yn.fill(bias[f], f * P, (f + 1) * P);
        ctx.backend.gemm(false, false, F, P, K, 1, weights, K, columnBlock(tape.cols, nn, P), ld, bias ? 1 : 0, yn, P);
      }
    }
  }

  backward(ctx: ComponentContext, io: LayerIO<Conv2dTape>, dy: FloatArray, dx: FloatArray | null, dparams: FloatArray | null): void {
    const { x, params, tape } = io;
    const batch = ctx.batch;
    const K = this.patchSize;
    const F = this.outC;
    const P = this.outPixels;
    const nw = F * K;
    const dnn = this.dnnFor(ctx, x);
    if (dnn) {
      // oneDNN's backward-weights (dW = G X_colᵀ, db = G 1) and backward-data (dx = col2im(Wᵀ G)) primitives.
      const g = this.geometry(batch);
      if (dparams) {
        const db = this.spec.bias ? (dparams.subarray(nw, nw + F) as Float32Array) : null;
        dnn.convBackwardWeights(
          g,
          x as Float32Array,
          dy as Float32Array,
          dparams.subarray(0, nw) as Float32Array,
          db,
          io.xLayout,
          io.yLayout,
        );
      }
      if (dx)
        dnn.convBackwardData(g, dy as Float32Array, params.subarray(0, nw) as Float32Array, dx as Float32Array, io.xLayout, io.yLayout);
      return;
    }
    plainLayouts(io, this.type);
    // The columns of the forward pass are still in tape.cols only when the whole batch was one chunk.
    const single = tape.chunk >= batch;
    // dx as a convolution of the slope (see Conv2d.transposed), or by col2im.
    const tr = dx && this.transposed && tape.slopeCols && tape.flipped ? this.transposed : null;
    const C = this.inC;
    const HW = this.inH * this.inW;
    const Kt = F * this.kh * this.kw;
    if (tr) this.flipKernel(params, tape.flipped!);
    // Channel-inner columns (Conv2d.channelInner): dW is accumulated permuted, then put back.
    const ci = this.channelInner && tape.permuted ? tape.permuted : null;
    const dW = ci ?? dparams;
    for (let n0 = 0; n0 < batch; n0 += tape.chunk) {
      const nb = Math.min(tape.chunk, batch - n0);
      const ld = nb * P;
      if (dparams && !single) {
        if (ci) im2colShiftedOf(this, x, n0, nb, tape.cols, true);
        else this.im2col(x, n0, nb, tape.cols);
      }
      for (let nn = 0; nn < nb; nn++) {
        const n = n0 + nn;
        // G_n (F × P), the slope of sample n: its NCHW block, already in the GEMM's layout.
        const g = dy.subarray(n * F * P, (n + 1) * F * P);
        if (dparams) {
          // dW (F × K) (+)= G_n · X_col,nᵀ;  db (+)= G_n 1 (row sums: a GEMV on the native backend).
          ctx.backend.gemm(false, true, F, K, P, 1, g, P, columnBlock(tape.cols, nn, P), ld, n === 0 ? 0 : 1, dW!, K);
          if (this.spec.bias) rowSums(ctx.backend, F, P, g, P, n === 0 ? 0 : 1, dparams.subarray(nw, nw + F));
        }
        if (tr) {
          // dx_n (C × HW) = W′ (C × Kt) · im2col′(G_n) (Kt × HW), straight into the NCHW block.
          im2colShiftedOf(tr, g, 0, 1, tape.slopeCols!, ci !== null);
          ctx.backend.gemm(
            false,
            false,
            C,
            HW,
            Kt,
            1,
            tape.flipped!,
            Kt,
            tape.slopeCols!,
            HW,
            0,
            dx!.subarray(n * C * HW, (n + 1) * C * HW),
            HW,
          );
        }
        // ∂/∂X_col,n (K × P) = Wᵀ · G_n.
        else if (dx) ctx.backend.gemm(true, false, K, P, F, 1, params, K, g, P, 0, columnBlock(tape.dcols, nn, P), ld);
      }
      // … scattered back to the input pixels of the chunk's samples.
      if (dx && !tr) this.col2im(tape.dcols, n0, nb, dx);
    }
    if (ci && dparams) this.permuteKernel(ci, dparams, true);
  }

  jvp(ctx: ComponentContext, io: LayerIO<Conv2dTape>, dx: FloatArray | null, dparams: FloatArray | null, dy: FloatArray): void {
    const { x, params, tape } = io;
    if (!dx && !dparams) {
      dy.fill(0);
      return;
    }
    const batch = ctx.batch;
    const K = this.patchSize;
    const F = this.outC;
    const P = this.outPixels;
    const nw = F * K;
    // tape.cols holds forward's columns (in the standard order) only for one chunk without
    // channelInner, and when forward did not run on oneDNN.
    const single = tape.chunk >= batch && !this.channelInner && !this.dnnFor(ctx, x);
    const dbias = dparams && this.spec.bias ? dparams.subarray(nw, nw + F) : null;
    for (let n0 = 0; n0 < batch; n0 += tape.chunk) {
      const nb = Math.min(tape.chunk, batch - n0);
      const ld = nb * P;
      if (dx) this.im2col(dx, n0, nb, tape.dcols);
      if (dparams && !single) this.im2col(x, n0, nb, tape.cols);
      for (let nn = 0; nn < nb; nn++) {
        // dy_n = W · im2col(dx)_n + dW · X_col,n + db 1ᵀ (bi-affine), written in NCHW order.
        const t = dy.subarray((n0 + nn) * F * P, (n0 + nn + 1) * F * P);
        let beta = 0;
        if (dbias) {
          for (let f = 0; f < F; f++) t.fill(dbias[f], f * P, (f + 1) * P);
          beta = 1;
        }
        if (dx) {
          ctx.backend.gemm(false, false, F, P, K, 1, params, K, columnBlock(tape.dcols, nn, P), ld, beta, t, P);
          beta = 1;
        }
        if (dparams) ctx.backend.gemm(false, false, F, P, K, 1, dparams, K, columnBlock(tape.cols, nn, P), ld, beta, t, P);
      }
    }
  }

  /**
   * Second-order backward of the bi-affine convolution (Component.backwardTangent). Backward is
   * (dW, db, ∂X_col) = (G X_colᵀ, G 1, Wᵀ G) for the slope G, bilinear in (G, W) and (G, X_col),
   * so its derivative along the input direction dx (columns Ẋ_col = im2col(dx)), the parameter
   * direction (Ẇ, ḃ) and the slope direction Ġ (ddy) has only the bilinear cross terms (the
   * second derivatives of a bi-affine map, Roulet & Harchaoui, "An Elementary Approach…" (Allerton 2019, long version), Sec. 2.3; as for the dense layer):
   *   ddW = Ġ X_colᵀ + G Ẋ_colᵀ,   ddb = Ġ 1,   ddx = col2im(Wᵀ Ġ + Ẇᵀ G).
   * The bias direction ḃ enters no second derivative. Computed in the standard (c, i, j) column
   * order with buffers of its own (the tape's columns are left as forward/backward expect them).
   */
  backwardTangent(
    ctx: ComponentContext,
    io: LayerIO<Conv2dTape>,
    dy: FloatArray,
    ddy: FloatArray,
    dx: FloatArray | null,
    dparams: FloatArray | null,
    ddx: FloatArray | null,
    ddparams: FloatArray | null,
  ): void {
    if (!ddx && !ddparams) return;
    const { x, params, tape } = io;
    const batch = ctx.batch;
    const K = this.patchSize;
    const F = this.outC;
    const P = this.outPixels;
    const nw = F * K;
    const dtype: DType = x instanceof Float32Array ? "float32" : "float64";
    const size = K * P * tape.chunk;
    const cols = allocate(dtype, size);
    const tcols = ddparams && dx ? allocate(dtype, size) : null;
    const gcols = ddx ? allocate(dtype, size) : null;
    for (let n0 = 0; n0 < batch; n0 += tape.chunk) {
      const nb = Math.min(tape.chunk, batch - n0);
      const ld = nb * P;
      if (ddparams) this.im2col(x, n0, nb, cols);
      if (tcols && dx) this.im2col(dx, n0, nb, tcols);
      for (let nn = 0; nn < nb; nn++) {
        const n = n0 + nn;
        const g = dy.subarray(n * F * P, (n + 1) * F * P);
        const gd = ddy.subarray(n * F * P, (n + 1) * F * P);
        if (ddparams) {
          const beta = n === 0 ? 0 : 1;
          ctx.backend.gemm(false, true, F, K, P, 1, gd, P, columnBlock(cols, nn, P), ld, beta, ddparams, K);
          if (tcols) ctx.backend.gemm(false, true, F, K, P, 1, g, P, columnBlock(tcols, nn, P), ld, 1, ddparams, K);
          if (this.spec.bias) rowSums(ctx.backend, F, P, gd, P, beta, ddparams.subarray(nw, nw + F));
        }
        if (gcols) {
          const block = columnBlock(gcols, nn, P);
          ctx.backend.gemm(true, false, K, P, F, 1, params, K, gd, P, 0, block, ld);
          if (dparams) ctx.backend.gemm(true, false, K, P, F, 1, dparams, K, g, P, 1, block, ld);
        }
      }
      if (ddx && gcols) this.col2im(gcols, n0, nb, ddx);
    }
  }

  /** W′[c, (f·kh + i′)·kw + j′] ← W[f, c, kh−1−i′, kw−1−j′] (see {@link Conv2d.transposed}). */
  private flipKernel(params: FloatArray, out: FloatArray): void {
    const { inC: C, outC: F, kh, kw } = this;
    const Kt = F * kh * kw;
    // With channelInner, the transposed columns are ordered (i′, j′, f): W′[c, (i′·kw + j′)·F + f].
    const inner = this.channelInner;
    for (let f = 0; f < F; f++)
      for (let c = 0; c < C; c++)
        for (let i = 0; i < kh; i++)
          for (let j = 0; j < kw; j++) {
            const ij = (kh - 1 - i) * kw + (kw - 1 - j);
            out[c * Kt + (inner ? ij * F + f : f * kh * kw + ij)] = params[((f * C + c) * kh + i) * kw + j];
          }
  }

  /**
   * Between the weight order W[f, (c·kh + i)·kw + j] (params, PyTorch's) and the channel-inner order
   * Wᵖ[f, (i·kw + j)·C + c] (Conv2d.channelInner): params → permuted, or back when `back` (writing
   * the weight block of `params`).
   */
  private permuteKernel(from: FloatArray, to: FloatArray, back: boolean): void {
    const { inC: C, outC: F, kh, kw } = this;
    const K = this.patchSize;
    for (let f = 0; f < F; f++)
      for (let c = 0; c < C; c++)
        for (let i = 0; i < kh; i++)
          for (let j = 0; j < kw; j++) {
            const std = f * K + (c * kh + i) * kw + j;
            const inner = f * K + (i * kw + j) * C + c;
            if (back) to[std] = from[inner];
            else to[inner] = from[std];
          }
  }

  /**
   * cols[(c·kh + i)·kw + j, (n − n0)·P + oh·OW + ow] = x[n, c, oh·sh − ph + i, ow·sw − pw + j]
   * (0 outside the input), for the nb samples from n0.
   */
  im2col(x: FloatArray, n0: number, nb: number, cols: FloatArray): void {
    if (this.shifted) {
      this.im2colShifted(x, n0, nb, cols);
      return;
    }
    const { inC, inH, inW, outH, outW, kh, kw, sh, sw, ph, pw } = this;
    const P = this.outPixels;
    const ld = nb * P;
    const plane = inH * inW;
    const sampleSize = this.inputSize;
    for (let c = 0; c < inC; c++) {
      for (let i = 0; i < kh; i++) {
        for (let j = 0; j < kw; j++) {
          const row = ((c * kh + i) * kw + j) * ld;
          // Output columns ow whose input column ow·sw − pw + j lies in [0, inW).
          const owLo = j >= pw ? 0 : Math.min(outW, Math.ceil((pw - j) / sw));
          const owHi = Math.max(owLo, Math.min(outW, Math.floor((inW - 1 + pw - j) / sw) + 1));
          for (let nn = 0; nn < nb; nn++) {
            const xBase = (n0 + nn) * sampleSize + c * plane;
            let o = row + nn * P;
            for (let oh = 0; oh < outH; oh++) {
              const ih = oh * sh - ph + i;
              if (ih < 0 || ih >= inH) {
                for (let ow = 0; ow < outW; ow++) cols[o + ow] = 0;
              } else {
                for (let ow = 0; ow < owLo; ow++) cols[o + ow] = 0;
                const xr = xBase + ih * inW - pw + j;
                if (sw === 1) {
                  for (let ow = owLo; ow < owHi; ow++) cols[o + ow] = x[xr + ow];
                } else {
                  for (let ow = owLo; ow < owHi; ow++) cols[o + ow] = x[xr + ow * sw];
                }
                for (let ow = owHi; ow < outW; ow++) cols[o + ow] = 0;
              }
              o += outW;
            }
          }
        }
      }
    }
  }

  /** The adjoint of {@link Conv2d.im2col}: dx[samples n0 … n0+nb) ← Σ of the column entries that read each pixel. */
  col2im(cols: FloatArray, n0: number, nb: number, dx: FloatArray): void {
    const { inC, inH, inW, outH, outW, kh, kw, sh, sw, ph, pw } = this;
    const P = this.outPixels;
    const ld = nb * P;
    const plane = inH * inW;
    const sampleSize = this.inputSize;
    dx.fill(0, n0 * sampleSize, (n0 + nb) * sampleSize);
    if (this.shifted) {
      this.col2imShifted(cols, n0, nb, dx);
      return;
    }
    for (let c = 0; c < inC; c++) {
      for (let i = 0; i < kh; i++) {
        for (let j = 0; j < kw; j++) {
          const row = ((c * kh + i) * kw + j) * ld;
          const owLo = j >= pw ? 0 : Math.min(outW, Math.ceil((pw - j) / sw));
          const owHi = Math.max(owLo, Math.min(outW, Math.floor((inW - 1 + pw - j) / sw) + 1));
          for (let nn = 0; nn < nb; nn++) {
            const xBase = (n0 + nn) * sampleSize + c * plane;
            let o = row + nn * P;
            for (let oh = 0; oh < outH; oh++) {
              const ih = oh * sh - ph + i;
              if (ih >= 0 && ih < inH) {
                const xr = xBase + ih * inW - pw + j;
                if (sw === 1) {
                  for (let ow = owLo; ow < owHi; ow++) dx[xr + ow] += cols[o + ow];
                } else {
                  for (let ow = owLo; ow < owHi; ow++) dx[xr + ow * sw] += cols[o + ow];
                }
              }
              o += outW;
            }
          }
        }
      }
    }
  }

  /**
   * {@link Conv2d.im2col} for stride 1 with OW = W ("same" width, e.g. 3×3 with padding 1): for a
   * kernel offset (i, j), the column row of one sample is the input plane shifted by
   * (i − ph)·W + (j − pw), so the valid output rows are ONE contiguous copy; the entries that
   * wrapped around a row edge (columns ow < owLo or ow ≥ owHi) and the rows outside the input are
   * then zeroed.
   */
  private im2colShifted(x: FloatArray, n0: number, nb: number, cols: FloatArray): void {
    im2colShiftedOf(this, x, n0, nb, cols);
  }

  /**
   * {@link Conv2d.col2im} for the shifted case: the wrapped entries of `cols` are zeroed (cols is
   * scratch), then each valid row range is one contiguous scatter-add.
   */
  private col2imShifted(cols: FloatArray, n0: number, nb: number, dx: FloatArray): void {
    const { inC, inH, inW, outH, outW, kh, kw, ph, pw } = this;
    const P = this.outPixels;
    const ld = nb * P;
    const plane = inH * inW;
    const sampleSize = this.inputSize;
    for (let c = 0; c < inC; c++) {
      for (let i = 0; i < kh; i++) {
        const ohLo = Math.min(outH, Math.max(0, ph - i));
        const ohHi = Math.max(ohLo, Math.min(outH, inH + ph - i));
        for (let j = 0; j < kw; j++) {
          const row = ((c * kh + i) * kw + j) * ld;
          const owLo = Math.min(outW, Math.max(0, pw - j));
          const owHi = Math.max(owLo, Math.min(outW, inW + pw - j));
          const shift = (i - ph) * inW + (j - pw);
          const tLo = ohLo * outW + owLo;
          const tHi = ohHi > ohLo ? (ohHi - 1) * outW + owHi : tLo;
          for (let nn = 0; nn < nb; nn++) {
            const o = row + nn * P;
            const xo = (n0 + nn) * sampleSize + c * plane + shift;
            if (owLo > 0 || owHi < outW) {
              for (let oh = ohLo; oh < ohHi; oh++) {
                const r = o + oh * outW;
                for (let ow = 0; ow < owLo; ow++) cols[r + ow] = 0;
                for (let ow = owHi; ow < outW; ow++) cols[r + ow] = 0;
              }
            }
            for (let t = tLo; t < tHi; t++) dx[xo + t] += cols[o + t];
          }
        }
      }
    }
  }
}

/** The geometry {@link im2colShiftedOf} reads: a stride-1 convolution whose output width equals its input width. */
interface ShiftGeometry {
  readonly inC: number;
  readonly inH: number;
  readonly inW: number;
  readonly outH: number;
  readonly outW: number;
  readonly kh: number;
  readonly kw: number;
  readonly ph: number;
  readonly pw: number;
  readonly outPixels: number;
  readonly inputSize: number;
}

/**
 * {@link Conv2d.im2col} for stride 1 with OW = W ("same" width, e.g. 3×3 with padding 1), on any
 * such geometry (the convolution's own, or the transposed one of its input gradient): for a
 * kernel offset (i, j), the column row of one sample is the input plane shifted by
 * (i − ph)·W + (j − pw), so the valid output rows are ONE contiguous copy; the entries that
 * wrapped around a row edge (columns ow < owLo or ow ≥ owHi) and the rows outside the input are
 * then zeroed.
 */
function im2colShiftedOf(g: ShiftGeometry, x: FloatArray, n0: number, nb: number, cols: FloatArray, channelInner = false): void {
  const { inC, inH, inW, outH, outW, kh, kw, ph, pw } = g;
  const P = g.outPixels;
  const ld = nb * P;
  const plane = inH * inW;
  const sampleSize = g.inputSize;
  if (channelInner && nb === 1 && P === plane) {
    im2colChannelInnerSample(g, x, n0 * sampleSize, cols);
    return;
  }
  for (let c = 0; c < inC; c++) {
    for (let i = 0; i < kh; i++) {
      // Output rows oh whose input row oh − ph + i lies in [0, inH).
      const ohLo = Math.min(outH, Math.max(0, ph - i));
      const ohHi = Math.max(ohLo, Math.min(outH, inH + ph - i));
      for (let j = 0; j < kw; j++) {
        const row = (channelInner ? (i * kw + j) * inC + c : (c * kh + i) * kw + j) * ld;
        const owLo = Math.min(outW, Math.max(0, pw - j));
        const owHi = Math.max(owLo, Math.min(outW, inW + pw - j));
        const shift = (i - ph) * inW + (j - pw);
        const tLo = ohLo * outW + owLo;
        const tHi = ohHi > ohLo ? (ohHi - 1) * outW + owHi : tLo;
        for (let nn = 0; nn < nb; nn++) {
          const o = row + nn * P;
          const xo = (n0 + nn) * sampleSize + c * plane + shift;
          // Native fill/copy (memset/memcpy): about 4× a JS element loop on the long runs. The
          // subarray view is a small header object, not a buffer.
          if (tLo > 0) cols.fill(0, o, o + tLo);
          if (tHi > tLo) cols.set(x.subarray(xo + tLo, xo + tHi), o + tLo);
          if (tHi < P) cols.fill(0, o + tHi, o + P);
          if (owLo > 0 || owHi < outW) {
            for (let oh = ohLo; oh < ohHi; oh++) {
              const r = o + oh * outW;
              for (let ow = 0; ow < owLo; ow++) cols[r + ow] = 0;
              for (let ow = owHi; ow < outW; ow++) cols[r + ow] = 0;
            }
          }
        }
      }
    }
  }
}

/**
 * The channel-inner columns (Conv2d.channelInner) of ONE sample starting at x[xBase], when
 * P = H·W: row (i·kw + j)·C + c is plane c shifted by (i − ph)·W + (j − pw), and the C rows of an
 * offset (i, j) are consecutive both in x and in cols, so one copy moves them all (the values
 * between two rows' valid ranges, wrapped from the neighbouring plane, and the wrapped edge
 * columns are zeroed after).
 */
function im2colChannelInnerSample(g: ShiftGeometry, x: FloatArray, xBase: number, cols: FloatArray): void {
  const { inC, inH, inW, outH, outW, kh, kw, ph, pw } = g;
  const P = g.outPixels;
  for (let i = 0; i < kh; i++) {
    const ohLo = Math.min(outH, Math.max(0, ph - i));
    const ohHi = Math.max(ohLo, Math.min(outH, inH + ph - i));
    for (let j = 0; j < kw; j++) {
      const owLo = Math.min(outW, Math.max(0, pw - j));
      const owHi = Math.max(owLo, Math.min(outW, inW + pw - j));
      const shift = (i - ph) * inW + (j - pw);
      const tLo = ohLo * outW + owLo;
      const tHi = ohHi > ohLo ? (ohHi - 1) * outW + owHi : tLo;
      const block = (i * kw + j) * inC * P;
      // Rows c = 0 … C−1: valid ranges [c·P + tLo, c·P + tHi), read from x[xBase + c·P + shift + t].
      if (tHi > tLo) {
        const from = xBase + shift + tLo;
        cols.set(x.subarray(from, from + (inC - 1) * P + (tHi - tLo)), block + tLo);
      }
      for (let c = 0; c < inC; c++) {
        const o = block + c * P;
        zeroRange(cols, o, o + tLo);
        zeroRange(cols, o + Math.max(tHi, tLo), o + P);
        if (owLo > 0 || owHi < outW) {
          for (let oh = ohLo; oh < ohHi; oh++) {
            const r = o + oh * outW;
            for (let ow = 0; ow < owLo; ow++) cols[r + ow] = 0;
            for (let ow = owHi; ow < outW; ow++) cols[r + ow] = 0;
          }
        }
      }
    }
  }
}

/** a[from … to) ← 0: a loop for short ranges (no call), a native fill for long ones. */
function zeroRange(a: FloatArray, from: number, to: number): void {
  if (to - from > 32) a.fill(0, from, to);
  else for (let t = from; t < to; t++) a[t] = 0;
}
