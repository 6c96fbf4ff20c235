import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { z } from "zod";
import { Chain } from "../chain/chain.js";
import { getPreset, presetNames } from "../chain/presets.js";
import { type ModelSpec, type ModelSpecInput, parseModelSpec } from "../chain/spec.js";
import type { FloatArray } from "../core/dtype.js";
import { allFinite } from "../core/vector.js";
import { createObjective } from "../objectives/objective.js";
import { createOptimizer, OPTIMIZER_NAMES } from "../optim/aliases.js";
import { createSchedule } from "../optim/schedules.js";
import { stateFromTensors, stateToTensors } from "../optim/state.js";
import type { LearningRate } from "../optim/transform.js";
import {
  type EpochRecord,
  NumericalFaultError,
  type StepProgress,
  Trainer,
  type TrainerOptions,
  type TrainerSnapshot,
} from "../train/trainer.js";
import { jsonSafe, writeFileAtomic, writeJsonAtomic } from "./atomic.js";
import { type LoadedCheckpoint, loadCheckpoint } from "./checkpoint.js";
import { datasetNames, type LoadedDataset, loadDataset } from "./datasets.js";
import { useBestBackend } from "./index.js";
import { type MetricRecord, RunDirectory } from "./run-dir.js";
import { importTorchSafetensors } from "./torch-interop.js";

// The `chainopt train` job: resolves a configuration (command-line flags and/or a JSON file,
// validated with errors naming the field), loads data, builds the chain and optimizer, trains with
// a run directory (config, metrics, checkpoints, final model), and reports per-epoch records.
//
// Order of work: everything that can fail on bad input (configuration, data set name and files,
// model spec and shapes, optimizer options, --init weights) is checked *before* the run directory
// is created, so a rejected command writes nothing. Then config.json and an epoch-0 checkpoint are
// written, and a checkpoint after every epoch (metrics line first, checkpoint second: a kill between
// the two is repaired by RunDirectory.open, which drops metric lines newer than the checkpoint).

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

/** Events of a training job, for the command line's printing. */
export interface TrainJobEvents {
  onStart?(info: {
    run: RunDirectory;
    chain: Chain;
    backend: string;
    config: TrainConfig;
    resumedFromEpoch: number;
    trainSize: number;
  }): void;
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
  /** Stopped on request (SIGINT) after saving a checkpoint; resumable with `--resume`. */
  interrupted: boolean;
  /** Early stopping ended the run (the final parameters are the best epoch's). */
  stoppedEarly: boolean;
}

/** `--resume RUN_DIR`, optionally with `epochs` to extend the run. Any other key is an error. */
export interface ResumeInput {
  resume: string;
  epochs?: number;
  [flag: string]: unknown;
}

/** The command-line spelling of a configuration key (for error messages). */
export function flagName(key: string, value?: unknown): string {
  const kebab = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  return value === false ? `--no-${kebab}` : `--${kebab}`;
}

/** Reads the training configuration of a run directory (without modifying the directory). */
export function readRunTrainConfig(dir: string): TrainConfig {
  const configPath = join(resolve(dir), "config.json");
  if (!existsSync(configPath)) throw new Error(`--resume ${dir}: not a run directory (no config.json)`);
  const saved = readConfigFile(configPath) as { train?: unknown };
  if (saved === null || typeof saved !== "object" || saved.train === undefined) {
    throw new Error(`${configPath}: no "train" section (not a run of chainopt train)`);
  }
  return parseTrainConfig(saved.train, `${configPath} (train)`);
}

/** What {@link prepareTrainJob} builds: everything but the run directory and the trainer. */
interface Prepared {
  backend: ReturnType<typeof useBestBackend>;
  data: LoadedDataset;
  spec: ModelSpec;
  chain: Chain;
  lr: LearningRate;
  optimizerOptions: Record<string, unknown>;
  trainerOptions: TrainerOptions;
  init: { params: FloatArray; state: FloatArray; source: string | null };
}

/** Builds and validates everything a run needs; writes nothing. Errors name the field at fault. */
async function prepareTrainJob(config: TrainConfig, events: TrainJobEvents, options: { skipInit: boolean }): Promise<Prepared> {
  if (!(datasetNames as readonly string[]).includes(config.dataset)) {
    throw new Error(`dataset: unknown data set ${JSON.stringify(config.dataset)}; known: ${datasetNames.join(", ")}`);
  }
  if (!(OPTIMIZER_NAMES as readonly string[]).includes(config.optimizer)) {
    throw new Error(`optimizer: unknown optimizer ${JSON.stringify(config.optimizer)}; known: ${OPTIMIZER_NAMES.join(", ")}`);
  }
  if (config.init && !existsSync(config.init)) throw new Error(`init: ${config.init}: file not found`);
  const backend = useBestBackend({ threads: config.threads, quiet: false });
  const data: LoadedDataset = await loadDataset(config.dataset, {
    limit: config.limit,
    validation: config.validation > 0 ? config.validation : undefined,
    seed: config.seed,
    normalize: config.normalize,
    standardize: true,
  });
  if (data.train.size === 0)
    throw new Error(`dataset: ${config.dataset} has no training samples left (limit ${config.limit}, validation ${config.validation})`);
  const classes = data.train.classes ?? data.train.targetSize ?? 1;
  const spec = resolveModelSpec(config, data.train.inputShape, classes);
  let chain: Chain;
  try {
    chain = new Chain(spec, { dtype: config.dtype, backend });
  } catch (error) {
    // Shape errors name the layer (`layers[i]: …`); say which model they are about.
    const where = typeof config.model === "string" ? config.model : "model spec";
    throw new Error(`model ${where}: ${(error as Error).message}`);
  }
  if (data.train.labels && config.loss === "logistic" && chain.outputSize !== classes) {
    throw new Error(`model: the last layer has ${chain.outputSize} outputs but ${config.dataset} has ${classes} classes`);
  }
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

  let params: FloatArray;
  let state = chain.initState();
  let source: string | null = null;
  if (config.init && !options.skipInit) {
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
  } else params = chain.initParams(config.seed);
  const trainerOptions: TrainerOptions = {
    chain,
    objective: createObjective(config.loss, config.l2),
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
  return { backend, data, spec, chain, lr, optimizerOptions, trainerOptions, init: { params, state, source } };
}

/**
 * Runs a training job. With `resume`, continues the run in that directory from its last checkpoint
 * (the configuration is read from its config.json; only `epochs` may be given, to extend the run);
 * the result is bit-identical to an uninterrupted run with the same configuration.
 */
export async function runTrainJob(
  input: TrainConfigInput | ResumeInput,
  events: TrainJobEvents = {},
  signal?: { stopRequested: boolean },
): Promise<TrainResult> {
  const resumeDir = "resume" in input && input.resume !== undefined ? resolve(String(input.resume)) : null;
  let config: TrainConfig;
  let extendTo: number | undefined;
  let hasCheckpoint = false;
  if (resumeDir !== null) {
    const given = Object.entries(input).filter(([k, v]) => k !== "resume" && k !== "epochs" && v !== undefined);
    if (given.length > 0) {
      throw new Error(
        `--resume continues a run with the configuration saved in its config.json; it cannot be combined with ${given.map(([k, v]) => flagName(k, v)).join(", ")} (only --epochs, to extend the run)`,
      );
    }
    config = readRunTrainConfig(resumeDir);
    const epochs = (input as ResumeInput).epochs;
    if (epochs !== undefined) {
      if (!Number.isInteger(epochs) || epochs < 1) throw new Error(`--epochs: expected a positive integer, got ${epochs}`);
      if (epochs !== config.epochs) extendTo = epochs;
      config = { ...config, epochs };
    }
    hasCheckpoint = existsSync(join(resumeDir, "checkpoints", "last.safetensors"));
  } else {
    config = parseTrainConfig(input);
    if (config.out && existsSync(config.out) && readdirSync(config.out).length > 0) {
      throw new Error(
        `--out ${config.out}: the directory exists and is not empty (use --resume ${config.out} to continue that run, or another --out)`,
      );
    }
  }

  const prepared = await prepareTrainJob(config, events, { skipInit: hasCheckpoint });
  const { backend, data, spec, chain } = prepared;

  // Only now, with every input validated, does the job touch the file system.
  const run =
    resumeDir !== null
      ? RunDirectory.open(resumeDir)
      : RunDirectory.create({ out: config.out, name: `${typeof config.model === "string" ? config.model : "model"}-${config.dataset}` });
  const trainer = new Trainer(prepared.trainerOptions, { params: prepared.init.params, state: prepared.init.state });
  let resumedFromEpoch = 0;
  const last = resumeDir !== null ? run.loadLastCheckpoint(chain) : null;
  if (last) {
    trainer.restore(snapshotFromCheckpoint(trainer, last));
    resumedFromEpoch = last.epoch;
    if (existsSync(run.summaryPath) && (trainer.epoch >= config.epochs || trainer.stopped)) {
      throw new Error(
        `${run.dir}: the run is already complete (${trainer.epoch} epochs${trainer.stopped ? ", ended by early stopping" : ""}); to train longer pass --epochs N with N > ${trainer.epoch}`,
      );
    }
  }
  if (resumeDir === null) {
    run.writeConfig({
      name: "train",
      model: spec,
      optimizer: { name: config.optimizer, ...prepared.optimizerOptions, lr: config.lr, schedule: config.schedule },
      data: { name: config.dataset, train: data.train.size, validation: data.validation?.size ?? 0, test: data.test?.size ?? 0 },
      seed: config.seed,
      backend: { name: backend.name, threads: backend.threads, description: backend.describe() },
      init: config.init ? { file: resolve(config.init), format: prepared.init.source } : undefined,
      train: config,
    });
  } else {
    // A resumed run: drop the final record of a completed run being extended (a new one follows),
    // and record the new epoch count so that a later --resume continues to it.
    const metrics = run.readMetrics();
    if (metrics.some((m) => m.type === "final")) {
      writeFileAtomic(
        run.metricsPath,
        metrics
          .filter((m) => m.type !== "final")
          .map((m) => `${JSON.stringify(m)}\n`)
          .join(""),
      );
    }
    if (extendTo !== undefined) {
      const saved = run.readConfig<Record<string, unknown> & { train: TrainConfig }>();
      writeJsonAtomic(run.configPath, { ...saved, train: { ...saved.train, epochs: extendTo } });
    }
  }
  // The starting point (epoch 0), so that a run killed or faulting in its first epoch keeps a
  // good checkpoint and can be resumed.
  if (!last) saveTrainerCheckpoint(run, trainer, config);
  events.onStart?.({ run, chain, backend: backend.describe(), config, resumedFromEpoch, trainSize: data.train.size });

  const started = performance.now();
  const epochs: EpochRecord[] = run
    .readMetrics()
    .filter((m) => m.type === "epoch" && m.record !== undefined)
    .map((m) => reviveNumbers(m.record) as EpochRecord);
  let interrupted = false;
  while (trainer.epoch < config.epochs && !trainer.stopped) {
    if (signal?.stopRequested) {
      interrupted = true;
      break;
    }
    let record: EpochRecord;
    try {
      // Asynchronous so that Ctrl-C (SIGINT) is seen during the epoch.
      record = await trainer.runEpochAsync({ train: data.train, validation: data.validation });
    } catch (error) {
      if (error instanceof NumericalFaultError) throw faultStop(run, trainer, error);
      throw error;
    }
    epochs.push(record);
    const metric: MetricRecord = {
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
    };
    if (record.skippedSteps > 0) metric.skipped_steps = record.skippedSteps;
    run.logMetrics(metric);
    saveTrainerCheckpoint(run, trainer, config);
    events.onEpoch?.(record);
    await new Promise<void>((resolve) => setImmediate(resolve)); // let a pending SIGINT handler run
    if (signal?.stopRequested && trainer.epoch < config.epochs && !trainer.stopped) {
      interrupted = true;
      break;
    }
  }
  const final = trainer.finalParams();
  let testLoss: number | undefined;
  let testAccuracy: number | undefined;
  if (!interrupted) {
    if (data.test) {
      const ev = trainer.evaluate(data.test, final);
      testLoss = ev.loss;
      testAccuracy = ev.accuracy;
      run.logMetrics({ type: "final", step: trainer.step, epoch: trainer.epoch, test_loss: testLoss, test_accuracy: testAccuracy });
    }
    run.saveModel(chain, final, trainer.state, { step: trainer.step, epoch: trainer.epoch });
    run.writeSummary({
      epochs: trainer.epoch,
      steps: trainer.step,
      testLoss,
      testAccuracy,
      stoppedEarly: trainer.stopped,
      bestEpoch: trainer.earlyStopping?.bestEpoch,
      seconds: run.wall(),
    });
  }
  return {
    epochs,
    testLoss,
    testAccuracy,
    seconds: (performance.now() - started) / 1000,
    runDir: run.dir,
    params: final,
    interrupted,
    stoppedEarly: trainer.stopped,
  };
}

/** Logs a numerical fault and returns the error to throw, naming the last good checkpoint (kept as is). */
function faultStop(run: RunDirectory, trainer: Trainer, error: NumericalFaultError): NumericalFaultError {
  run.logMetrics({
    type: "fault",
    step: error.step,
    epoch: trainer.epoch + 1,
    what: error.what,
    component: error.component,
    message: error.message,
  });
  const last = run.checkpointIndex().last;
  const kept = last ? `; the last good checkpoint is kept: ${run.lastCheckpointPath} (epoch ${last.epoch}, step ${last.step})` : "";
  return new NumericalFaultError(`${error.message}${kept}`, error.step, error.component, error.what);
}

/** JSON-safe numbers ("NaN", "Infinity", "-Infinity" strings) back to numbers, one level deep. */
function reviveNumbers(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = v === "NaN" || v === "Infinity" || v === "-Infinity" ? Number(v) : v;
  return out;
}

function isChainoptCheckpoint(file: string): boolean {
  try {
    const buf = readFileSync(file);
    const n = Number(buf.readBigUInt64LE(0));
    return buf
      .subarray(8, 8 + n)
      .toString("utf8")
      .includes("chainopt.checkpoint");
  } catch {
    return false;
  }
}

// Trainer state beside the optimizer's in a checkpoint: tensors `optimizer.__average` (the averaged
// iterate) and `optimizer.__best` (early stopping's best parameters); counters in `extra` (JSON,
// non-finite numbers as strings).
const AVERAGE_TENSOR = "__average";
const BEST_TENSOR = "__best";

function saveTrainerCheckpoint(run: RunDirectory, trainer: Trainer, config: TrainConfig): void {
  const s = trainer.snapshot();
  const saved = stateToTensors(s.optimizerState);
  const tensors: Record<string, FloatArray> = { ...saved.tensors };
  if (s.average) tensors[AVERAGE_TENSOR] = s.average.averaged;
  if (s.bestParams) tensors[BEST_TENSOR] = s.bestParams;
  run.saveCheckpoint(trainer.chain, {
    params: s.params,
    state: s.state,
    optimizer: { tensors, scalars: saved.scalars, info: { name: config.optimizer } },
    rng: { data: s.rng },
    step: s.step,
    epoch: s.epoch,
    extra: {
      average: s.average ? { count: s.average.count } : undefined,
      earlyStopping: s.earlyStopping ? jsonSafe(s.earlyStopping) : undefined,
    },
  });
}

/** The trainer snapshot stored in a checkpoint written by {@link saveTrainerCheckpoint}. */
function snapshotFromCheckpoint(trainer: Trainer, ck: LoadedCheckpoint): TrainerSnapshot {
  const tensors: Record<string, FloatArray> = {};
  for (const [k, v] of Object.entries(ck.optimizer?.tensors ?? {})) if (k !== AVERAGE_TENSOR && k !== BEST_TENSOR) tensors[k] = v;
  const optimizerState = stateFromTensors(trainer.optimizerState, { tensors, scalars: ck.optimizer?.scalars ?? {} });
  const extra = ck.extra as { average?: { count: number }; earlyStopping?: Record<string, number | string> };
  const averaged = ck.optimizer?.tensors[AVERAGE_TENSOR];
  if (extra.average && !averaged) throw new Error(`checkpoint: the averaged iterate (optimizer.${AVERAGE_TENSOR}) is missing`);
  const es = extra.earlyStopping;
  const rng = ck.rng.data;
  if (!rng) throw new Error("checkpoint: the data-order generator state (rng.data) is missing");
  return {
    params: ck.params,
    state: ck.state,
    optimizerState,
    rng,
    epoch: ck.epoch,
    step: ck.step,
    average: extra.average && averaged ? { count: extra.average.count, averaged } : null,
    earlyStopping: es ? { bestValue: Number(es.bestValue), bestEpoch: Number(es.bestEpoch), badEpochs: Number(es.badEpochs) } : null,
    bestParams: ck.optimizer?.tensors[BEST_TENSOR] ?? null,
  };
}
