import type { LayerSpecOf } from "../chain/spec.js";
import type { FloatArray } from "../core/dtype.js";
import { Elementwise } from "./elementwise.js";
import { elementwiseConstants, type InputBounds, type NonlinearConstants } from "./smoothness.js";

/** ReLU α(x) = max(x, 0). Not differentiable at 0, where the subgradient 0 is used (as PyTorch does). */
export class Relu extends Elementwise {
  readonly type = "relu";

  /**
   * Smoothness constants (issue 5): α(x) = max(x, 0) is 1-Lipschitz (|α′| ≤ 1), not continuously
   * differentiable (L = ∞), unbounded, α(0) = 0, generalized derivatives at 0 lie in [0, 1] (so
   * ‖∇a(0)‖ ≤ 1), and |α(x)| ≤ |x| so ‖a(x)‖ ≤ ‖x‖. vroulet_elem_deep.pdf, Sec. 5.1: ℓ_ReLU = 1,
   * L_ReLU not defined.
   */
  smoothness(input: InputBounds): NonlinearConstants {
    return elementwiseConstants(
      { sup: Infinity, lipschitz: 1, smoothness: Infinity, value0: 0, derivative0: 1, contractsToZero: true },
      this.inputSize,
      input,
    );
  }
  constructor(spec: LayerSpecOf<"relu">, inputShape: readonly number[]) {
    super(spec, inputShape);
  }
  value(x: number): number {
    return x > 0 ? x : 0;
  }
  derivative(x: number): number {
    return x > 0 ? 1 : 0;
  }
  /** α″ = 0 almost everywhere (piecewise linear). */
  override secondDerivative(_x: number): number {
    return 0;
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
