import type { Chain } from "../chain/chain.js";
import { allreduceSumOrdered, type Collective, shareOf } from "../core/collective.js";
import { allocate, type FloatArray } from "../core/dtype.js";
import { now as hostNow } from "../core/host.js";
import { norm2Of } from "../core/kernels.js";
import type { Dataset } from "../data/dataset.js";
import type { Batch } from "../objectives/batch.js";
import type { Objective } from "../objectives/objective.js";
import { type GradientOptions, type ValueAndGradient, valueAndGradient } from "../oracles/first-order.js";
import { distributedGgnDirection, sliceBatch } from "../second-order/distributed.js";
import type { SecondOrderStepResult } from "../second-order/stepper.js";
import { type Evaluation, evaluateDataset } from "./evaluate.js";
import type { SecondOrderCustomStepper } from "./second-order.js";

/**
 * Synchronous data-parallel gradients (docs/distributed.md): each of the `size` ranks holds the
 * same parameters and the same global batch order; rank r computes the gradient of its contiguous
 * share of the global batch, rows [⌊rB/N⌋, ⌊(r+1)B/N⌋), and one all-reduce sums the shares.
 *
 * Why this is the one-process gradient: the objective is the batch mean plus a regularizer,
 * F_B(w) = (1/B) Σ_{i∈B} f_i(w) + r(w). With B_r the share of rank r (|B_r| = n_r, Σ n_r = B),
 *   F_B(w) = Σ_r (n_r/B) [ (1/n_r) Σ_{i∈B_r} f_i(w) + r(w) ] = Σ_r (n_r/B) F_{B_r}(w),
 * because Σ_r n_r/B = 1; the same holds for the gradient, by linearity. So each rank scales its
 * local value and gradient by n_r/B and the sum over ranks is exactly F_B and ∇F_B (up to the
 * rounding of a different summation order). This is the synchronous SGD of Goyal et al.,
 * "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour" (arXiv:1706.02677), §3.
 *
 * Batch normalization: each rank normalizes with the statistics of its own share (as PyTorch's
 * DistributedDataParallel without SyncBatchNorm does), and the running statistics are averaged
 * over ranks with the same weights n_r/B after each step, so that every rank keeps the same state.
 * Chains with batch normalization therefore match the one-process run only approximately; chains
 * without it match to rounding.
 *
 * `deterministic`: the sum is taken in rank order after an all-gather ({@link allreduceSumOrdered}),
 * so a run is bit-reproducible for a given number of ranks; otherwise MPI_Allreduce sums in the
 * library's order (faster: a reduce-scatter/all-gather ring instead of N copies of the buffer).
 */
export class DataParallel {
  readonly collective: Collective;
  readonly deterministic: boolean;
  /** Seconds spent in collectives (communication and waiting for the slowest rank), since creation. */
  commSeconds = 0;
  /** Collectives performed since creation. */
  reductions = 0;
  private packed: FloatArray | null = null;
  private scratch: FloatArray | undefined;
  private readonly shares = new WeakMap<Dataset, Dataset>();

  constructor(collective: Collective, options: { deterministic?: boolean } = {}) {
    this.collective = collective;
    this.deterministic = options.deterministic ?? false;
  }

  /** The rows [lo, hi) of a global batch of `size` samples that this rank computes. */
  share(size: number): { lo: number; hi: number } {
    return shareOf(this.collective.rank, this.collective.size, size);
  }

  /** This rank's share of a global batch (views, no copies). */
  localBatch(batch: Batch): Batch {
    const { lo, hi } = this.share(batch.size);
    return sliceBatch(batch, lo, hi);
  }

  /**
   * Value and gradient of the objective on the *global* batch, computed on this rank's share and
   * all-reduced (with the batch-norm running statistics when `options.updateState`): a drop-in for
   * {@link valueAndGradient}. Every rank returns the same numbers. `output` is this rank's share's.
   */
  valueAndGradient(chain: Chain, objective: Objective, w: FloatArray, batch: Batch, options: GradientOptions = {}): ValueAndGradient {
    const local = this.localBatch(batch);
    const weight = batch.size > 0 ? local.size / batch.size : 0;
    const grad = options.grad ?? allocate(chain.dtype, chain.paramSize);
    let r: ValueAndGradient;
    const before = options.updateState && options.state ? options.state.slice() : null;
    if (local.size > 0) r = valueAndGradient(chain, objective, w, local, { ...options, grad });
    else {
      // An empty share (global batch smaller than the number of ranks): weight 0, nothing to add.
      grad.fill(0);
      r = { value: 0, loss: 0, grad, output: allocate(chain.dtype, 0) };
    }
    const p = chain.paramSize;
    const s = before && options.state ? options.state.length : 0;
    const n = p + 2 + s;
    if (!this.packed || this.packed.length !== n || this.packed.constructor !== grad.constructor) this.packed = allocate(chain.dtype, n);
    const buf = this.packed;
    for (let i = 0; i < p; i++) buf[i] = weight * grad[i];
    buf[p] = weight * r.value;
    buf[p + 1] = weight * r.loss;
    if (before && options.state) {
      // An empty share leaves the running statistics as they were; they enter with weight 0.
      const st = options.state;
      for (let i = 0; i < s; i++) buf[p + 2 + i] = weight * (local.size > 0 ? st[i] : before[i]);
    }
    this.reduce(buf);
    grad.set(buf.subarray(0, p));
    if (before && options.state) options.state.set(buf.subarray(p + 2, p + 2 + s));
    return { value: buf[p], loss: buf[p + 1], grad, output: r.output };
  }

  /**
   * Loss and accuracy over a whole data set, each rank evaluating its contiguous share of the
   * samples and one all-reduce summing (loss × count, correct count): the one-process
   * {@link evaluateDataset} up to the rounding of the sum, the same on every rank.
   */
  evaluate(
    chain: Chain,
    objective: Objective,
    w: FloatArray,
    dataset: Dataset,
    options: { state?: FloatArray; batchSize?: number } = {},
  ): Evaluation {
    const { lo, hi } = this.share(dataset.size);
    let part = this.shares.get(dataset);
    if (!part) {
      const inSize = dataset.size > 0 ? dataset.x.length / dataset.size : 0;
      const t = dataset.targetSize ?? 0;
      part = {
        ...dataset,
        size: hi - lo,
        x: dataset.x.subarray(lo * inSize, hi * inSize),
        ...(dataset.labels ? { labels: dataset.labels.subarray(lo, hi) } : {}),
        ...(dataset.targets ? { targets: dataset.targets.subarray(lo * t, hi * t) } : {}),
      };
      this.shares.set(dataset, part);
    }
    const sums = new Float64Array(2);
    if (part.size > 0) {
      const e = evaluateDataset(chain, objective, w, part, options);
      sums[0] = e.loss * part.size;
      sums[1] = (e.accuracy ?? 0) * part.size;
    }
    this.reduce(sums);
    const n = Math.max(dataset.size, 1);
    return { loss: sums[0] / n, accuracy: dataset.labels ? Math.round(sums[1]) / n : undefined, size: dataset.size };
  }

  /** x ← Σ_ranks x (in rank order when deterministic), timing the collective. */
  reduce(x: FloatArray): void {
    const t = hostNow();
    // The scratch of the ordered sum is kept for the (large, repeated) gradient buffer only.
    if (this.deterministic && x === this.packed) this.scratch = allreduceSumOrdered(this.collective, x, this.scratch);
    else if (this.deterministic) allreduceSumOrdered(this.collective, x);
    else this.collective.allreduceSum(x);
    this.commSeconds += (hostNow() - t) / 1000;
    this.reductions++;
  }

  /** Makes every rank hold rank 0's arrays (initial parameters and state). */
  broadcast(...arrays: FloatArray[]): void {
    for (const a of arrays) if (a.length > 0) this.collective.broadcast(a, 0);
  }
}

/**
 * The Gram-Gauss-Newton training step without line search (`--optimizer ggn --distributed`) with
 * the Gram matrix split by rows across the ranks ({@link distributedGgnDirection}): the global
 * batch of each step is shared out, so the batch of a GGN step can grow with the number of
 * machines. Shares `base`'s state (damping λ, step count) and counters, so checkpoints and run
 * records read as for the one-process stepper; ‖∇F‖ comes from the data-parallel gradient.
 */
export function distributedGgnStepper(dp: DataParallel, base: SecondOrderCustomStepper, stepSize: number): SecondOrderCustomStepper {
  let grad: FloatArray | null = null;
  let last: SecondOrderStepResult | null = null;
  return {
    name: base.name,
    stepper: base.stepper,
    state: base.state,
    counters: base.counters,
    get last() {
      return last;
    },
    step(chain: Chain, objective: Objective, w: FloatArray, batch: Batch) {
      if (grad?.length !== chain.paramSize) grad = allocate(chain.dtype, chain.paramSize);
      const vg = dp.valueAndGradient(chain, objective, w, batch, { grad, training: true });
      const gradNorm = norm2Of(chain.backend, grad.length, grad);
      base.state.steps++;
      const r = distributedGgnDirection(dp.collective, chain, objective, w, batch, {
        damping: base.state.damping,
        stepSize,
        deterministic: dp.deterministic,
      });
      dp.commSeconds += r.timings.communication;
      for (let i = 0; i < w.length; i++) w[i] += r.direction[i];
      base.counters.tries++;
      last = { value: r.value, newValue: Number.NaN, damping: base.state.damping, accepted: true, tries: 1 };
      return { value: r.value, loss: vg.loss, gradNorm };
    },
    saveState: base.saveState,
    restoreState: base.restoreState,
  };
}
