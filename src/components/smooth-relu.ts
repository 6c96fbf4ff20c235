import { z } from "zod";
import type { FloatArray } from "../core/dtype.js";
import { Elementwise } from "./elementwise.js";
import { elementwiseConstants, type InputBounds, type NonlinearConstants } from "./smoothness.js";

/** Spec schema of `{ type: "smoothRelu", mu }` (μ > 0, the smoothing parameter). */
export const smoothReluSpecSchema = z.object({ type: z.literal("smoothRelu"), mu: z.number().positive() }).strict();
/** A validated `smoothRelu` layer spec. */
export type SmoothReluSpec = z.output<typeof smoothReluSpecSchema>;

/**
 * SmoothReLU_μ, the Nesterov smoothing of ReLU (Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), Example 6; Roulet & Harchaoui, CISS 2021 talk "On the Smoothing of Deep Networks"):
 * α_μ(x) = max_{z∈[0,1]} zx − μz². The maximizer is z* = clip(x/(2μ), 0, 1), so
 * α_μ(x) = 0 for x ≤ 0, x²/(4μ) for 0 ≤ x ≤ 2μ, x − μ for x ≥ 2μ; and α_μ′(x) = z*.
 * It satisfies 0 ≤ ReLU(x) − α_μ(x) ≤ μ and α_μ′ is 1/(2μ)-Lipschitz.
 */
export class SmoothRelu extends Elementwise {
  readonly type = "smoothRelu";

  /**
   * Smoothness constants (docs/certificates.md). α_μ′ = clip(x/(2μ), 0, 1) ∈ [0, 1], so ℓ = 1; α_μ′ is
   * 1/(2μ)-Lipschitz (Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), Example 6: the conjugate of a 2μ-strongly convex
   * function), so L = 1/(2μ); α_μ(0) = 0, α_μ′(0) = 0; 0 ≤ α_μ(x) ≤ max(x, 0), so ‖a(x)‖ ≤ ‖x‖.
   */
  smoothness(input: InputBounds): NonlinearConstants {
    return elementwiseConstants(
      { sup: Infinity, lipschitz: 1, smoothness: 1 / (2 * this.mu), value0: 0, derivative0: 0, contractsToZero: true },
      this.inputSize,
      input,
    );
  }
  readonly mu: number;
  constructor(spec: SmoothReluSpec, inputShape: readonly number[]) {
    super(spec, inputShape);
    this.mu = spec.mu;
  }
  value(x: number): number {
    if (x <= 0) return 0;
    const twoMu = 2 * this.mu;
    return x >= twoMu ? x - this.mu : (x * x) / (2 * twoMu);
  }
  derivative(x: number): number {
    if (x <= 0) return 0;
    const twoMu = 2 * this.mu;
    return x >= twoMu ? 1 : x / twoMu;
  }
  /** α_μ″(x) = 1/(2μ) on (0, 2μ), 0 elsewhere (one-sided values at the kinks). */
  override secondDerivative(x: number): number {
    return x > 0 && x < 2 * this.mu ? 1 / (2 * this.mu) : 0;
  }
  protected apply(x: FloatArray, y: FloatArray): void {
    const mu = this.mu;
    const twoMu = 2 * mu;
    const inv4Mu = 1 / (4 * mu);
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      y[i] = v <= 0 ? 0 : v >= twoMu ? v - mu : v * v * inv4Mu;
    }
  }
  protected applyDerivative(x: FloatArray, _y: FloatArray, v: FloatArray, out: FloatArray): void {
    const twoMu = 2 * this.mu;
    const inv2Mu = 1 / twoMu;
    for (let i = 0; i < x.length; i++) {
      const u = x[i];
      out[i] = u <= 0 ? 0 : u >= twoMu ? v[i] : u * inv2Mu * v[i];
    }
  }
}
