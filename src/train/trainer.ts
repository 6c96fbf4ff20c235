import type { Chain } from "../chain/chain.js";
import { allocate, type FloatArray } from "../core/dtype.js";
import { now, yieldToHost } from "../core/host.js";
import { allFiniteOf, norm2Of } from "../core/kernels.js";
import { Rng, type RngState } from "../core/rng.js";
import { BatchLoader, type Dataset } from "../data/dataset.js";
import type { Batch } from "../objectives/batch.js";
import type { Objective } from "../objectives/objective.js";
import { type AverageState, createAverage, type IterateAverage } from "../optim/averaging.js";
import { EarlyStopping, type EarlyStoppingState } from "../optim/early-stopping.js";
import {
  applyUpdates,
  applyUpdatesFinite,
  type GradientTransformation,
  type LearningRate,
  learningRateAt,
  type StateTree,
} from "../optim/transform.js";
import { objectiveValue, valueAndGradient } from "../oracles/first-order.js";
import type { DataParallel } from "./data-parallel.js";
import { type Evaluation, evaluateDataset } from "./evaluate.js";

/** Train, validation and test sets of a run. */
export interface TrainData {
  train: Dataset;
  validation?: Dataset;
  test?: Dataset;
}

/** What the trainer reports after each epoch (also the per-epoch JSON of `chainopt train --json`). */
export interface EpochRecord {
  epoch: number;
  /** Mean mini-batch objective data-loss over the epoch (training mode, before each update). */
  trainLoss: number;
  valLoss?: number;
  valAccuracy?: number;
  /** Learning rate of the last step of the epoch. */
  learningRate: number;
  /** Mean of the mini-batch gradient norms ‖∇F‖ over the epoch. */
  gradNorm: number;
  steps: number;
  /** Steps skipped because of a non-finite loss, gradient or update (`onNaN: "skip"`); not in the means. */
  skippedSteps: number;
  /** Wall-clock seconds of the epoch (training and validation). */
  seconds: number;
  samplesPerSecond: number;
}

/** Progress of one step, for progress bars. */
export interface StepProgress {
  epoch: number;
  batch: number;
  batches: number;
  loss: number;
  samplesPerSecond: number;
}

/**
 * A step other than "gradient → transformation → update", e.g. a Gauss-Newton step. It updates
 * `w` in place and returns the objective value at the start of the step, the data loss (the value
 * without the regularizer, the `trainLoss` of the epoch records) and ‖∇F‖ (NaN when not computed).
 * `state` is the trainer's non-trainable state (batch-norm running statistics), to update in place
 * as a first-order step does. A stepper with its own state (e.g. the current damping) exposes it
 * through `saveState`/`restoreState`, so that {@link Trainer.snapshot} and checkpoints carry it.
 */
export interface CustomStepper {
  readonly name: string;
  step(
    chain: Chain,
    objective: Objective,
    w: FloatArray,
    batch: Batch,
    stepIndex: number,
    state?: FloatArray,
  ): { value: number; loss: number; gradNorm: number };
  /** The stepper's own state as numbers (JSON-safe), for snapshots and checkpoints. */
  saveState?(): Record<string, number>;
  /** Restores what {@link CustomStepper.saveState} returned. */
  restoreState?(state: Record<string, number>): void;
}

/**
 * Replaces or mixes each training batch before the step (e.g. adversarial examples, see
 * src/adversarial/training.ts), at the current parameters w and batch-norm state. A transform
 * with its own state (a generator) exposes it through `saveState`/`restoreState`, so that
 * {@link Trainer.snapshot} and checkpoints carry it and a resumed run stays bit-identical.
 */
export interface BatchTransform {
  readonly name: string;
  /** The batch to step on (valid until the next call; may be `batch` itself). */
  transform(chain: Chain, w: FloatArray, batch: Batch, state: FloatArray): Batch;
  saveState?(): Record<string, number>;
  restoreState?(state: Record<string, number>): void;
}

/** How the trainer reacts to a NaN or infinity in the loss, gradient or parameters. */
export type NanPolicy = "stop" | "skip";

/** Options of {@link Trainer}. */
export interface TrainerOptions {
  chain: Chain;
  objective: Objective;
  /** The first-order optimizer (ignored when `stepper` is given). */
  optimizer: GradientTransformation;
  /** The learning rate or schedule the optimizer uses, for reporting. */
  learningRate?: LearningRate;
  /** A custom step (second-order methods). */
  stepper?: CustomStepper;
  /** Replaces or mixes each training batch before the step (adversarial training). */
  batchTransform?: BatchTransform;
  batchSize: number;
  /** Seed of the data order (the parameters' initialization takes its own seed). */
  seed: number;
  /** Shuffle the training set with a fresh seeded permutation each epoch (default true). */
  shuffle?: boolean;
  /** Drop the last partial batch of an epoch (default false). */
  dropLast?: boolean;
  evalBatchSize?: number;
  /** Evaluate with an averaged iterate (Polyak or exponential moving average). */
  average?: { kind: "polyak" | "ema"; decay?: number; start?: number };
  /** Early stopping on the validation loss, restoring the best parameters at the end. */
  earlyStopping?: { patience: number; minDelta?: number };
  /** Applied to w after each update, e.g. the projection onto B_R of projected gradient descent. */
  projection?: (w: FloatArray) => void;
  onNaN?: NanPolicy;
  /**
   * `onNaN: "skip"`: stop with a {@link NumericalFaultError} after this many consecutive skipped
   * steps (default: {@link MAX_CONSECUTIVE_SKIPS}, or the number of batches of an epoch when that
   * is smaller): a run whose every step is non-finite must not "succeed" with the initial
   * parameters. The count restarts after each good step and on resume.
   */
  maxConsecutiveSkips?: number;
  onStep?: (progress: StepProgress) => void;
  // --- data parallel (src/train/data-parallel.ts, docs/distributed.md) ---
  /** Split each batch across the ranks of a job and all-reduce the gradient (first-order steps only). */
  dataParallel?: DataParallel;
  // --- end data parallel ---
}

/** Default of {@link TrainerOptions.maxConsecutiveSkips} (`--on-nan skip`, docs/training.md). */
export const MAX_CONSECUTIVE_SKIPS = 50;

/**
 * A non-finite value appeared. `step` is the 1-based number of the failing step (the trainer had
 * completed `step − 1` steps), `component` names the first layer at fault (e.g.
 * `layers[3] (dense) output`), or is null when every layer was finite (e.g. the loss overflowed).
 */
export class NumericalFaultError extends Error {
  constructor(
    message: string,
    readonly step: number,
    readonly component: string | null,
    readonly what: "loss" | "gradient" | "parameters" = "loss",
  ) {
    super(message);
    this.name = "NumericalFaultError";
  }
}

/** Everything a checkpoint needs to resume a trainer bit-identically. */
export interface TrainerSnapshot {
  params: FloatArray;
  state: FloatArray;
  optimizerState: StateTree;
  rng: RngState;
  epoch: number;
  step: number;
  average: AverageState | null;
  earlyStopping: EarlyStoppingState | null;
  bestParams: FloatArray | null;
  /** The custom stepper's own state ({@link CustomStepper.saveState}), or null. */
  stepper?: Record<string, number> | null;
  /** The batch transform's own state ({@link BatchTransform.saveState}), or null. */
  batchTransform?: Record<string, number> | null;
  /** The loss's own state (`Loss.saveState` of src/objectives/loss.ts, e.g. a warm start), or null. */
  loss?: FloatArray | null;
}

/**
 * Mini-batch training of a chain with explicit state: parameters w, batch-norm state, optimizer
 * state, the data-order RNG and counters. One {@link Trainer.runEpoch} call trains one epoch;
 * {@link Trainer.snapshot}/{@link Trainer.restore} save and resume everything.
 */
export class Trainer {
  readonly options: TrainerOptions;
  readonly chain: Chain;
  w: FloatArray;
  state: FloatArray;
  optimizerState: StateTree;
  readonly rng: Rng;
  epoch = 0;
  step = 0;
  readonly average: IterateAverage | null;
  readonly earlyStopping: EarlyStopping | null;
  /** Set when early stopping decided to stop. */
  stopped = false;
  private readonly grad: FloatArray;
  /** Copies taken before each step in `onNaN: "skip"` mode, to undo a step that went non-finite. */
  private backup: { w: FloatArray; state: FloatArray; optimizerState: StateTree; stepper?: Record<string, number> } | null = null;
  /** Where the trainer is within the current epoch (for fault messages). */
  private position: { batch: number; batches: number } | null = null;
  private loader: BatchLoader | null = null;
  private evalLoaders = new Map<Dataset, BatchLoader>();

  constructor(options: TrainerOptions, init: { params: FloatArray; state?: FloatArray }) {
    this.options = options;
    this.chain = options.chain;
    this.chain.checkParams(init.params, "initial parameters");
    this.w = init.params;
    this.state = init.state ?? this.chain.initState();
    this.optimizerState = options.optimizer.init(this.w);
    this.rng = new Rng(options.seed);
    this.grad = allocate(this.chain.dtype, this.chain.paramSize);
    this.average = options.average
      ? createAverage(options.average.kind, this.w, { ...options.average, backend: this.chain.backend })
      : null;
    this.earlyStopping = options.earlyStopping ? new EarlyStopping(options.earlyStopping) : null;
  }

  /** Trains one epoch on `data.train`, then evaluates on `data.validation`. */
  runEpoch(data: TrainData): EpochRecord {
    const steps = this.epochSteps(data);
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
    }
  }

  /**
   * {@link Trainer.runEpoch}, returning to the event loop every `yieldEveryMs` milliseconds of work
   * (between steps), so that timers and signal handlers (Ctrl-C) run during a long epoch.
   */
  async runEpochAsync(data: TrainData, yieldEveryMs = 50): Promise<EpochRecord> {
    const steps = this.epochSteps(data);
    let last = now();
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
      if (now() - last >= yieldEveryMs) {
        await yieldToHost();
        last = now();
      }
    }
  }

  /** The epoch as a generator that pauses after each step (the record is its return value). */
  private *epochSteps(data: TrainData): Generator<void, EpochRecord, void> {
    const o = this.options;
    const train = data.train;
    if (this.loader?.dataset !== train)
      this.loader = new BatchLoader(train, { batchSize: o.batchSize, dtype: this.chain.dtype, dropLast: o.dropLast });
    const loader = this.loader;
    const started = now();
    const order = (o.shuffle ?? true) ? this.rng.permutation(train.size) : null;
    const batches = loader.batchCount(train.size);
    let lossSum = 0;
    let gradNormSum = 0;
    let seen = 0;
    let counted = 0;
    let steps = 0;
    let skipped = 0;
    for (let b = 0; b < batches; b++) {
      const batch = loader.batch(b, order);
      this.position = { batch: b + 1, batches };
      const r = this.trainStep(batch);
      seen += batch.size;
      steps++;
      if (r.skipped) skipped++;
      else {
        lossSum += r.loss * batch.size;
        gradNormSum += r.gradNorm;
        counted += batch.size;
      }
      o.onStep?.({
        epoch: this.epoch + 1,
        batch: b + 1,
        batches,
        loss: r.loss,
        samplesPerSecond: seen / ((now() - started) / 1000),
      });
      yield;
    }
    this.position = null;
    this.epoch++;
    const good = steps - skipped;
    const record: EpochRecord = {
      epoch: this.epoch,
      // Means over the steps taken (NaN when every step of the epoch was skipped).
      trainLoss: counted > 0 ? lossSum / counted : Number.NaN,
      learningRate: this.currentLearningRate(Math.max(this.step - 1, 0)),
      gradNorm: good > 0 ? gradNormSum / good : Number.NaN,
      steps,
      skippedSteps: skipped,
      seconds: 0,
      samplesPerSecond: 0,
    };
    if (data.validation) {
      const v = this.evaluate(data.validation);
      record.valLoss = v.loss;
      if (v.accuracy !== undefined) record.valAccuracy = v.accuracy;
      if (this.earlyStopping) {
        const decision = this.earlyStopping.observe(v.loss, this.epoch, this.evaluationParams());
        if (decision.stop) this.stopped = true;
      }
    }
    record.seconds = (now() - started) / 1000;
    record.samplesPerSecond = seen / record.seconds;
    return record;
  }

  /**
   * One optimization step on a batch; returns the loss before the step and the gradient norm.
   * A non-finite loss, gradient or updated parameter vector throws a {@link NumericalFaultError}
   * (`onNaN: "stop"`, the default; the trainer's state is then not to be used) or, with
   * `onNaN: "skip"`, undoes the step (parameters, optimizer state, batch-norm statistics) and
   * returns `skipped: true`; the step counter advances either way (schedules see every batch).
   */
  trainStep(clean: Batch): { loss: number; gradNorm: number; skipped: boolean } {
    const o = this.options;
    const batch = o.batchTransform ? o.batchTransform.transform(this.chain, this.w, clean, this.state) : clean;
    const stepIndex = this.step;
    const skip = (o.onNaN ?? "stop") === "skip";
    if (skip) this.saveBackup();
    if (o.stepper) {
      const r = o.stepper.step(this.chain, o.objective, this.w, batch, stepIndex, this.state);
      if (!Number.isFinite(r.loss) || !this.parametersFinite()) {
        if (skip) return this.skipStep(r.loss, r.gradNorm);
        throw this.fault(Number.isFinite(r.loss) ? "parameters" : "loss", batch);
      }
      this.afterUpdate();
      return { loss: r.loss, gradNorm: r.gradNorm, skipped: false };
    }
    // Data parallel: the same call, on this rank's share of the batch, all-reduced (src/train/data-parallel.ts).
    const oracle = o.dataParallel ? o.dataParallel.valueAndGradient.bind(o.dataParallel) : valueAndGradient;
    const { loss, grad } = oracle(this.chain, o.objective, this.w, batch, {
      grad: this.grad,
      training: true,
      state: this.state,
      updateState: true,
    });
    const gradNorm = norm2Of(this.chain.backend, grad.length, grad);
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
      if (skip) return this.skipStep(loss, gradNorm);
      throw this.fault(Number.isFinite(loss) ? "gradient" : "loss", batch);
    }
    // Line search (optim/armijo.ts): the objective on this batch, in training mode, without
    // updating the batch-norm statistics; transformations that do not search ignore it.
    const state = this.state;
    const lineObjective = {
      value: loss,
      at: (w: FloatArray) => objectiveValue(this.chain, o.objective, w, batch, { training: true, state }),
    };
    const ctx = { step: stepIndex, backend: this.chain.backend, objective: lineObjective };
    // Without a projection the check of w rides on the pass that updates it: the optimizer's fused
    // update-and-apply when it has one (same bits), else the update, then apply-and-check.
    const projected = this.options.projection !== undefined;
    let wFinite = projected ? null : (o.optimizer.applyFused?.(grad, this.optimizerState, this.w, ctx) ?? null);
    if (wFinite === null) {
      this.optimizerState = o.optimizer.update(grad, this.optimizerState, this.w, ctx);
      if (projected) applyUpdates(this.w, grad, this.chain.backend);
      else wFinite = applyUpdatesFinite(this.w, grad, this.chain.backend);
    }
    if (!this.parametersFinite(wFinite ?? undefined)) {
      if (skip) return this.skipStep(loss, gradNorm);
      throw this.fault("parameters", batch);
    }
    this.afterUpdate();
    return { loss, gradNorm, skipped: false };
  }

  /** Projects (when configured), then checks w (unless `wFinite` already says) and the state. */
  private parametersFinite(wFinite?: boolean): boolean {
    this.options.projection?.(this.w);
    return (wFinite ?? this.finite(this.w)) && this.finite(this.state);
  }

  /** True when every entry of x is finite (on the chain's backend). */
  private finite(x: FloatArray): boolean {
    return allFiniteOf(this.chain.backend, x.length, x);
  }

  private afterUpdate(): void {
    this.average?.update(this.w);
    this.step++;
    this.consecutiveSkips = 0;
  }

  /** Steps skipped in a row (`onNaN: "skip"`); see {@link TrainerOptions.maxConsecutiveSkips}. */
  private consecutiveSkips = 0;

  private saveBackup(): void {
    if (!this.backup) this.backup = { w: this.w.slice(), state: this.state.slice(), optimizerState: cloneTree(this.optimizerState) };
    else {
      this.backup.w.set(this.w);
      this.backup.state.set(this.state);
      this.backup.optimizerState = copyTreeInto(this.backup.optimizerState, this.optimizerState);
    }
    this.backup.stepper = this.options.stepper?.saveState?.();
  }

  private skipStep(loss: number, gradNorm: number): { loss: number; gradNorm: number; skipped: boolean } {
    const b = this.backup as NonNullable<Trainer["backup"]>;
    this.w.set(b.w);
    this.state.set(b.state);
    this.optimizerState = cloneTree(b.optimizerState);
    if (b.stepper) this.options.stepper?.restoreState?.(b.stepper);
    this.step++;
    this.consecutiveSkips++;
    // At most MAX_CONSECUTIVE_SKIPS in a row, and never a whole epoch's worth of steps.
    const max = this.options.maxConsecutiveSkips ?? Math.min(MAX_CONSECUTIVE_SKIPS, this.position?.batches ?? MAX_CONSECUTIVE_SKIPS);
    if (this.consecutiveSkips >= max) {
      throw new NumericalFaultError(
        `--on-nan skip: ${this.consecutiveSkips} consecutive steps were skipped (non-finite loss, gradient or parameters; the limit is ${max}), so training made no progress; stopped at step ${this.step} (epoch ${this.epoch + 1}). Lower the learning rate or clip gradients (--clip-norm)`,
        this.step,
        null,
        Number.isFinite(loss) ? (Number.isFinite(gradNorm) ? "parameters" : "gradient") : "loss",
      );
    }
    return { loss, gradNorm, skipped: true };
  }

  /** The parameters to evaluate: the averaged iterate when averaging, else w. */
  evaluationParams(): FloatArray {
    return this.average && this.average.count > 0 ? this.average.averaged : this.w;
  }

  /** Loss and accuracy on a data set, with the evaluation parameters (or the given ones, e.g. {@link Trainer.finalParams}). */
  evaluate(dataset: Dataset, params: FloatArray = this.evaluationParams()): Evaluation {
    // --- data parallel: each rank evaluates its share, the sums are all-reduced ---
    const dp = this.options.dataParallel;
    if (dp)
      return dp.evaluate(this.chain, this.options.objective, params, dataset, { state: this.state, batchSize: this.options.evalBatchSize });
    // --- end data parallel ---
    let loader = this.evalLoaders.get(dataset);
    if (!loader) {
      loader = new BatchLoader(dataset, { batchSize: this.options.evalBatchSize ?? 1000, dtype: this.chain.dtype });
      this.evalLoaders.set(dataset, loader);
    }
    return evaluateDataset(this.chain, this.options.objective, params, dataset, { state: this.state, loader });
  }

  /** Learning rate at a step, when known. */
  currentLearningRate(step: number): number {
    const lr = this.options.learningRate;
    return lr === undefined ? Number.NaN : learningRateAt(lr, step);
  }

  /**
   * Ends training: with early stopping, restores the best parameters; with averaging, makes the
   * averaged iterate the final parameters. Returns the final parameters.
   */
  finalParams(): FloatArray {
    if (this.earlyStopping?.bestParams) return this.earlyStopping.bestParams;
    return this.evaluationParams();
  }

  /** A deep copy of everything needed to resume. */
  snapshot(): TrainerSnapshot {
    return {
      params: this.w.slice(),
      state: this.state.slice(),
      optimizerState: cloneTree(this.optimizerState),
      rng: this.rng.getState(),
      epoch: this.epoch,
      step: this.step,
      average: this.average ? { count: this.average.count, averaged: this.average.averaged.slice() } : null,
      earlyStopping: this.earlyStopping
        ? { bestValue: this.earlyStopping.bestValue, bestEpoch: this.earlyStopping.bestEpoch, badEpochs: this.earlyStopping.badEpochs }
        : null,
      bestParams: this.earlyStopping?.bestParams?.slice() ?? null,
      stepper: this.options.stepper?.saveState?.() ?? null,
      batchTransform: this.options.batchTransform?.saveState?.() ?? null,
      loss: this.options.objective.loss.saveState?.()?.slice() ?? null,
    };
  }

  /** Restores a {@link TrainerSnapshot}. */
  restore(s: TrainerSnapshot): void {
    this.chain.checkParams(s.params, "checkpoint parameters");
    if (s.state.length !== this.state.length)
      throw new Error(`checkpoint state: expected ${this.state.length} entries, got ${s.state.length}`);
    // A snapshot of a trainer configured otherwise cannot continue this one bit-identically.
    if (!!this.average !== !!s.average) {
      throw new Error(
        `checkpoint: ${s.average ? "has" : "lacks"} an averaged iterate, but this trainer ${this.average ? "averages" : "does not average"}`,
      );
    }
    if (!!this.earlyStopping !== !!s.earlyStopping) {
      throw new Error(
        `checkpoint: ${s.earlyStopping ? "has" : "lacks"} early-stopping state, but this trainer ${this.earlyStopping ? "stops early" : "does not stop early"}`,
      );
    }
    this.w.set(s.params);
    this.state.set(s.state);
    this.optimizerState = cloneTree(s.optimizerState);
    this.rng.setState(s.rng);
    this.epoch = s.epoch;
    this.step = s.step;
    this.backup = null;
    if (s.stepper && this.options.stepper?.restoreState) this.options.stepper.restoreState(s.stepper);
    if (s.batchTransform && this.options.batchTransform?.restoreState) this.options.batchTransform.restoreState(s.batchTransform);
    if (s.loss && this.options.objective.loss.restoreState) this.options.objective.loss.restoreState(s.loss);
    if (this.average && s.average) this.average.restore(s.average);
    this.stopped = false;
    if (this.earlyStopping && s.earlyStopping) {
      this.earlyStopping.restore(s.earlyStopping);
      this.earlyStopping.bestParams = s.bestParams ? s.bestParams.slice() : null;
      // A run that early stopping had ended stays ended.
      this.stopped = this.earlyStopping.shouldStop;
    }
  }

  /**
   * Names the first layer at fault: for the parameters, the first component whose parameters (or
   * batch-norm statistics) are not finite; for the gradient, the component nearest the loss whose
   * gradient block is not finite (the backward pass meets it first); for the loss, the first
   * component whose output on this batch is not finite (the forward pass meets it first).
   */
  private fault(what: "loss" | "gradient" | "parameters", batch: Batch): NumericalFaultError {
    const chain = this.chain;
    const n = chain.components.length;
    const label = (i: number) => `layers[${i}] (${chain.components[i].type})`;
    let culprit: string | null = null;
    if (what === "parameters") {
      for (let i = 0; i < n && culprit === null; i++) {
        if (!this.finite(chain.paramBlock(this.w, i))) culprit = `${label(i)} parameters`;
        else if (!this.finite(chain.stateBlock(this.state, i))) culprit = `${label(i)} running statistics`;
      }
    } else if (what === "gradient") {
      for (let i = n - 1; i >= 0 && culprit === null; i--)
        if (!this.finite(chain.paramBlock(this.grad, i))) culprit = `${label(i)} gradient`;
    }
    if (culprit === null && what !== "parameters") {
      const ws = chain.workspace(batch.size);
      for (let i = 0; i < n && culprit === null; i++) if (!this.finite(ws.activations[i + 1])) culprit = `${label(i)} output`;
    }
    const step = this.step + 1;
    const where = this.position ? `, batch ${this.position.batch} of ${this.position.batches}` : "";
    const at = culprit ? `first at ${culprit}` : "every layer's output is finite: the loss itself overflowed";
    return new NumericalFaultError(
      `non-finite ${what} at step ${step} (epoch ${this.epoch + 1}${where}); ${at}. Lower the learning rate, clip gradients (--clip-norm), or skip such steps (--on-nan skip)`,
      step,
      culprit,
      what,
    );
  }
}

/** Copies `src` into `dst` (a tree of the same shape owned by the caller), reusing dst's buffers. */
function copyTreeInto(dst: StateTree, src: StateTree): StateTree {
  if (typeof src === "number") return src;
  if (src instanceof Float32Array || src instanceof Float64Array) {
    if ((dst instanceof Float32Array || dst instanceof Float64Array) && dst.length === src.length && dst.constructor === src.constructor) {
      dst.set(src);
      return dst;
    }
    return src.slice();
  }
  if (Array.isArray(src)) {
    const d = Array.isArray(dst) && dst.length === src.length ? (dst as StateTree[]) : new Array<StateTree>(src.length);
    for (let i = 0; i < src.length; i++) d[i] = copyTreeInto(d[i], src[i]);
    return d;
  }
  const d = (typeof dst === "object" && dst !== null && !Array.isArray(dst) && !ArrayBuffer.isView(dst) ? dst : {}) as Record<
    string,
    StateTree
  >;
  for (const [k, v] of Object.entries(src as Record<string, StateTree>)) d[k] = copyTreeInto(d[k], v);
  return d;
}

function cloneTree(t: StateTree): StateTree {
  if (typeof t === "number") return t;
  if (t instanceof Float32Array || t instanceof Float64Array) return t.slice();
  if (Array.isArray(t)) return t.map(cloneTree);
  const out: Record<string, StateTree> = {};
  for (const [k, v] of Object.entries(t as Record<string, StateTree>)) out[k] = cloneTree(v);
  return out;
}
