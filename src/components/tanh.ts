import { z } from "zod";
import type { FloatArray } from "../core/dtype.js";
import { Elementwise } from "./elementwise.js";
import { elementwiseConstants, type InputBounds, type NonlinearConstants } from "./smoothness.js";

/** Spec schema of `{ type: "tanh" }` (no options). */
export const tanhSpecSchema = z.object({ type: z.literal("tanh") }).strict();
/** A validated `tanh` layer spec. */
export type TanhSpec = z.output<typeof tanhSpecSchema>;

/** Hyperbolic tangent α(x) = tanh x, α′(x) = 1 − tanh² x. */
export class Tanh extends Elementwise {
  readonly type = "tanh";

  /**
   * Smoothness constants (docs/certificates.md). |tanh| < 1 and |tanh x| ≤ |x|; tanh′ = 1 − t² ≤ 1 (at 0), so
   * ℓ = 1; tanh″ = −2t(1 − t²) with t = tanh x, maximal in absolute value at t = 1/√3 where it is
   * 4/(3√3) = 4√3/9 ≈ 0.770, so L = 4√3/9; tanh 0 = 0, tanh′ 0 = 1.
   */
  smoothness(input: InputBounds): NonlinearConstants {
    return elementwiseConstants(
      { sup: 1, lipschitz: 1, smoothness: (4 * Math.sqrt(3)) / 9, value0: 0, derivative0: 1, contractsToZero: true },
      this.inputSize,
      input,
    );
  }
  constructor(spec: TanhSpec, inputShape: readonly number[]) {
    super(spec, inputShape);
  }
  value(x: number): number {
    return Math.tanh(x);
  }
  derivative(x: number): number {
    const t = Math.tanh(x);
    return 1 - t * t;
  }
  /** α″(x) = −2 tanh x (1 − tanh² x). */
  override secondDerivative(x: number): number {
    const t = Math.tanh(x);
    return -2 * t * (1 - t * t);
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
