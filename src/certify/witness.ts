import { type Chain, createChain } from "../chain/chain.js";
import type { ModelSpecInput } from "../chain/spec.js";
import { Rng } from "../core/rng.js";
import type { Batch } from "../objectives/batch.js";
import { createObjective, type LossType, type Objective } from "../objectives/objective.js";
import { forward, jvp, valueAndGradient, vjp } from "../oracles/first-order.js";
import {
  type CertificateVariant,
  type ChainCertificate,
  certifyObjective,
  type ObjectiveCertificate,
  projectOntoBall,
  resolveRadii,
} from "./certificate.js";

// Witnesses (docs/certificates.md): empirical LOWER bounds on the quantities a certificate bounds above.
// Every reported witness is the value of its definition at points of B_R:
//   bound       ‖ψ(u)‖                                      ≤ m_τ
//   lipschitz   ‖ψ(p) − ψ(q)‖ / ‖p − q‖                      ≤ ℓ_τ
//   smoothness  ‖(∇ψ(p) − ∇ψ(q))ᵀ d‖ / ‖p − q‖  (‖d‖ = 1)    ≤ ‖∇ψ(p) − ∇ψ(q)‖/‖p − q‖ ≤ L_τ
//   objective   |F(p) − F(q)|/‖p − q‖ ≤ ℓ_F,  ‖∇F(p) − ∇F(q)‖/‖p − q‖ ≤ L_F
// with p, q ∈ B_R (pairs are projected onto B_R before use), so a valid certificate can never be
// below them (up to float64 rounding). The points and directions are chosen to make the ratios large:
// power iterations for the top singular vector of ∇ψ(u) (with the chain's JVP and VJP) and for the top
// eigenvector of the Hessian (Hessian–vector products by central differences of gradients,
// (∇F(u + h v) − ∇F(u − h v))/(2h) in float64: the library's exact HVPs live in src/second-order/,
// which this module does not depend on), then gradient ascent on u of the quantity, whose gradient
// is again taken by differences of VJPs/gradients, accepting only steps that increase it. The top
// Hessian eigenvalue is reported as the pair ratio above at (u ± h v), which bounds |λ_max| within
// O(h²) and is itself a valid lower bound of L_F.

/** Options of the witness searches. */
export interface WitnessOptions {
  /** R_t per parameterized layer (one number for all). */
  radii: number | readonly number[];
  /** Number of samples N. */
  batch: number;
  /** ‖X₀‖_F of the input batch used (the certificate's m_0). */
  inputNorm: number;
  /** Explicit input batch (rescaled to inputNorm); default: random, or rank one every other start. */
  input?: Float64Array;
  /** Labels for the objective (default random in [0, K)). */
  labels?: Int32Array;
  seed?: number;
  /** Random starting points (default 4). */
  starts?: number;
  /** Ascent steps per start (default 12). */
  steps?: number;
  /** Power iterations per step (default 8). */
  power?: number;
}

/** Best lower bounds found for the chain's constants. */
export interface ChainWitness {
  readonly bound: number;
  readonly lipschitz: number;
  readonly smoothness: number;
}

/** Best lower bounds found for the objective's constants. */
export interface ObjectiveWitness {
  readonly lipschitz: number;
  readonly smoothness: number;
  /** |λ| of the top Hessian eigenvector found by power iteration (≈ the smoothness witness at its point). */
  readonly hessianEigenvalue: number;
}

type Vec = Float64Array;

function norm(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return Math.sqrt(s);
}

function scaled(a: ArrayLike<number>, f: number): Vec {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] * f;
  return out;
}

function normalized(a: ArrayLike<number>): Vec {
  const n = norm(a);
  return scaled(a, n > 0 ? 1 / n : 0);
}

function axpy(x: ArrayLike<number>, alpha: number, y: ArrayLike<number>): Vec {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] + alpha * y[i];
  return out;
}

function distance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s);
}

/** Shared machinery: the chain in float64 on one input batch, inside B_R. */
class Probe {
  readonly chain: Chain;
  readonly x: Vec;
  readonly n: number;
  readonly radii: number[];
  readonly scale: number;
  readonly rng: Rng;

  constructor(chain: Chain, options: WitnessOptions, x: Vec) {
    if (chain.dtype !== "float64") throw new Error("witnesses: build the chain with dtype float64");
    this.chain = chain;
    this.x = x;
    this.n = options.batch;
    this.radii = resolveRadii(chain, options.radii);
    this.scale = Math.sqrt(this.radii.reduce((s, r) => s + r * r, 0)) || 1;
    this.rng = new Rng((options.seed ?? 0) + 7919);
  }

  /** A random point of B_R: each u_t a random direction scaled to R_t·s, s near 1. */
  randomPoint(): Vec {
    const w = new Float64Array(this.chain.paramSize);
    let t = 0;
    for (const layer of this.chain.layers) {
      if (layer.biaffine < 0) continue;
      const o = this.chain.paramOffsets[layer.biaffine];
      const size = this.chain.components[layer.biaffine].paramSize;
      let s = 0;
      for (let i = 0; i < size; i++) {
        w[o + i] = this.rng.normal();
        s += w[o + i] ** 2;
      }
      const f = (this.radii[t] * (0.7 + 0.3 * this.rng.uniform())) / Math.sqrt(s || 1);
      for (let i = 0; i < size; i++) w[o + i] *= f;
      t++;
    }
    return w;
  }

  randomDirection(): Vec {
    const d = new Float64Array(this.chain.paramSize);
    for (const layer of this.chain.layers) {
      if (layer.biaffine < 0) continue;
      const o = this.chain.paramOffsets[layer.biaffine];
      const size = this.chain.components[layer.biaffine].paramSize;
      for (let i = 0; i < size; i++) d[o + i] = this.rng.normal();
    }
    return normalized(d);
  }

  project(w: Vec): Vec {
    projectOntoBall(this.chain, w, this.radii);
    return w;
  }

  /** The pair P(u ± h d). */
  pair(u: Vec, d: Vec, h: number): [Vec, Vec] {
    return [this.project(axpy(u, h, d)), this.project(axpy(u, -h, d))];
  }

  psi(w: Vec): Vec {
    return Float64Array.from(forward(this.chain, w, this.x, this.n, { training: true }));
  }

  jvp(w: Vec, d: Vec): Vec {
    return Float64Array.from(jvp(this.chain, w, this.x, this.n, d, null, { training: true }));
  }

  vjp(w: Vec, s: Vec): Vec {
    return Float64Array.from(vjp(this.chain, w, this.x, this.n, s, { training: true }).dw);
  }
}

/** An input batch with ‖X‖_F = inputNorm: random, or rank one (all samples equal). */
function makeInput(chain: Chain, options: WitnessOptions, rng: Rng, rankOne: boolean): Vec {
  const size = chain.inputSize;
  const x = new Float64Array(options.batch * size);
  if (options.input) x.set(options.input.subarray(0, x.length));
  else if (rankOne) {
    const row = new Float64Array(size);
    for (let j = 0; j < size; j++) row[j] = rng.normal();
    for (let i = 0; i < options.batch; i++) x.set(row, i * size);
  } else for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  const n = norm(x);
  return scaled(x, n > 0 ? options.inputNorm / n : 0);
}

/** Hill-climbing helper: tries u + η·dir (projected), keeps it if `value` increases. */
function ascend(
  probe: Probe,
  u: Vec,
  dir: Vec,
  current: number,
  eta: number,
  value: (w: Vec) => number,
): { u: Vec; value: number; eta: number } {
  const n = norm(dir);
  if (!(n > 0) || !Number.isFinite(n)) return { u, value: current, eta: eta / 2 };
  const cand = probe.project(axpy(u, (eta * probe.scale) / n, dir));
  const v = value(cand);
  if (v > current) return { u: cand, value: v, eta: Math.min(eta * 1.5, 1) };
  return { u, value: current, eta: eta / 2 };
}

/**
 * Lower bounds on m_τ, ℓ_τ, L_τ of the chain (a float64 chain, training mode) on B_R for input
 * batches of norm `inputNorm`.
 */
export function witnessChain(chain: Chain, options: WitnessOptions): ChainWitness {
  const rng = new Rng(options.seed ?? 0);
  const starts = options.starts ?? 4;
  const steps = options.steps ?? 12;
  const power = options.power ?? 8;
  let bestM = 0;
  let bestL1 = 0;
  let bestL2 = 0;
  for (let s = 0; s < starts; s++) {
    const probe = new Probe(chain, { ...options, seed: (options.seed ?? 0) + s }, makeInput(chain, options, rng, s % 2 === 1));
    const h = 1e-5 * probe.scale;
    // Output bound: ascent on ½‖ψ‖² (gradient ∇ψ(u) ψ(u), one VJP).
    {
      let u = probe.randomPoint();
      let val = norm(probe.psi(u));
      let eta = 0.3;
      for (let k = 0; k < steps; k++) {
        const g = probe.vjp(u, probe.psi(u));
        ({ u, value: val, eta } = ascend(probe, u, g, val, eta, (w) => norm(probe.psi(w))));
      }
      bestM = Math.max(bestM, val);
    }
    // Lipschitz: d = top right singular vector of ∇ψ(u)ᵀ by power iteration on JᵀJ; ascent on
    // ‖J(u)d‖ whose gradient is H_s d with s = J d/‖J d‖ (H_s = ∇²⟨ψ, s⟩), by differences of VJPs.
    {
      let u = probe.randomPoint();
      let d = probe.randomDirection();
      const topDirection = (w: Vec): Vec => {
        for (let k = 0; k < power; k++) d = normalized(probe.vjp(w, probe.jvp(w, d)));
        return d;
      };
      const ratio = (w: Vec): number => {
        topDirection(w);
        const [p, q] = probe.pair(w, d, h);
        const dist = distance(p, q);
        return dist > 0 ? distance(probe.psi(p), probe.psi(q)) / dist : 0;
      };
      let val = ratio(u);
      let eta = 0.2;
      for (let k = 0; k < steps; k++) {
        const sdir = normalized(probe.jvp(u, d));
        const hh = 1e-4 * probe.scale;
        const g = axpy(probe.vjp(axpy(u, hh, d), sdir), -1, probe.vjp(axpy(u, -hh, d), sdir));
        ({ u, value: val, eta } = ascend(probe, u, g, val, eta, ratio));
      }
      bestL1 = Math.max(bestL1, val);
    }
    // Smoothness: ‖(J(p) − J(q)) d‖/‖p − q‖ at p, q = P(u ± h d); d from power iterations on H_s
    // with s the normalized second difference (a higher-order power method), ascent on u.
    {
      let u = probe.randomPoint();
      let d = probe.randomDirection();
      const hh = 1e-4 * probe.scale;
      const ratio = (w: Vec): number => {
        for (let k = 0; k < power; k++) {
          const s = normalized(axpy(probe.jvp(axpy(w, hh, d), d), -1, probe.jvp(axpy(w, -hh, d), d)));
          const hd = axpy(probe.vjp(axpy(w, hh, d), s), -1, probe.vjp(axpy(w, -hh, d), s));
          if (norm(hd) > 0) d = normalized(hd);
        }
        const [p, q] = probe.pair(w, d, h * 10);
        const dist = distance(p, q);
        return dist > 0 ? distance(probe.jvp(p, d), probe.jvp(q, d)) / dist : 0;
      };
      let val = ratio(u);
      let eta = 0.2;
      for (let k = 0; k < steps; k++) {
        // Gradient of ⟨D²ψ[d,d], s⟩ in u: D³⟨ψ, s⟩[d, d, ·] by a second difference of VJPs.
        const s = normalized(axpy(probe.jvp(axpy(u, hh, d), d), -1, probe.jvp(axpy(u, -hh, d), d)));
        const big = 1e-3 * probe.scale;
        const g0 = probe.vjp(u, s);
        const g = axpy(axpy(probe.vjp(axpy(u, big, d), s), -2, g0), 1, probe.vjp(axpy(u, -big, d), s));
        ({ u, value: val, eta } = ascend(probe, u, g, val, eta, ratio));
      }
      bestL2 = Math.max(bestL2, val);
    }
  }
  return { bound: bestM, lipschitz: bestL1, smoothness: bestL2 };
}

/**
 * Lower bounds on ℓ_F and L_F of F(u) = f(ψ(u)) + (λ/2)‖u‖² (training mode) on B_R, and the top
 * Hessian eigenvalue found by power iteration on finite-difference Hessian–vector products.
 */
export function witnessObjective(chain: Chain, objective: Objective, options: WitnessOptions): ObjectiveWitness {
  const rng = new Rng((options.seed ?? 0) + 101);
  const starts = options.starts ?? 4;
  const steps = options.steps ?? 12;
  const power = options.power ?? 8;
  const k = chain.outputSize;
  let bestL1 = 0;
  let bestL2 = 0;
  let bestEig = 0;
  for (let s = 0; s < starts; s++) {
    const x = makeInput(chain, options, rng, s % 2 === 1);
    const probe = new Probe(chain, { ...options, seed: (options.seed ?? 0) + 31 * s }, x);
    const labels = options.labels ?? Int32Array.from({ length: options.batch }, () => Math.floor(rng.uniform() * k));
    const batch: Batch = { x, size: options.batch, labels };
    const value = (w: Vec): number => valueAndGradient(chain, objective, w, batch).value;
    const grad = (w: Vec): Vec => Float64Array.from(valueAndGradient(chain, objective, w, batch).grad);
    const h = 1e-5 * probe.scale;
    const hv = (w: Vec, v: Vec, step: number): Vec => scaled(axpy(grad(axpy(w, step, v)), -1, grad(axpy(w, -step, v))), 1 / (2 * step));
    // ℓ_F: |F(p) − F(q)|/‖p − q‖ along the gradient; ascent on ½‖∇F‖² (gradient H ∇F).
    {
      let u = probe.randomPoint();
      const ratio = (w: Vec): number => {
        const d = normalized(grad(w));
        const [p, q] = probe.pair(w, d, h);
        const dist = distance(p, q);
        return dist > 0 ? Math.abs(value(p) - value(q)) / dist : 0;
      };
      let val = ratio(u);
      let eta = 0.2;
      for (let it = 0; it < steps; it++) {
        const g = grad(u);
        const d = normalized(g);
        ({ u, value: val, eta } = ascend(probe, u, hv(u, d, 1e-4 * probe.scale), val, eta, ratio));
      }
      bestL1 = Math.max(bestL1, val);
    }
    // L_F: top Hessian eigenvector v by power iteration on HVPs, pair ratio at P(u ± h v); ascent on
    // u along D³F[v, v, ·] (second difference of gradients) signed by the Rayleigh quotient.
    {
      let u = probe.randomPoint();
      let v = probe.randomDirection();
      const hh = 1e-4 * probe.scale;
      let eig = 0;
      const ratio = (w: Vec): number => {
        for (let it = 0; it < power; it++) {
          const hvv = hv(w, v, hh);
          if (norm(hvv) > 0) v = normalized(hvv);
        }
        const [p, q] = probe.pair(w, v, h * 10);
        const dist = distance(p, q);
        const r = dist > 0 ? distance(grad(p), grad(q)) / dist : 0;
        eig = r;
        return r;
      };
      let val = ratio(u);
      bestEig = Math.max(bestEig, eig);
      let eta = 0.2;
      for (let it = 0; it < steps; it++) {
        const big = 1e-3 * probe.scale;
        const g0 = grad(u);
        const third = scaled(axpy(axpy(grad(axpy(u, big, v)), -2, g0), 1, grad(axpy(u, -big, v))), 1 / (big * big));
        let rq = 0;
        const hvv = hv(u, v, hh);
        for (let i = 0; i < v.length; i++) rq += v[i] * hvv[i];
        ({ u, value: val, eta } = ascend(probe, u, scaled(third, rq >= 0 ? 1 : -1), val, eta, ratio));
        bestEig = Math.max(bestEig, val);
      }
      bestL2 = Math.max(bestL2, val);
    }
  }
  return { lipschitz: bestL1, smoothness: bestL2, hessianEigenvalue: bestEig };
}

/** Certificate / witness for each quantity (≥ 1 for a valid certificate; ∞ where L = ∞). */
export interface Tightness {
  readonly bound: number;
  readonly lipschitz: number;
  readonly smoothness: number;
  readonly objectiveLipschitz?: number;
  readonly objectiveSmoothness?: number;
}

/** The tightness ratios certificate / best witness. */
export function tightness(
  chainCert: ChainCertificate,
  chainWitness: ChainWitness,
  objective?: { cert: ObjectiveCertificate; witness: ObjectiveWitness },
): Tightness {
  const r = (c: number, w: number): number => (w > 0 ? c / w : c === 0 ? 1 : Infinity);
  return {
    bound: r(chainCert.bound, chainWitness.bound),
    lipschitz: r(chainCert.lipschitz, chainWitness.lipschitz),
    smoothness: r(chainCert.smoothness, chainWitness.smoothness),
    ...(objective
      ? {
          objectiveLipschitz: r(objective.cert.lipschitz, objective.witness.lipschitz),
          objectiveSmoothness: r(objective.cert.smoothness, objective.witness.smoothness),
        }
      : {}),
  };
}

/** One row of {@link tightnessReport}. */
export interface TightnessRow {
  readonly name: string;
  /** Number of parameterized layers τ. */
  readonly depth: number;
  readonly variant: CertificateVariant;
  readonly certificate: { bound: number; lipschitz: number; smoothness: number; objectiveLipschitz: number; objectiveSmoothness: number };
  readonly witness: { bound: number; lipschitz: number; smoothness: number; objectiveLipschitz: number; objectiveSmoothness: number };
  readonly ratio: Tightness;
}

/**
 * Tightness (certificate / best witness) of each architecture, for the given certificate variants:
 * the report of docs/certificates.md (and the gain of the "tight" variant when run with "corrected" and "tight").
 */
export function tightnessReport(
  entries: readonly { name: string; spec: ModelSpecInput; loss?: LossType; l2?: number }[],
  options: WitnessOptions & { variants?: readonly CertificateVariant[] },
): TightnessRow[] {
  const rows: TightnessRow[] = [];
  for (const e of entries) {
    const chain = createChain(e.spec, { dtype: "float64" });
    const objective = createObjective(e.loss ?? "logistic", e.l2 ?? 0);
    const cw = witnessChain(chain, options);
    const ow = witnessObjective(chain, objective, options);
    for (const variant of options.variants ?? ["tight"]) {
      const cert = certifyObjective(chain, objective, {
        radii: options.radii,
        batch: options.batch,
        inputNorm: options.inputNorm,
        variant,
      });
      rows.push({
        name: e.name,
        depth: cert.chain.radii.length,
        variant,
        certificate: {
          bound: cert.chain.bound,
          lipschitz: cert.chain.lipschitz,
          smoothness: cert.chain.smoothness,
          objectiveLipschitz: cert.lipschitz,
          objectiveSmoothness: cert.smoothness,
        },
        witness: { ...cw, objectiveLipschitz: ow.lipschitz, objectiveSmoothness: ow.smoothness },
        ratio: tightness(cert.chain, cw, { cert, witness: ow }),
      });
    }
  }
  return rows;
}
