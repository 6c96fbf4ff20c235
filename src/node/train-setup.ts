import { existsSync } from "node:fs";
import { join } from "node:path";
import { type CertifiedState, dataNorms } from "../certify/projected-sgd.js";
import type { Chain } from "../chain/chain.js";
import { getPreset, presetNames } from "../chain/presets.js";
import { type ModelSpec, type ModelSpecInput, parseModelSpec } from "../chain/spec.js";
import type { FloatArray } from "../core/dtype.js";
import { allFinite } from "../core/vector.js";
import type { Dataset } from "../data/dataset.js";
import { createOptimizer } from "../optim/aliases.js";
import { createSchedule } from "../optim/schedules.js";
import type { GradientTransformation, LearningRate } from "../optim/transform.js";
import { type SmoothResult, smoothingSummary, smoothModelSpec } from "../smoothing/smooth.js";
import { jsonSafe, writeJsonAtomic } from "./atomic.js";
import { loadCheckpoint } from "./checkpoint.js";
import { DEFAULT_TEST_SPLIT, type LoadedDataset, loadDataset } from "./datasets.js";
import { firstOrderArmijo, wrapWithArmijo } from "./line-search-config.js";
import { readSafetensorsHeader } from "./safetensors.js";
import { importTorchSafetensors } from "./torch-interop.js";
import { readConfigFile, type TrainConfig } from "./train-config.js";

// The parts `chainopt train` builds from a resolved configuration (train-config.ts) before it
// trains (train-job.ts): the model spec (preset or file, smoothed on request), the step rule
// (schedule and optimizer), the initial weights (--init), and the smoothing's records in the run
// directory. Each error names the flag or file at fault.

/** Resolves `--model`: a preset name or a JSON spec file, adapted to the data's input shape. */
export function resolveModelSpec(
  config: Pick<TrainConfig, "model" | "widths" | "activation">,
  inputShape: readonly number[],
  classes: number,
): ModelSpec {
  const { model } = config;
  let spec: ModelSpecInput;
  let source = "model spec";
  if (typeof model !== "string") spec = model as ModelSpecInput;
  else if (model.endsWith(".json") || existsSync(model)) {
    source = model;
    spec = readConfigFile(model) as ModelSpecInput;
  } else {
    if (!presetNames().includes(model))
      throw new Error(`model: unknown preset or file "${model}"; presets: ${presetNames().join(", ")}, or a path to a JSON spec`);
    spec = getPreset(model, { input: [...inputShape], classes, widths: config.widths, activation: config.activation });
  }
  const parsed = parseModelSpec(spec, source);
  const want = inputShape.join("x");
  if (parsed.input.join("x") !== want)
    throw new Error(`model.input: the model expects inputs of shape ${parsed.input.join("x")} but the data set has ${want}`);
  return parsed;
}

/**
 * `--smooth-epsilon ε`: the model with relu/maxPool2d replaced by smooth versions so that
 * |F − F_ε| ≤ ε on B_R for batches of N samples of this data set (src/smoothing, docs/smoothing.md);
 * without it the spec itself and no smoothing.
 */
export function smoothedModelSpec(
  config: TrainConfig,
  spec: ModelSpec,
  train: Dataset,
): { spec: ModelSpec; smoothing: SmoothResult | null } {
  if (config.smoothEpsilon === undefined) return { spec, smoothing: null };
  const r = smoothModelSpec(spec, {
    epsilon: config.smoothEpsilon,
    radii: config.radii ?? config.radius ?? 1,
    batch: Math.min(config.batchSize, train.size),
    maxSampleNorm: dataNorms(train, config.loss).maxSampleNorm,
    loss: config.loss,
    l2: config.l2,
  });
  return { spec: r.spec, smoothing: r.certificate };
}

/**
 * The step rule of a run: the learning rate (the certified step 1/L_F of a certified run, else
 * `--lr` under `--schedule` with `--warmup-steps`), the optimizer's options, and the optimizer
 * (wrapped by the Armijo line search of `--line-search armijo`; plain SGD, unused, for second-order
 * runs, which step with their own stepper).
 */
export function stepRule(
  config: TrainConfig,
  stepsPerEpoch: number,
  certified: CertifiedState | null,
  secondOrder: boolean,
): { lr: LearningRate; optimizer: GradientTransformation; optimizerOptions: Record<string, unknown> } {
  const lr: LearningRate = certified
    ? () => certified.current.stepSize
    : config.schedule === "constant" && config.warmupSteps === 0
      ? config.lr
      : createSchedule(config.schedule, {
          lr: config.lr,
          power: config.schedulePower,
          totalSteps: config.schedule === "cosine" ? config.epochs * stepsPerEpoch : undefined,
          every: config.schedule === "step" ? Math.max(1, Math.floor((config.epochs * stepsPerEpoch) / 3)) : undefined,
          rate: config.schedule === "exponential" ? 0.1 : undefined,
          transitionSteps: config.schedule === "exponential" ? config.epochs * stepsPerEpoch : undefined,
          warmupSteps: config.warmupSteps,
        });
  const optimizerOptions: Record<string, unknown> = { lr };
  if (config.momentum !== undefined) optimizerOptions.momentum = config.momentum;
  if (config.weightDecay !== undefined) optimizerOptions.weightDecay = config.weightDecay;
  if (config.clipNorm !== undefined) optimizerOptions.clipNorm = config.clipNorm;
  if (config.clipValue !== undefined) optimizerOptions.clipValue = config.clipValue;
  const optimizer = firstOrderArmijo(config)
    ? wrapWithArmijo(config, (unit) => createOptimizer(config.optimizer, { ...optimizerOptions, lr: unit })) // Armijo line search
    : createOptimizer(secondOrder ? "sgd" : config.optimizer, optimizerOptions);
  return { lr, optimizer, optimizerOptions };
}

/** Initial weights: parameters, state, and where they came from (`torch`, `chainopt`, or null when initialized). */
export interface InitialWeights {
  params: FloatArray;
  state: FloatArray;
  source: string | null;
}

/** The chain's own initialization with `seed`. */
export function defaultInitialWeights(chain: Chain, seed: number): InitialWeights {
  return { params: chain.initParams(seed), state: chain.initState(), source: null };
}

/**
 * The weights of `--init` (a PyTorch state_dict in safetensors, or a chainopt checkpoint), else the
 * chain's initialization. Errors name the file (missing, malformed, non-finite weights).
 */
export function initialWeights(chain: Chain, config: Pick<TrainConfig, "init" | "seed">): InitialWeights {
  if (!config.init) return defaultInitialWeights(chain, config.seed);
  let params: FloatArray;
  let state = chain.initState();
  let source: string;
  const imported =
    config.init.endsWith(".safetensors") && !isChainoptCheckpoint(config.init) ? importTorchSafetensors(chain, config.init) : null;
  if (imported) {
    params = imported.params;
    if (imported.state) state = imported.state;
    source = "torch";
  } else {
    const ck = loadCheckpoint(config.init, chain);
    params = ck.params;
    state = ck.state;
    source = "chainopt";
  }
  if (!allFinite(params)) throw new Error(`init: ${config.init}: the weights contain NaN or infinite values`);
  return { params, state, source };
}

function isChainoptCheckpoint(file: string): boolean {
  try {
    // The header only (the file may be large): chainopt checkpoints carry their format in __metadata__.
    return JSON.stringify(readSafetensorsHeader(file).metadata).includes("chainopt.checkpoint");
  } catch {
    return false;
  }
}

/**
 * The smoothing's records in a run directory: its full record (smoothing-certificate.json), and its
 * per-layer summary in the report's schema (smoothing.json, src/report/schema.ts).
 */
export function writeSmoothingRecords(dir: string, smoothing: SmoothResult): void {
  writeJsonAtomic(join(dir, "smoothing-certificate.json"), jsonSafe(smoothingSummary(smoothing)));
  const layers = smoothing.layers.filter((l) => l.layer > 0);
  writeJsonAtomic(join(dir, "smoothing.json"), {
    title: `Smoothing (ε = ${smoothing.epsilon}, ${smoothing.target})`,
    layers: layers.map((l) => `${l.layer} ${l.types.join("+")}`),
    quantities: {
      radius: layers.map((l) => l.radius),
      mu: layers.map((l) => (l.parameters.length > 0 ? Math.max(...l.parameters) : 0)),
    },
    log: true,
  });
}

/**
 * The data of a training configuration, split as `chainopt train` splits it (limit, validation,
 * the seeded test split of sets without one, normalization): the same samples for the same
 * configuration, so that a run's model can be evaluated again on exactly its splits.
 */
export function loadTrainingData(config: TrainConfig): Promise<LoadedDataset> {
  return loadDataset(config.dataset, {
    limit: config.limit,
    validation: config.validation === "auto" || config.validation > 0 ? config.validation : undefined,
    // Sets without an official test split (sklearn) get a fixed, seeded one (docs/training.md).
    test: DEFAULT_TEST_SPLIT.fraction,
    testSeed: DEFAULT_TEST_SPLIT.seed,
    seed: config.seed,
    normalize: config.normalize,
    standardize: true,
  });
}
