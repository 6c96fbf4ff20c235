import { armijoLineSearch } from "../optim/armijo.js";
import type { GradientTransformation } from "../optim/transform.js";

// `chainopt train --line-search armijo` for first-order optimizers: the checks and the wrapping of
// the optimizer by the Armijo backtracking transformation (optim/armijo.ts, docs/line-search.md).

/** First-order optimizers the Armijo line search wraps (their update is a direction times the learning rate). */
export const ARMIJO_OPTIMIZERS = ["sgd", "momentum"] as const;

/** The fields of a training configuration this module reads. */
export interface LineSearchConfig {
  optimizer: string;
  lr: number;
  lineSearch?: boolean | "armijo";
  armijoC?: number;
  armijoShrink?: number;
  armijoReset?: "constant" | "previous" | "increase";
  schedule: string;
  warmupSteps: number;
  stepSize?: string;
}

const isSecondOrder = (name: string) => name === "gauss-newton" || name === "ggn" || name === "newton";

/** True when the run is first-order training with the Armijo line search. */
export function firstOrderArmijo(config: LineSearchConfig): boolean {
  return !isSecondOrder(config.optimizer) && (config.lineSearch === "armijo" || config.lineSearch === true);
}

/**
 * Defaults of a first-order line-search run: a constant first trial step (the schedule is the
 * search's), unless the user asked for a schedule (then {@link checkLineSearchOptions} refuses it).
 */
export function resolveLineSearchDefaults<C extends LineSearchConfig>(input: Record<string, unknown>, config: C): C {
  if (!firstOrderArmijo(config)) return config;
  return input.schedule === undefined && input.warmupSteps === undefined ? { ...config, schedule: "constant", warmupSteps: 0 } : config;
}

/** Checks the line-search options against the method (errors name the flags). */
export function checkLineSearchOptions(config: LineSearchConfig): void {
  const armijoFields = (["armijoC", "armijoShrink", "armijoReset"] as const).filter((k) => config[k] !== undefined);
  if (!firstOrderArmijo(config)) {
    if (config.lineSearch === "armijo" && isSecondOrder(config.optimizer)) return;
    if (armijoFields.length > 0) {
      const flags = armijoFields.map((k) => `--${k.replace(/[A-Z]/g, (m) => `-${m.toLowerCase()}`)}`).join(", ");
      throw new Error(`${flags}: options of --line-search armijo with --optimizer ${ARMIJO_OPTIMIZERS.join("|")}`);
    }
    return;
  }
  if (!(ARMIJO_OPTIMIZERS as readonly string[]).includes(config.optimizer)) {
    throw new Error(
      `--line-search armijo: applies to --optimizer ${ARMIJO_OPTIMIZERS.join("|")} (first order) or gauss-newton|newton, not ${config.optimizer}`,
    );
  }
  if (config.stepSize === "certified")
    throw new Error("--line-search armijo: the step is searched; it cannot be combined with --step-size certified");
  if (config.schedule !== "constant" || config.warmupSteps !== 0) {
    throw new Error(
      "--line-search armijo: the search chooses the step (--lr is its largest first trial); drop --schedule and --warmup-steps",
    );
  }
}

/**
 * The optimizer of a first-order Armijo run: `build(1)` is the optimizer with learning rate 1 (its
 * update is the unit-step direction u), wrapped by {@link armijoLineSearch} with first trial step
 * --lr, c = --armijo-c (default 1e-4), β = --armijo-shrink (default 0.5), reset --armijo-reset
 * (default increase, γ = 2).
 */
export function wrapWithArmijo<S extends GradientTransformation>(
  config: LineSearchConfig,
  build: (lr: number) => S,
): GradientTransformation {
  const inner = build(1);
  const ls = armijoLineSearch(inner, {
    initialStep: config.lr,
    c: config.armijoC,
    shrink: config.armijoShrink,
    reset: config.armijoReset,
  });
  return { ...ls, name: `${inner.name}+armijo` } as GradientTransformation;
}
