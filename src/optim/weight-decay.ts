import type { EmptyState, GradientTransformation } from "./transform.js";

function checkDecay(owner: string, weightDecay: number): void {
  if (typeof weightDecay !== "number" || !Number.isFinite(weightDecay) || weightDecay < 0) {
    throw new Error(`${owner}: weightDecay must be a finite number ≥ 0, got ${String(weightDecay)}`);
  }
}

function addScaledParams(name: string, weightDecay: number): GradientTransformation<EmptyState> {
  checkDecay(name, weightDecay);
  return {
    name,
    init: () => ({}),
    update(u, state, params) {
      if (weightDecay === 0) return state;
      for (let i = 0; i < u.length; i++) u[i] += weightDecay * params[i];
      return state;
    },
  };
}

/**
 * Coupled weight decay (L2 regularization): u ← u + λ w, the gradient of (λ/2)‖w‖² added to the
 * gradient. Place it FIRST in a chain, before momentum or adaptive scaling, so that the penalty's
 * gradient is scaled with the loss's (torch.optim.SGD/Adam/RMSprop/Adagrad `weight_decay`, which
 * adds `weight_decay * param` to the gradient, PyTorch 1.13 documentation).
 */
export function addCoupledWeightDecay(weightDecay: number): GradientTransformation<EmptyState> {
  return addScaledParams("addCoupledWeightDecay", weightDecay);
}

/**
 * Decoupled weight decay (Loshchilov & Hutter, "Decoupled weight decay regularization", ICLR 2019,
 * Alg. 2; Optax's `add_decayed_weights`): u ← u + λ w placed AFTER the adaptive scaling and before
 * scaleByLearningRate, so that w ← w − η_t (û + λ w), i.e. w ← (1 − η_t λ) w − η_t û, which is
 * torch.optim.AdamW's `param.mul_(1 - lr * weight_decay)` followed by the Adam step.
 */
export function addDecayedWeights(weightDecay: number): GradientTransformation<EmptyState> {
  return addScaledParams("addDecayedWeights", weightDecay);
}
