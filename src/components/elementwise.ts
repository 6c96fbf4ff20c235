import type { DType, FloatArray } from "../core/dtype.js";
import type { Component, ComponentContext, ComponentSpec, LayerIO } from "./component.js";

/**
 * Base of element-wise activations a(x)_i = α(x_i). Subclasses write the two tight loops
 * (value and derivative times a vector) so that each stays monomorphic and fast.
 */
export abstract class Elementwise implements Component<null> {
  readonly role = "nonlinear" as const;
  /** y_i = α(x_i) entry by entry: the same on blocked activations (src/chain/layouts.ts). */
  readonly layoutBlind = true;
  readonly outputShape: readonly number[];
  readonly inputSize: number;
  readonly outputSize: number;
  readonly params = [];
  readonly paramSize = 0;
  readonly stateSize = 0;
  abstract readonly type: string;

  constructor(
    readonly spec: ComponentSpec,
    readonly inputShape: readonly number[],
  ) {
    this.outputShape = inputShape;
    this.inputSize = inputShape.reduce((a, b) => a * b, 1);
    this.outputSize = this.inputSize;
  }

  /** The scalar function α (for tests and analysis; the loops below do not call it). */
  abstract value(x: number): number;
  /** α′(x) (a subgradient where α is not differentiable). */
  abstract derivative(x: number): number;
  /** y_i ← α(x_i). */
  protected abstract apply(x: FloatArray, y: FloatArray): void;
  /** out_i ← α′(x_i)·v_i, given x and y = α(x). */
  protected abstract applyDerivative(x: FloatArray, y: FloatArray, v: FloatArray, out: FloatArray): void;

  initParams(): void {}
  initState(): void {}
  createTape(_batch: number, _dtype: DType): null {
    return null;
  }

  forward(_ctx: ComponentContext, io: LayerIO<null>): void {
    this.apply(io.x, io.y);
  }

  // The Jacobian is diagonal, diag(α′(x)), hence self-adjoint: backward and jvp are one loop.
  backward(_ctx: ComponentContext, io: LayerIO<null>, dy: FloatArray, dx: FloatArray | null): void {
    if (dx) this.applyDerivative(io.x, io.y, dy, dx);
  }

  jvp(_ctx: ComponentContext, io: LayerIO<null>, dx: FloatArray | null, _dparams: FloatArray | null, dy: FloatArray): void {
    if (dx) this.applyDerivative(io.x, io.y, dx, dy);
    else dy.fill(0);
  }

  /**
   * α″(x) (zero where α is piecewise linear), for second-order oracles. Optional: an activation
   * without it makes {@link Elementwise.backwardTangent} (hence Hessian-vector products) throw.
   */
  secondDerivative?(x: number): number;

  /**
   * Second-order backward (Component.backwardTangent): backward is dx_i = α′(x_i) dy_i, so its
   * derivative along dx and ddy is ddx_i = α′(x_i) ddy_i + α″(x_i) dx_i dy_i (the diagonal
   * Hessian ∇²⟨a(x), dy⟩ = diag(α″(x) ⊙ dy), Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019) Prop. 3.1 case 3).
   */
  backwardTangent(
    _ctx: ComponentContext,
    io: LayerIO<null>,
    dy: FloatArray,
    ddy: FloatArray,
    dx: FloatArray | null,
    _dparams: FloatArray | null,
    ddx: FloatArray | null,
  ): void {
    if (!ddx) return;
    if (!this.secondDerivative) {
      throw new Error(`${this.type}: this activation has no second derivative (secondDerivative); Hessian-vector products are unavailable`);
    }
    this.applyDerivative(io.x, io.y, ddy, ddx);
    if (dx) {
      const x = io.x;
      for (let i = 0; i < ddx.length; i++) {
        const t = dx[i] * dy[i];
        if (t !== 0) ddx[i] += this.secondDerivative(x[i]) * t;
      }
    }
  }
}
