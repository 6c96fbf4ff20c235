import type { Chain } from "../chain/chain.js";
import { allocate, type FloatArray } from "../core/dtype.js";
import type { Rng } from "../core/rng.js";
import type { Batch } from "../objectives/batch.js";
import type { Loss } from "../objectives/loss.js";
import { forward } from "../oracles/first-order.js";
import { lossInputGradient } from "../oracles/input-gradient.js";

// Adversarial attacks on a chain (docs/adversarial.md): the fast gradient (sign) method and
// projected gradient descent in ℓ∞ and ℓ2 balls, computed with the chain's input VJP.
//
// Spaces. Perturbations live in the *raw* input space, where the valid inputs form a box (pixels
// in [0, 1]); the chain reads the normalized input z = (x − mean_c)/std_c (per channel c, the
// `transforms.Normalize` of PyTorch). The ball B(x₀, ε) = {x : ‖x − x₀‖ ≤ ε} is in raw units, and
// ∇_x = ∇_z / std_c by the chain rule.

/** The norm of the perturbation ball. */
export type AttackNorm = "linf" | "l2";

/** The attack kinds. */
export const ATTACK_KINDS = ["fgsm", "pgd"] as const;
/** An attack kind. */
export type AttackKind = (typeof ATTACK_KINDS)[number];

/**
 * Valid raw inputs and the map to the chain's input: every raw coordinate lies in
 * [lower, upper], and the chain reads z = (x − mean_c)/std_c with c the channel (the first axis of
 * the input shape; one entry applies to every coordinate).
 */
export interface InputDomain {
  readonly lower: number;
  readonly upper: number;
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

/** The identity map on the box [lower, upper] (inputs not normalized). */
export function boxDomain(lower = 0, upper = 1): InputDomain {
  return { lower, upper, mean: [0], std: [1] };
}

/** Options of {@link attackBatch}. */
export interface AttackOptions {
  /** `fgsm` (one step of size ε, no random start) or `pgd`. */
  kind: AttackKind;
  norm: AttackNorm;
  /** Radius ε ≥ 0 of the ball, in raw input units. */
  eps: number;
  /** PGD iterations (default 10). */
  steps?: number;
  /** PGD step size α (default 2.5 ε / steps, Madry et al. 2018, Sec. 5 / App. A). */
  stepSize?: number;
  /** Start PGD at a uniform random point of the ball (default true for pgd). */
  randomStart?: boolean;
  /** PGD runs from independent random starts; each sample keeps its highest-loss point (default 1). */
  restarts?: number;
  /** The box and normalization of the inputs. */
  domain: InputDomain;
  /** Random starts draw from this generator (required when random starts are used). */
  rng?: Rng;
  /** Batch-norm running statistics (evaluation mode). */
  state?: FloatArray;
  /**
   * A given start instead of a random one: raw perturbations δ (`size × inputSize`), the first
   * run starting at Π(x₀ + δ) (reference comparisons; later restarts draw random starts).
   */
  start?: ArrayLike<number>;
}

/** Result of {@link attackBatch}. */
export interface AttackResult {
  /** The adversarial inputs, *normalized* (what the chain reads), `size × inputSize`. */
  x: FloatArray;
  /** Per-sample loss at the returned inputs. */
  losses: Float64Array;
}

/** Checks the options; errors name the option at fault. */
export function checkAttackOptions(o: AttackOptions, chain: Chain): void {
  if (!(o.kind === "fgsm" || o.kind === "pgd")) throw new Error(`attack: unknown kind ${JSON.stringify(o.kind)}; expected fgsm or pgd`);
  if (!(o.norm === "linf" || o.norm === "l2")) throw new Error(`norm: unknown norm ${JSON.stringify(o.norm)}; expected linf or l2`);
  if (!(o.eps >= 0) || !Number.isFinite(o.eps)) throw new Error(`eps: expected a finite number ≥ 0, got ${o.eps}`);
  const steps = o.steps ?? 10;
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`steps: expected a positive integer, got ${steps}`);
  if (o.stepSize !== undefined && !(o.stepSize > 0)) throw new Error(`stepSize: expected a positive number, got ${o.stepSize}`);
  const restarts = o.restarts ?? 1;
  if (!Number.isInteger(restarts) || restarts < 1) throw new Error(`restarts: expected a positive integer, got ${restarts}`);
  const d = o.domain;
  if (!(d.lower < d.upper)) throw new Error(`domain: the box [${d.lower}, ${d.upper}] is empty`);
  const channels = chain.inputShape[0];
  for (const [name, a] of [
    ["mean", d.mean],
    ["std", d.std],
  ] as const) {
    if (a.length !== 1 && a.length !== channels)
      throw new Error(
        `domain.${name}: expected 1 or ${channels} entries (channels of input [${chain.inputShape.join(", ")}]), got ${a.length}`,
      );
  }
  if (d.std.some((s) => !(s > 0))) throw new Error("domain.std: expected positive entries");
}

/** Per-coordinate mean and std of one sample (expanded from per-channel values). */
function expand(chain: Chain, a: readonly number[]): Float64Array {
  const out = new Float64Array(chain.inputSize);
  if (a.length === 1) out.fill(a[0]);
  else {
    const plane = chain.inputSize / a.length;
    for (let c = 0; c < a.length; c++) out.fill(a[c], c * plane, (c + 1) * plane);
  }
  return out;
}

/** Raw inputs x = mean + std·z of a batch of normalized inputs z. */
export function toRaw(chain: Chain, domain: InputDomain, z: ArrayLike<number>, size: number): Float64Array {
  const d = chain.inputSize;
  const m = expand(chain, domain.mean);
  const s = expand(chain, domain.std);
  const x = new Float64Array(size * d);
  for (let i = 0; i < size; i++) for (let j = 0; j < d; j++) x[i * d + j] = m[j] + s[j] * z[i * d + j];
  return x;
}

/**
 * Per-sample losses ℓ(ψ(z_i), y_i) of outputs `output` (`size × K`), by evaluating the loss on
 * one-sample views.
 */
export function perSampleLosses(loss: Loss, output: FloatArray, batch: Batch, outputSize: number): Float64Array {
  const out = new Float64Array(batch.size);
  for (let i = 0; i < batch.size; i++) {
    const row = output.subarray(i * outputSize, (i + 1) * outputSize);
    const one: Batch = {
      x: row.subarray(0, 0),
      size: 1,
      ...(batch.labels ? { labels: batch.labels.subarray(i, i + 1) } : {}),
      ...(batch.targets ? { targets: batch.targets.subarray(i * outputSize, (i + 1) * outputSize) } : {}),
    };
    out[i] = loss.evaluate(row, one, outputSize, null);
  }
  return out;
}

/**
 * An attack on a batch: maximizes the loss ℓ(ψ(x, w), y) of each sample over its ball
 * B(x₀, ε) ∩ box. With g = ∇_x ℓ (raw space):
 * - FGSM (Goodfellow, Shlens & Szegedy 2015, "Explaining and Harnessing Adversarial Examples",
 *   arXiv:1412.6572, Sec. 4): x = Π(x₀ + ε sign g) for ℓ∞; its ℓ2 analogue x = Π(x₀ + ε g/‖g‖)
 *   (the fast gradient method).
 * - PGD (Madry et al. 2018, "Towards Deep Learning Models Resistant to Adversarial Attacks",
 *   arXiv:1706.06083, Sec. 2, Eq. (2.1) and App. A): from x₀ or a uniform random point of the
 *   ball, K steps x ← Π(x + α sign g) (ℓ∞), x ← Π(x + α g/‖g‖) (ℓ2; per sample, a zero gradient
 *   gives a zero step), restarts keeping each sample's highest-loss point.
 * Π is the projection onto the ball, then onto the box: for ℓ∞ their intersection is a box and
 * clipping is the exact projection; for ℓ2 clipping after the ball projection stays in the ball
 * (clipping to a box containing x₀ moves no coordinate away from x₀), a feasible point that is the
 * usual PyTorch implementation's, not always the exact projection onto the intersection.
 * The input batch holds normalized inputs (what the chain reads); so does the result.
 */
export function attackBatch(chain: Chain, loss: Loss, w: FloatArray, batch: Batch, options: AttackOptions): AttackResult {
  checkAttackOptions(options, chain);
  const pgd = options.kind === "pgd";
  const steps = pgd ? (options.steps ?? 10) : 1;
  const eps = options.eps;
  const alpha = pgd ? (options.stepSize ?? (2.5 * eps) / steps) : eps;
  const randomStart = pgd && (options.randomStart ?? true) && eps > 0;
  const restarts = pgd ? (options.restarts ?? 1) : 1;
  if (randomStart && !options.rng && !(options.start && restarts === 1))
    throw new Error("rng: random starts need a generator (AttackOptions.rng)");
  const n = batch.size;
  const d = chain.inputSize;
  const mean = expand(chain, options.domain.mean);
  const std = expand(chain, options.domain.std);
  const { lower, upper } = options.domain;
  const x0 = toRaw(chain, options.domain, batch.x, n);
  for (let i = 0; i < x0.length; i++) {
    // Inputs outside the box by more than rounding mean the domain does not describe the data.
    if (x0[i] < lower - 1e-4 || x0[i] > upper + 1e-4) {
      throw new Error(
        `domain: input value ${x0[i]} (sample ${Math.floor(i / d)}, feature ${i % d}) lies outside the box [${lower}, ${upper}]`,
      );
    }
    x0[i] = Math.min(upper, Math.max(lower, x0[i]));
  }
  const x = new Float64Array(n * d);
  const z = allocate(chain.dtype, n * d);
  const grad = allocate(chain.dtype, n * d);
  const best = allocate(chain.dtype, n * d);
  const bestLoss = new Float64Array(n).fill(Number.NEGATIVE_INFINITY);
  const work: Batch = {
    x: z,
    size: n,
    ...(batch.labels ? { labels: batch.labels } : {}),
    ...(batch.targets ? { targets: batch.targets } : {}),
  };
  const rng = options.rng;
  const toZ = () => {
    for (let j = 0; j < n * d; j++) z[j] = (x[j] - mean[j % d]) / std[j % d];
  };
  const keepBest = (output: FloatArray) => {
    const l = perSampleLosses(loss, output, work, chain.outputSize);
    for (let i = 0; i < n; i++) {
      if (l[i] > bestLoss[i] || bestLoss[i] === Number.NEGATIVE_INFINITY) {
        bestLoss[i] = l[i];
        best.set(z.subarray(i * d, (i + 1) * d), i * d);
      }
    }
  };
  for (let r = 0; r < restarts; r++) {
    x.set(x0);
    if (r === 0 && options.start) {
      if (options.start.length !== n * d) throw new Error(`start: expected ${n} × ${d} values, got ${options.start.length}`);
      for (let j = 0; j < n * d; j++) x[j] += options.start[j];
      project(x, x0, n, d, eps, options.norm, lower, upper);
    } else if (randomStart) {
      randomPointInBall(x, x0, n, d, eps, options.norm, rng as Rng);
      project(x, x0, n, d, eps, options.norm, lower, upper);
    }
    for (let t = 0; t < steps; t++) {
      toZ();
      lossInputGradient(chain, loss, w, work, { state: options.state, dx: grad });
      // ∇_x = ∇_z / std (chain rule through z = (x − mean)/std).
      for (let j = 0; j < n * d; j++) grad[j] /= std[j % d];
      ascentStep(x, grad, n, d, alpha, options.norm);
      project(x, x0, n, d, eps, options.norm, lower, upper);
    }
    toZ();
    const out = lossInputGradient(chain, loss, w, work, { state: options.state, dx: grad }).output;
    keepBest(out);
  }
  return { x: best, losses: bestLoss };
}

/** x ← x + α sign(g) (ℓ∞) or x + α g/‖g‖ per sample (ℓ2). */
function ascentStep(x: Float64Array, g: FloatArray, n: number, d: number, alpha: number, norm: AttackNorm): void {
  if (norm === "linf") {
    for (let j = 0; j < n * d; j++) x[j] += alpha * Math.sign(g[j]);
    return;
  }
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = i * d; j < (i + 1) * d; j++) s += g[j] * g[j];
    const nrm = Math.sqrt(s);
    if (nrm === 0) continue;
    const f = alpha / nrm;
    for (let j = i * d; j < (i + 1) * d; j++) x[j] += f * g[j];
  }
}

/** Π: onto the ball B(x₀, ε) (per sample), then onto the box [lower, upper]. */
export function project(
  x: Float64Array,
  x0: ArrayLike<number>,
  n: number,
  d: number,
  eps: number,
  norm: AttackNorm,
  lower: number,
  upper: number,
): void {
  if (norm === "linf") {
    for (let j = 0; j < n * d; j++) {
      const lo = Math.max(lower, x0[j] - eps);
      const hi = Math.min(upper, x0[j] + eps);
      x[j] = Math.min(hi, Math.max(lo, x[j]));
    }
    return;
  }
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = i * d; j < (i + 1) * d; j++) s += (x[j] - x0[j]) ** 2;
    const nrm = Math.sqrt(s);
    if (nrm > eps) {
      const f = eps / nrm;
      for (let j = i * d; j < (i + 1) * d; j++) x[j] = x0[j] + f * (x[j] - x0[j]);
    }
    for (let j = i * d; j < (i + 1) * d; j++) x[j] = Math.min(upper, Math.max(lower, x[j]));
  }
}

/**
 * x ← x₀ + δ with δ uniform in the ball: ℓ∞ coordinates uniform in [−ε, ε]; ℓ2 a Gaussian
 * direction scaled by ε·u^{1/d}, u uniform in [0, 1) (the radius of a uniform point of the
 * d-dimensional ball has distribution function (r/ε)^d).
 */
function randomPointInBall(x: Float64Array, x0: ArrayLike<number>, n: number, d: number, eps: number, norm: AttackNorm, rng: Rng): void {
  if (norm === "linf") {
    for (let j = 0; j < n * d; j++) x[j] = x0[j] + rng.uniformIn(-eps, eps);
    return;
  }
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = i * d; j < (i + 1) * d; j++) {
      const g = rng.normal();
      x[j] = g;
      s += g * g;
    }
    const f = (eps * rng.uniform() ** (1 / d)) / Math.sqrt(s);
    for (let j = i * d; j < (i + 1) * d; j++) x[j] = x0[j] + f * x[j];
  }
}

/** Clean and robust accuracy of a labelled batch under an attack. */
export interface RobustEvaluation {
  cleanLoss: number;
  cleanAccuracy: number;
  robustLoss: number;
  robustAccuracy: number;
}

/** Per-sample correctness: the arg-max of output row i equals labels[i]. */
export function correctMask(output: ArrayLike<number>, labels: Int32Array, size: number, outputSize: number): Uint8Array {
  const ok = new Uint8Array(size);
  for (let i = 0; i < size; i++) {
    const o = i * outputSize;
    let best = 0;
    for (let k = 1; k < outputSize; k++) if (output[o + k] > output[o + best]) best = k;
    ok[i] = best === labels[i] ? 1 : 0;
  }
  return ok;
}

/**
 * Clean and robust loss/accuracy of a labelled batch. A sample counts as robust when it is
 * classified correctly both at x₀ (a point of its ball) and at the attack's point, so robust ≤
 * clean accuracy always; it is an upper bound on the true robust accuracy (the attack may miss).
 */
export function robustEvaluation(
  chain: Chain,
  loss: Loss,
  w: FloatArray,
  batch: Batch,
  options: AttackOptions,
): RobustEvaluation & { adversarial: FloatArray; robust: Uint8Array } {
  if (!batch.labels) throw new Error("robustEvaluation: the batch has no labels (accuracy needs classes)");
  const n = batch.size;
  const cleanOut = forward(chain, w, batch.x, n, { state: options.state });
  const cleanOk = correctMask(cleanOut, batch.labels, n, chain.outputSize);
  const cleanLoss = loss.evaluate(cleanOut, batch, chain.outputSize, null);
  const adv = attackBatch(chain, loss, w, batch, options);
  const advBatch: Batch = { x: adv.x, size: n, labels: batch.labels };
  const advOut = forward(chain, w, adv.x, n, { state: options.state });
  const advOk = correctMask(advOut, batch.labels, n, chain.outputSize);
  const robustLoss = loss.evaluate(advOut, advBatch, chain.outputSize, null);
  let c = 0;
  let rc = 0;
  const robust = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    c += cleanOk[i];
    robust[i] = cleanOk[i] & advOk[i];
    rc += robust[i];
  }
  return { cleanLoss, cleanAccuracy: c / n, robustLoss, robustAccuracy: rc / n, adversarial: adv.x, robust };
}
