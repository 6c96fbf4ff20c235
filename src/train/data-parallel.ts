import type { Chain } from "../chain/chain.js";
import { allreduceSumOrdered, type Collective, shareOf } from "../core/collective.js";
import { allocate, type FloatArray } from "../core/dtype.js";
import type { Batch } from "../objectives/batch.js";
import type { Objective } from "../objectives/objective.js";
import { type GradientOptions, type ValueAndGradient, valueAndGradient } from "../oracles/first-order.js";
import { sliceBatch } from "../second-order/distributed.js";

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

  /** x ← Σ_ranks x (in rank order when deterministic), timing the collective. */
  reduce(x: FloatArray): void {
    const t = performance.now();
    if (this.deterministic) this.scratch = allreduceSumOrdered(this.collective, x, this.scratch);
    else this.collective.allreduceSum(x);
    this.commSeconds += (performance.now() - t) / 1000;
    this.reductions++;
  }

  /** Makes every rank hold rank 0's arrays (initial parameters and state). */
  broadcast(...arrays: FloatArray[]): void {
    for (const a of arrays) if (a.length > 0) this.collective.broadcast(a, 0);
  }
}
