import { AutoencoderLoss } from "../objectives/autoencoder.js";
import { ConvexClusteringLoss } from "../objectives/clustering.js";
import { createObjective, type Objective } from "../objectives/objective.js";
import type { LoadedDataset } from "./datasets.js";

// `chainopt train --objective clustering|autoencoder`: the unsupervised objectives of
// Roulet & Harchaoui, "An Elementary Approach…" (Allerton 2019), Sec. 2.2 (objectives/clustering.ts, objectives/autoencoder.ts,
// docs/unsupervised.md). Labels are not used (they are dropped from the data, so no accuracy is
// reported); the objective replaces --loss.

/** The fields of a training configuration this module reads. */
export interface UnsupervisedConfig {
  objective?: "supervised" | "clustering" | "autoencoder";
  clusteringLambda?: number;
  clusteringNeighbors?: number;
  clusteringTolerance?: number;
  l2: number;
  optimizer: string;
}

/** True for --objective clustering|autoencoder. */
export function isUnsupervised(config: UnsupervisedConfig): boolean {
  return config.objective === "clustering" || config.objective === "autoencoder";
}

/** Checks the unsupervised options against each other and the method (errors name the flags). */
export function checkUnsupervisedOptions(config: UnsupervisedConfig, input: Record<string, unknown>): void {
  const clusterFlags = (["clusteringLambda", "clusteringNeighbors", "clusteringTolerance"] as const).filter((k) => config[k] !== undefined);
  if (config.objective !== "clustering" && clusterFlags.length > 0) {
    const flags = clusterFlags.map((k) => `--${k.replace(/[A-Z]/g, (m) => `-${m.toLowerCase()}`)}`).join(", ");
    throw new Error(`${flags}: options of --objective clustering`);
  }
  if (!isUnsupervised(config)) return;
  if (input.loss !== undefined) throw new Error(`--loss: --objective ${config.objective} is its own loss; drop --loss`);
  if (config.objective === "clustering" && ["gauss-newton", "ggn", "newton"].includes(config.optimizer)) {
    throw new Error(
      `--objective clustering: its second derivatives are not provided; use a first-order --optimizer, not ${config.optimizer}`,
    );
  }
  if (config.objective === "autoencoder" && config.optimizer === "ggn") {
    throw new Error("--objective autoencoder: --optimizer ggn is for the squared loss on targets; use gauss-newton");
  }
}

/** The output size of the presets: the input size for the auto-encoder, else the given one. */
export function presetOutputs(config: UnsupervisedConfig, inputShape: readonly number[], classes: number): number {
  return config.objective === "autoencoder" ? inputShape.reduce((a, b) => a * b, 1) : classes;
}

/** The objective of an unsupervised run, null for a supervised one. */
export function unsupervisedObjective(config: UnsupervisedConfig): Objective | null {
  if (config.objective === "clustering") {
    return createObjective(
      new ConvexClusteringLoss({
        lambda: config.clusteringLambda,
        neighbors: config.clusteringNeighbors,
        tolerance: config.clusteringTolerance,
      }),
      config.l2,
    );
  }
  if (config.objective === "autoencoder") return createObjective(new AutoencoderLoss(), config.l2);
  return null;
}

/** Drops labels and targets of every split (in place): the unsupervised objectives see only inputs. */
export function dropLabels(data: LoadedDataset): void {
  const strip = <D extends LoadedDataset["train"]>(d: D): D => ({
    ...d,
    labels: undefined,
    classes: undefined,
    targets: undefined,
    targetSize: undefined,
  });
  data.train = strip(data.train);
  if (data.validation) data.validation = strip(data.validation);
  if (data.test) data.test = strip(data.test);
}
