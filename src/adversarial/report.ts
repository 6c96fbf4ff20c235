import type { Chain } from "../chain/chain.js";
import type { FloatArray } from "../core/dtype.js";
import { Rng } from "../core/rng.js";
import type { Batch } from "../objectives/batch.js";
import type { Loss } from "../objectives/loss.js";
import { forward } from "../oracles/first-order.js";
import { attackBatch, correctMask, type InputDomain, toRaw } from "./attack.js";
import { certifiedAccuracy, certifiedRadii, type InputLipschitz, inputLipschitz, inputScale, jacobianLowerBound } from "./lipschitz.js";

// The input-space analysis of a trained classifier (`chainopt analyze --input-space`,
// docs/adversarial.md): certified, AutoLip and naive Lipschitz bounds next to empirical lower
// bounds, certified radii next to the smallest perturbations PGD finds, certified and attacked
// accuracy at given radii.

/** Options of {@link inputSpaceAnalysis}. */
export interface InputSpaceOptions {
  domain: InputDomain;
  state?: FloatArray;
  /** Radii ε (raw units, ℓ2) of the certified/attacked accuracies. */
  radii: readonly number[];
  /** Samples searched for the smallest adversarial perturbation (default 100). */
  searchSamples?: number;
  /** PGD steps of the attacks (default 20) and bisection steps of the search (default 10). */
  steps?: number;
  bisections?: number;
  seed?: number;
}

/** Result of {@link inputSpaceAnalysis}; Lipschitz constants in raw input units. */
export interface InputSpaceAnalysis {
  lipschitz: InputLipschitz;
  /** 1/min std: raw-unit constants are the normalized ones times this. */
  scale: number;
  certified: number;
  autolip: number;
  frobeniusProduct: number;
  /** max over samples of ‖∂ψ/∂x‖₂ (a lower bound on the Lipschitz constant). */
  jacobianLower: number;
  /** max over attacked pairs of ‖ψ(x') − ψ(x)‖/‖x' − x‖ (a lower bound). */
  attackLower: number;
  samples: number;
  cleanAccuracy: number;
  /** Median certified radius over correctly classified samples (per-pair bound; global margin bound). */
  medianCertifiedRadius: number;
  medianGlobalRadius: number;
  /** Median smallest ℓ2 radius at which PGD flips a correctly classified searched sample (∞ if never). */
  medianAttackRadius: number;
  /** Median over searched samples of certified radius / attack radius (≤ 1). */
  medianRadiusRatio: number;
  /** Per radius: certified accuracy (lower bound) and PGD robust accuracy (upper bound). */
  atRadius: { eps: number; certifiedAccuracy: number; attackAccuracy: number }[];
}

function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Runs the analysis on a labelled batch (normalized inputs). */
export function inputSpaceAnalysis(chain: Chain, loss: Loss, w: FloatArray, batch: Batch, o: InputSpaceOptions): InputSpaceAnalysis {
  if (!batch.labels) throw new Error("input-space analysis: the samples need class labels");
  const n = batch.size;
  const d = chain.inputSize;
  const st = o.state && o.state.length > 0 ? o.state : undefined;
  const lip = inputLipschitz(chain, w, { state: st });
  const scale = inputScale(o.domain);
  const out = Float64Array.from(forward(chain, w, batch.x, n, { state: st }));
  const radii = certifiedRadii(chain, w, out, batch.labels, n, lip, scale);
  const correctIdx = [...radii.correct.keys()].filter((i) => radii.correct[i]);
  const rng = new Rng(o.seed ?? 0);
  const steps = o.steps ?? 20;
  const jacobianLower = jacobianLowerBound(chain, w, batch.x, Math.min(n, 100), { state: st, iterations: 30 }) * scale;
  // Smallest adversarial ℓ2 radius per searched sample, by bisection on ε with PGD.
  const search = correctIdx.slice(0, o.searchSamples ?? 100);
  const attackRadius: number[] = [];
  const ratios: number[] = [];
  let attackLower = 0;
  const x0all = toRaw(chain, o.domain, batch.x, n);
  for (const i of search) {
    const one: Batch = { x: batch.x.subarray(i * d, (i + 1) * d), size: 1, labels: batch.labels.subarray(i, i + 1) };
    const flips = (eps: number): FloatArray | null => {
      const adv = attackBatch(chain, loss, w, one, { kind: "pgd", norm: "l2", eps, steps, restarts: 1, domain: o.domain, rng, state: st });
      const y = forward(chain, w, adv.x, 1, { state: st });
      return correctMask(y, one.labels as Int32Array, 1, chain.outputSize)[0] ? null : adv.x.slice();
    };
    let hi = Math.max(4 * radii.radius[i], 0.05);
    let found = flips(hi);
    while (!found && hi < 64) {
      hi *= 2;
      found = flips(hi);
    }
    if (!found) {
      attackRadius.push(Number.POSITIVE_INFINITY);
      continue;
    }
    let lo = 0;
    let best = found;
    for (let b = 0; b < (o.bisections ?? 10); b++) {
      const mid = (lo + hi) / 2;
      const f = flips(mid);
      if (f) {
        hi = mid;
        best = f;
      } else lo = mid;
    }
    // The flipping point's actual distance and output change.
    const xa = toRaw(chain, o.domain, best, 1);
    let dist = 0;
    for (let j = 0; j < d; j++) dist += (xa[j] - x0all[i * d + j]) ** 2;
    dist = Math.sqrt(dist);
    const ya = Float64Array.from(forward(chain, w, best, 1, { state: st }));
    let dy = 0;
    for (let k = 0; k < chain.outputSize; k++) dy += (ya[k] - out[i * chain.outputSize + k]) ** 2;
    if (dist > 0) attackLower = Math.max(attackLower, Math.sqrt(dy) / dist);
    attackRadius.push(dist);
    ratios.push(radii.radius[i] / dist);
  }
  const atRadius = o.radii.map((eps) => {
    let robust = 0;
    if (eps > 0) {
      const adv = attackBatch(chain, loss, w, batch, {
        kind: "pgd",
        norm: "l2",
        eps,
        steps,
        restarts: 1,
        domain: o.domain,
        rng,
        state: st,
      });
      const y = forward(chain, w, adv.x, n, { state: st });
      const ok = correctMask(y, batch.labels as Int32Array, n, chain.outputSize);
      for (let i = 0; i < n; i++) robust += ok[i] & radii.correct[i];
    } else for (let i = 0; i < n; i++) robust += radii.correct[i];
    return { eps, certifiedAccuracy: certifiedAccuracy(radii, eps), attackAccuracy: robust / n };
  });
  return {
    lipschitz: lip,
    scale,
    certified: lip.lipschitz * scale,
    autolip: lip.autolip * scale,
    frobeniusProduct: lip.frobeniusProduct * scale,
    jacobianLower,
    attackLower,
    samples: n,
    cleanAccuracy: correctIdx.length / n,
    medianCertifiedRadius: median(correctIdx.map((i) => radii.radius[i])),
    medianGlobalRadius: median(correctIdx.map((i) => radii.globalRadius[i])),
    medianAttackRadius: median(attackRadius),
    medianRadiusRatio: median(ratios),
    atRadius,
  };
}
