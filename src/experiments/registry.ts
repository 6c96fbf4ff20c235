import { adversarialExperiment } from "./adversarial.js"; // docs/adversarial.md
import { clusteringExperiment } from "./clustering.js";
import { deepLinearExperiment } from "./deep-linear.js";
import type { ExperimentDefinition } from "./experiment.js";
import { ggnExperiment } from "./ggn.js";
import { optimizersExperiment } from "./optimizers.js";
import { smoothingExperiment } from "./smoothing.js";

export type { ExperimentDefinition, ExperimentIO, ExperimentOption, ExperimentOutcome } from "./experiment.js";

// The experiments known to `chainopt experiment`. To add one: write src/experiments/<name>.ts
// exporting an ExperimentDefinition (see experiment.ts), import it here and append it to the list.

/** Every experiment, in the order `chainopt experiment --help` lists them. */
export const EXPERIMENTS: readonly ExperimentDefinition[] = [
  deepLinearExperiment,
  optimizersExperiment,
  smoothingExperiment,
  ggnExperiment,
  adversarialExperiment, // docs/adversarial.md
  clusteringExperiment,
];

/** Names of the known experiments. */
export function experimentNames(): string[] {
  return EXPERIMENTS.map((e) => e.name);
}

/** The experiment of that name; throws an Error listing the known names for an unknown one. */
export function getExperiment(name: string): ExperimentDefinition {
  const e = EXPERIMENTS.find((x) => x.name === name);
  if (!e) throw new Error(`unknown experiment "${name}"; known: ${experimentNames().join(", ")}`);
  return e;
}
