import type { LayerSpecOf } from "../chain/spec.js";
import type { DType, FloatArray } from "../core/dtype.js";
import type { Component, ComponentContext, LayerIO } from "./component.js";

/**
 * Softmax over the features of each sample: p_i = e^{x_i − m} / Σ_j e^{x_j − m} with m = max_j x_j
 * (subtracting m changes nothing mathematically and keeps every exponential ≤ 1). Its Jacobian is
 * ∇p = diag(p) − p pᵀ (vroulet_elem_deep.pdf, App. B.1; ℓ_softmax = 2, L_softmax = 4 in Sec. 5.1),
 * symmetric, so the VJP and the JVP are the same map: v ↦ p ⊙ (v − ⟨p, v⟩). The output p (io.y) is
 * all the tape needed.
 */
export class Softmax implements Component<null> {
  readonly type = "softmax";
  readonly role = "nonlinear" as const;
  readonly inputShape: readonly number[];
  readonly outputShape: readonly number[];
  readonly inputSize: number;
  readonly outputSize: number;
  readonly params = [];
  readonly paramSize = 0;
  readonly stateSize = 0;

  constructor(
    readonly spec: LayerSpecOf<"softmax">,
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
