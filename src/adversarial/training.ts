import type { Chain } from "../chain/chain.js";
import { allocate, type FloatArray } from "../core/dtype.js";
import { Rng } from "../core/rng.js";
import { BatchLoader, type Dataset } from "../data/dataset.js";
import type { Batch } from "../objectives/batch.js";
import type { Loss } from "../objectives/loss.js";
import type { BatchTransform } from "../train/trainer.js";
import { type AttackOptions, attackBatch, checkAttackOptions, robustEvaluation } from "./attack.js";

// Adversarial training (docs/adversarial.md): the trainer's batch transform that replaces a
// fraction of each mini-batch by adversarial examples before the step, and the robust evaluation
// of a data set.

/** The attack of adversarial training: everything but the generator and the state. */
export type TrainingAttack = Omit<AttackOptions, "rng" | "state" | "start">;

/** Options of {@link AdversarialTransform}. */
export interface AdversarialTransformOptions {
  loss: Loss;
  attack: TrainingAttack;
  /**
   * Fraction of each batch replaced by adversarial examples, in [0, 1]: 1 is Madry et al.'s
   * min-max training (2018, arXiv:1706.06083, Eq. (2.1)); below 1 the mixed objective
   * (1 − m)·clean + m·adversarial of Goodfellow et al. (2015, arXiv:1412.6572, Sec. 6), the first
   * round(m·N) samples of each (shuffled) batch being attacked.
   */
  mix: number;
  /** Seed of the attack's random starts (its generator is saved in checkpoints). */
  seed: number;
}

/**
 * A {@link BatchTransform} computing adversarial examples at the current parameters w (evaluation
 * mode: batch-norm reads its running statistics) with its own generator, whose state
 * {@link AdversarialTransform.saveState} exposes so that a resumed run is bit-identical.
 */
export class AdversarialTransform implements BatchTransform {
  readonly name = "adversarial";
  readonly rng: Rng;
  private buffers = new Map<number, FloatArray>();

  constructor(readonly options: AdversarialTransformOptions) {
    if (!(options.mix >= 0 && options.mix <= 1)) throw new Error(`mix: expected a fraction in [0, 1], got ${options.mix}`);
    this.rng = new Rng(options.seed);
  }

  transform(chain: Chain, w: FloatArray, batch: Batch, state: FloatArray): Batch {
    const m = Math.round(this.options.mix * batch.size);
    if (m === 0) return batch;
    const d = chain.inputSize;
    let x = this.buffers.get(batch.size);
    if (x?.length !== batch.size * d || x.constructor !== batch.x.constructor) {
      x = allocate(chain.dtype, batch.size * d);
      this.buffers.set(batch.size, x);
    }
    const out: Batch = { x, size: batch.size, labels: batch.labels, targets: batch.targets };
    out.x.set(batch.x.subarray(0, batch.size * d));
    const part: Batch = {
      x: batch.x.subarray(0, m * d),
      size: m,
      ...(batch.labels ? { labels: batch.labels.subarray(0, m) } : {}),
      ...(batch.targets ? { targets: batch.targets.subarray(0, m * chain.outputSize) } : {}),
    };
    const adv = attackBatch(chain, this.options.loss, w, part, {
      ...this.options.attack,
      rng: this.rng,
      state: state.length > 0 ? state : undefined,
    });
    out.x.set(adv.x, 0);
    return out;
  }

  saveState(): Record<string, number> {
    const s = this.rng.getState();
    return { w0: s.words[0], w1: s.words[1], w2: s.words[2], w3: s.words[3], spareNormal: s.spareNormal ?? Number.NaN };
  }

  restoreState(s: Record<string, number>): void {
    this.rng.setState({ words: [s.w0, s.w1, s.w2, s.w3], spareNormal: s.spareNormal });
  }
}

/** Robust evaluation of a data set (see {@link robustEvaluation}), batch by batch. */
export interface DatasetRobustness {
  samples: number;
  cleanLoss: number;
  cleanAccuracy: number;
  robustLoss: number;
  robustAccuracy: number;
}

/**
 * Clean and robust loss/accuracy over the first `limit` samples of a labelled data set, the
 * attack drawing from a generator seeded with `seed` (so the numbers are reproducible).
 */
export function datasetRobustness(
  chain: Chain,
  loss: Loss,
  w: FloatArray,
  ds: Dataset,
  attack: TrainingAttack,
  options: { state?: FloatArray; seed?: number; limit?: number; batchSize?: number } = {},
): DatasetRobustness {
  checkAttackOptions({ ...attack }, chain);
  if (!ds.labels) throw new Error(`data set ${ds.name}: robust accuracy needs class labels`);
  const n = Math.min(ds.size, options.limit ?? ds.size);
  const loader = new BatchLoader(ds, { batchSize: Math.max(1, Math.min(options.batchSize ?? 500, n)), dtype: chain.dtype });
  const rng = new Rng(options.seed ?? 0);
  const order = Uint32Array.from({ length: n }, (_, i) => i);
  let cl = 0;
  let ca = 0;
  let rl = 0;
  let ra = 0;
  for (const b of loader.epoch(order)) {
    const r = robustEvaluation(chain, loss, w, b, {
      ...attack,
      rng,
      state: options.state && options.state.length > 0 ? options.state : undefined,
    });
    cl += r.cleanLoss * b.size;
    ca += r.cleanAccuracy * b.size;
    rl += r.robustLoss * b.size;
    ra += r.robustAccuracy * b.size;
  }
  return { samples: n, cleanLoss: cl / n, cleanAccuracy: ca / n, robustLoss: rl / n, robustAccuracy: ra / n };
}
