import type { FloatArray } from "../core/dtype.js";

// Early stopping on the validation loss (lecture 6, slide "Learning as Optimization": the empirical
// risk is only a proxy, "monitoring on validation set, early stopping"; Prechelt, "Early stopping —
// but when?", 1998; Goodfellow et al., Deep Learning, Alg. 7.1).

/** Options of {@link EarlyStopping}. */
export interface EarlyStoppingOptions {
  /** Stop after this many epochs without improvement (≥ 1). */
  patience: number;
  /** An improvement must lower the best value by more than this (default 0). */
  minDelta?: number;
}

/** Outcome of {@link EarlyStopping.observe}. */
export interface EarlyStoppingDecision {
  /** This epoch is the new best (the caller snapshots its parameters, or passed them to observe). */
  improved: boolean;
  /** Patience is exhausted: stop training (and restore the best parameters). */
  stop: boolean;
}

/** Checkpointable state of {@link EarlyStopping}. */
export type EarlyStoppingState = { bestValue: number; bestEpoch: number; badEpochs: number };

/**
 * Tracks the validation loss per epoch: records the best value and epoch, counts epochs without an
 * improvement of more than `minDelta`, and says when `patience` of them have passed. When `observe`
 * is given the parameters, it copies them into {@link EarlyStopping.bestParams} on improvement
 * (one buffer, allocated once), for restoring at the end.
 */
export class EarlyStopping {
  readonly patience: number;
  readonly minDelta: number;
  bestValue = Number.POSITIVE_INFINITY;
  bestEpoch = -1;
  badEpochs = 0;
  /** A copy of the parameters of the best epoch, when they were passed to observe. */
  bestParams: FloatArray | null = null;

  constructor(options: EarlyStoppingOptions) {
    this.patience = options.patience;
    this.minDelta = options.minDelta ?? 0;
    if (!Number.isInteger(this.patience) || this.patience < 1) {
      throw new Error(`early stopping: option "patience" must be an integer ≥ 1, got ${options.patience}`);
    }
    if (!(Number.isFinite(this.minDelta) && this.minDelta >= 0)) {
      throw new Error(`early stopping: option "minDelta" must be a finite number ≥ 0, got ${options.minDelta}`);
    }
  }

  /** Records the validation loss of `epoch`. A non-finite loss never improves. */
  observe(value: number, epoch: number, params?: ArrayLike<number>): EarlyStoppingDecision {
    const improved = Number.isFinite(value) && (this.bestEpoch < 0 || value < this.bestValue - this.minDelta);
    if (improved) {
      this.bestValue = value;
      this.bestEpoch = epoch;
      this.badEpochs = 0;
      if (params) {
        if (!this.bestParams || this.bestParams.length !== params.length) {
          this.bestParams = params instanceof Float32Array ? new Float32Array(params.length) : new Float64Array(params.length);
        }
        for (let i = 0; i < params.length; i++) this.bestParams[i] = params[i];
      }
    } else this.badEpochs++;
    return { improved, stop: this.badEpochs >= this.patience };
  }

  /** Whether patience is exhausted. */
  get shouldStop(): boolean {
    return this.badEpochs >= this.patience;
  }

  /** The counters (bestParams are checkpointed by the caller). */
  state(): EarlyStoppingState {
    return { bestValue: this.bestValue, bestEpoch: this.bestEpoch, badEpochs: this.badEpochs };
  }

  restore(state: EarlyStoppingState): void {
    this.bestValue = state.bestValue;
    this.bestEpoch = state.bestEpoch;
    this.badEpochs = state.badEpochs;
  }
}
