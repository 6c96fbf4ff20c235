import { z } from "zod";
import type { FloatArray } from "../core/dtype.js";
import { Elementwise } from "./elementwise.js";
import { elementwiseConstants, type InputBounds, type NonlinearConstants } from "./smoothness.js";

/** Spec schema of `{ type: "softplus", beta }`: softplus_β(x) = log(1 + e^{βx}) / β. */
export const softplusSpecSchema = z.object({ type: z.literal("softplus"), beta: z.number().positive().default(1) }).strict();
/** A validated `softplus` layer spec. */
export type SoftplusSpec = z.output<typeof softplusSpecSchema>;

/**
 * Softplus α(x) = (1/β) log(1 + e^{βx}) (PyTorch's Softplus with threshold removed), computed
 * stably as max(x, 0) + log1p(e^{−β|x|})/β; α′(x) = σ(βx).
 */
export class Softplus extends Elementwise {
  readonly type = "softplus";

  /**
   * Smoothness constants (docs/certificates.md). α(x) = log(1 + e^{βx})/β: α′(x) = σ(βx) ∈ (0, 1), so ℓ = 1;
   * α″(x) = β σ(βx)(1 − σ(βx)) ≤ β/4 (σ(1 − σ) ≤ 1/4, equality at x = 0), so L = β/4;
   * α(0) = log 2/β, α′(0) = 1/2; unbounded. Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019), Sec. 5.2 prints
   * ℓ_softplus = 2, L_softplus = 4: both loose (by 2 and 16 for β = 1); test/certify.test.ts checks
   * ours against finite differences.
   */
  smoothness(input: InputBounds): NonlinearConstants {
    const b = this.beta;
    return elementwiseConstants(
      { sup: Infinity, lipschitz: 1, smoothness: b / 4, value0: Math.LN2 / b, derivative0: 0.5 },
      this.inputSize,
      input,
    );
  }
  readonly beta: number;
  constructor(spec: SoftplusSpec, inputShape: readonly number[]) {
    super(spec, inputShape);
    this.beta = spec.beta;
  }
  value(x: number): number {
    return (x > 0 ? x : 0) + Math.log1p(Math.exp(-this.beta * Math.abs(x))) / this.beta;
  }
  derivative(x: number): number {
    return sigmoid(this.beta * x);
  }
  /** α″(x) = β σ(βx)(1 − σ(βx)). */
  override secondDerivative(x: number): number {
    const s = sigmoid(this.beta * x);
    return this.beta * s * (1 - s);
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
