import type { LayerSpecOf } from "../chain/spec.js";
import type { FloatArray } from "../core/dtype.js";
import { Elementwise } from "./elementwise.js";

/** Hyperbolic tangent α(x) = tanh x, α′(x) = 1 − tanh² x. */
export class Tanh extends Elementwise {
  readonly type = "tanh";
  constructor(spec: LayerSpecOf<"tanh">, inputShape: readonly number[]) {
    super(spec, inputShape);
  }
  value(x: number): number {
    return Math.tanh(x);
  }
  derivative(x: number): number {
    const t = Math.tanh(x);
    return 1 - t * t;
  }
  protected apply(x: FloatArray, y: FloatArray): void {
    for (let i = 0; i < x.length; i++) y[i] = Math.tanh(x[i]);
  }
  protected applyDerivative(x: FloatArray, y: FloatArray, v: FloatArray, out: FloatArray): void {
    if (y instanceof Float64Array) for (let i = 0; i < y.length; i++) out[i] = (1 - y[i] * y[i]) * v[i];
    else
      for (let i = 0; i < x.length; i++) {
        const t = Math.tanh(x[i]);
        out[i] = (1 - t * t) * v[i];
      }
  }
}
