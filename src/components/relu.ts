import type { LayerSpecOf } from "../chain/spec.js";
import type { FloatArray } from "../core/dtype.js";
import { Elementwise } from "./elementwise.js";

/** ReLU α(x) = max(x, 0). Not differentiable at 0, where the subgradient 0 is used (as PyTorch does). */
export class Relu extends Elementwise {
  readonly type = "relu";
  constructor(spec: LayerSpecOf<"relu">, inputShape: readonly number[]) {
    super(spec, inputShape);
  }
  value(x: number): number {
    return x > 0 ? x : 0;
  }
  derivative(x: number): number {
    return x > 0 ? 1 : 0;
  }
  protected apply(x: FloatArray, y: FloatArray): void {
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      y[i] = v > 0 ? v : 0;
    }
  }
  protected applyDerivative(x: FloatArray, _y: FloatArray, v: FloatArray, out: FloatArray): void {
    for (let i = 0; i < x.length; i++) out[i] = x[i] > 0 ? v[i] : 0;
  }
}
