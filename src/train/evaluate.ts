import type { Chain } from "../chain/chain.js";
import type { FloatArray } from "../core/dtype.js";
import { BatchLoader, type Dataset } from "../data/dataset.js";
import { countCorrect } from "../objectives/loss.js";
import type { Objective } from "../objectives/objective.js";
import { forward } from "../oracles/first-order.js";

/** Loss (without the regularizer) and, for classification, accuracy of a chain on a data set. */
export interface Evaluation {
  loss: number;
  /** Fraction of correctly classified samples, for data sets with labels. */
  accuracy?: number;
  size: number;
}

/**
 * Evaluates f(ψ(w)) over a whole data set in evaluation mode (batch-norm uses running
 * statistics from `state`), in chunks of `batchSize` samples, weighting each chunk by its size.
 */
export function evaluateDataset(
  chain: Chain,
  objective: Objective,
  w: FloatArray,
  dataset: Dataset,
  options: { state?: FloatArray; batchSize?: number; loader?: BatchLoader } = {},
): Evaluation {
  const loader = options.loader ?? new BatchLoader(dataset, { batchSize: options.batchSize ?? 1000, dtype: chain.dtype });
  let loss = 0;
  let correct = 0;
  for (const batch of loader.epoch()) {
    const out = forward(chain, w, batch.x, batch.size, { training: false, state: options.state });
    loss += objective.loss.evaluate(out, batch, chain.outputSize, null, chain.backend) * batch.size;
    if (batch.labels) correct += countCorrect(out, batch.labels, batch.size, chain.outputSize);
  }
  const n = Math.max(dataset.size, 1);
  return { loss: loss / n, accuracy: dataset.labels ? correct / n : undefined, size: dataset.size };
}
