import type { Chain } from "../chain/chain.js";
import type { FloatArray } from "../core/dtype.js";
import type { Evaluation } from "./evaluate.js";
import { type EpochRecord, type StepProgress, type TrainData, Trainer, type TrainerOptions, type TrainerSnapshot } from "./trainer.js";

// The high-level training entry of the library: `fit(chain, data, options)` trains a chain for a
// number of epochs with the {@link Trainer} (mini-batches, optimizer, NaN policy, averaging, early
// stopping), evaluates on the validation set after each epoch and on the test set at the end, and
// returns the history. `chainopt/node`'s `fitToRunDir` adds a run directory (config, metrics,
// checkpoints, resume) on top of the same loop, and `chainopt train` uses that.

/** Callbacks of {@link fit} and {@link runTrainer}. Each is optional. */
export interface FitCallbacks {
  /** After each step (for progress bars). */
  onStep?(progress: StepProgress): void;
  /** Before each epoch; `epoch` is the 1-based number of the epoch about to run. */
  onEpochStart?(epoch: number, trainer: Trainer): void;
  /**
   * After each epoch (validation included), with the trainer, e.g. to log or checkpoint. Returning
   * `"stop"` ends training after this epoch as an interruption (no test evaluation).
   */
  onEpochEnd?(record: EpochRecord, trainer: Trainer): undefined | "stop" | Promise<undefined | "stop">;
  /** Asked before each epoch: `true` ends training there as an interruption (e.g. on Ctrl-C). */
  shouldStop?(): boolean;
}

/** Options of {@link fit}: the trainer's options (without the chain) plus the epochs and the start. */
export interface FitOptions extends Omit<TrainerOptions, "chain" | "onStep"> {
  /** Train until the trainer has completed this many epochs (counting those of `resume`). */
  epochs: number;
  /** Initial parameters (default `chain.initParams(initSeed ?? seed)`); trained in place. */
  params?: FloatArray;
  /** Initial non-trainable state (batch-norm running statistics; default `chain.initState()`). */
  state?: FloatArray;
  /** Seed of the parameters' initialization when `params` is not given (default `seed`). */
  initSeed?: number;
  /** Continue from a {@link TrainerSnapshot} (e.g. from `Trainer.snapshot`): bit-identical to not stopping. */
  resume?: TrainerSnapshot;
  callbacks?: FitCallbacks;
  /** Return to the event loop at least this often (milliseconds) during an epoch (default 50). */
  yieldEveryMs?: number;
}

/** What {@link fit} returns. */
export interface FitResult {
  /** One record per completed epoch (those before a resume included when the caller passed them). */
  history: EpochRecord[];
  /** The final parameters: the best epoch's with early stopping, the averaged iterate with averaging, else w. */
  params: FloatArray;
  /** The final non-trainable state (batch-norm running statistics). */
  state: FloatArray;
  /** Loss and accuracy of the final parameters on `data.test` (when given and not interrupted). */
  test?: Evaluation;
  /** Training ended early at the request of a callback (`shouldStop`, or `"stop"` from `onEpochEnd`). */
  interrupted: boolean;
  /** Early stopping ended training. */
  stoppedEarly: boolean;
  /** The trainer, for snapshots and further evaluation. */
  trainer: Trainer;
}

/**
 * Trains `chain` on `data.train` for `options.epochs` epochs and returns the history.
 *
 * A non-finite loss, gradient or parameter throws a `NumericalFaultError` naming the step and the
 * layer (`onNaN: "stop"`, the default) or skips the step (`onNaN: "skip"`), as {@link Trainer} does.
 *
 * @example
 * ```ts
 * const chain = createChain(presets.mlp({ widths: [32] }), { dtype: "float64", backend: portableBackend });
 * const result = await fit(chain, { train, validation, test }, {
 *   objective: createObjective("logistic"),
 *   optimizer: optim.adam({ lr: 1e-3 }),
 *   batchSize: 32, epochs: 5, seed: 0,
 *   callbacks: { onEpochEnd: (r) => console.log(r.epoch, r.trainLoss, r.valAccuracy) },
 * });
 * ```
 */
export async function fit(chain: Chain, data: TrainData, options: FitOptions): Promise<FitResult> {
  const { epochs, params, state, initSeed, resume, callbacks, yieldEveryMs, ...trainerOptions } = options;
  const trainer = new Trainer(
    { ...trainerOptions, chain, onStep: callbacks?.onStep },
    { params: params ?? chain.initParams(initSeed ?? options.seed), state },
  );
  if (resume) trainer.restore(resume);
  return runTrainer(trainer, data, { epochs, callbacks, yieldEveryMs });
}

/**
 * The loop of {@link fit} on a trainer built by the caller (e.g. restored from a checkpoint):
 * trains until `epochs` epochs are complete, early stopping ends the run, or a callback asks to
 * stop; then evaluates the final parameters on `data.test`. `history` starts the returned history
 * (the records of the epochs before a resume). The trainer's `onStep` option reports steps;
 * `callbacks.onStep` is not used here.
 */
export async function runTrainer(
  trainer: Trainer,
  data: TrainData,
  options: { epochs: number; callbacks?: FitCallbacks; history?: EpochRecord[]; yieldEveryMs?: number },
): Promise<FitResult> {
  const { epochs, callbacks = {} } = options;
  if (!Number.isInteger(epochs) || epochs < 0) throw new Error(`epochs: expected a non-negative integer, got ${epochs}`);
  const history = [...(options.history ?? [])];
  let interrupted = false;
  while (trainer.epoch < epochs && !trainer.stopped) {
    if (callbacks.shouldStop?.()) {
      interrupted = true;
      break;
    }
    callbacks.onEpochStart?.(trainer.epoch + 1, trainer);
    // Asynchronous, so that timers and signal handlers (Ctrl-C) run during a long epoch.
    const record = await trainer.runEpochAsync({ train: data.train, validation: data.validation }, options.yieldEveryMs);
    history.push(record);
    if ((await callbacks.onEpochEnd?.(record, trainer)) === "stop") {
      interrupted = trainer.epoch < epochs && !trainer.stopped;
      break;
    }
    // Let a pending signal handler run before the next epoch (setTimeout: portable, browsers too).
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
  }
  const params = trainer.finalParams();
  const test = !interrupted && data.test ? trainer.evaluate(data.test, params) : undefined;
  return { history, params, state: trainer.state, test, interrupted, stoppedEarly: trainer.stopped, trainer };
}
