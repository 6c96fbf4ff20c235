import type { InputDomain } from "../adversarial/attack.js";
import { AdversarialTransform, datasetRobustness, type TrainingAttack } from "../adversarial/training.js";
import type { Chain } from "../chain/chain.js";
import type { FloatArray } from "../core/dtype.js";
import type { Dataset } from "../data/dataset.js";
import type { Objective } from "../objectives/objective.js";
import { imageStatistics } from "./datasets.js";

// Adversarial training in `chainopt train` (docs/adversarial.md): the flags' validation (errors
// name the flag), the input box of each data set, the trainer's batch transform and the per-epoch
// robust validation metrics.

/** The configuration keys of adversarial training (`--adversarial`, `--adv-*`). */
export interface AdversarialConfig {
  adversarial?: string;
  advEps?: number;
  advNorm?: string;
  advSteps?: number;
  advStepSize?: number;
  advMix?: number;
  /** Validation samples attacked for the per-epoch robust metrics (default 1000). */
  advValidationSamples?: number;
}

/**
 * The valid raw inputs of a data set and their normalization: images have pixels in [0, 1],
 * normalized per channel when `normalize` (src/node/datasets.ts); tabular and synthetic sets have
 * no input box (null).
 */
export function inputDomainFor(dataset: string, normalize: boolean): InputDomain | null {
  if (dataset === "mnist" || dataset === "fashion-mnist" || dataset === "cifar10") {
    const s = imageStatistics[dataset];
    return normalize ? { lower: 0, upper: 1, mean: [...s.mean], std: [...s.std] } : { lower: 0, upper: 1, mean: [0], std: [1] };
  }
  return null;
}

/** Checks the adversarial flags and resolves the attack; errors name the flag. Null without `--adversarial`. */
export function resolveAdversarialAttack(config: AdversarialConfig & { dataset: string; normalize: boolean }): TrainingAttack | null {
  const given = (["advEps", "advNorm", "advSteps", "advStepSize", "advMix", "advValidationSamples"] as const).filter(
    (k) => config[k] !== undefined,
  );
  if (config.adversarial === undefined) {
    if (given.length > 0) throw new Error(`--${kebab(given[0])} needs --adversarial pgd|fgsm`);
    return null;
  }
  if (config.adversarial !== "pgd" && config.adversarial !== "fgsm")
    throw new Error(`--adversarial: unknown attack ${JSON.stringify(config.adversarial)}; expected pgd or fgsm`);
  if (config.advEps === undefined) throw new Error("--adv-eps: the radius ε of the attack is required with --adversarial");
  if (!(config.advEps >= 0) || !Number.isFinite(config.advEps)) throw new Error(`--adv-eps: expected a radius ε ≥ 0, got ${config.advEps}`);
  const norm = config.advNorm ?? "linf";
  if (norm !== "linf" && norm !== "l2") throw new Error(`--adv-norm: unknown norm ${JSON.stringify(norm)}; expected linf or l2`);
  const steps = config.advSteps ?? 10;
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`--adv-steps: expected a positive integer, got ${steps}`);
  if (config.advStepSize !== undefined && !(config.advStepSize > 0))
    throw new Error(`--adv-step-size: expected a positive number, got ${config.advStepSize}`);
  const mix = config.advMix ?? 1;
  if (!(mix >= 0 && mix <= 1)) throw new Error(`--adv-mix: expected a fraction in [0, 1], got ${mix}`);
  const v = config.advValidationSamples;
  if (v !== undefined && !(Number.isInteger(v) && v >= 1))
    throw new Error(`--adv-validation-samples: expected a positive integer, got ${v}`);
  const domain = inputDomainFor(config.dataset, config.normalize);
  if (!domain)
    throw new Error(
      `--adversarial: the data set ${config.dataset} has no input box (attacks need bounded raw inputs: mnist, fashion-mnist, cifar10)`,
    );
  return {
    kind: config.adversarial,
    norm,
    eps: config.advEps,
    steps,
    ...(config.advStepSize !== undefined ? { stepSize: config.advStepSize } : {}),
    domain,
  };
}

/** What `chainopt train` needs for adversarial training. */
export interface AdversarialTraining {
  transform: AdversarialTransform;
  attack: TrainingAttack;
  /** Robust loss and accuracy on (the first samples of) a validation set, reproducible per epoch. */
  validate(w: FloatArray, state: FloatArray, validation: Dataset, epoch: number): { robustLoss: number; robustAccuracy: number };
}

/** Builds the batch transform and the robust validation of a run (after {@link resolveAdversarialAttack}). */
export function prepareAdversarialTraining(
  config: AdversarialConfig & { seed: number; loss: string },
  attack: TrainingAttack,
  chain: Chain,
  objective: Objective,
): AdversarialTraining {
  if (config.loss !== "logistic") throw new Error("--adversarial: adversarial training needs a classifier (--loss logistic)");
  const transform = new AdversarialTransform({ loss: objective.loss, attack, mix: config.advMix ?? 1, seed: attackSeed(config.seed) });
  return {
    transform,
    attack,
    validate(w, state, validation, epoch) {
      const r = datasetRobustness(chain, objective.loss, w, validation, attack, {
        state,
        seed: attackSeed(config.seed) + 1 + epoch,
        limit: config.advValidationSamples ?? 1000,
      });
      return { robustLoss: r.robustLoss, robustAccuracy: r.robustAccuracy };
    },
  };
}

/** The attack generator's seed: apart from the data-order stream (seed) of the trainer. */
function attackSeed(seed: number): number {
  return (seed ^ 0x5bd1e995) >>> 0;
}

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
