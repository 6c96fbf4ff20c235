import type { Chain } from "../chain/chain.js";
import type { FloatArray } from "../core/dtype.js";
import { stateFromTensors, stateToTensors } from "../optim/state.js";
import { type FitCallbacks, type FitOptions, type FitResult, runTrainer } from "../train/fit.js";
import { type EpochRecord, NumericalFaultError, type TrainData, Trainer, type TrainerSnapshot } from "../train/trainer.js";
import { jsonSafe } from "./atomic.js";
import type { LoadedCheckpoint } from "./checkpoint.js";
import { type MetricRecord, type RunConfig, RunDirectory } from "./run-dir.js";

// Training with a run directory (see run-dir.ts for the layout): the loop of `fit` plus one
// metrics line and one checkpoint per epoch, the final model and summary, and resume from the
// last checkpoint. `fitToRunDir` is the library's entry; `chainopt train` (train-job.ts) builds
// its trainer from a configuration and runs the same {@link trainInRunDirectory}.

// ---------------------------------------------------------------------------------------------
// The trainer checkpoint codec: trainer state beside the optimizer's in a checkpoint. Tensors
// `optimizer.__average` (the averaged iterate), `optimizer.__best` (early stopping's best
// parameters) and `optimizer.__loss` (the loss's own state, e.g. a warm start); counters in
// `extra` (JSON, non-finite numbers as strings).
const AVERAGE_TENSOR = "__average";
const BEST_TENSOR = "__best";
/** The loss's own state (e.g. the clustering objective's warm start), see `Loss.saveState`. */
const LOSS_TENSOR = "__loss";

/**
 * Saves the trainer's complete state as the run's last checkpoint. `extra` adds JSON-safe
 * entries to the checkpoint's `extra` (e.g. a certified run's current ball).
 */
export function saveTrainerCheckpoint(
  run: RunDirectory,
  trainer: Trainer,
  optimizerName: string,
  extra: Record<string, unknown> = {},
): void {
  const s = trainer.snapshot();
  const saved = stateToTensors(s.optimizerState);
  const tensors: Record<string, FloatArray> = { ...saved.tensors };
  if (s.average) tensors[AVERAGE_TENSOR] = s.average.averaged;
  if (s.bestParams) tensors[BEST_TENSOR] = s.bestParams;
  if (s.loss) tensors[LOSS_TENSOR] = s.loss;
  run.saveCheckpoint(trainer.chain, {
    params: s.params,
    state: s.state,
    optimizer: { tensors, scalars: saved.scalars, info: { name: optimizerName } },
    rng: { data: s.rng },
    step: s.step,
    epoch: s.epoch,
    extra: {
      average: s.average ? { count: s.average.count } : undefined,
      earlyStopping: s.earlyStopping ? jsonSafe(s.earlyStopping) : undefined,
      // A custom stepper's own state (e.g. the damping of a second-order method).
      stepper: s.stepper ? jsonSafe(s.stepper) : undefined,
      // A batch transform's own state (e.g. adversarial training's attack generator).
      batchTransform: s.batchTransform ? jsonSafe(s.batchTransform) : undefined,
      ...extra,
    },
  });
}

/** The trainer snapshot stored in a checkpoint written by {@link saveTrainerCheckpoint}. */
export function snapshotFromCheckpoint(trainer: Trainer, ck: LoadedCheckpoint): TrainerSnapshot {
  const tensors: Record<string, FloatArray> = {};
  for (const [k, v] of Object.entries(ck.optimizer?.tensors ?? {}))
    if (k !== AVERAGE_TENSOR && k !== BEST_TENSOR && k !== LOSS_TENSOR) tensors[k] = v;
  const optimizerState = stateFromTensors(trainer.optimizerState, { tensors, scalars: ck.optimizer?.scalars ?? {} });
  const extra = ck.extra as {
    average?: { count: number };
    earlyStopping?: Record<string, number | string>;
    stepper?: Record<string, number | string>;
    batchTransform?: Record<string, number | string>;
  };
  if (trainer.options.stepper?.restoreState && !extra.stepper) {
    throw new Error(`checkpoint: the ${trainer.options.stepper.name} stepper's state (extra.stepper) is missing`);
  }
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
    stepper: extra.stepper ? Object.fromEntries(Object.entries(extra.stepper).map(([k, v]) => [k, Number(v)])) : null,
    batchTransform: extra.batchTransform ? Object.fromEntries(Object.entries(extra.batchTransform).map(([k, v]) => [k, Number(v)])) : null,
    loss: ck.optimizer?.tensors[LOSS_TENSOR] ?? null,
  };
}

// ---------------------------------------------------------------------------------------------
// The run-directory loop.

/** Hooks of {@link trainInRunDirectory}, for methods with state beyond the trainer's. */
export interface RunDirectoryHooks {
  /** Before each epoch (1-based number of the epoch about to run). */
  onEpochStart?(epoch: number, trainer: Trainer): void;
  /**
   * Per-epoch numbers beyond the {@link EpochRecord} (e.g. `damping`, `stepSize`): added to the
   * epoch's metrics line under snake_case keys (`step_size`) and passed to `onEpoch`.
   */
  epochExtra?(record: EpochRecord, trainer: Trainer): Record<string, number> | undefined;
  /** After the epoch's metrics line, before its checkpoint (e.g. a re-certification that logs its own line). */
  afterEpochMetrics?(record: EpochRecord, trainer: Trainer): void;
  /** Extra JSON entries of each checkpoint (restored by the caller on resume). */
  checkpointExtra?(): Record<string, unknown>;
  /** After the epoch's checkpoint is written (e.g. for printing). */
  onEpoch?(record: EpochRecord, extra?: Record<string, number>): void;
  /** At the end (interrupted or not), after the final model: entries added to summary.json. */
  onFinish?(result: FitResult): Record<string, unknown> | undefined;
}

/** Options of {@link trainInRunDirectory}. */
export interface RunDirectoryTraining {
  epochs: number;
  /** The optimizer's name, recorded in each checkpoint. */
  optimizerName: string;
  hooks?: RunDirectoryHooks;
  /** Set `stopRequested` (e.g. on SIGINT) to stop after the current epoch, with a checkpoint. */
  signal?: { stopRequested: boolean };
  /** The caller's callbacks (`onEpochEnd` runs after the epoch's checkpoint; `onStep` is the trainer's option). */
  callbacks?: FitCallbacks;
  /**
   * Checkpoint every this many epochs (default 1), and always after the last epoch, when early
   * stopping ends the run, and when `signal` asks to stop. For runs of many tiny epochs (e.g. one
   * full-batch step each), whose per-epoch checkpoint and fsyncs would cost more than the step.
   * The metrics lines of the epochs in between are fsynced with the next checkpoint's; a resume
   * repeats the epochs after the last checkpoint (e.g. after a callback's `"stop"` between
   * checkpoints), bit-identically as always.
   */
  checkpointEvery?: number;
}

/** What {@link trainInRunDirectory} and {@link fitToRunDir} return. */
export interface RunFitResult extends FitResult {
  /** The run directory (absolute). */
  runDir: string;
  /** Wall-clock seconds of this call. */
  seconds: number;
}

/**
 * Trains `trainer` in the run directory `run` (already holding config.json; restore the trainer
 * from its last checkpoint first when resuming): after each epoch one `type: "epoch"` metrics
 * line, then a checkpoint (so that a kill between the two is repaired by `RunDirectory.open`);
 * at the end a `type: "final"` line with the test numbers, model.safetensors and summary.json. A
 * `NumericalFaultError` is logged (`type: "fault"`) and rethrown naming the last good checkpoint,
 * which is kept. The history includes the epochs of metrics.jsonl before a resume.
 */
export async function trainInRunDirectory(
  run: RunDirectory,
  trainer: Trainer,
  data: TrainData,
  options: RunDirectoryTraining,
): Promise<RunFitResult> {
  const hooks = options.hooks ?? {};
  const signal = options.signal;
  const every = options.checkpointEvery ?? 1;
  if (!(Number.isInteger(every) && every >= 1)) throw new Error(`checkpointEvery: expected a positive integer, got ${every}`);
  const started = performance.now();
  const history: EpochRecord[] = run
    .readMetrics()
    .filter((m) => m.type === "epoch" && m.record !== undefined)
    .map(epochRecordOf);
  const user = options.callbacks ?? {};
  const callbacks: FitCallbacks = {
    shouldStop: () => signal?.stopRequested === true || user.shouldStop?.() === true,
    onEpochStart: (epoch, t) => {
      hooks.onEpochStart?.(epoch, t);
      user.onEpochStart?.(epoch, t);
    },
    onEpochEnd: (record, t) => {
      const extra = hooks.epochExtra?.(record, t);
      const checkpoint = t.epoch % every === 0 || t.epoch >= options.epochs || t.stopped || signal?.stopRequested === true;
      // fsync with the checkpoint, which also makes the unsynced lines before it durable.
      run.logMetrics(epochMetric(record, t.step, extra), { fsync: checkpoint });
      hooks.afterEpochMetrics?.(record, t);
      if (checkpoint) saveTrainerCheckpoint(run, t, options.optimizerName, hooks.checkpointExtra?.());
      hooks.onEpoch?.(record, extra && Object.keys(extra).length > 0 ? extra : undefined);
      return user.onEpochEnd?.(record, t);
    },
  };
  let result: FitResult;
  try {
    result = await runTrainer(trainer, data, { epochs: options.epochs, callbacks, history });
  } catch (error) {
    if (error instanceof NumericalFaultError) throw faultStop(run, trainer, error);
    throw error;
  }
  if (!result.interrupted) {
    if (result.test) {
      run.logMetrics({
        type: "final",
        step: trainer.step,
        epoch: trainer.epoch,
        test_loss: result.test.loss,
        test_accuracy: result.test.accuracy,
        test_size: result.test.size,
      });
    }
    run.saveModel(trainer.chain, result.params, trainer.state, { step: trainer.step, epoch: trainer.epoch });
  }
  const summaryExtra = hooks.onFinish?.(result) ?? {};
  if (!result.interrupted) {
    run.writeSummary({
      epochs: trainer.epoch,
      steps: trainer.step,
      testLoss: result.test?.loss,
      testAccuracy: result.test?.accuracy,
      stoppedEarly: trainer.stopped,
      bestEpoch: trainer.earlyStopping?.bestEpoch,
      seconds: run.wall(),
      ...summaryExtra,
    });
  }
  return { ...result, runDir: run.dir, seconds: (performance.now() - started) / 1000 };
}

/** The metrics line of an epoch; `extra` keys are written in snake_case (`stepSize` → `step_size`). */
export function epochMetric(record: EpochRecord, step: number, extra?: Record<string, number>): MetricRecord {
  const metric: MetricRecord = {
    type: "epoch",
    step,
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
  for (const [k, v] of Object.entries(extra ?? {})) metric[k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = v;
  return metric;
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

/** The {@link EpochRecord} of an epoch's metrics line (non-finite numbers were stored as strings). */
export function epochRecordOf(metric: MetricRecord): EpochRecord {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries((metric.record ?? {}) as Record<string, unknown>)) {
    out[k] = v === "NaN" || v === "Infinity" || v === "-Infinity" ? Number(v) : v;
  }
  return out as unknown as EpochRecord;
}

// ---------------------------------------------------------------------------------------------
// The library entry.

/** Options of {@link fitToRunDir}: those of `fit`, plus where the run directory goes. */
export interface FitToRunDirOptions extends FitOptions {
  /** The run directory of a new run (must not exist or be empty; default `runs/<timestamp>-<name>`). */
  out?: string;
  /** Short name of a default run directory (default `run`). */
  name?: string;
  /** Continue the run in this directory from its last checkpoint (same chain and options). */
  resumeDir?: string;
  /** Recorded in config.json beside the chain's spec (e.g. the data set and optimizer settings). */
  config?: RunConfig;
  /** The optimizer's name, recorded in checkpoints (default `optimizer`). */
  optimizerName?: string;
  /** Set `stopRequested` (e.g. on SIGINT) to stop after the current epoch, with a checkpoint. */
  signal?: { stopRequested: boolean };
  /**
   * Numbers of each epoch beyond the {@link EpochRecord} (e.g. an experiment's measurement of the
   * parameters): written to the epoch's metrics line under snake_case keys, so that they survive a
   * resume and can be read back from metrics.jsonl.
   */
  epochMetrics?(record: EpochRecord, trainer: Trainer): Record<string, number> | undefined;
  /** Checkpoint every this many epochs (default 1); see {@link RunDirectoryTraining.checkpointEvery}. */
  checkpointEvery?: number;
}

/**
 * `fit` with a run directory: writes config.json (the chain's spec, `options.config`), an epoch-0
 * checkpoint, one metrics line and one checkpoint per epoch, the final model and summary.json
 * (all atomically). With `resumeDir`, restores the trainer from that run's last checkpoint and
 * continues it: the final parameters are bit-identical to an uninterrupted run's.
 */
export async function fitToRunDir(chain: Chain, data: TrainData, options: FitToRunDirOptions): Promise<RunFitResult> {
  const {
    epochs,
    params,
    state,
    initSeed,
    resume,
    callbacks,
    yieldEveryMs,
    out,
    name,
    resumeDir,
    config,
    optimizerName,
    signal,
    epochMetrics,
    checkpointEvery,
    ...rest
  } = options;
  if (resume) throw new Error("fitToRunDir: resumes from a run directory (resumeDir), not from a snapshot (resume)");
  if (checkpointEvery !== undefined && !(Number.isInteger(checkpointEvery) && checkpointEvery >= 1))
    throw new Error(`checkpointEvery: expected a positive integer, got ${checkpointEvery}`);
  const trainer = new Trainer(
    { ...rest, chain, onStep: callbacks?.onStep },
    { params: params ?? chain.initParams(initSeed ?? options.seed), state },
  );
  const run = resumeDir !== undefined ? RunDirectory.open(resumeDir) : RunDirectory.create({ out, name });
  const last = resumeDir !== undefined ? run.loadLastCheckpoint(chain) : null;
  if (last) trainer.restore(snapshotFromCheckpoint(trainer, last));
  else {
    if (resumeDir === undefined) run.writeConfig({ model: chain.spec, seed: options.seed, ...config });
    // The starting point (epoch 0), so that a run killed in its first epoch can be resumed.
    saveTrainerCheckpoint(run, trainer, optimizerName ?? "optimizer");
  }
  return trainInRunDirectory(run, trainer, data, {
    epochs,
    optimizerName: optimizerName ?? "optimizer",
    signal,
    callbacks,
    checkpointEvery,
    hooks: epochMetrics ? { epochExtra: epochMetrics } : undefined,
  });
}
