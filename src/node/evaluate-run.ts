import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Backend } from "../core/backend.js";
import type { Dataset } from "../data/dataset.js";
import { createObjective } from "../objectives/objective.js";
import { type Evaluation, evaluateDataset } from "../train/evaluate.js";
import { chainOfModelFile, loadCheckpoint } from "./checkpoint.js";
import { readRunTrainConfig } from "./train-config.js";
import { loadTrainingData } from "./train-setup.js";
import { dropLabels, unsupervisedObjective } from "./unsupervised-config.js";

// Evaluating a run's weights again on the splits it was trained with (`chainopt evaluate`): the
// run's configuration gives the data set, its splits (limit, validation, the seeded test split)
// and the loss; the weights file gives the model (its spec is in the file's metadata, so a
// smoothed model is evaluated as trained). E.g. the training accuracy of the final model, which
// training itself does not compute (its epoch records carry the mini-batch loss).

/** The splits a run can be evaluated on. */
export const EVALUATION_SPLITS = ["train", "validation", "test"] as const;
export type EvaluationSplit = (typeof EVALUATION_SPLITS)[number];

/** Which weights of the run: the final model, or the last or best checkpoint. */
export const EVALUATION_WEIGHTS = ["model", "last", "best"] as const;
export type EvaluationWeights = (typeof EVALUATION_WEIGHTS)[number];

/** Options of {@link evaluateRun}. */
export interface EvaluateRunOptions {
  /** Splits to evaluate (default all the run has). */
  splits?: readonly EvaluationSplit[];
  /** Weights to evaluate (default `model`, the final model.safetensors). */
  weights?: EvaluationWeights;
  backend: Backend;
}

/** What {@link evaluateRun} returns: the weights file and one evaluation per split present. */
export interface RunEvaluation {
  weights: string;
  /** Training epochs and steps of the weights, when the file records them. */
  epoch?: number;
  step?: number;
  splits: Partial<Record<EvaluationSplit, Evaluation>>;
}

/** The file of `weights` in run directory `dir`. */
function weightsFile(dir: string, weights: EvaluationWeights): string {
  return weights === "model"
    ? join(dir, "model.safetensors")
    : join(dir, "checkpoints", weights === "last" ? "last.safetensors" : "best.safetensors");
}

/**
 * Evaluates the weights of run directory `dir` (of `chainopt train` or a sweep task) on its
 * splits: data loss (without the regularizer, as the epoch records) and accuracy for labelled
 * data. Every check (run directory, weights, splits asked for, shapes) runs before the data are
 * evaluated; nothing is written.
 */
export async function evaluateRun(dir: string, options: EvaluateRunOptions): Promise<RunEvaluation> {
  const abs = resolve(dir);
  const config = readRunTrainConfig(abs);
  const weights = options.weights ?? "model";
  if (!(EVALUATION_WEIGHTS as readonly string[]).includes(weights))
    throw new Error(`--weights: expected one of ${EVALUATION_WEIGHTS.join(", ")}, got ${JSON.stringify(weights)}`);
  for (const s of options.splits ?? [])
    if (!(EVALUATION_SPLITS as readonly string[]).includes(s))
      throw new Error(`--split: expected some of ${EVALUATION_SPLITS.join(", ")}, got ${JSON.stringify(s)}`);
  const file = weightsFile(abs, weights);
  if (!existsSync(file))
    throw new Error(`${file}: not found${weights === "model" ? " (the run has not finished: evaluate --weights last)" : ""}`);
  const chain = chainOfModelFile(file, options.backend);
  if (!chain) throw new Error(`${file}: not a chainopt model (no model spec in its metadata)`);
  const data = await loadTrainingData(config);
  if (data.train.inputShape.join("x") !== chain.inputShape.join("x"))
    throw new Error(
      `${file}: the model reads inputs of shape ${chain.inputShape.join("x")}, ${config.dataset} has ${data.train.inputShape.join("x")}`,
    );
  const unsupervised = unsupervisedObjective(config);
  if (unsupervised) dropLabels(data);
  const objective = unsupervised ?? createObjective(config.loss, config.l2);
  const present: Partial<Record<EvaluationSplit, Dataset>> = { train: data.train, validation: data.validation, test: data.test };
  const wanted = options.splits ?? EVALUATION_SPLITS.filter((s) => present[s] !== undefined && (present[s]?.size ?? 0) > 0);
  for (const s of wanted)
    if (!present[s] || present[s]?.size === 0)
      throw new Error(`--split ${s}: run ${abs} has no ${s} split (${config.dataset}, validation ${config.validation})`);
  const ck = loadCheckpoint(file, chain);
  const splits: Partial<Record<EvaluationSplit, Evaluation>> = {};
  for (const s of wanted) {
    splits[s] = evaluateDataset(chain, objective, ck.params, present[s] as Dataset, { state: ck.state, batchSize: config.evalBatchSize });
  }
  return { weights: file, epoch: ck.epoch, step: ck.step, splits };
}
