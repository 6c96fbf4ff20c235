import { z } from "zod";
import type { FloatArray } from "../core/dtype.js";
import { Elementwise } from "./elementwise.js";
import { elementwiseConstants, type InputBounds, type NonlinearConstants } from "./smoothness.js";
import { sigmoid } from "./softplus.js";

/** Spec schema of `{ type: "sigmoid" }` (no options). */
export const sigmoidSpecSchema = z.object({ type: z.literal("sigmoid") }).strict();
/** A validated `sigmoid` layer spec. */
export type SigmoidSpec = z.output<typeof sigmoidSpecSchema>;

/** Logistic sigmoid α(x) = 1/(1 + e^{−x}), α′(x) = α(x)(1 − α(x)). */
export class Sigmoid extends Elementwise {
  readonly type = "sigmoid";

  /**
   * Smoothness constants (docs/certificates.md). σ ∈ (0, 1); σ′ = σ(1 − σ) ≤ 1/4 (at 0), so ℓ = 1/4;
   * σ″ = σ(1 − σ)(1 − 2σ) = g(σ) with g(s) = s − 3s² + 2s³, g′(s) = 1 − 6s + 6s² = 0 at
   * s = (3 ± √3)/6 where |g| = √3/18 = 1/(6√3) ≈ 0.0962, so L = √3/18; σ(0) = 1/2, σ′(0) = 1/4.
   */
  smoothness(input: InputBounds): NonlinearConstants {
    return elementwiseConstants(
      { sup: 1, lipschitz: 0.25, smoothness: Math.sqrt(3) / 18, value0: 0.5, derivative0: 0.25 },
      this.inputSize,
      input,
    );
  }
  constructor(spec: SigmoidSpec, inputShape: readonly number[]) {
    super(spec, inputShape);
  }
  value(x: number): number {
    return sigmoid(x);
  }
  derivative(x: number): number {
    const s = sigmoid(x);
    return s * (1 - s);
  }
  /** α″(x) = σ(x)(1 − σ(x))(1 − 2σ(x)). */
  override secondDerivative(x: number): number {
    const s = sigmoid(x);
    return s * (1 - s) * (1 - 2 * s);
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
