import type { z } from "zod";
import type { Backend } from "../core/backend.js";
import type { DType, FloatArray } from "../core/dtype.js";
import { type Component, type ComponentContext, type LayerIO, plainLayouts } from "./component.js";
import { Pool2d, poolSpecSchema } from "./pool2d.js";
import type { InputBounds, NonlinearConstants } from "./smoothness.js";

/** Spec schema of `{ type: "avgPool2d", size, stride, padding }`. */
export const avgPoolSpecSchema = poolSpecSchema("avgPool2d");
/** A validated `avgPool2d` layer spec. */
export type AvgPoolSpec = z.output<typeof avgPoolSpecSchema>;

/**
 * Average pooling: y[n,c,oh,ow] = (1/(kh·kw)) Σ_{i<kh, j<kw} x[n, c, oh·s_h − p_h + i, ow·s_w − p_w + j],
 * the convolution of each channel with the mean filter (1/s_f)·1 (Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), App. B-3),
 * padded positions counting as zeros. The divisor is always kh·kw, padded zeros included: PyTorch's
 * AvgPool2d with count_include_pad=True (its default) and ceil_mode=False (windows then never
 * reach past the padded border, so the divisor is the full window).
 *
 * The map is linear, y = A x, so its VJP is dx = Aᵀ dy (each slope spread evenly, divided by
 * kh·kw, over its window, accumulated where windows overlap) and its JVP is dy = A dx
 * (Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019), Sec. 5.2: ℓ_avgpool = 1, L_avgpool = 0 for non-overlapping windows).
 */
export class AvgPool2d extends Pool2d<AvgPoolSpec> implements Component<null> {
  readonly type = "avgPool2d";

  /**
   * Smoothness constants (docs/certificates.md). Linear, y = A x, so L = 0, ‖a(0)‖ = 0 and ℓ = ‖∇a(0)‖ = ‖A‖.
   * Each output is the sum of its window S_o divided by n = kh·kw, so by Cauchy–Schwarz
   * (Σ_{S_o} x)²/n² ≤ ‖x_{S_o}‖²/n and ‖A x‖² ≤ (1/n) Σ_o ‖x_{S_o}‖² ≤ (c/n) ‖x‖², with c the
   * largest number of windows holding one pixel (c_h·c_w, computed exactly): ℓ = √(c/(kh·kw)).
   * For non-overlapping k×k windows ℓ = 1/k (1/2 for VGG's 2×2 pooling), where
   * Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019), Sec. 5.2 prints ℓ_avgpool = 1: loose, by a factor 2 per pooling layer
   * (2⁵ = 32 on VGG-16). For stride 1 (c = kh·kw) ℓ = 1.
   */
  smoothness(input: InputBounds): NonlinearConstants {
    const { kh, kw } = this.geometry;
    const ell = Math.sqrt(this.windowCoverage() / (kh * kw));
    return { kind: "nonlinear", bound: ell * input.norm, lipschitz: ell, smoothness: 0, valueAtZero: 0, jacobianAtZero: ell };
  }

  createTape(_batch: number, _dtype: DType): null {
    return null;
  }

  /** Whether a call at `batch` runs on oneDNN pooling (as dnnFor decides), which takes blocked layouts. */
  acceptsBlockedLayouts(backend: Backend, batch: number, dtype: DType): boolean {
    return dtype === "float32" && backend.dnn !== undefined && backend.dnn.supportsPool(this.windowGeometry(batch));
  }

  forward(ctx: ComponentContext, io: LayerIO<null>): void {
    const dnn = this.dnnFor(ctx, io.x);
    // oneDNN's pooling_avg_include_padding is this map (divisor kh·kw, padding counted as zeros).
    if (dnn)
      dnn.poolForward(this.windowGeometry(ctx.batch), false, io.x as Float32Array, io.y as Float32Array, null, io.xLayout, io.yLayout);
    else {
      plainLayouts(io, this.type);
      this.apply(ctx.batch, io.x, io.y);
    }
  }

  backward(ctx: ComponentContext, io: LayerIO<null>, dy: FloatArray, dx: FloatArray | null): void {
    if (!dx) return;
    const dnn = this.dnnFor(ctx, dy);
    if (dnn) {
      dnn.poolBackward(this.windowGeometry(ctx.batch), false, dy as Float32Array, dx as Float32Array, null, io.xLayout, io.yLayout);
      return;
    }
    plainLayouts(io, this.type);
    const { c, h, w, kh, kw, oh: OH, ow: OW } = this.geometry;
    const { hLo, hHi, wLo, wHi } = this.windows;
    const planes = ctx.batch * c;
    const plane = h * w;
    const scale = 1 / (kh * kw);
    dx.fill(0, 0, ctx.batch * this.inputSize);
    let o = 0;
    for (let q = 0; q < planes; q++) {
      const base = q * plane;
      for (let oh = 0; oh < OH; oh++) {
        const h0 = hLo[oh];
        const h1 = hHi[oh];
        for (let ow = 0; ow < OW; ow++) {
          const w0 = wLo[ow];
          const w1 = wHi[ow];
          const g = dy[o++] * scale;
          for (let ih = h0; ih < h1; ih++) {
            const r = base + ih * w;
            for (let iw = w0; iw < w1; iw++) dx[r + iw] += g;
          }
        }
      }
    }
  }

  jvp(ctx: ComponentContext, _io: LayerIO<null>, dx: FloatArray | null, _dparams: FloatArray | null, dy: FloatArray): void {
    if (dx) this.apply(ctx.batch, dx, dy);
    else dy.fill(0, 0, ctx.batch * this.outputSize);
  }

  /** Linear, hence no curvature: the second-order backward is the backward of ddy (Component.backwardTangent). */
  backwardTangent(
    ctx: ComponentContext,
    io: LayerIO<null>,
    _dy: FloatArray,
    ddy: FloatArray,
    _dx: FloatArray | null,
    _dparams: FloatArray | null,
    ddx: FloatArray | null,
  ): void {
    this.backward(ctx, io, ddy, ddx);
  }

  /** y ← A x (the linear map itself; forward and JVP). */
  private apply(batch: number, x: FloatArray, y: FloatArray): void {
    const { c, h, w, kh, kw, oh: OH, ow: OW } = this.geometry;
    const { hLo, hHi, wLo, wHi } = this.windows;
    const planes = batch * c;
    const plane = h * w;
    const scale = 1 / (kh * kw);
    let o = 0;
    for (let q = 0; q < planes; q++) {
      const base = q * plane;
      for (let oh = 0; oh < OH; oh++) {
        const h0 = hLo[oh];
        const h1 = hHi[oh];
        for (let ow = 0; ow < OW; ow++) {
          const w0 = wLo[ow];
          const w1 = wHi[ow];
          let s = 0;
          for (let ih = h0; ih < h1; ih++) {
            const r = base + ih * w;
            for (let iw = w0; iw < w1; iw++) s += x[r + iw];
          }
          y[o++] = s * scale;
        }
      }
    }
  }
}
