import type { Chain } from "../chain/chain.js";
import type { FloatArray } from "../core/dtype.js";
import { type Dataset, subsetDataset } from "../data/dataset.js";
import type { Batch } from "../objectives/batch.js";
import type { Objective } from "../objectives/objective.js";
import type { ArmijoState } from "../optim/armijo.js";
import type { StateTree } from "../optim/transform.js";
import { curvatureDiagnostics } from "../train/diagnostics.js";

// Per-epoch numbers of `train --diagnostics` (curvature on a fixed probe batch, docs/diagnostics.md)
// and of `--line-search armijo` (the accepted step, evaluations), added to the epoch records.

/** Samples of the fixed probe batch (the first training samples). */
export const PROBE_SIZE = 64;

/** The fixed probe batch: the first min(PROBE_SIZE, n) training samples, in the chain's precision. */
export function probeBatch(chain: Chain, train: Dataset): Batch {
  const p = subsetDataset(train, Math.min(PROBE_SIZE, train.size));
  const conv = (a: Float32Array | Float64Array): FloatArray =>
    chain.dtype === "float64" ? Float64Array.from(a) : a instanceof Float32Array ? a : Float32Array.from(a);
  return { x: conv(p.x), size: p.size, ...(p.labels ? { labels: p.labels } : {}), ...(p.targets ? { targets: conv(p.targets) } : {}) };
}

/** What the extras read of the run. */
export interface EpochExtrasInput {
  readonly w: FloatArray;
  readonly state: FloatArray;
  readonly optimizerState: StateTree;
  readonly learningRate: number;
}

/**
 * A function of the trainer's state after an epoch returning the extra numbers of that epoch
 * (empty when neither --diagnostics nor a first-order line search is on).
 */
export function createEpochExtras(
  options: { diagnostics: boolean; armijo: boolean },
  chain: Chain,
  objective: Objective,
  train: Dataset,
  /** The optimizer state the run starts (or resumes) from: per-epoch counts are differences. */
  initialOptimizerState?: StateTree,
): (input: EpochExtrasInput) => Record<string, number> {
  const probe = options.diagnostics ? probeBatch(chain, train) : null;
  const armijoState = (t: StateTree | undefined): ArmijoState | null =>
    t !== undefined && !Array.isArray(t) && typeof t === "object" && typeof (t as { step?: unknown }).step === "number"
      ? (t as unknown as ArmijoState)
      : null;
  let evaluations = armijoState(initialOptimizerState)?.evaluations ?? 0;
  return (input) => {
    const out: Record<string, number> = {};
    if (options.armijo) {
      const s = armijoState(input.optimizerState);
      if (s) {
        out.armijoStep = s.step;
        out.armijoEvaluations = s.evaluations - evaluations;
        out.armijoFallbacks = s.fallbacks;
        out.armijoFailures = s.failures;
        evaluations = s.evaluations;
      }
    }
    if (probe) {
      // The step of the ratio: the last accepted Armijo step in a line-search run, else the learning rate.
      const step = out.armijoStep ?? input.learningRate;
      const d = curvatureDiagnostics(chain, objective, input.w, probe, step, { state: input.state });
      out.probeGradNorm = d.gradNorm;
      out.hessianTop = d.hessianTop;
      out.gaussNewtonTop = d.gaussNewtonTop;
      out.gradientCurvature = d.gradientCurvature;
      out.curvatureRatio = d.ratio;
    }
    return out;
  };
}
