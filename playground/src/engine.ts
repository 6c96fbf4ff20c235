import { certifyObjective, type ObjectiveCertificate, projectOntoBall } from "../../src/certify/certificate.js";
import { type Chain, createChain } from "../../src/chain/chain.js";
import type { LayerSpecInput, ModelSpecInput } from "../../src/chain/spec.js";
import { Rng } from "../../src/core/rng.js";
import { effectiveInitialStrengths, makeDeepLinearTask, modeStrengths, saxeCurve, saxeTimeTo } from "../../src/experiments/deep-linear-modes.js";
import type { Batch } from "../../src/objectives/batch.js";
import { createObjective, type Objective } from "../../src/objectives/objective.js";
import { adam, momentum, type Optimizer, sgd } from "../../src/optim/aliases.js";
import { applyUpdates } from "../../src/optim/transform.js";
import { forward, objectiveValue, valueAndGradient } from "../../src/oracles/first-order.js";
import { gaussNewtonVectorProduct, hessianVectorProduct } from "../../src/second-order/curvature.js";
import { createSecondOrderStepper, type SecondOrderMethod } from "../../src/second-order/stepper.js";
import { smooth } from "../../src/smoothing/smooth.js";
import { smoothingErrorWitness } from "../../src/smoothing/witness.js";
import type { PageData } from "./data.js";
import type { PlaygroundState } from "./state.js";

// What the playground computes, on chainopt's portable backend (all in float64, in a Web Worker):
// the certificate of the training objective on B_R, projected gradient descent at three step sizes,
// the top Hessian eigenvalue along the run, Algorithm 2's smoothing, an optimizer comparison and the
// deep linear network of the lecture. Pure functions of (state, data): the seed fixes everything.

/** The model spec of a state for data of the given input shape and output size. */
export function modelSpec(state: PlaygroundState, data: Pick<PageData, "inputShape">, outputs: number, variant: "user" | "nonsmooth" = "user"): ModelSpecInput {
  const layers: LayerSpecInput[] = [];
  if (data.inputShape.length === 3) {
    if (state.pool !== "none") {
      const pool = variant === "nonsmooth" ? "maxPool2d" : state.pool === "avg" ? "avgPool2d" : "maxPool2d";
      layers.push({ type: pool, size: 2 });
    }
    layers.push({ type: "flatten" });
  }
  const act = variant === "nonsmooth" ? "relu" : state.activation;
  for (const w of state.widths) {
    layers.push({ type: "dense", units: w });
    layers.push(act === "smoothRelu" ? { type: "smoothRelu", mu: state.mu } : ({ type: act } as LayerSpecInput));
  }
  layers.push({ type: "dense", units: outputs });
  return { input: [...data.inputShape], layers };
}

/** Outputs of the network: one per class, or the target size. */
export function outputsOf(data: PageData): number {
  return data.classes ?? data.targetSize ?? 1;
}

/** The objective: logistic (cross-entropy) loss for classes, squared loss for targets; no L2 term. */
export function objectiveOf(data: PageData): Objective {
  return createObjective(data.labels ? "logistic" : "squared", 0);
}

export function batchOf(data: PageData): Batch {
  return data.labels ? { x: data.x, size: data.size, labels: data.labels } : { x: data.x, size: data.size, targets: data.targets };
}

/** Largest sample norm (and target norm) of the data: m_0 = √N·max‖x_i‖ as in `chainopt train`. */
export function dataNorms(data: PageData): { maxSampleNorm: number; targetNorm?: number } {
  const d = data.x.length / data.size;
  let m = 0;
  for (let i = 0; i < data.size; i++) {
    let s = 0;
    for (let j = i * d; j < (i + 1) * d; j++) s += data.x[j] * data.x[j];
    m = Math.max(m, s);
  }
  if (!data.targets) return { maxSampleNorm: Math.sqrt(m) };
  const k = data.targetSize ?? 1;
  let t = 0;
  for (let i = 0; i < data.size; i++) {
    let s = 0;
    for (let j = i * k; j < (i + 1) * k; j++) s += data.targets[j] * data.targets[j];
    t = Math.max(t, s);
  }
  return { maxSampleNorm: Math.sqrt(m), targetNorm: Math.sqrt(data.size) * Math.sqrt(t) };
}

/** A certificate row per layer, for the table. */
export interface CertificateRow {
  layer: number;
  types: string;
  radius: number;
  bound: number;
  lipschitz: number;
  smoothness: number;
}

export interface CertificateView {
  rows: CertificateRow[];
  lossLipschitz: number;
  lossSmoothness: number;
  lipschitz: number;
  smoothness: number;
  stepSize: number;
  maxSampleNorm: number;
  batch: number;
  spec: ModelSpecInput;
  paramSize: number;
}

export function certificateView(cert: ObjectiveCertificate, spec: ModelSpecInput, paramSize: number, maxSampleNorm: number): CertificateView {
  return {
    rows: cert.chain.layers.map((l) => ({
      layer: l.layer,
      types: l.types.join("→"),
      radius: l.radius,
      bound: l.bound,
      lipschitz: l.lipschitz,
      smoothness: l.smoothness,
    })),
    lossLipschitz: cert.loss.lipschitz,
    lossSmoothness: cert.loss.smoothness,
    lipschitz: cert.lipschitz,
    smoothness: cert.smoothness,
    stepSize: cert.stepSize,
    maxSampleNorm,
    batch: cert.chain.batch,
    spec,
    paramSize,
  };
}

/** The problem of a state: chain, objective, batch, certificate. */
export interface Problem {
  chain: Chain;
  objective: Objective;
  batch: Batch;
  spec: ModelSpecInput;
  certificate: ObjectiveCertificate;
  view: CertificateView;
}

export function makeProblem(state: PlaygroundState, data: PageData): Problem {
  const spec = modelSpec(state, data, outputsOf(data));
  const chain = createChain(spec, { dtype: "float64" });
  const objective = objectiveOf(data);
  const norms = dataNorms(data);
  // Certificate of F on B_R for the whole batch (Roulet & Harchaoui, "On the Smoothing of Deep Networks", CISS 2021, Algorithm 1, Sec. IV-C; see
  // docs/certificates.md): the same call as `chainopt analyze --max-sample-norm`.
  const certificate = certifyObjective(chain, objective, { radii: state.radius, batch: data.size, ...norms });
  return { chain, objective, batch: batchOf(data), spec, certificate, view: certificateView(certificate, spec, chain.paramSize, norms.maxSampleNorm) };
}

/** One training run of the side-by-side panel. */
export interface RunResult {
  name: string;
  lr: number;
  losses: number[];
  /** Top |eigenvalue| of the Hessian along the run: [step, value]. */
  curvature: [number, number][];
  curvatureKind: "hessian" | "gauss-newton";
  diverged: boolean;
  reason: string;
  finalWeights: Float64Array;
}

/**
 * Top |eigenvalue| of ∇²F(w) by power iteration on Hessian-vector products (forward-over-reverse;
 * src/second-order/curvature.ts), warm-started from `v`; falls back to the Gauss-Newton product
 * when a component has no second-order backward (relu). |λ|max ≤ L_F on B_R is what the
 * certificate promises (‖∇²F‖ ≤ L_F there).
 */
export function topEigenvalue(p: Problem, w: Float64Array, v: Float64Array, iterations: number): { value: number; kind: "hessian" | "gauss-newton" } {
  let kind: "hessian" | "gauss-newton" = "hessian";
  const hv = (x: Float64Array): Float64Array => {
    if (kind === "hessian") {
      try {
        return Float64Array.from(hessianVectorProduct(p.chain, p.objective, w, p.batch, x));
      } catch {
        kind = "gauss-newton";
      }
    }
    return Float64Array.from(gaussNewtonVectorProduct(p.chain, p.objective, w, p.batch, x));
  };
  let value = 0;
  for (let k = 0; k < iterations; k++) {
    let n = 0;
    for (const z of v) n += z * z;
    n = Math.sqrt(n) || 1;
    for (let i = 0; i < v.length; i++) v[i] /= n;
    const h = hv(v);
    let hn = 0;
    for (const z of h) hn += z * z;
    value = Math.sqrt(hn); // ‖H v‖ with ‖v‖ = 1 → |λ|max
    v.set(h);
  }
  return { value, kind };
}

/** Decides whether a run diverged: a non-finite loss, or a late loss above the initial one. */
export function divergence(losses: number[]): { diverged: boolean; reason: string } {
  const bad = losses.findIndex((l) => !Number.isFinite(l));
  if (bad >= 0) return { diverged: true, reason: `loss not finite at step ${bad}` };
  const first = losses[0];
  const tail = losses.slice(Math.floor(losses.length * 0.75));
  const worst = Math.max(...tail);
  if (worst > first) return { diverged: true, reason: `loss ${worst.toPrecision(3)} in the last quarter exceeds the initial ${first.toPrecision(3)}` };
  const last = losses[losses.length - 1];
  return { diverged: false, reason: `loss ${first.toPrecision(3)} → ${last.toPrecision(3)}` };
}

/**
 * Gradient descent w ← P_{B_R}(w − η∇F(w)) from the seeded initialization (projected onto B_R),
 * full batch. With η = 1/L_F the loss decreases monotonically (descent lemma; Beck 2017, Lemma
 * 10.4), the guarantee of docs/certificates.md.
 */
export function trainRun(p: Problem, state: PlaygroundState, name: string, lr: number, project: boolean, curvatureEvery: number): RunResult {
  const w = p.chain.initParams(state.seed) as Float64Array;
  projectOntoBall(p.chain, w, state.radius);
  const g = new Float64Array(w.length);
  const losses: number[] = [];
  const curvature: [number, number][] = [];
  const rng = new Rng(state.seed + 7);
  const v = new Float64Array(w.length).map(() => rng.normal());
  let kind: "hessian" | "gauss-newton" = "hessian";
  for (let step = 0; step <= state.steps; step++) {
    let value: number;
    try {
      value = valueAndGradient(p.chain, p.objective, w, p.batch, { grad: g }).value;
    } catch {
      value = Number.NaN;
    }
    losses.push(value);
    if (!Number.isFinite(value) || value > 1e12) {
      if (!Number.isFinite(value)) break;
    }
    if (curvatureEvery > 0 && step % curvatureEvery === 0 && Number.isFinite(value)) {
      const e = topEigenvalue(p, w, v, step === 0 ? 30 : 8);
      curvature.push([step, e.value]);
      kind = e.kind;
    }
    if (step === state.steps) break;
    for (let i = 0; i < w.length; i++) w[i] -= lr * g[i];
    if (project) projectOntoBall(p.chain, w, state.radius);
  }
  const d = divergence(losses);
  return { name, lr, losses, curvature, curvatureKind: kind, ...d, finalWeights: w };
}

/** Smoothing panel: Algorithm 2 on the chain with relu (and max-pooling), and a witness of its error. */
export interface SmoothingView {
  epsilon: number;
  /** ν: certified ‖ψ(x,u) − ψ_ε(x,u)‖ ≤ ν per sample on B_R. */
  certifiedGap: number;
  /** The largest gap found (sampling + projected gradient ascent): a lower bound of the true sup. */
  measuredGap: number;
  layers: { layer: number; types: string; parameters: number[] }[];
  stepSize: number;
  smoothness: number;
  spec: ModelSpecInput;
}

export function smoothingView(state: PlaygroundState, data: PageData): SmoothingView {
  const spec = modelSpec(state, data, outputsOf(data), "nonsmooth");
  const original = createChain(spec, { dtype: "float64" });
  const norms = dataNorms(data);
  // Roulet & Harchaoui, CISS 2021, Algorithm 2 (corrected; docs/smoothing.md): ψ_ε with ‖ψ − ψ_ε‖ ≤ ν on B_R.
  const result = smooth(original, {
    epsilon: state.epsilon,
    radii: state.radius,
    batch: data.size,
    maxSampleNorm: norms.maxSampleNorm,
    loss: data.labels ? "logistic" : "squared",
  });
  const d = data.x.length / data.size;
  const inputs = [0, 1, 2, 3].filter((i) => i < data.size).map((i) => data.x.subarray(i * d, (i + 1) * d));
  const witness = smoothingErrorWitness(original, result.chain, { radii: state.radius, starts: 3, steps: 12, inputs, seed: state.seed });
  return {
    epsilon: state.epsilon,
    certifiedGap: result.outputAccuracy,
    measuredGap: witness.maxError,
    layers: result.layers.map((l) => ({ layer: l.layer, types: l.types.join("→"), parameters: [...l.parameters] })),
    stepSize: result.certificate.stepSize,
    smoothness: result.certificate.smoothness,
    spec: result.spec as unknown as ModelSpecInput,
  };
}

/** One optimizer's curve: loss against steps and wall time (ms). */
export interface OptimizerCurve {
  name: string;
  points: { step: number; ms: number; loss: number }[];
  note: string;
}

/**
 * SGD, heavy-ball momentum, Adam (Optax-style transformations, src/optim) and Gauss-Newton, GGN,
 * Newton-DP (src/second-order) on the same full-batch problem, from the same initialization, each
 * for at most `steps` steps or `budget` seconds of wall time.
 */
export function compareOptimizers(p: Problem, state: PlaygroundState, now: () => number): OptimizerCurve[] {
  const steps = Math.min(state.steps, 100);
  const out: OptimizerCurve[] = [];
  const first: [string, Optimizer][] = [
    [`SGD (η=${state.lr})`, sgd({ lr: state.lr })],
    [`momentum 0.9 (η=${state.lr})`, momentum({ lr: state.lr, momentum: 0.9 })],
    ["Adam (η=0.01)", adam({ lr: 0.01 })],
  ];
  for (const [name, opt] of first) {
    const w = p.chain.initParams(state.seed) as Float64Array;
    const g = new Float64Array(w.length);
    let st = opt.init(w);
    const points: OptimizerCurve["points"] = [];
    const t0 = now();
    for (let k = 0; k <= steps; k++) {
      const { value } = valueAndGradient(p.chain, p.objective, w, p.batch, { grad: g });
      points.push({ step: k, ms: now() - t0, loss: value });
      if (!Number.isFinite(value) || k === steps || now() - t0 > state.budget * 1000) break;
      st = opt.update(g, st, w, { step: k, backend: p.chain.backend });
      applyUpdates(w, g, p.chain.backend);
    }
    out.push({ name, points, note: "" });
  }
  const second: [string, SecondOrderMethod][] = [
    ["Gauss-Newton", "gauss-newton"],
    ["GGN", "ggn"],
    ["Newton-DP", "newton"],
  ];
  for (const [name, method] of second) {
    const w = p.chain.initParams(state.seed) as Float64Array;
    const points: OptimizerCurve["points"] = [];
    let note = "";
    const t0 = now();
    try {
      const stepper = createSecondOrderStepper({ method });
      points.push({ step: 0, ms: 0, loss: objectiveValue(p.chain, p.objective, w, p.batch, { training: true }) });
      for (let k = 1; k <= steps; k++) {
        const r = stepper.step(p.chain, p.objective, w, p.batch);
        points.push({ step: k, ms: now() - t0, loss: r.newValue });
        if (!Number.isFinite(r.newValue) || now() - t0 > state.budget * 1000) break;
      }
    } catch (e) {
      note = (e as Error).message.split("\n")[0];
    }
    out.push({ name, points, note });
  }
  return out;
}

/** Deep linear network: analytic (Saxe et al., Eq. (8)) against simulated mode strengths. */
export interface DeepLinearView {
  points: { t: number; mode: string; curve: "analytic" | "simulated"; strength: number }[];
  maxDeviation: number;
  lr: number;
  steps: number;
}

/**
 * The lecture's two-layer linear network (docs/experiments.md; src/experiments/deep-linear.ts has
 * the derivation): whitened inputs, y = Σ31 x, gradient descent from a small random initialization;
 * mode strength u_r(t) = u_rᵀ Σ31_net v_r against u(t) = s e^{2st}/(e^{2st} − 1 + s/u0).
 */
export function deepLinearView(state: PlaygroundState): DeepLinearView {
  const strengths = [...state.strengths].sort((a, b) => b - a);
  const n = Math.max(6, strengths.length);
  const hidden = 16;
  const lr = 0.01;
  const samples = 32;
  const task = makeDeepLinearTask({ inputs: n, outputs: n, samples, strengths, seed: state.seed });
  const chain = createChain(
    {
      input: [n],
      layers: [
        { type: "dense", units: hidden, bias: false },
        { type: "dense", units: n, bias: false },
      ],
    },
    { dtype: "float64" },
  );
  const rng = new Rng(state.seed + 1);
  const w = new Float64Array(chain.paramSize).map(() => 0.01 * rng.normal());
  const u0 = effectiveInitialStrengths(task, w.subarray(0, hidden * n), w.subarray(hidden * n), hidden);
  const tMax = 1.2 * Math.max(...strengths.map((s, r) => saxeTimeTo(0.99, s, u0[r])));
  const steps = Math.min(4000, Math.ceil(tMax / lr));
  const every = Math.max(1, Math.floor(steps / 80));
  const objective = createObjective("squared");
  const batch: Batch = { x: task.x, size: samples, targets: task.y };
  const g = new Float64Array(w.length);
  const points: DeepLinearView["points"] = [];
  let maxDeviation = 0;
  for (let step = 0; step <= steps; step++) {
    const t = step * lr;
    const sim = modeStrengths(task, forward(chain, w, task.x, samples));
    for (let r = 0; r < strengths.length; r++) {
      const a = saxeCurve(strengths[r], u0[r], t);
      maxDeviation = Math.max(maxDeviation, Math.abs(a - sim[r]));
      if (step % every === 0) {
        const mode = `s=${strengths[r]}`;
        points.push({ t, mode, curve: "analytic", strength: a }, { t, mode, curve: "simulated", strength: sim[r] });
      }
    }
    if (step === steps) break;
    valueAndGradient(chain, objective, w, batch, { grad: g });
    for (let i = 0; i < w.length; i++) w[i] -= lr * g[i];
  }
  return { points, maxDeviation, lr, steps };
}
