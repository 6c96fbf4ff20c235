import { existsSync, readdirSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import {
  type CertifiedState,
  type CertifiedSummary,
  certificateRecord,
  certifiedCheckpointExtra,
  certifiedSummary,
  prepareCertified,
  projectInitialization,
  recertificationsFromMetrics,
  recertify,
  restoreCertified,
} from "../certify/projected-sgd.js";
import { Chain } from "../chain/chain.js";
import type { ModelSpec } from "../chain/spec.js";
import type { FloatArray } from "../core/dtype.js";
import { createObjective } from "../objectives/objective.js";
import type { LearningRate } from "../optim/transform.js";
import { checkSecondOrderBudget, isSecondOrderMethod } from "../second-order/budget.js";
import type { SmoothResult } from "../smoothing/smooth.js";
import { type SecondOrderCustomStepper, secondOrderTrainingStepper } from "../train/second-order.js";
import { type EpochRecord, type StepProgress, Trainer, type TrainerOptions } from "../train/trainer.js";
import { type AdversarialTraining, prepareAdversarialTraining, resolveAdversarialAttack } from "./adversarial-train.js";
import { jsonSafe, writeFileAtomic, writeJsonAtomic } from "./atomic.js";
import { checkpointConfigRecord, checkResumeConfig } from "./config-digest.js";
import type { LoadedDataset } from "./datasets.js";
import { DistributedJob, type DistributedTraining } from "./distributed/train.js";
import { createEpochExtras } from "./epoch-extras.js";
import { saveTrainerCheckpoint, snapshotFromCheckpoint, trainInRunDirectory } from "./fit-run.js";
import { bestBackend } from "./index.js";
import { firstOrderArmijo } from "./line-search-config.js";
import { checkTrainingMemory, optimizerSlots, parseMemorySize } from "./memory.js";
import { RunDirectory } from "./run-dir.js";
import { RunLock } from "./run-lock.js";
import { flagName, readRunTrainConfig, resolveTrainConfig, type TrainConfig, type TrainConfigInput } from "./train-config.js";
import { checkFolderWritable, checkLossMatchesData, checkThreads, validationFlagError } from "./train-guards.js";
import {
  defaultInitialWeights,
  initialWeights,
  loadTrainingData,
  resolveModelSpec,
  smoothedModelSpec,
  stepRule,
  writeSmoothingRecords,
} from "./train-setup.js";
import { dropLabels, presetOutputs, unsupervisedObjective } from "./unsupervised-config.js";

// The `chainopt train` job: resolves a configuration (command-line flags and/or a JSON file,
// validated with errors naming the field), loads data, builds the chain and optimizer, trains with
// a run directory (config, metrics, checkpoints, final model), and reports per-epoch records.
//
// Order of work: everything that can fail on bad input (configuration, data set name and files,
// model spec and shapes, optimizer options, --init weights) is checked *before* the run directory
// is created, so a rejected command writes nothing. Then config.json and an epoch-0 checkpoint are
// written, and a checkpoint after every epoch (metrics line first, checkpoint second: a kill between
// the two is repaired by RunDirectory.open, which drops metric lines newer than the checkpoint).

/** Events of a training job, for the command line's printing. */
export interface TrainJobEvents {
  onStart?(info: {
    run: RunDirectory;
    chain: Chain;
    backend: string;
    config: TrainConfig;
    resumedFromEpoch: number;
    trainSize: number;
    /** The certificate of a certified run (`stepSize: "certified"`). */
    certified?: CertifiedSummary;
    /** `--smooth-epsilon`: what the smoothing guarantees (one line). */
    smoothing?: string;
  }): void;
  onStep?(progress: StepProgress): void;
  /** `extra`: per-epoch numbers of second-order runs (damping, rejected steps) and certified runs (step size, projections). */
  onEpoch?(record: EpochRecord, extra?: Record<string, number>): void;
}

export type { CertifiedSummary } from "../certify/projected-sgd.js";
export {
  flagName,
  parseTrainConfig,
  readConfigFile,
  readRunTrainConfig,
  resolveTrainConfig,
  SECOND_ORDER_METHODS,
  type TrainConfig,
  type TrainConfigInput,
  trainConfigSchema,
} from "./train-config.js";
export { resolveModelSpec } from "./train-setup.js";

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
  /** Certified runs: the certificate's step and whether training stayed inside B_R. */
  certified?: CertifiedSummary;
  /** Second-order runs: the damping the next step would start from, steps, rejected steps. */
  secondOrder?: { method: string; damping: number; steps: number; rejected: number };
}

/** `--resume RUN_DIR`, optionally with `epochs` to extend the run. Any other key is an error. */
export interface ResumeInput {
  resume: string;
  epochs?: number;
  /** Resume although the configuration differs from the checkpoint's (config digest). */
  allowConfigChange?: boolean;
  maxMemory?: number | string;
  [flag: string]: unknown;
}

/** What {@link prepareTrainJob} builds: everything but the run directory and the trainer. */
interface Prepared {
  backend: ReturnType<typeof bestBackend>;
  data: LoadedDataset;
  spec: ModelSpec;
  chain: Chain;
  lr: LearningRate;
  optimizerOptions: Record<string, unknown>;
  trainerOptions: TrainerOptions;
  init: { params: FloatArray; state: FloatArray; source: string | null };
  /** The second-order stepper (`--optimizer gauss-newton|ggn|newton`), else null. */
  secondOrder: SecondOrderCustomStepper | null;
  /** The certified step's state (`--step-size certified`), else null. */
  certified: CertifiedState | null;
  /** The smoothing of the model (`--smooth-epsilon`), else null. */
  smoothing: SmoothResult | null;
  /** Adversarial training (`--adversarial`), else null. */
  adversarial: AdversarialTraining | null;
}

/** Builds and validates everything a run needs; writes nothing. Errors name the field at fault. */
async function prepareTrainJob(config: TrainConfig, events: TrainJobEvents, options: { skipInit: boolean }): Promise<Prepared> {
  // `config` comes from resolveTrainConfig (train-config.ts): names and cross-field rules are checked.
  const secondOrderMethod = isSecondOrderMethod(config.optimizer) ? config.optimizer : null;
  const adversarialAttack = resolveAdversarialAttack(config); // adversarial training: flags checked first
  if (config.init && !existsSync(config.init)) throw new Error(`init: ${config.init}: file not found`);
  const maxBytes = config.maxMemory !== undefined ? parseMemorySize(config.maxMemory) : undefined;
  const backend = bestBackend({ quiet: false });
  checkThreads(config.threads, backend);
  if (config.threads !== undefined && "setThreads" in backend) (backend as { setThreads(n: number): void }).setThreads(config.threads);
  const data: LoadedDataset = await loadTrainingData(config).catch((error: unknown) => {
    throw validationFlagError(error, config.dataset); // --validation too large: name the flag (train-guards.ts)
  });
  if (data.train.size === 0)
    throw new Error(`dataset: ${config.dataset} has no training samples left (limit ${config.limit}, validation ${config.validation})`);
  const classes = data.train.classes ?? data.train.targetSize ?? 1;
  // unsupervised: presetOutputs; --smooth-epsilon: the smoothed spec and its certificate (train-setup.ts)
  const { spec, smoothing } = smoothedModelSpec(
    config,
    resolveModelSpec(config, data.train.inputShape, presetOutputs(config, data.train.inputShape, classes)),
    data.train,
  );
  let chain: Chain;
  try {
    chain = new Chain(spec, { dtype: config.dtype, backend });
  } catch (error) {
    // Shape errors name the layer (`layers[i]: …`); say which model they are about.
    const where = typeof config.model === "string" ? config.model : "model spec";
    throw new Error(`model ${where}: ${(error as Error).message}`);
  }
  // Refuse a model that does not fit in memory before allocating its parameters (src/node/memory.ts).
  checkTrainingMemory(chain, {
    batchSize: Math.min(config.batchSize, data.train.size),
    evalBatchSize: Math.min(config.evalBatchSize, Math.max(data.validation?.size ?? 0, data.test?.size ?? 0, 1)),
    optimizerSlots: secondOrderMethod ? 0 : optimizerSlots(config.optimizer, { momentum: config.momentum }),
    extraCopies: (config.onNan === "skip" ? 1 : 0) + (config.average ? 1 : 0) + (config.earlyStopping ? 1 : 0),
    maxBytes,
  });
  const unsupervised = unsupervisedObjective(config); // --objective clustering|autoencoder
  if (unsupervised) dropLabels(data);
  if (!unsupervised && data.train.labels && config.loss === "logistic" && chain.outputSize !== classes) {
    throw new Error(`model: the last layer has ${chain.outputSize} outputs but ${config.dataset} has ${classes} classes`);
  }
  const objective = unsupervised ?? createObjective(config.loss, config.l2);
  // Second-order methods: applicability and work memory first (src/second-order/budget.ts), then the stepper.
  if (secondOrderMethod)
    checkSecondOrderBudget(secondOrderMethod, chain, { loss: config.loss, batch: Math.min(config.batchSize, data.train.size) });
  const secondOrder = secondOrderMethod
    ? secondOrderTrainingStepper({
        method: secondOrderMethod,
        damping: config.damping,
        stepSize: config.lr,
        lineSearch: config.lineSearch === undefined ? undefined : config.lineSearch !== false,
        implementation: config.gnImplementation,
      })
    : null;
  if (!unsupervised) checkLossMatchesData(config.loss, data.train, config.dataset); // unsupervised objectives drop the labels
  const certified = config.stepSize === "certified" ? prepareCertified(config, chain, objective, data.train) : null;
  const adversarial = adversarialAttack ? prepareAdversarialTraining(config, adversarialAttack, chain, objective) : null;
  const { lr, optimizer, optimizerOptions } = stepRule(
    config,
    Math.ceil(data.train.size / config.batchSize),
    certified,
    secondOrderMethod !== null,
  );
  const init = options.skipInit ? defaultInitialWeights(chain, config.seed) : initialWeights(chain, config);
  if (certified) projectInitialization(certified, chain, init.params); // projected SGD starts inside B_R
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
    stepper: secondOrder ?? undefined,
    projection: certified ? (w) => certified.project(w) : undefined,
    batchTransform: adversarial?.transform,
  };
  return {
    backend,
    data,
    spec,
    chain,
    lr,
    optimizerOptions,
    trainerOptions,
    init,
    secondOrder,
    certified,
    smoothing,
    adversarial,
  };
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
  /** Data-parallel training over the ranks of an MPI job (docs/distributed.md). */
  distributed?: DistributedTraining,
): Promise<TrainResult> {
  const resumeDir = "resume" in input && input.resume !== undefined ? resolve(String(input.resume)) : null;
  let config: TrainConfig;
  let extendTo: number | undefined;
  let hasCheckpoint = false;
  if (resumeDir !== null) {
    const given = Object.entries(input).filter(
      ([k, v]) => !["resume", "epochs", "allowConfigChange", "maxMemory"].includes(k) && v !== undefined,
    );
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
    // The checkpoint's configuration digest against config.json as it is now (src/node/config-digest.ts).
    checkResumeConfig(config, join(resumeDir, "checkpoints", "last.safetensors"), {
      allowChange: (input as ResumeInput).allowConfigChange === true,
      configFile: join(resumeDir, "config.json"),
    });
    const maxMemory = (input as ResumeInput).maxMemory;
    if (maxMemory !== undefined) config = { ...config, maxMemory };
  } else {
    config = resolveTrainConfig(input); // schema, method defaults, cross-field rules (train-config.ts)
    if (config.out && existsSync(config.out) && readdirSync(config.out).length > 0) {
      throw new Error(
        `--out ${config.out}: the directory exists and is not empty (use --resume ${config.out} to continue that run, or another --out)`,
      );
    }
    checkFolderWritable(config.out ?? "runs", config.out ? "--out" : "run directory");
  }

  const prepared = await prepareTrainJob(config, events, { skipInit: hasCheckpoint });

  // Only now, with every input validated, does the job touch the file system. The run directory
  // is locked first (src/node/run-lock.ts): a second process on the same run is refused.
  // --- distributed (src/node/distributed/train.ts): only rank 0 writes the run directory ---
  const dist = distributed ? new DistributedJob(distributed, { resumeDir, config, secondOrder: prepared.secondOrder }) : null;
  dist?.attach(prepared.trainerOptions, prepared.chain);
  // --- end distributed ---
  let lock: RunLock | null = null;
  const openRun = (dir: string | null): RunDirectory => {
    if (resumeDir !== null) {
      const target = dir ?? resumeDir;
      lock = RunLock.acquire(target);
      try {
        return RunDirectory.open(target);
      } catch (error) {
        lock.release();
        lock = null;
        throw error;
      }
    }
    const created = RunDirectory.create({
      out: dir ?? config.out,
      name: `${typeof config.model === "string" ? config.model : "model"}-${config.dataset}`,
    });
    lock = RunLock.acquire(created.dir);
    return created;
  };
  const run = dist ? dist.openRun(resumeDir, openRun) : openRun(null);
  try {
    return await trainLocked(run, config, prepared, resumeDir, extendTo, events, signal, dist);
  } finally {
    (lock as RunLock | null)?.release();
  }
}

/** The body of {@link runTrainJob} once the run directory is open and locked. */
async function trainLocked(
  run: RunDirectory,
  config: TrainConfig,
  prepared: Prepared,
  resumeDir: string | null,
  extendTo: number | undefined,
  events: TrainJobEvents,
  signal: { stopRequested: boolean } | undefined,
  dist: DistributedJob | null,
): Promise<TrainResult> {
  const { backend, data, spec, chain, certified, secondOrder } = prepared;
  const trainer = new Trainer(prepared.trainerOptions, { params: prepared.init.params, state: prepared.init.state });
  let resumedFromEpoch = 0;
  const last = resumeDir !== null ? run.loadLastCheckpoint(chain) : null;
  dist?.broadcastStart(trainer.w, trainer.state); // --- distributed: every rank starts from rank 0's point ---
  if (last) {
    trainer.restore(snapshotFromCheckpoint(trainer, last));
    if (certified) restoreCertified(certified, last.extra);
    resumedFromEpoch = last.epoch;
    if (existsSync(run.summaryPath) && (trainer.epoch >= config.epochs || trainer.stopped)) {
      throw new Error(
        `${run.dir}: the run is already complete (${trainer.epoch} epochs${trainer.stopped ? ", ended by early stopping" : ""}); to train longer pass --epochs N with N > ${trainer.epoch}`,
      );
    }
  }
  if (resumeDir === null) {
    run.writeConfig({
      name: basename(run.dir),
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
  const recertifications = () => recertificationsFromMetrics(run.readMetrics());
  const certificatePath = join(run.dir, "certificate.json");
  if (certified && !last) writeJsonAtomic(certificatePath, jsonSafe(certificateRecord(certified, certifiedSummary(certified, []))));
  const smoothing = prepared.smoothing;
  if (smoothing && !last) writeSmoothingRecords(run.dir, smoothing);
  // The starting point (epoch 0), so that a run killed or faulting in its first epoch keeps a
  // good checkpoint and can be resumed.
  if (!last) saveTrainerCheckpoint(run, trainer, config.optimizer, certifiedCheckpointExtra(certified));
  events.onStart?.({
    run,
    chain,
    backend: backend.describe(),
    config,
    resumedFromEpoch,
    trainSize: data.train.size,
    certified: certified ? certifiedSummary(certified, recertifications()) : undefined,
    smoothing: smoothing ? `${smoothing.smoothedParts} part(s) smoothed; ${smoothing.objective.statement}` : undefined,
  });

  let certifiedResult: CertifiedSummary | undefined;
  let secondOrderResult: TrainResult["secondOrder"];
  // The epochs, metrics, checkpoints, final model and summary: the run-directory loop of
  // `fitToRunDir` (fit-run.ts), with the hooks of second-order and certified runs.
  // --- diagnostics and line-search numbers per epoch (epoch-extras.ts) ---
  const epochExtras = createEpochExtras(
    { diagnostics: config.diagnostics === true, armijo: firstOrderArmijo(config) },
    chain,
    prepared.trainerOptions.objective,
    data.train,
    trainer.optimizerState,
  );
  // --- end ---
  const result = await trainInRunDirectory(run, trainer, data, {
    epochs: config.epochs,
    optimizerName: config.optimizer,
    signal,
    hooks: {
      onEpochStart: () => {
        if (certified) certified.epochProjections = 0;
      },
      // Per-epoch numbers of second-order runs (the damping the next step starts from, steps whose
      // every direction failed the Armijo test, in all) and certified runs (step, projections).
      epochExtra: (record) => {
        const extra: Record<string, number> = {};
        if (secondOrder) {
          extra.damping = secondOrder.state.damping;
          extra.rejectedSteps = secondOrder.counters.rejected;
        }
        if (certified) {
          extra.stepSize = certified.current.stepSize;
          extra.projections = certified.epochProjections;
        }
        // --- adversarial training: robust validation metrics ---
        if (prepared.adversarial && data.validation) {
          const r = prepared.adversarial.validate(trainer.evaluationParams(), trainer.state, data.validation, trainer.epoch);
          extra.validationRobustLoss = r.robustLoss;
          extra.validationRobustAccuracy = r.robustAccuracy;
        }
        // --- end adversarial training ---
        // --- diagnostics and line-search numbers (epoch-extras.ts) ---
        Object.assign(
          extra,
          epochExtras({ w: trainer.w, state: trainer.state, optimizerState: trainer.optimizerState, learningRate: record.learningRate }),
        );
        // --- end ---
        return extra;
      },
      // Re-certification on a local ball around the iterate (after the epoch's metrics line, before
      // its checkpoint, so that a resumed run neither repeats nor misses it).
      afterEpochMetrics: () => {
        if (certified && config.recertifyEvery && trainer.epoch % config.recertifyEvery === 0 && trainer.epoch < config.epochs) {
          run.logMetrics(recertify(certified, chain, trainer.w, { step: trainer.step, epoch: trainer.epoch }));
        }
      },
      // The certified run's ball and counters, and the configuration digest checked on --resume
      // (src/node/config-digest.ts).
      checkpointExtra: () => ({
        ...certifiedCheckpointExtra(certified),
        config: checkpointConfigRecord(config as Record<string, unknown>),
      }),
      onEpoch: events.onEpoch,
      onFinish: () => {
        certifiedResult = certified ? certifiedSummary(certified, recertifications()) : undefined;
        secondOrderResult = secondOrder
          ? {
              method: secondOrder.name,
              damping: secondOrder.state.damping,
              steps: secondOrder.state.steps,
              rejected: secondOrder.counters.rejected,
            }
          : undefined;
        if (certified && certifiedResult) writeJsonAtomic(certificatePath, jsonSafe(certificateRecord(certified, certifiedResult)));
        return {
          ...(certifiedResult ? { certified: jsonSafe(certifiedResult) } : {}),
          ...(secondOrderResult ? { secondOrder: jsonSafe(secondOrderResult) } : {}),
        };
      },
    },
  });
  return {
    epochs: result.history,
    testLoss: result.test?.loss,
    testAccuracy: result.test?.accuracy,
    seconds: result.seconds,
    runDir: run.dir,
    params: result.params,
    interrupted: result.interrupted,
    stoppedEarly: result.stoppedEarly,
    certified: certifiedResult,
    secondOrder: secondOrderResult,
  };
}
