import { type FloatArray, allocate } from "../core/dtype.js";
import { Rng, type RngState } from "../core/rng.js";
import { allFinite, norm2 } from "../core/vector.js";
import type { Chain } from "../chain/chain.js";
import { BatchLoader, type Dataset } from "../data/dataset.js";
import type { Batch } from "../objectives/batch.js";
import type { Objective } from "../objectives/objective.js";
import { valueAndGradient } from "../oracles/first-order.js";
import { type AverageState, type IterateAverage, createAverage } from "../optim/averaging.js";
import { EarlyStopping, type EarlyStoppingState } from "../optim/early-stopping.js";
import { type GradientTransformation, type LearningRate, type StateTree, applyUpdates, learningRateAt } from "../optim/transform.js";
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
 * `w` in place and returns the objective value at the start of the step.
 */
export interface CustomStepper {
  readonly name: string;
  step(chain: Chain, objective: Objective, w: FloatArray, batch: Batch, stepIndex: number): { value: number; loss: number; gradNorm: number };
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
  onStep?: (progress: StepProgress) => void;
}

/** A non-finite value appeared; names the step and the component. */
export class NumericalFaultError extends Error {
  constructor(
    message: string,
    readonly step: number,
    readonly component: string | null,
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
    this.average = options.average ? createAverage(options.average.kind, this.w, options.average) : null;
    this.earlyStopping = options.earlyStopping ? new EarlyStopping(options.earlyStopping) : null;
  }

  /** Trains one epoch on `data.train`, then evaluates on `data.validation`. */
  runEpoch(data: TrainData): EpochRecord {
    const o = this.options;
    const train = data.train;
    if (this.loader?.dataset !== train) this.loader = new BatchLoader(train, { batchSize: o.batchSize, dtype: this.chain.dtype, dropLast: o.dropLast });
    const loader = this.loader;
    const started = performance.now();
    const order = (o.shuffle ?? true) ? this.rng.permutation(train.size) : null;
    const batches = loader.batchCount(train.size);
    let lossSum = 0;
    let gradNormSum = 0;
    let seen = 0;
    let steps = 0;
    for (let b = 0; b < batches; b++) {
      const batch = loader.batch(b, order);
      const { loss, gradNorm } = this.trainStep(batch);
      lossSum += loss * batch.size;
      gradNormSum += gradNorm;
      seen += batch.size;
      steps++;
      o.onStep?.({ epoch: this.epoch + 1, batch: b + 1, batches, loss, samplesPerSecond: seen / ((performance.now() - started) / 1000) });
    }
    this.epoch++;
    const record: EpochRecord = {
      epoch: this.epoch,
      trainLoss: lossSum / Math.max(seen, 1),
      learningRate: this.currentLearningRate(Math.max(this.step - 1, 0)),
      gradNorm: gradNormSum / Math.max(steps, 1),
      steps,
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
    record.seconds = (performance.now() - started) / 1000;
    record.samplesPerSecond = seen / record.seconds;
    return record;
  }

  /** One optimization step on a batch; returns the loss before the step and the gradient norm. */
  trainStep(batch: Batch): { loss: number; gradNorm: number } {
    const o = this.options;
    const stepIndex = this.step;
    if (o.stepper) {
      const r = o.stepper.step(this.chain, o.objective, this.w, batch, stepIndex);
      this.afterUpdate(r.loss);
      return { loss: r.loss, gradNorm: r.gradNorm };
    }
    const { loss, grad } = valueAndGradient(this.chain, o.objective, this.w, batch, {
      grad: this.grad,
      training: true,
      state: this.state,
      updateState: true,
    });
    const gradNorm = norm2(grad);
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
      if ((o.onNaN ?? "stop") === "skip") {
        this.step++;
        return { loss, gradNorm };
      }
      throw this.fault(Number.isFinite(loss) ? "gradient" : "loss");
    }
    this.optimizerState = o.optimizer.update(grad, this.optimizerState, this.w, stepIndex);
    applyUpdates(this.w, grad);
    this.afterUpdate(loss);
    return { loss, gradNorm };
  }

  private afterUpdate(loss: number): void {
    this.options.projection?.(this.w);
    if (!allFinite(this.w)) {
      if ((this.options.onNaN ?? "stop") === "stop") throw this.fault("parameters");
    }
    this.average?.update(this.w);
    this.step++;
    void loss;
  }

  /** The parameters to evaluate: the averaged iterate when averaging, else w. */
  evaluationParams(): FloatArray {
    return this.average && this.average.count > 0 ? this.average.averaged : this.w;
  }

  /** Loss and accuracy on a data set, with the evaluation parameters. */
  evaluate(dataset: Dataset): Evaluation {
    let loader = this.evalLoaders.get(dataset);
    if (!loader) {
      loader = new BatchLoader(dataset, { batchSize: this.options.evalBatchSize ?? 1000, dtype: this.chain.dtype });
      this.evalLoaders.set(dataset, loader);
    }
    return evaluateDataset(this.chain, this.options.objective, this.evaluationParams(), dataset, { state: this.state, loader });
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
    };
  }

  /** Restores a {@link TrainerSnapshot}. */
  restore(s: TrainerSnapshot): void {
    this.chain.checkParams(s.params, "checkpoint parameters");
    this.w.set(s.params);
    this.state.set(s.state);
    this.optimizerState = s.optimizerState;
    this.rng.setState(s.rng);
    this.epoch = s.epoch;
    this.step = s.step;
    if (this.average && s.average) this.average.restore(s.average);
    if (this.earlyStopping && s.earlyStopping) {
      this.earlyStopping.bestValue = s.earlyStopping.bestValue;
      this.earlyStopping.bestEpoch = s.earlyStopping.bestEpoch;
      this.earlyStopping.badEpochs = s.earlyStopping.badEpochs;
      this.earlyStopping.bestParams = s.bestParams ? s.bestParams.slice() : null;
    }
  }

  private fault(what: string): NumericalFaultError {
    // Name the first component whose output or parameters are not finite.
    let culprit: string | null = null;
    const ws = this.chain.workspace(this.options.batchSize);
    for (let i = 0; i < this.chain.components.length && culprit === null; i++) {
      const c = this.chain.components[i];
      if (!allFinite(this.chain.paramBlock(this.w, i))) culprit = `layers[${i}] (${c.type}) parameters`;
      else if (!allFinite(ws.activations[i + 1])) culprit = `layers[${i}] (${c.type}) output`;
    }
    return new NumericalFaultError(
      `non-finite ${what} at step ${this.step} (epoch ${this.epoch + 1})${culprit ? `, first at ${culprit}` : ""}; lower the learning rate or use --on-nan skip`,
      this.step,
      culprit,
    );
  }
}

function cloneTree(t: StateTree): StateTree {
  if (typeof t === "number") return t;
  if (t instanceof Float32Array || t instanceof Float64Array) return t.slice();
  if (Array.isArray(t)) return t.map(cloneTree);
  const out: Record<string, StateTree> = {};
  for (const [k, v] of Object.entries(t as Record<string, StateTree>)) out[k] = cloneTree(v);
  return out;
}
