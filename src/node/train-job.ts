import { existsSync, readFileSync } from "node:fs";
import { z } from "zod";
import type { FloatArray } from "../core/dtype.js";
import { Chain } from "../chain/chain.js";
import { getPreset, presetNames } from "../chain/presets.js";
import { type ModelSpec, type ModelSpecInput, parseModelSpec } from "../chain/spec.js";
import { createObjective } from "../objectives/objective.js";
import { createOptimizer } from "../optim/aliases.js";
import { createSchedule } from "../optim/schedules.js";
import { stateFromTensors, stateToTensors } from "../optim/state.js";
import type { LearningRate } from "../optim/transform.js";
import { type EpochRecord, type StepProgress, Trainer, type TrainerOptions } from "../train/trainer.js";
import { type LoadedDataset, loadDataset } from "./datasets.js";
import { useBestBackend } from "./index.js";
import { RunDirectory } from "./run-dir.js";
import { importTorchSafetensors } from "./torch-interop.js";
import { loadCheckpoint } from "./checkpoint.js";

// The `chainopt train` job: resolves a configuration (command-line flags and/or a JSON file,
// validated with errors naming the field), loads data, builds the chain and optimizer, trains with
// a run directory (config, metrics, checkpoints, final model), and reports per-epoch records.

/** Schema of a training configuration (the JSON accepted by `--config`, and the flags' target). */
export const trainConfigSchema = z
  .object({
    model: z.union([z.string(), z.record(z.string(), z.unknown())]).default("mlp"),
    /** Hidden widths of the `mlp` preset. */
    widths: z.array(z.number().int().positive()).optional(),
    activation: z.enum(["relu", "softplus", "sigmoid", "tanh"]).optional(),
    dataset: z.string().default("mnist"),
    /** Use only the first N training (and test) samples. */
    limit: z.number().int().positive().optional(),
    /** Validation samples held out of the training set (count or fraction). */
    validation: z.number().nonnegative().default(5000),
    normalize: z.boolean().default(true),
    epochs: z.number().int().positive().default(5),
    batchSize: z.number().int().positive().default(128),
    evalBatchSize: z.number().int().positive().default(1000),
    seed: z.number().int().nonnegative().default(0),
    dtype: z.enum(["float32", "float64"]).default("float32"),
    loss: z.enum(["logistic", "squared"]).default("logistic"),
    l2: z.number().nonnegative().default(0),
    optimizer: z.string().default("sgd"),
    lr: z.number().positive().default(0.1),
    momentum: z.number().min(0).max(1).optional(),
    weightDecay: z.number().nonnegative().optional(),
    schedule: z.enum(["constant", "inverse-power", "step", "exponential", "cosine"]).default("constant"),
    schedulePower: z.number().positive().optional(),
    warmupSteps: z.number().int().nonnegative().default(0),
    clipNorm: z.number().positive().optional(),
    clipValue: z.number().positive().optional(),
    average: z.enum(["polyak", "ema"]).optional(),
    earlyStopping: z.number().int().positive().optional(),
    shuffle: z.boolean().default(true),
    onNan: z.enum(["stop", "skip"]).default("stop"),
    threads: z.number().int().positive().optional(),
    out: z.string().optional(),
    init: z.string().optional(),
  })
  .strict();

/** A training configuration as written by a user. */
export type TrainConfigInput = z.input<typeof trainConfigSchema>;
/** A validated training configuration. */
export type TrainConfig = z.output<typeof trainConfigSchema>;

/** Validates a configuration, naming each field at fault. */
export function parseTrainConfig(input: unknown, source = "training configuration"): TrainConfig {
  const r = trainConfigSchema.safeParse(input);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message}`).join("\n");
  throw new Error(`invalid ${source}:\n${lines}`);
}

/** Reads a JSON configuration file (errors name the file). */
export function readConfigFile(file: string): unknown {
  if (!existsSync(file)) throw new Error(`${file}: configuration file not found`);
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
}

/** Resolves `--model`: a preset name or a JSON spec file, adapted to the data's input shape. */
export function resolveModelSpec(config: Pick<TrainConfig, "model" | "widths" | "activation">, inputShape: readonly number[], classes: number): ModelSpec {
  const { model } = config;
  let spec: ModelSpecInput;
  let source = "model spec";
  if (typeof model !== "string") spec = model as ModelSpecInput;
  else if (model.endsWith(".json") || existsSync(model)) {
    source = model;
    spec = readConfigFile(model) as ModelSpecInput;
  } else {
    if (!presetNames().includes(model)) throw new Error(`model: unknown preset or file "${model}"; presets: ${presetNames().join(", ")}, or a path to a JSON spec`);
    spec = getPreset(model, { input: [...inputShape], classes, widths: config.widths, activation: config.activation });
  }
  const parsed = parseModelSpec(spec, source);
  const want = inputShape.join("x");
  if (parsed.input.join("x") !== want) throw new Error(`model.input: the model expects inputs of shape ${parsed.input.join("x")} but the data set has ${want}`);
  return parsed;
}

/** Events of a training job, for the command line's printing. */
export interface TrainJobEvents {
  onStart?(info: { run: RunDirectory; chain: Chain; backend: string; config: TrainConfig; resumedFromEpoch: number; trainSize: number }): void;
  onStep?(progress: StepProgress): void;
  onEpoch?(record: EpochRecord): void;
}

/** The final result of a training job. */
export interface TrainResult {
  epochs: EpochRecord[];
  testLoss?: number;
  testAccuracy?: number;
  seconds: number;
  runDir: string;
  params: FloatArray;
  interrupted: boolean;
}

/**
 * Runs a training job. With `resume`, continues the run in that directory from its last checkpoint
 * (the configuration is read from its config.json); the result is bit-identical to an
 * uninterrupted run with the same configuration.
 */
export async function runTrainJob(
  input: TrainConfigInput | { resume: string; epochs?: number },
  events: TrainJobEvents = {},
  signal?: { stopRequested: boolean },
): Promise<TrainResult> {
  let run: RunDirectory;
  let config: TrainConfig;
  if ("resume" in input && input.resume) {
    run = RunDirectory.open(input.resume);
    const saved = readConfigFile(run.path("config.json")) as { train?: unknown };
    config = parseTrainConfig(saved.train, `${run.path("config.json")} (train)`);
    if (input.epochs !== undefined) config = { ...config, epochs: input.epochs };
  } else {
    config = parseTrainConfig(input);
    run = RunDirectory.create({ out: config.out, name: `${typeof config.model === "string" ? config.model : "model"}-${config.dataset}` });
  }
  const backend = useBestBackend({ threads: config.threads, quiet: false });
  const data: LoadedDataset = await loadDataset(config.dataset, {
    limit: config.limit,
    validation: config.validation > 0 ? config.validation : undefined,
    seed: config.seed,
    normalize: config.normalize,
    standardize: true,
  });
  const classes = data.train.classes ?? data.train.targetSize ?? 1;
  const spec = resolveModelSpec(config, data.train.inputShape, classes);
  const chain = new Chain(spec, { dtype: config.dtype, backend });
  if (data.train.labels && config.loss === "logistic" && chain.outputSize !== classes) {
    throw new Error(`model: the last layer has ${chain.outputSize} outputs but ${config.dataset} has ${classes} classes`);
  }
  const objective = createObjective(config.loss, config.l2);
  const stepsPerEpoch = Math.ceil(data.train.size / config.batchSize);
  const lr: LearningRate =
    config.schedule === "constant" && config.warmupSteps === 0
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
  const optimizer = createOptimizer(config.optimizer, optimizerOptions);

  let params = chain.initParams(config.seed);
  let state = chain.initState();
  if (config.init) {
    const imported = config.init.endsWith(".safetensors") && !isChainoptCheckpoint(config.init) ? importTorchSafetensors(chain, config.init) : null;
    if (imported) {
      params = imported.params;
      if (imported.state) state = imported.state;
    } else {
      const ck = loadCheckpoint(config.init, chain);
      params = ck.params;
      state = ck.state;
    }
  }
  const trainerOptions: TrainerOptions = {
    chain,
    objective,
    optimizer,
    learningRate: lr,
    batchSize: config.batchSize,
    seed: config.seed,
    shuffle: config.shuffle,
    evalBatchSize: config.evalBatchSize,
    average: config.average ? { kind: config.average } : undefined,
    earlyStopping: config.earlyStopping ? { patience: config.earlyStopping } : undefined,
    onNaN: config.onNan,
    onStep: events.onStep,
  };
  const trainer = new Trainer(trainerOptions, { params, state });
  let resumedFromEpoch = 0;
  const last = run.loadLastCheckpoint(chain);
  if (last) {
    const optState = last.optimizer ? stateFromTensors(trainer.optimizerState, { tensors: last.optimizer.tensors, scalars: last.optimizer.scalars ?? {} }) : trainer.optimizerState;
    const extra = last.extra as { average?: { count: number }; earlyStopping?: { bestValue: number; bestEpoch: number; badEpochs: number } };
    trainer.restore({
      params: last.params,
      state: last.state,
      optimizerState: optState,
      rng: last.rng.data,
      epoch: last.epoch,
      step: last.step,
      average: extra.average && last.optimizer?.tensors.__average ? { count: extra.average.count, averaged: last.optimizer.tensors.__average } : null,
      earlyStopping: extra.earlyStopping ?? null,
      bestParams: last.optimizer?.tensors.__best ?? null,
    });
    resumedFromEpoch = last.epoch;
  } else {
    run.writeConfig({
      name: "train",
      model: spec,
      optimizer: { name: config.optimizer, ...optimizerOptions, lr: config.lr, schedule: config.schedule },
      data: { name: config.dataset, train: data.train.size, validation: data.validation?.size ?? 0, test: data.test?.size ?? 0 },
      seed: config.seed,
      backend: { name: backend.name, threads: backend.threads, description: backend.describe() },
      train: config,
    });
  }
  events.onStart?.({ run, chain, backend: backend.describe(), config, resumedFromEpoch, trainSize: data.train.size });

  const started = performance.now();
  const epochs: EpochRecord[] = run.readMetrics().filter((m) => m.type === "epoch").map((m) => m.record as EpochRecord).filter(Boolean);
  let interrupted = false;
  while (trainer.epoch < config.epochs && !trainer.stopped) {
    const record = trainer.runEpoch({ train: data.train, validation: data.validation });
    epochs.push(record);
    run.logMetrics({
      type: "epoch",
      step: trainer.step,
      epoch: record.epoch,
      train_loss: record.trainLoss,
      validation_loss: record.valLoss,
      validation_accuracy: record.valAccuracy,
      lr: record.learningRate,
      grad_norm: record.gradNorm,
      seconds: record.seconds,
      record,
    });
    saveTrainerCheckpoint(run, trainer, config);
    events.onEpoch?.(record);
    if (signal?.stopRequested) {
      interrupted = true;
      break;
    }
  }
  const final = trainer.finalParams();
  let testLoss: number | undefined;
  let testAccuracy: number | undefined;
  if (!interrupted && data.test) {
    const ev = trainer.evaluate(data.test);
    testLoss = ev.loss;
    testAccuracy = ev.accuracy;
    run.logMetrics({ type: "final", step: trainer.step, epoch: trainer.epoch, test_loss: testLoss, test_accuracy: testAccuracy });
  }
  if (!interrupted) {
    run.saveModel(chain, final, trainer.state, { step: trainer.step, epoch: trainer.epoch });
    run.writeSummary({ epochs: trainer.epoch, steps: trainer.step, testLoss, testAccuracy, seconds: run.wall() });
  }
  return { epochs, testLoss, testAccuracy, seconds: (performance.now() - started) / 1000, runDir: run.dir, params: final, interrupted };
}

function isChainoptCheckpoint(file: string): boolean {
  try {
    const buf = readFileSync(file);
    const n = Number(buf.readBigUInt64LE(0));
    return buf.subarray(8, 8 + n).toString("utf8").includes("chainopt.checkpoint");
  } catch {
    return false;
  }
}

function saveTrainerCheckpoint(run: RunDirectory, trainer: Trainer, config: TrainConfig): void {
  const s = trainer.snapshot();
  const saved = stateToTensors(s.optimizerState);
  const tensors: Record<string, FloatArray> = { ...saved.tensors };
  if (s.average) tensors.__average = s.average.averaged;
  if (s.bestParams) tensors.__best = s.bestParams;
  run.saveCheckpoint(trainer.chain, {
    params: s.params,
    state: s.state,
    optimizer: { tensors, scalars: saved.scalars, info: { name: config.optimizer } },
    rng: { data: s.rng },
    step: s.step,
    epoch: s.epoch,
    extra: {
      average: s.average ? { count: s.average.count } : undefined,
      earlyStopping: s.earlyStopping ?? undefined,
    },
  });
}
