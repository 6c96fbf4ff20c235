import type { FloatArray } from "../core/dtype.js";
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

/** Creates a loss by name. */
export function createLoss(type: LossType): Loss {
  switch (type) {
    case "logistic":
      return new LogisticLoss();
    case "squared":
      return new SquaredLoss();
    default:
      throw new Error(`loss: unknown loss "${type as string}"; expected "logistic" or "squared"`);
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
