import { z } from "zod";
import type { DType, FloatArray } from "../core/dtype.js";
import type { Component, ComponentContext, LayerIO } from "./component.js";
import type { InputBounds, NonlinearConstants } from "./smoothness.js";

/** Spec schema of `{ type: "softmax" }` (no options). */
export const softmaxSpecSchema = z.object({ type: z.literal("softmax") }).strict();
/** A validated `softmax` layer spec. */
export type SoftmaxSpec = z.output<typeof softmaxSpecSchema>;

/**
 * Softmax over the features of each sample: p_i = e^{x_i − m} / Σ_j e^{x_j − m} with m = max_j x_j
 * (subtracting m changes nothing mathematically and keeps every exponential ≤ 1). Its Jacobian is
 * ∇p = diag(p) − p pᵀ (Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019), App. B.1; ℓ_softmax = 2, L_softmax = 4 in Sec. 5.1),
 * symmetric, so the VJP and the JVP are the same map: v ↦ p ⊙ (v − ⟨p, v⟩). The output p (io.y) is
 * all the tape needed.
 */
export class Softmax implements Component<null> {
  readonly type = "softmax";

  /**
   * Smoothness constants (docs/certificates.md), per sample with p = softmax(x) ∈ ℝ^K, then for the batch by
   * the block-diagonal rule (smoothness.ts):
   * - ∇p = diag(p) − p pᵀ and vᵀ∇p v = Var_p(v) ≤ (max v − min v)²/4 ≤ ‖v‖²/2 (Popoviciu), so
   *   ℓ = 1/2 (attained for K = 2 at x = 0).
   * - D²p[v, v]_i = p_i (c_i² − V) with c = v − ⟨p, v⟩1, V = Σ p_j c_j². Then
   *   ‖D²p[v, v]‖² = Σ p_i² (c_i² − V)² ≤ Σ p_i (c_i² − V)² = Var_p(c²) ≤ (max c²)²/4 (Popoviciu,
   *   c² ∈ [0, max c²]) and max c_i² ≤ (max v − min v)² ≤ 2‖v‖²: ‖D²p[v, v]‖ ≤ ‖v‖², and the Hessian
   *   of each p_i being symmetric this bounds the tensor norm: L = 1.
   * - p(0) = 1/K: ‖a(0)‖ = √(N/K); ∇p(0) = (I − 11ᵀ/K)/K: ‖∇a(0)‖ = 1/K; ‖p‖ ≤ ‖p‖₁ = 1: m = √N.
   * Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019), Sec. 5.1 prints ℓ_softmax = 2, L_softmax = 4 (loose by 4 and 4).
   */
  smoothness(input: InputBounds): NonlinearConstants {
    const k = this.inputSize;
    return {
      kind: "nonlinear",
      bound: Math.sqrt(input.batch),
      lipschitz: 0.5,
      smoothness: 1,
      valueAtZero: Math.sqrt(input.batch / k),
      jacobianAtZero: 1 / k,
    };
  }
  readonly role = "nonlinear" as const;
  readonly inputShape: readonly number[];
  readonly outputShape: readonly number[];
  readonly inputSize: number;
  readonly outputSize: number;
  readonly params = [];
  readonly paramSize = 0;
  readonly stateSize = 0;

  constructor(
    readonly spec: SoftmaxSpec,
    inputShape: readonly number[],
  ) {
    this.inputShape = inputShape;
    this.outputShape = inputShape;
    this.inputSize = inputShape.reduce((a, b) => a * b, 1);
    this.outputSize = this.inputSize;
  }

  initParams(): void {}
  initState(): void {}
  createTape(_batch: number, _dtype: DType): null {
    return null;
  }

  forward(ctx: ComponentContext, io: LayerIO<null>): void {
    const { x, y } = io;
    const k = this.inputSize;
    for (let i = 0; i < ctx.batch; i++) {
      const o = i * k;
      let m = x[o];
      for (let j = 1; j < k; j++) if (x[o + j] > m) m = x[o + j];
      let s = 0;
      for (let j = 0; j < k; j++) {
        const e = Math.exp(x[o + j] - m);
        y[o + j] = e;
        s += e;
      }
      const inv = 1 / s;
      for (let j = 0; j < k; j++) y[o + j] *= inv;
    }
  }

  backward(ctx: ComponentContext, io: LayerIO<null>, dy: FloatArray, dx: FloatArray | null): void {
    if (dx) this.applyJacobian(ctx.batch, io.y, dy, dx);
  }

  jvp(ctx: ComponentContext, io: LayerIO<null>, dx: FloatArray | null, _dparams: FloatArray | null, dy: FloatArray): void {
    if (dx) this.applyJacobian(ctx.batch, io.y, dx, dy);
    else dy.fill(0, 0, ctx.batch * this.outputSize);
  }

  /**
   * Second-order backward (Component.backwardTangent). Backward is dx = p ⊙ (dy − ⟨p, dy⟩); along
   * the input direction dx the output moves by dp = p ⊙ (dx − ⟨p, dx⟩) (the JVP), so
   * ddx = p ⊙ (ddy − ⟨p, ddy⟩) + dp ⊙ (dy − ⟨p, dy⟩) − p ⟨dp, dy⟩ (product rule, per sample).
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
    const p = io.y;
    const k = this.inputSize;
    for (let i = 0; i < ctx.batch; i++) {
      const o = i * k;
      let pdd = 0;
      let pdy = 0;
      let pdx = 0;
      for (let j = 0; j < k; j++) {
        pdd += p[o + j] * ddy[o + j];
        pdy += p[o + j] * dy[o + j];
        if (dx) pdx += p[o + j] * dx[o + j];
      }
      let dpdy = 0;
      if (dx) for (let j = 0; j < k; j++) dpdy += p[o + j] * (dx[o + j] - pdx) * dy[o + j];
      for (let j = 0; j < k; j++) {
        let v = p[o + j] * (ddy[o + j] - pdd);
        if (dx) v += p[o + j] * (dx[o + j] - pdx) * (dy[o + j] - pdy) - p[o + j] * dpdy;
        ddx[o + j] = v;
      }
    }
  }

  /** out ← p ⊙ (v − ⟨p, v⟩) per sample ((diag(p) − p pᵀ) v). */
  private applyJacobian(batch: number, p: FloatArray, v: FloatArray, out: FloatArray): void {
    const k = this.inputSize;
    for (let i = 0; i < batch; i++) {
      const o = i * k;
      let pv = 0;
      for (let j = 0; j < k; j++) pv += p[o + j] * v[o + j];
      for (let j = 0; j < k; j++) out[o + j] = p[o + j] * (v[o + j] - pv);
    }
  }
}
