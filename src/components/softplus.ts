import type { LayerSpecOf } from "../chain/spec.js";
import type { FloatArray } from "../core/dtype.js";
import { Elementwise } from "./elementwise.js";

/**
 * Softplus α(x) = (1/β) log(1 + e^{βx}) (PyTorch's Softplus with threshold removed), computed
 * stably as max(x, 0) + log1p(e^{−β|x|})/β; α′(x) = σ(βx).
 */
export class Softplus extends Elementwise {
  readonly type = "softplus";
  readonly beta: number;
  constructor(spec: LayerSpecOf<"softplus">, inputShape: readonly number[]) {
    super(spec, inputShape);
    this.beta = spec.beta;
  }
  value(x: number): number {
    return (x > 0 ? x : 0) + Math.log1p(Math.exp(-this.beta * Math.abs(x))) / this.beta;
  }
  derivative(x: number): number {
    return sigmoid(this.beta * x);
  }
  protected apply(x: FloatArray, y: FloatArray): void {
    const b = this.beta;
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      y[i] = (v > 0 ? v : 0) + Math.log1p(Math.exp(-b * Math.abs(v))) / b;
    }
  }
  protected applyDerivative(x: FloatArray, _y: FloatArray, v: FloatArray, out: FloatArray): void {
    const b = this.beta;
    for (let i = 0; i < x.length; i++) out[i] = sigmoid(b * x[i]) * v[i];
  }
}

/** σ(z) = 1/(1 + e^{−z}) without overflow for large |z|. */
export function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}
