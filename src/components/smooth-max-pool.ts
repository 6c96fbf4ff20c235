import { z } from "zod";
import type { DType, FloatArray } from "../core/dtype.js";
import type { Component, ComponentContext, LayerIO } from "./component.js";
import { Pool2d } from "./pool2d.js";
import { type InputBounds, maxInverseWindowWeight, type NonlinearConstants } from "./smoothness.js";
import { paddingPair, pair } from "./spec-fields.js";

/** Spec schema of `{ type: "smoothMaxPool2d", size, stride, padding, mu }`: max-pool windows, log-sum-exp at temperature μ. */
export const smoothMaxPoolSpecSchema = z
  .object({
    type: z.literal("smoothMaxPool2d"),
    size: pair,
    stride: pair.optional(),
    padding: paddingPair.default(0),
    mu: z.number().positive(),
  })
  .strict();
/** A validated `smoothMaxPool2d` layer spec. */
export type SmoothMaxPoolSpec = z.output<typeof smoothMaxPoolSpecSchema>;

/**
 * Smooth max pooling (docs/smoothing.md): each window's maximum replaced by its log-sum-exp at temperature μ,
 *   y_o = lse_μ(x_{S_o}) = μ log Σ_{i∈S_o} exp(x_i/μ),
 * computed stably as m + μ log Σ exp((x_i − m)/μ) with m the window's maximum. Windows as in
 * {@link MaxPool2d} (padded positions count as −∞, i.e. are left out; k_o = the window's number of
 * input pixels).
 *
 * Accuracy (Nesterov smoothing of max over the simplex with the entropy, Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), Sec. IV-A
 * "any piece-wise affine function is smoothable"; derivation): with m = max_i x_i and k = |S_o|,
 *   exp(m/μ) ≤ Σ_i exp(x_i/μ) ≤ k exp(m/μ)  ⇒  0 ≤ lse_μ(x) − max(x) ≤ μ log k,
 * both ends attained (one dominant entry; k equal entries). On a batch with η = batch·outputSize
 * outputs, ‖π_μ(x) − π(x)‖ ≤ √η μ log k_max (Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), Lemma 24 item 1: blocks add in
 * squares).
 *
 * Derivatives: ∇lse_μ(x) = p = softmax(x/μ) (a probability vector), ∇²lse_μ(x) = (diag p − p pᵀ)/μ,
 * whose spectral norm is ≤ 1/2 · 1/μ (λ_max(diag p − ppᵀ) ≤ 1/2, the bound behind softmax's
 * ℓ = 1/2). VJP: dx_i = Σ_{o∋i} p_{o,i} dy_o; JVP: dy_o = Σ_{i∈S_o} p_{o,i} dx_i. The weights p are
 * recomputed from x in the backward pass (with the window's maximum, not from y: y = m + μ log s
 * rounds to m in float32 when μ ≪ |m|, which would turn tied weights into 1 each).
 */
export class SmoothMaxPool2d extends Pool2d<SmoothMaxPoolSpec> implements Component<null> {
  readonly type = "smoothMaxPool2d";
  /** The temperature μ. */
  readonly mu: number;

  constructor(spec: SmoothMaxPoolSpec, inputShape: readonly number[], field: string = spec.type) {
    // The window geometry is max pooling's (same size/stride/padding fields and rules; shape errors name maxPool2d).
    super(spec, inputShape, field, "maxPool2d");
    this.mu = spec.mu;
  }

  /**
   * Smoothness constants on a batch (docs/smoothing.md). With c = max_i |{o : i ∈ S_o}| (windows per pixel):
   * - ℓ = √c: lse_μ is monotone and lse_μ(x + t1) = lse_μ(x) + t, so |lse_μ(x) − lse_μ(y)| ≤
   *   max_{S_o} |x_i − y_i|, and the sum of squares over windows is ≤ c‖x − y‖² (as max-pool).
   * - L = √c/(2μ): ∇²⟨π, v⟩ = Σ_o v_o H_o with ‖H_o‖ ≤ 1/(2μ) on S_o, so
   *   |zᵀ(Σ v_o H_o)z| ≤ Σ_o |v_o| ‖z_{S_o}‖²/(2μ) ≤ ‖v‖ (Σ_o ‖z_{S_o}‖⁴)^{1/2}/(2μ)
   *   ≤ ‖v‖ (max_o ‖z_{S_o}‖² · Σ_o ‖z_{S_o}‖²)^{1/2}/(2μ) ≤ ‖v‖ √c ‖z‖²/(2μ).
   *   Without overlap (c = 1): 1/(2μ).
   * - π(0)_o = μ log k_o, so ‖π(0)‖ ≤ μ log(k_max) √(batch·outputSize); ‖π(x)‖ ≤ ‖π(0)‖ + √c‖x‖.
   * - ∇π(0) has rows p_o = uniform on S_o (row sums 1, column sums Σ_{o∋i} 1/k_o), so by Schur's
   *   test ‖∇π(0)‖ ≤ √(1 · max_i Σ_{o∋i} 1/k_o), a product of the two axes' maxima (= 1/k for
   *   k×k windows without overlap).
   */
  smoothness(input: InputBounds): NonlinearConstants {
    const g = this.geometry;
    const { hLo, hHi, wLo, wHi } = this.windows;
    const ell = Math.sqrt(this.windowCoverage());
    const valueAtZero = this.mu * Math.log(this.maxWindowSize()) * Math.sqrt(input.batch * this.outputSize);
    const colH = maxInverseWindowWeight(g.h, g.oh, g.kh, g.sh, g.ph, (o) => hHi[o] - hLo[o]);
    const colW = maxInverseWindowWeight(g.w, g.ow, g.kw, g.sw, g.pw, (o) => wHi[o] - wLo[o]);
    return {
      kind: "nonlinear",
      bound: valueAtZero + ell * input.norm,
      lipschitz: ell,
      smoothness: ell / (2 * this.mu),
      valueAtZero,
      jacobianAtZero: Math.min(ell, Math.sqrt(colH * colW)),
    };
  }

  createTape(_batch: number, _dtype: DType): null {
    return null;
  }

  /** The window's maximum m and s = Σ exp((x_i − m)/μ) (s ∈ [1, k]). */
  private windowStats(x: FloatArray, base: number, hLo: number, hHi: number, wLo: number, wHi: number): [number, number] {
    const w = this.geometry.w;
    let m = Number.NEGATIVE_INFINITY;
    for (let ih = hLo; ih < hHi; ih++) {
      const r = base + ih * w;
      for (let iw = wLo; iw < wHi; iw++) {
        const v = x[r + iw];
        if (!(v <= m)) m = v; // NaN propagates
      }
    }
    const inv = 1 / this.mu;
    let s = 0;
    for (let ih = hLo; ih < hHi; ih++) {
      const r = base + ih * w;
      for (let iw = wLo; iw < wHi; iw++) s += Math.exp((x[r + iw] - m) * inv);
    }
    return [m, s];
  }

  forward(ctx: ComponentContext, io: LayerIO<null>): void {
    const { x, y } = io;
    const mu = this.mu;
    this.forEachWindow(ctx.batch, (o, base, hLo, hHi, wLo, wHi) => {
      const [m, s] = this.windowStats(x, base, hLo, hHi, wLo, wHi);
      y[o] = m + mu * Math.log(s);
    });
  }

  backward(ctx: ComponentContext, io: LayerIO<null>, dy: FloatArray, dx: FloatArray | null): void {
    if (!dx) return;
    const x = io.x;
    const w = this.geometry.w;
    const inv = 1 / this.mu;
    dx.fill(0, 0, ctx.batch * this.inputSize);
    this.forEachWindow(ctx.batch, (o, base, hLo, hHi, wLo, wHi) => {
      const [m, s] = this.windowStats(x, base, hLo, hHi, wLo, wHi);
      const g = dy[o] / s;
      for (let ih = hLo; ih < hHi; ih++) {
        const r = base + ih * w;
        for (let iw = wLo; iw < wHi; iw++) dx[r + iw] += g * Math.exp((x[r + iw] - m) * inv);
      }
    });
  }

  jvp(ctx: ComponentContext, io: LayerIO<null>, dx: FloatArray | null, _dparams: FloatArray | null, dy: FloatArray): void {
    const n = ctx.batch * this.outputSize;
    if (!dx) {
      dy.fill(0, 0, n);
      return;
    }
    const x = io.x;
    const w = this.geometry.w;
    const inv = 1 / this.mu;
    this.forEachWindow(ctx.batch, (o, base, hLo, hHi, wLo, wHi) => {
      const [m, s] = this.windowStats(x, base, hLo, hHi, wLo, wHi);
      let acc = 0;
      for (let ih = hLo; ih < hHi; ih++) {
        const r = base + ih * w;
        for (let iw = wLo; iw < wHi; iw++) acc += Math.exp((x[r + iw] - m) * inv) * dx[r + iw];
      }
      dy[o] = acc / s;
    });
  }

  /**
   * Second-order backward (Component.backwardTangent): ddx = Jᵀ ddy + ∇²⟨π, dy⟩ dx with
   * ∇²lse_μ = (diag p − p pᵀ)/μ per window: ddx_i += dy_o p_i (dx_i − ⟨p, dx_{S_o}⟩)/μ.
   */
  backwardTangent(
    ctx: ComponentContext,
    io: LayerIO<null>,
    dy: FloatArray,
    ddy: FloatArray,
    dx: FloatArray | null,
    _dparams: FloatArray | null,
    ddx: FloatArray | null,
  ): void {
    if (!ddx) return;
    this.backward(ctx, io, ddy, ddx);
    if (!dx) return;
    const x = io.x;
    const w = this.geometry.w;
    const inv = 1 / this.mu;
    this.forEachWindow(ctx.batch, (o, base, hLo, hHi, wLo, wHi) => {
      const [m, s] = this.windowStats(x, base, hLo, hHi, wLo, wHi);
      let pdx = 0;
      for (let ih = hLo; ih < hHi; ih++) {
        const r = base + ih * w;
        for (let iw = wLo; iw < wHi; iw++) pdx += (Math.exp((x[r + iw] - m) * inv) / s) * dx[r + iw];
      }
      const g = dy[o] * inv;
      for (let ih = hLo; ih < hHi; ih++) {
        const r = base + ih * w;
        for (let iw = wLo; iw < wHi; iw++) {
          const i = r + iw;
          ddx[i] += g * (Math.exp((x[i] - m) * inv) / s) * (dx[i] - pdx);
        }
      }
    });
  }
}
