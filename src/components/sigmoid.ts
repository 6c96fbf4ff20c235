import type { LayerSpecOf } from "../chain/spec.js";
import type { FloatArray } from "../core/dtype.js";
import { Elementwise } from "./elementwise.js";
import { sigmoid } from "./softplus.js";

/** Logistic sigmoid α(x) = 1/(1 + e^{−x}), α′(x) = α(x)(1 − α(x)). */
export class Sigmoid extends Elementwise {
  readonly type = "sigmoid";
  constructor(spec: LayerSpecOf<"sigmoid">, inputShape: readonly number[]) {
    super(spec, inputShape);
  }
  value(x: number): number {
    return sigmoid(x);
  }
  derivative(x: number): number {
    const s = sigmoid(x);
    return s * (1 - s);
  }
  protected apply(x: FloatArray, y: FloatArray): void {
    for (let i = 0; i < x.length; i++) y[i] = sigmoid(x[i]);
  }
  protected applyDerivative(_x: FloatArray, y: FloatArray, v: FloatArray, out: FloatArray): void {
    // Uses the stored output: α′ = y(1 − y). In float32 y is rounded, so recompute from x there.
    if (y instanceof Float64Array) for (let i = 0; i < y.length; i++) out[i] = y[i] * (1 - y[i]) * v[i];
    else
      for (let i = 0; i < y.length; i++) {
        const s = sigmoid(_x[i]);
        out[i] = s * (1 - s) * v[i];
      }
  }
}
