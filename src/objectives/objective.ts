import type { FloatArray } from "../core/dtype.js";
import { AutoencoderLoss } from "./autoencoder.js";
import { ConvexClusteringLoss } from "./clustering.js";
import { LogisticLoss } from "./logistic.js";
import type { Loss } from "./loss.js";
import { SquaredLoss } from "./squared.js";

/**
 * The training objective F(w) = f(ψ(w)) + r(w) (seeds 000/002, Eq. (2)) with f a {@link Loss}
 * averaged over the batch and r(w) = (λ/2)‖w‖² the L2 regularization on all parameters.
 */
export interface Objective {
  readonly loss: Loss;
  /** λ ≥ 0, the L2 regularization weight. */
  readonly l2: number;
}

/** The loss types chainopt knows. */
export type LossType = Loss["type"];

/** Creates a loss by name (the clustering objective with its default options, see clustering.ts). */
export function createLoss(type: LossType): Loss {
  switch (type) {
    case "logistic":
      return new LogisticLoss();
    case "squared":
      return new SquaredLoss();
    case "clustering":
      return new ConvexClusteringLoss();
    case "autoencoder":
      return new AutoencoderLoss();
    default:
      throw new Error(`loss: unknown loss "${type as string}"; expected "logistic", "squared", "clustering" or "autoencoder"`);
  }
}

/** Builds an objective from a loss name and λ. */
export function createObjective(loss: LossType | Loss, l2 = 0): Objective {
  if (!(l2 >= 0)) throw new Error(`l2: expected a non-negative number, got ${l2}`);
  return { loss: typeof loss === "string" ? createLoss(loss) : loss, l2 };
}

/** r(w) = (λ/2)‖w‖². */
export function l2Value(l2: number, w: ArrayLike<number>): number {
  if (l2 === 0) return 0;
  let s = 0;
  for (let i = 0; i < w.length; i++) s += w[i] * w[i];
  return 0.5 * l2 * s;
}

/** grad ← grad + λ w, adding ∇r(w). */
export function addL2Gradient(l2: number, w: ArrayLike<number>, grad: FloatArray): void {
  if (l2 === 0) return;
  for (let i = 0; i < grad.length; i++) grad[i] += l2 * w[i];
}

/**
 * Smoothness constants of r(u) = (λ/2)‖u‖² on B_R = {u : ‖u_t‖ ≤ R_t} (issue 5): ∇r = λu, so
 * ‖∇r‖ ≤ λ‖u‖ ≤ λ√(Σ_t R_t²) =: ℓ_r, ∇²r = λI so L_r = λ, and r ≤ (λ/2) Σ_t R_t².
 */
export function l2Constants(l2: number, radii: readonly number[]): { bound: number; lipschitz: number; smoothness: number } {
  let s = 0;
  for (const r of radii) s += r * r;
  return { bound: 0.5 * l2 * s, lipschitz: l2 * Math.sqrt(s), smoothness: l2 };
}
