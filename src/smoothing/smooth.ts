import {
  type CertificateVariant,
  certifyChain,
  certifyObjective,
  type ObjectiveCertificate,
  resolveRadii,
} from "../certify/certificate.js";
import { Chain } from "../chain/chain.js";
import { type LayerSpec, type ModelSpec, type ModelSpecInput, parseModelSpec } from "../chain/spec.js";
import type { Component } from "../components/component.js";
import type { BiaffineConstants, NonlinearConstants, SmoothingRule } from "../components/smoothness.js";
import type { Loss } from "../objectives/loss.js";
import { createObjective, type LossType } from "../objectives/objective.js";

// Automatic smoothing of a chain x_t = a_t(b_t(x_{t−1}, u_t)) (docs/smoothing.md): Algorithm 2 of
// Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021) (Sec. IV-B, Proposition 7, proof in App. D-C), followed by the certificate of
// the smoothed chain (Algorithm 1, src/certify/) and the objective-level statements (Lemmas 8–9).
//
// Algorithm 2, line by line against the proof of Proposition 7 (our notation: mult = the printed ℓ):
//   "Initialize ℓ_τ = 1, n = 0"                      ok: the error at the output is multiplied by 1.
//   "for t = τ, …, 1: ℓ_{t,k_t+1} = ℓ_t"             ok (see the slip below for what ℓ_t must hold).
//   "for j = k_t, …, 1: if K_{a_{t,j}} > 0: n := n+1; µ_{t,j} = µ/ℓ_{t,j+1}, else µ_{t,j} = 0;
//    ℓ_{t,j} = ℓ_{a_{t,j}} ℓ_{t,j+1}"                 ok: ℓ_{t,j+1} = Π_{s>t} ℓ_{a_s}(R_s L_{b_s} + lˣ_{b_s})
//                                                     · Π_{i>j} ℓ_{a_{t,i}}, the factor by which an error
//                                                     made at the output of a_{t,j} reaches the output
//                                                     (the proof's closing note writes this product as
//                                                     ℓ_{t,j}; with the algorithm's own recursion it is
//                                                     ℓ_{t,j+1}: an index slip of the note, not of the
//                                                     algorithm).
//   "ℓ_t = ℓ_{t,1}(R_t L_{b_t} + lˣ_{b_t})"           SLIP: must be ℓ_{t−1} = …, the factor of layer t−1's
//                                                     output (read as ℓ_{t−1,k+1} at the next iteration;
//                                                     as printed ℓ_{t−1} is never set). The factor
//                                                     R_t L_b + lˣ is ‖∇_x b_t‖ on B_{R_t}: ‖b(x,u) −
//                                                     b(x',u)‖ = ‖β(x−x',u) + βˣ(x−x')‖ ≤ (L_b R_t + lˣ)‖x−x'‖.
//   "Output: ã_t = a_{t,k_t, µ_{t,k_t}/n} ∘ … ∘ a_{t,1, µ_{t,1}/n}"  ok: each of the n smoothed parts
//                                                     then adds at most µ/n at the output (Eq. (17)
//                                                     unrolled over the layers), total µ.
// The ℓ_{a_{t,j}} are global Lipschitz constants valid for a_{t,j} and for its smoothing (Def. 5
// requires f_µ ∈ C_ℓ: SmoothReLU and log-sum-exp pooling keep ReLU's and max-pool's ℓ). The
// accuracy needs no bound on the input (m_t does not appear): it holds for every x₀.
//
// Per-part accuracy → component parameter: a part a_{t,j} acting on η coordinates is a
// block-diagonal map, so Lemma 24 item 1 gives per-coordinate accuracy δ/√η (its proof writes
// "‖a(x) − a_ν(x)‖² ≤ |I|ν² = µ": the right-hand side is µ²). The components' rules
// (`Component.smoothing`) do this conversion.
//
// Objective (Lemma 8): with h(ŷ) = ℓ(y, ŷ) ℓ_h-Lipschitz per sample and ν = ε/ℓ_h, every sample's
// loss moves by ≤ ℓ_h ν = ε, so the mean F and F_ε differ by ≤ ε on B_R (the L2 term is unchanged).
// Lemma 9: if û is ε-minimal for F_ε on a ball B_η(û) ⊂ B_R, then F(û) − min_{B_η(û)} F ≤ 3ε
// (F(û) − F(u*) ≤ F_ε(û) − F_ε(u*) + 2ε ≤ 3ε; the statement's "B_ρ" is the ball B_η(û)).

/** Options of {@link smooth}. */
export interface SmoothOptions {
  /** Target accuracy ε > 0 (of the chain's output per sample, or of the objective: see `target`). */
  epsilon: number;
  /** R_t: bound on ‖u_t‖ for each parameterized layer (one number for all). */
  radii: number | readonly number[];
  /**
   * What ε bounds: "output" (default), ‖ψ(x,u) − ψ_ε(x,u)‖ ≤ ε for every sample x and u ∈ B_R; or
   * "objective" (Lemma 8), |F(u) − F_ε(u)| ≤ ε on B_R, by smoothing the chain to ν = ε/ℓ_h.
   */
  target?: "output" | "objective";
  /** Batch size N of the certificate of ψ_ε's constants (m, ℓ, L, L_F); default 1. */
  batch?: number;
  /** Bound on ‖X₀‖_F of a batch (for ψ_ε's constants). */
  inputNorm?: number;
  /** Alternatively the largest sample norm (then ‖X₀‖ ≤ √N·maxSampleNorm). */
  maxSampleNorm?: number;
  /** Loss of the objective (default logistic). */
  loss?: LossType | Loss;
  /** λ of the L2 term (λ/2)‖u‖² (default 0). */
  l2?: number;
  /** Certificate variant of ψ_ε's constants (default "tight"). */
  variant?: CertificateVariant;
  /** dtype of the returned chain when a spec is given (default float32). */
  dtype?: "float32" | "float64";
}

/** One nonlinear part a_{t,j} as Algorithm 2 saw it. */
export interface SmoothedPart {
  /** Index of the component in the chain's layer list. */
  readonly index: number;
  /** Layer t (0 for components before the first bi-affine one) and position j (1-based) in a_t. */
  readonly layer: number;
  readonly position: number;
  readonly type: string;
  /** ℓ_{a_{t,j}} (global; also valid for its smoothing). */
  readonly lipschitz: number;
  /** K of the (L, K) pair (0: smooth, kept as is). */
  readonly smoothnessPerAccuracy: number;
  /** ℓ_{t,j+1}: factor by which an error at this part's output reaches the chain's output. */
  readonly multiplier: number;
  /** µ_{t,j}/n: the ℓ2 accuracy assigned to this part (0 when not smoothed). */
  readonly accuracy: number;
  /** The component's own parameter (per-coordinate μ of smoothRelu, temperature of the pooling); 0 when not smoothed. */
  readonly parameter: number;
  /** The replacement's layer spec (null when kept). */
  readonly replacement: LayerSpec | null;
  readonly description: string | null;
}

/** Per-layer summary (Tables I–II of Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021): the smoothing chosen per layer). */
export interface SmoothedLayer {
  readonly layer: number;
  readonly types: readonly string[];
  /** R_t (0 for layer 0). */
  readonly radius: number;
  /** R_t L_{b_t} + lˣ_{b_t} (1 for layer 0). */
  readonly inputLipschitz: number;
  /** The parameters of the smoothed parts of the layer (e.g. smoothRelu μ), 0 when none. */
  readonly parameters: readonly number[];
  /** Their ℓ2 accuracies µ_{t,j}/n. */
  readonly accuracies: readonly number[];
}

/** Result of {@link smooth}. */
export interface SmoothResult {
  /** The smoothed model spec ψ_ε (validated). */
  readonly spec: ModelSpec;
  /** ψ_ε as a chain (same dtype and backend as a given chain). */
  readonly chain: Chain;
  readonly epsilon: number;
  readonly target: "output" | "objective";
  /** ν: the certified output accuracy per sample, ‖ψ(x,u) − ψ_ε(x,u)‖ ≤ ν on B_R for every x. */
  readonly outputAccuracy: number;
  /** ‖Ψ(X,u) − Ψ_ε(X,u)‖_F ≤ √N ν for a batch of N samples. */
  readonly batchAccuracy: number;
  /** n: the number of smoothed parts. */
  readonly smoothedParts: number;
  readonly radii: readonly number[];
  readonly parts: readonly SmoothedPart[];
  readonly layers: readonly SmoothedLayer[];
  /** Certificate of ψ_ε and of its objective on B_R (m, ℓ, L of the chain; ℓ_F, L_F, step 1/L_F). */
  readonly certificate: ObjectiveCertificate;
  /** Lemmas 8–9. */
  readonly objective: {
    /** ℓ_h: Lipschitz constant of the per-sample loss on the outputs. */
    readonly lossLipschitz: number;
    /** |F(u) − F_ε(u)| ≤ ℓ_h ν on B_R (Lemma 8). */
    readonly accuracy: number;
    /** An ε_F-minimum of F_ε on a ball B_η(û) ⊂ B_R is (ε_F + 2·accuracy)-minimal for F (Lemma 9; 3ε when ε_F = accuracy = ε). */
    readonly transferredMinimality: (epsilonMinimality: number) => number;
    readonly statement: string;
  };
}

function isChain(x: unknown): x is Chain {
  return x instanceof Chain;
}

/**
 * Algorithm 2 (automatic smoothing, corrected as in this file's header): ψ_ε with
 * ‖ψ(x,u) − ψ_ε(x,u)‖ ≤ ν for all x and u ∈ B_R, the per-part smoothing, and ψ_ε's certificate.
 */
export function smooth(model: Chain | ModelSpecInput | ModelSpec, options: SmoothOptions): SmoothResult {
  const epsilon = options.epsilon;
  if (!(epsilon > 0) || !Number.isFinite(epsilon)) throw new Error(`epsilon: expected a positive number, got ${epsilon}`);
  const target = options.target ?? "output";
  if (target !== "output" && target !== "objective") throw new Error(`target: expected "output" or "objective", got ${target}`);
  const original = isChain(model) ? model : new Chain(parseModelSpec(model), { dtype: options.dtype ?? "float32" });
  const radii = resolveRadii(original, options.radii);
  const batch = options.batch ?? 1;
  if (!(Number.isInteger(batch) && batch > 0)) throw new Error(`batch: expected a positive integer, got ${batch}`);
  // Batch-norm in training mode couples the samples of a batch: then accuracies are stated for the
  // whole batch of N samples (Frobenius norm), otherwise per sample (constants with batch 1).
  const coupled = original.components.some((c) => c.type === "batchNorm");
  const accBatch = coupled ? batch : 1;
  const objective = createObjective(options.loss ?? "logistic", options.l2 ?? 0);

  // ν: the chain-output accuracy (Lemma 8: ν = ε/ℓ_h for the objective).
  let lossLipschitz = Number.NaN;
  const perSampleNorm = options.maxSampleNorm ?? options.inputNorm;
  const lossAt = (norm: number): number => {
    if (!objective.loss.smoothness) throw new Error(`loss ${objective.loss.type}: declares no smoothness constants`);
    return objective.loss.smoothness({ batch: accBatch, outputSize: original.outputSize, norm }).lipschitz;
  };
  let mPsi = Infinity;
  if (perSampleNorm !== undefined) {
    try {
      mPsi = certifyChain(original, {
        radii,
        batch: accBatch,
        inputNorm: coupled ? (options.inputNorm ?? perSampleNorm) : perSampleNorm,
      }).bound;
    } catch {
      mPsi = Infinity;
    }
  }
  let nu = epsilon;
  if (target === "objective") {
    // ℓ_h on outputs of norm ≤ m_ψ + ν (ψ_ε's outputs are within ν of ψ's); ℓ_h is non-decreasing in
    // the norm, so ν = ε/ℓ_h(m_ψ + ε/ℓ_h(m_ψ)) satisfies ν ℓ_h(m_ψ + ν) ≤ ε (logistic: ℓ_h = √2 for all norms).
    const first = epsilon / lossAt(mPsi);
    lossLipschitz = lossAt(mPsi + first);
    nu = epsilon / lossLipschitz;
  } else {
    lossLipschitz = lossAt(mPsi + epsilon);
  }
  if (!(nu > 0) || !Number.isFinite(nu)) {
    throw new Error(
      `smooth: the loss's Lipschitz constant on the outputs is ${lossLipschitz}; give a bound on the inputs (inputNorm or maxSampleNorm)`,
    );
  }

  // Backward pass of Algorithm 2.
  const comps = original.components;
  const rules = new Map<number, SmoothingRule>();
  const lipschitzOf = (c: Component, i: number): number => {
    const rule = c.smoothing?.({ batch: accBatch, norm: Infinity });
    if (rule) {
      rules.set(i, rule);
      return rule.lipschitz;
    }
    if (!c.smoothness) throw new Error(`layers[${i}] (${c.type}): declares no smoothness constants; cannot be smoothed`);
    const k = c.smoothness({ batch: accBatch, norm: Infinity }) as NonlinearConstants;
    if (k.smoothness === Infinity) throw new Error(`layers[${i}] (${c.type}): not smooth and declares no smoothing rule`);
    return k.lipschitz;
  };
  const pending: { index: number; layer: number; position: number; lipschitz: number; multiplier: number }[] = [];
  const layerFactors: number[] = [];
  let mult = 1; // ℓ_τ = 1
  let n = 0;
  let t = original.layers.filter((l) => l.biaffine >= 0).length;
  for (let li = original.layers.length - 1; li >= 0; li--) {
    const layer = original.layers[li];
    for (let j = layer.nonlinear.length - 1; j >= 0; j--) {
      const i = layer.nonlinear[j];
      const ell = lipschitzOf(comps[i], i); // ℓ_{a_{t,j}}
      const rule = rules.get(i);
      if (rule && rule.smoothnessPerAccuracy > 0) n++;
      pending.push({ index: i, layer: layer.biaffine >= 0 ? t : 0, position: j + 1, lipschitz: ell, multiplier: mult }); // ℓ_{t,j+1}
      mult *= ell; // ℓ_{t,j} = ℓ_{a_{t,j}} ℓ_{t,j+1}
    }
    if (layer.biaffine >= 0) {
      const b = comps[layer.biaffine].smoothness?.({ batch: accBatch, norm: Infinity }) as BiaffineConstants | undefined;
      if (!b) throw new Error(`layers[${layer.biaffine}] (${comps[layer.biaffine].type}): declares no smoothness constants`);
      const factor = b.bilinear * radii[t - 1] + b.inputLipschitz; // R_t L_b + lˣ
      layerFactors[li] = factor;
      mult *= factor; // ℓ_{t−1} = ℓ_{t,1}(R_t L_{b_t} + lˣ_{b_t})   (printed: ℓ_t, an index slip)
      t--;
    } else layerFactors[li] = 1;
  }

  // Output: ã_{t,j} = a_{t,j, µ_{t,j}/n} with µ_{t,j} = ν/ℓ_{t,j+1}.
  const layers = [...original.spec.layers];
  const parts: SmoothedPart[] = [];
  for (const p of pending.reverse()) {
    const rule = rules.get(p.index);
    const K = rule?.smoothnessPerAccuracy ?? 0;
    let accuracy = 0;
    let parameter = 0;
    let replacement: LayerSpec | null = null;
    if (rule && K > 0) {
      if (!(p.multiplier > 0)) throw new Error(`layers[${p.index}]: a zero factor after it (a radius R_t = 0?); give positive radii`);
      accuracy = nu / (n * p.multiplier);
      parameter = rule.parameter(accuracy);
      replacement = rule.spec(accuracy);
      layers[p.index] = replacement;
    } else if (rule) {
      // K = 0 (e.g. a 1×1 max-pool): the replacement is exact at any accuracy.
      replacement = rule.spec(1);
      layers[p.index] = replacement;
    }
    parts.push({
      index: p.index,
      layer: p.layer,
      position: p.position,
      type: comps[p.index].type,
      lipschitz: p.lipschitz,
      smoothnessPerAccuracy: K,
      multiplier: p.multiplier,
      accuracy,
      parameter,
      replacement,
      description: rule?.description ?? null,
    });
  }
  const spec = parseModelSpec({ input: [...original.spec.input], layers });
  const chain = new Chain(spec, { dtype: original.dtype, backend: original.backend });

  const perLayer: SmoothedLayer[] = [];
  let tt = 0;
  original.layers.forEach((layer, li) => {
    if (layer.biaffine >= 0) tt++;
    const own = parts.filter((p) => layer.nonlinear.includes(p.index) && p.accuracy > 0);
    perLayer.push({
      layer: layer.biaffine >= 0 ? tt : 0,
      types: [layer.biaffine, ...layer.nonlinear].filter((i) => i >= 0).map((i) => comps[i].type),
      radius: layer.biaffine >= 0 ? radii[tt - 1] : 0,
      inputLipschitz: layerFactors[li],
      parameters: own.map((p) => p.parameter),
      accuracies: own.map((p) => p.accuracy),
    });
  });

  // ψ_ε's constants on B_R for batches of N (Algorithm 1, src/certify/).
  const certificate = certifyObjective(chain, objective, {
    radii,
    batch,
    ...(options.inputNorm !== undefined ? { inputNorm: options.inputNorm } : {}),
    ...(options.maxSampleNorm !== undefined ? { maxSampleNorm: options.maxSampleNorm } : {}),
    ...(options.inputNorm === undefined && options.maxSampleNorm === undefined ? { inputNorm: 1 } : {}),
    variant: options.variant ?? "tight",
  });
  const objAccuracy = lossLipschitz * nu;
  return {
    spec,
    chain,
    epsilon,
    target,
    outputAccuracy: nu,
    batchAccuracy: coupled ? nu : Math.sqrt(batch) * nu,
    smoothedParts: n,
    radii,
    parts,
    layers: perLayer,
    certificate,
    objective: {
      lossLipschitz,
      accuracy: objAccuracy,
      transferredMinimality: (e) => e + 2 * objAccuracy,
      statement:
        `|F(u) − F_ε(u)| ≤ ${fmt(objAccuracy)} for all u in B_R (Lemma 8, ℓ_h = ${fmt(lossLipschitz)}); ` +
        `a point ${fmt(objAccuracy)}-minimal for F_ε on a ball B_η(û) ⊂ B_R is ${fmt(3 * objAccuracy)}-minimal for F there (Lemma 9)`,
    },
  };
}

function fmt(v: number): string {
  return Number.isFinite(v) ? Number(v.toPrecision(4)).toString() : String(v);
}

/** Options of {@link smoothModelSpec} (for `chainopt train --smooth-epsilon E`). */
export type SmoothModelSpecOptions = Omit<SmoothOptions, "dtype">;

/**
 * The smoothed model spec for `chainopt train --smooth-epsilon E`: the spec ψ_ε and the smoothing
 * result (per-part parameters and certificate). Default target "objective" (|F − F_ε| ≤ ε on B_R).
 */
export function smoothModelSpec(
  spec: ModelSpecInput | ModelSpec,
  options: SmoothModelSpecOptions,
): { spec: ModelSpec; certificate: SmoothResult } {
  const r = smooth(spec, { target: "objective", ...options, dtype: "float64" });
  return { spec: r.spec, certificate: r };
}

/** A JSON-friendly summary of a smoothing result (CLI `--json`, run records). */
export function smoothingSummary(r: SmoothResult): Record<string, unknown> {
  const c = r.certificate;
  return {
    epsilon: r.epsilon,
    target: r.target,
    outputAccuracy: r.outputAccuracy,
    batchAccuracy: r.batchAccuracy,
    smoothedParts: r.smoothedParts,
    radii: r.radii,
    parts: r.parts.map((p) => ({
      index: p.index,
      layer: p.layer,
      position: p.position,
      type: p.type,
      lipschitz: p.lipschitz,
      K: p.smoothnessPerAccuracy,
      multiplier: p.multiplier,
      accuracy: p.accuracy,
      parameter: p.parameter,
      replacement: p.replacement,
    })),
    layers: r.layers,
    smoothed: {
      batch: c.chain.batch,
      inputNorm: c.chain.inputNorm,
      bound: c.chain.bound,
      lipschitz: c.chain.lipschitz,
      smoothness: c.chain.smoothness,
      objectiveLipschitz: c.lipschitz,
      objectiveSmoothness: c.smoothness,
      stepSize: c.stepSize,
    },
    objective: { lossLipschitz: r.objective.lossLipschitz, accuracy: r.objective.accuracy, statement: r.objective.statement },
    spec: r.spec,
  };
}
