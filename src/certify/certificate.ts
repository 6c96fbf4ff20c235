import type { Chain } from "../chain/chain.js";
import type { Component } from "../components/component.js";
import type { BiaffineConstants, ComponentConstants, NonlinearConstants } from "../components/smoothness.js";
import type { FloatArray } from "../core/dtype.js";
import type { LossConstants } from "../objectives/loss.js";
import { l2Constants, type Objective } from "../objectives/objective.js";

// Certified smoothness of chains x_t = a_t(b_t(x_{t−1}, u_t)) and of training objectives
// F(u) = f(ψ(u)) + (λ/2)‖u‖² on B_R = {u : ‖u_t‖ ≤ R_t} (docs/certificates.md), from the
// architecture alone: one forward pass over the components' constants (`Component.smoothness`).
//
// The recursion is Algorithm 1 of Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021) (Sec. III-B), checked line by line against the
// appendix proofs (Lemmas 19, 21, 22 and the proof of Proposition 4). The printed algorithm has
// slips, fixed here (variant "corrected"; variant "printed" keeps the loose lines 1–2 for comparison):
//  1. m_{t,0} = ℓˣ_{t,0} m_{t−1} + ℓᵘ_{t,0} R_t + ‖b_t(0,0)‖ counts the bilinear term twice:
//     (L_b R + lˣ) m + (L_b m + lᵘ) R = 2 L_b m R + …, whereas ‖b(x,u)‖ ≤ ‖β(x,u)‖ + ‖βᵘ(u)‖ +
//     ‖βˣ(x)‖ + ‖β⁰‖ ≤ L_b m R + lᵘ R + lˣ m + ‖β⁰‖, which is what the proof of Prop. 7 (App. D-C,
//     "m_{t,0} = L_b R m + lᵘ R + lˣ m + ‖β⁰‖") uses. Valid but loose as printed.
//  2. L_{t,j} = L_{t,j−1} ℓ_{a_{t,j}} + L_{a_{t,j}} (ℓ'_{t,j−1})² uses the global Lipschitz constant
//     ℓ_{a_{t,j}}; Lemma 19 uses the one on the ball, ℓ̃_{a_{t,j}} = min{ℓ_a, ‖∇a(0)‖ + L_a m_{t,j−1}}.
//     Valid but loose as printed.
//  3. In L_t the factor "(L_b R_t + l_b)²" lacks the superscript x: it is (ℓˣ_{t,0})² = (L_b R_t + lˣ)²
//     (Lemma 22: L^xx_φ ≤ L_a (ℓˣ_b)²).
//  4. In L_t the bracket of "2 (L_b m + lᵘ)(L_b R + lˣ) L_{t,k} + L_b ℓ'_{t,k}) ℓ_{t−1}" opens at
//     the wrong place: Lemma 22 gives (L^xu + L^ux) ℓ_{t−1} = 2 [ℓᵘ ℓˣ L_{t,k} + L_b ℓ'_{t,k}] ℓ_{t−1}.
//     As printed (2ℓᵘℓˣL_{t,k} + L_bℓ'ℓ_{t−1}) it would drop the factor ℓ_{t−1} from the first term
//     and the factor 2 from the second; the first is then too large, the second too small. We use
//     Lemma 22's form (in both variants).
//  (Also, in App. C-C the definition "L^xx_φ = sup ‖∇²_uu φ‖" should read ∇²_xx φ.)
// With these, line by line (Lemma 22 with Lemma 19 for a_t = a_{t,k} ∘ … ∘ a_{t,1}):
//   ℓˣ = L_b R_t + lˣ, ℓᵘ = L_b m_{t−1} + lᵘ        bounds on ‖∇_x b‖, ‖∇_u b‖ on the balls
//   m_{t,0} = L_b m_{t−1} R_t + lᵘ R_t + lˣ m_{t−1} + ‖b(0,0)‖
//   ℓ̃_j = min{ℓ_{a_j}, ‖∇a_j(0)‖ + L_{a_j} m_{t,j−1}},  m_{t,j} = min{m_{a_j}, ‖a_j(0)‖ + ℓ̃_j m_{t,j−1}}
//   ℓ'_j = ℓ̃_j ℓ'_{j−1},  L_{t,j} = L_{t,j−1} ℓ̃_j + L_{a_j} (ℓ'_{j−1})²      (ℓ'_0 = 1, L_{t,0} = 0)
//   ℓ_t = ℓ'_k (ℓˣ ℓ_{t−1} + ℓᵘ)
//   L_t = L_{t−1} ℓˣ ℓ'_k + L_{t,k} (ℓˣ ℓ_{t−1} + ℓᵘ)² + 2 L_b ℓ'_k ℓ_{t−1}
// (the last line is the printed one, expanded). Derivation of ℓ_t, L_t: for a direction
// v = (v_<t; v_t) with ‖v_<t‖ = α, ‖v_t‖ = β, α² + β² = ‖v‖² = 1, and J = ∇f_{t−1},
//   Df_t[v] = Da[∇_x b J v_<t + ∇_u b v_t],  ‖·‖ ≤ ℓ'_k (ℓˣ ℓ_{t−1} α + ℓᵘ β),
//   D²f_t[v,v] = D²a[Db v, Db v] + Da[∇_x b D²f_{t−1}[v,v] + 2 β(J v_<t, v_t)],
//   ‖·‖ ≤ L_{t,k}(ℓˣℓ_{t−1}α + ℓᵘβ)² + ℓ'_k(ℓˣ L_{t−1} α² + 2 L_b ℓ_{t−1} α β).
// The papers bound α, β by 1 separately. Variant "tight" maximizes over α² + β² = 1
// instead, the parameter blocks being orthogonal:
//   ℓ_t = ℓ'_k √((ℓˣ ℓ_{t−1})² + (ℓᵘ)²)     (Cauchy–Schwarz),
//   L_t = λ_max(M),  M = L_{t,k} [p², pq; pq, q²] + ℓ'_k [ℓˣ L_{t−1}, L_b ℓ_{t−1}; L_b ℓ_{t−1}, 0]
// with p = ℓˣℓ_{t−1}, q = ℓᵘ (M has non-negative entries, so its top eigenvector is non-negative
// and the maximum of the quadratic form over the quarter circle α, β ≥ 0 is λ_max). The Hessian of
// each output coordinate is symmetric, so bounding the quadratic form bounds the tensor norm. It
// also uses, when the bilinear part and the bias read disjoint blocks of u_t (dense, conv), the
// bound ‖∇_u b‖ ≤ √((L_b m_{t−1})² + (lᵘ)²) instead of L_b m_{t−1} + lᵘ, and the same in m_{t,0}.
// Every "tight" value is ≤ the "corrected" one, and both are checked against witnesses in
// test/certify.test.ts.

/** Which recursion to run: see the header of this file. */
export type CertificateVariant = "printed" | "corrected" | "tight";

/** Options of {@link certifyChain}. */
export interface CertifyOptions {
  /** R_t, the bound on ‖u_t‖ for each parameterized layer (one number for all). */
  radii: number | readonly number[];
  /** Number of samples N in the batch (the chain is certified on the whole batch). */
  batch: number;
  /** Bound on the Frobenius norm of the whole input batch, m_0 ≥ ‖X_0‖_F. */
  inputNorm?: number;
  /** Alternatively, the data set's largest sample norm: then m_0 = √N · maxSampleNorm. */
  maxSampleNorm?: number;
  /** Default "tight". */
  variant?: CertificateVariant;
  /**
   * Replaces a component's constants (for experiments, e.g. the papers' printed values); the
   * certificate is only as valid as the replacement.
   */
  override?: (component: Component, constants: ComponentConstants, index: number) => ComponentConstants;
}

/** A nonlinear part a_{t,j} with its constants and its values in the recursion. */
export interface PartCertificate {
  readonly index: number;
  readonly type: string;
  readonly constants: NonlinearConstants;
  /** m_{t,j−1}, the bound on its input. */
  readonly inputBound: number;
  /** ℓ̃_{a_{t,j}}, its Lipschitz constant on the ball of radius m_{t,j−1}. */
  readonly localLipschitz: number;
  /** m_{t,j}. */
  readonly outputBound: number;
}

/** One layer t of the certificate (t = 0 for components before the first bi-affine one). */
export interface LayerCertificate {
  readonly layer: number;
  /** Component index of b_t (−1 for layer 0). */
  readonly biaffineIndex: number;
  /** Types of the components of the layer, e.g. ["conv2d", "relu", "maxPool2d"]. */
  readonly types: readonly string[];
  /** R_t (0 for layer 0). */
  readonly radius: number;
  readonly biaffine: BiaffineConstants | null;
  /** ℓˣ_{t,0}, ℓᵘ_{t,0}: bounds on ‖∇_x b_t‖, ‖∇_u b_t‖ on the balls. */
  readonly inputLipschitz: number;
  readonly paramLipschitz: number;
  /** m_{t,0}: bound on ‖b_t(x_{t−1}, u_t)‖. */
  readonly preactivationBound: number;
  readonly parts: readonly PartCertificate[];
  /** ℓ'_{t,k} and L_{t,k}: Lipschitz and smoothness of a_t on the ball of radius m_{t,0}. */
  readonly activationLipschitz: number;
  readonly activationSmoothness: number;
  /** m_t, ℓ_t, L_t: bound, Lipschitz and smoothness constants of u ↦ x_t on B_R. */
  readonly bound: number;
  readonly lipschitz: number;
  readonly smoothness: number;
}

/** Result of {@link certifyChain}. */
export interface ChainCertificate {
  readonly variant: CertificateVariant;
  readonly batch: number;
  /** m_0. */
  readonly inputNorm: number;
  /** R_t for t = 1..τ. */
  readonly radii: readonly number[];
  readonly layers: readonly LayerCertificate[];
  /** m_τ, ℓ_τ, L_τ of the chain's output. */
  readonly bound: number;
  readonly lipschitz: number;
  readonly smoothness: number;
}

/** a·b with 0·∞ = 0 (a zero factor means the term vanishes, e.g. L_a·0 for a constant input). */
export function mul(a: number, b: number): number {
  return a === 0 || b === 0 ? 0 : a * b;
}

/** Largest eigenvalue of the symmetric matrix [a, b; b, c] (∞ if an entry is). */
export function lambdaMax2(a: number, b: number, c: number): number {
  if (!Number.isFinite(a) || !Number.isFinite(b) || !Number.isFinite(c)) return Infinity;
  const h = (a - c) / 2;
  return (a + c) / 2 + Math.hypot(h, b);
}

/** The number of parameterized layers τ of a chain (layers with a bi-affine part). */
export function parameterizedLayers(chain: Chain): number {
  return chain.layers.filter((l) => l.biaffine >= 0).length;
}

/** R_t for t = 1..τ from a number or an array (checked). */
export function resolveRadii(chain: Chain, radii: number | readonly number[]): number[] {
  const tau = parameterizedLayers(chain);
  const out = typeof radii === "number" ? new Array<number>(tau).fill(radii) : [...radii];
  if (out.length !== tau) throw new Error(`radii: expected ${tau} values (one per layer with parameters), got ${out.length}`);
  for (const r of out) if (!(r >= 0)) throw new Error(`radii: expected non-negative numbers, got ${r}`);
  return out;
}

function resolveInputNorm(options: { batch: number; inputNorm?: number; maxSampleNorm?: number }): number {
  if (!(Number.isInteger(options.batch) && options.batch > 0)) throw new Error(`batch: expected a positive integer, got ${options.batch}`);
  if (options.inputNorm !== undefined) {
    if (!(options.inputNorm >= 0)) throw new Error(`inputNorm: expected a non-negative number, got ${options.inputNorm}`);
    return options.inputNorm;
  }
  if (options.maxSampleNorm !== undefined) {
    if (!(options.maxSampleNorm >= 0)) throw new Error(`maxSampleNorm: expected a non-negative number, got ${options.maxSampleNorm}`);
    return Math.sqrt(options.batch) * options.maxSampleNorm;
  }
  throw new Error("certify: give inputNorm (‖X₀‖ of the batch) or maxSampleNorm (largest sample norm of the data)");
}

function constantsOf(chain: Chain, i: number, batch: number, norm: number, options: CertifyOptions): ComponentConstants {
  const c = chain.components[i];
  if (!c.smoothness)
    throw new Error(`layers[${i}] (${c.type}): this component declares no smoothness constants; the chain cannot be certified`);
  if (c.role !== "biaffine" && c.paramSize > 0) {
    throw new Error(
      `layers[${i}] (${c.type}): nonlinear parts with parameters (e.g. affine batch-norm) are not covered by the certificate`,
    );
  }
  let k = c.smoothness({ batch, norm });
  if (options.override) k = options.override(c, k, i);
  const expected = c.role === "biaffine" ? "biaffine" : "nonlinear";
  if (k.kind !== expected) throw new Error(`layers[${i}] (${c.type}): expected ${expected} constants, got ${k.kind}`);
  return k;
}

/**
 * Runs the nonlinear parts a_{t,1..k} on inputs bounded by m (Lemma 19 / Algorithm 1's inner
 * loop). Returns the parts and ℓ'_{t,k}, L_{t,k}, m_{t,k}.
 */
function nonlinearPass(
  chain: Chain,
  indices: readonly number[],
  batch: number,
  m: number,
  options: CertifyOptions,
  variant: CertificateVariant,
): { parts: PartCertificate[]; lipschitz: number; smoothness: number; bound: number } {
  const parts: PartCertificate[] = [];
  let ell = 1; // ℓ'_{t,0}
  let L = 0; // L_{t,0}
  for (const i of indices) {
    const k = constantsOf(chain, i, batch, m, options) as NonlinearConstants;
    const local = Math.min(k.lipschitz, k.jacobianAtZero + mul(k.smoothness, m)); // ℓ̃ (Fact 18)
    const out = Math.min(k.bound, k.valueAtZero + mul(local, m)); // m_{t,j} (Fact 18)
    // L_{t,j} = L_{t,j−1} ℓ̃ + L_a (ℓ'_{t,j−1})² (Lemma 19); the printed line uses ℓ_a (slip 2).
    L = mul(L, variant === "printed" ? k.lipschitz : local) + mul(k.smoothness, ell * ell);
    ell = mul(ell, local);
    parts.push({ index: i, type: chain.components[i].type, constants: k, inputBound: m, localLipschitz: local, outputBound: out });
    m = out;
  }
  return { parts, lipschitz: ell, smoothness: L, bound: m };
}

/**
 * Certificate of the chain on B_R for a batch: m_t, ℓ_t, L_t for every layer (Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021),
 * Algorithm 1 with the fixes listed in this file's header; variant "tight" by default). From the
 * architecture alone: no parameter values are read.
 */
export function certifyChain(chain: Chain, options: CertifyOptions): ChainCertificate {
  const variant = options.variant ?? "tight";
  const batch = options.batch;
  const m0 = resolveInputNorm(options);
  const radii = resolveRadii(chain, options.radii);
  const layers: LayerCertificate[] = [];
  let m = m0;
  let ell = 0; // ℓ_0
  let L = 0; // L_0
  let t = 0;
  for (const layer of chain.layers) {
    const types = [layer.biaffine, ...layer.nonlinear].filter((i) => i >= 0).map((i) => chain.components[i].type);
    if (layer.biaffine < 0) {
      // Layer 0: fixed transformations of the input (e.g. flatten); only m_0 changes.
      const pass = nonlinearPass(chain, layer.nonlinear, batch, m, options, variant);
      layers.push({
        layer: 0,
        biaffineIndex: -1,
        types,
        radius: 0,
        biaffine: null,
        inputLipschitz: 0,
        paramLipschitz: 0,
        preactivationBound: m,
        parts: pass.parts,
        activationLipschitz: pass.lipschitz,
        activationSmoothness: pass.smoothness,
        bound: pass.bound,
        lipschitz: 0,
        smoothness: 0,
      });
      m = pass.bound;
      continue;
    }
    const R = radii[t];
    t++;
    const b = constantsOf(chain, layer.biaffine, batch, m, options) as BiaffineConstants;
    const ellX = mul(b.bilinear, R) + b.inputLipschitz; // ℓˣ_{t,0} = L_b R_t + lˣ
    const bilinearU = mul(b.bilinear, m);
    // ℓᵘ_{t,0} = L_b m_{t−1} + lᵘ; tight: √((L_b m)² + (lᵘ)²) for disjoint weight/bias blocks.
    const ellU = variant === "tight" && b.disjointParamBlocks ? Math.hypot(bilinearU, b.paramLipschitz) : bilinearU + b.paramLipschitz;
    // m_{t,0}: printed ℓˣ m + ℓᵘ R + ‖b(0,0)‖ (slip 1); corrected L_b m R + lᵘ R + lˣ m + ‖b(0,0)‖.
    const m0t =
      variant === "printed" ? mul(ellX, m) + mul(ellU, R) + b.valueAtZero : mul(ellU, R) + mul(b.inputLipschitz, m) + b.valueAtZero;
    const pass = nonlinearPass(chain, layer.nonlinear, batch, m0t, options, variant);
    const la = pass.lipschitz; // ℓ'_{t,k}
    const La = pass.smoothness; // L_{t,k}
    const p = mul(ellX, ell); // ℓˣ ℓ_{t−1}
    const q = ellU;
    let ellT: number;
    let LT: number;
    if (variant === "tight") {
      ellT = mul(la, Math.hypot(p, q));
      LT = lambdaMax2(mul(La, p * p) + mul(la, mul(ellX, L)), mul(La, p * q) + mul(la, mul(b.bilinear, ell)), mul(La, q * q));
    } else {
      ellT = mul(la, p + q);
      // L_t = L_{t−1} ℓˣ ℓ'_k + L_{t,k} (ℓˣℓ_{t−1} + ℓᵘ)² + 2 L_b ℓ'_k ℓ_{t−1} (slips 3, 4 fixed).
      LT = mul(L, mul(ellX, la)) + mul(La, (p + q) * (p + q)) + 2 * mul(b.bilinear, mul(la, ell));
    }
    layers.push({
      layer: t,
      biaffineIndex: layer.biaffine,
      types,
      radius: R,
      biaffine: b,
      inputLipschitz: ellX,
      paramLipschitz: ellU,
      preactivationBound: m0t,
      parts: pass.parts,
      activationLipschitz: la,
      activationSmoothness: La,
      bound: pass.bound,
      lipschitz: ellT,
      smoothness: LT,
    });
    m = pass.bound;
    ell = ellT;
    L = LT;
  }
  return { variant, batch, inputNorm: m0, radii, layers, bound: m, lipschitz: ell, smoothness: L };
}

/** Options of {@link certifyObjective}. */
export interface CertifyObjectiveOptions extends CertifyOptions {
  /** Bound on ‖Y‖_F of regression targets (squared loss; default √N, one-hot labels). */
  targetNorm?: number;
}

/** Result of {@link certifyObjective}. */
export interface ObjectiveCertificate {
  readonly chain: ChainCertificate;
  /** ℓ_f, L_f, sup f of the loss on outputs bounded by m_τ. */
  readonly loss: LossConstants;
  /** Constants of r(u) = (λ/2)‖u‖² on B_R. */
  readonly regularizer: { readonly bound: number; readonly lipschitz: number; readonly smoothness: number };
  /** sup_{B_R} F ≥ F(u₀) − F* (both losses and r are ≥ 0). */
  readonly bound: number;
  /** ℓ_F = ℓ_f ℓ_τ + λ‖R‖. */
  readonly lipschitz: number;
  /** L_F = ℓ_f L_τ + L_f ℓ_τ² + λ. */
  readonly smoothness: number;
  /** 1/L_F (0 when L_F = ∞: no certified step). */
  readonly stepSize: number;
}

/**
 * Certificate of F(u) = f(ψ(u)) + (λ/2)‖u‖² on B_R: with ∇F(u) = ∇ψ(u) ∇f(ψ(u)) + λu,
 *   ‖∇F(u)‖ ≤ ℓ_τ ℓ_f + λ‖u‖, and
 *   ‖∇F(u) − ∇F(v)‖ ≤ ‖∇ψ(u) − ∇ψ(v)‖ ‖∇f(ψ(u))‖ + ‖∇ψ(v)‖ ‖∇f(ψ(u)) − ∇f(ψ(v))‖ + λ‖u − v‖
 *                   ≤ (L_τ ℓ_f + ℓ_τ² L_f + λ) ‖u − v‖
 * (Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), Sec. IV-C: L_F ≤ L_f ℓ_h + L_h ℓ_f²; Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019), Prop. 4.3:
 * γ = (L_ψ ℓ_f + ℓ_ψ² L_f + L_r)⁻¹), with ℓ_f, L_f the loss's constants on ‖ŷ‖ ≤ m_τ.
 */
export function certifyObjective(chain: Chain, objective: Objective, options: CertifyObjectiveOptions): ObjectiveCertificate {
  const cert = certifyChain(chain, options);
  const loss = objective.loss;
  if (!loss.smoothness) throw new Error(`loss ${loss.type}: declares no smoothness constants; the objective cannot be certified`);
  const lc = loss.smoothness({ batch: options.batch, outputSize: chain.outputSize, norm: cert.bound, targetNorm: options.targetNorm });
  const reg = l2Constants(objective.l2, cert.radii);
  const lipschitz = mul(lc.lipschitz, cert.lipschitz) + reg.lipschitz;
  const smoothness = mul(lc.lipschitz, cert.smoothness) + mul(lc.smoothness, cert.lipschitz * cert.lipschitz) + reg.smoothness;
  return {
    chain: cert,
    loss: lc,
    regularizer: reg,
    bound: lc.bound + reg.bound,
    lipschitz,
    smoothness,
    stepSize: certifiedStepSize(smoothness),
  };
}

/** The certified step size 1/L_F (0 when L_F is infinite or not a number: no certified step). */
export function certifiedStepSize(smoothness: number | ObjectiveCertificate): number {
  const L = typeof smoothness === "number" ? smoothness : smoothness.smoothness;
  if (!(L > 0) || !Number.isFinite(L)) return L === 0 ? Infinity : 0;
  return 1 / L;
}

/** Options of {@link convergenceGuarantee}. */
export interface GuaranteeOptions {
  /** Target ε: ‖G(u)‖ ≤ ε for the gradient mapping G (ε-stationarity on B_R). */
  epsilon: number;
  /** Bound on F(u₀) − F* (default: the certificate's sup_{B_R} F, valid since F ≥ 0). */
  gap?: number;
  /** σ²: bound on the variance E‖g − ∇F(u)‖² of the stochastic gradients (SGD; default 0). */
  variance?: number;
}

/** Result of {@link convergenceGuarantee}. */
export interface Guarantee {
  readonly stepSize: number;
  readonly smoothness: number;
  readonly gap: number;
  readonly epsilon: number;
  /** Projected GD with γ = 1/L_F: min_{k<K} ‖G(u_k)‖ ≤ ε for K ≥ 2 L_F Δ / ε². */
  readonly gdIterations: number;
  /** Projected SGD with γ = 1/L_F: min_{k<K} E‖G(u_k)‖² ≤ ε² + 6σ² for K ≥ 4 L_F Δ / ε². */
  readonly sgdIterations: number;
  /** The noise floor 6σ² of the SGD guarantee (on E‖G‖²). */
  readonly sgdFloor: number;
}

/**
 * Iteration counts to an ε-stationary point on B_R (Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), Sec. IV-C and
 * Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019), Prop. 4.3: O(L_F (F(u₀) − F*)/ε²), citing Ghadimi, Lan & Zhang 2016,
 * Theorems 1–2). With the gradient mapping G(u) = (u − P_{B_R}(u − γ∇F(u)))/γ and γ = 1/L_F:
 * - Projected GD: sufficient decrease F(u_{k+1}) ≤ F(u_k) − ‖G(u_k)‖²/(2L_F) (Beck 2017,
 *   Lemma 10.4 / Thm. 10.15), summed: min_{k<K} ‖G(u_k)‖² ≤ 2 L_F Δ / K.
 * - Projected SGD, unbiased g_k with E‖g_k − ∇F(u_k)‖² ≤ σ² (following the proof of GLZ 2016,
 *   Thm. 2): with G̃ = (u − u⁺)/γ, ‖G̃ − G‖ ≤ ‖ξ‖ (non-expansive projection) and the projection
 *   inequality ⟨g, u⁺ − u⟩ ≤ −γ‖G̃‖², the descent lemma gives
 *   E F(u⁺) ≤ F(u) − (γ/2) E‖G̃‖² + γσ² ≤ F(u) − (γ/4)‖G‖² + (3γ/2)σ² (using ‖G‖² ≤ 2‖G̃‖² + 2‖ξ‖²),
 *   so min_{k<K} E‖G(u_k)‖² ≤ 4 L_F Δ / K + 6σ².
 */
export function convergenceGuarantee(cert: ObjectiveCertificate, options: GuaranteeOptions): Guarantee {
  const { epsilon } = options;
  if (!(epsilon > 0)) throw new Error(`epsilon: expected a positive number, got ${epsilon}`);
  const gap = options.gap ?? cert.bound;
  const sigma2 = options.variance ?? 0;
  const L = cert.smoothness;
  return {
    stepSize: cert.stepSize,
    smoothness: L,
    gap,
    epsilon,
    gdIterations: Math.ceil((2 * L * gap) / (epsilon * epsilon)),
    sgdIterations: Math.ceil((4 * L * gap) / (epsilon * epsilon)),
    sgdFloor: 6 * sigma2,
  };
}

/** Result of {@link projectOntoBall}. */
export interface Projection {
  /** ‖u_t‖ before projection, t = 1..τ. */
  readonly norms: number[];
  /** True when every ‖u_t‖ ≤ R_t already (nothing changed). */
  readonly inside: boolean;
}

/**
 * In place, u_t ← u_t · min(1, R_t/‖u_t‖) for each parameterized layer t: the Euclidean projection
 * onto B_R = {u : ‖u_t‖ ≤ R_t} (a product of balls, so the projection is block-wise).
 */
export function projectOntoBall(chain: Chain, w: FloatArray, radii: number | readonly number[]): Projection {
  chain.checkParams(w);
  const R = resolveRadii(chain, radii);
  const norms: number[] = [];
  let inside = true;
  let t = 0;
  for (const layer of chain.layers) {
    if (layer.biaffine < 0) continue;
    const u = chain.paramBlock(w, layer.biaffine);
    let s = 0;
    for (let i = 0; i < u.length; i++) s += u[i] * u[i];
    const n = Math.sqrt(s);
    norms.push(n);
    if (n > R[t]) {
      inside = false;
      const f = R[t] / n;
      for (let i = 0; i < u.length; i++) u[i] *= f;
    }
    t++;
  }
  return { norms, inside };
}

/** ‖u_t‖ for each parameterized layer t. */
export function layerNorms(chain: Chain, w: FloatArray): number[] {
  const out: number[] = [];
  for (const layer of chain.layers) {
    if (layer.biaffine < 0) continue;
    const u = chain.paramBlock(w, layer.biaffine);
    let s = 0;
    for (let i = 0; i < u.length; i++) s += u[i] * u[i];
    out.push(Math.sqrt(s));
  }
  return out;
}

/**
 * Radii of a local ball around the iterate w ("local radii"): {v : ‖v_t − w_t‖ ≤ δ} lies in
 * {v : ‖v_t‖ ≤ ‖w_t‖ + δ}, so a certificate with R_t = ‖w_t‖ + δ holds on it; capped by `cap` (the
 * global radii) when iterates are also projected onto B_cap, which keeps the intersection.
 */
export function localRadii(chain: Chain, w: FloatArray, delta: number, cap?: number | readonly number[]): number[] {
  const norms = layerNorms(chain, w);
  const c = cap === undefined ? null : resolveRadii(chain, cap);
  return norms.map((n, t) => (c ? Math.min(c[t], n + delta) : n + delta));
}

/** Options of {@link certifiedStep}. */
export interface CertifiedStepOptions extends CertifyObjectiveOptions {
  /** Target ε of the reported guarantee (default 1e-2). */
  epsilon?: number;
}

/**
 * For `--step-size certified`: the step 1/L_F of the objective's certificate on B_R, with the
 * certificate and its guarantee. The training loop runs projected (S)GD with {@link projectOntoBall}
 * after each step, so that the iterates stay where the certificate holds.
 */
export function certifiedStep(
  chain: Chain,
  objective: Objective,
  options: CertifiedStepOptions,
): { stepSize: number; certificate: ObjectiveCertificate; guarantee: Guarantee } {
  const certificate = certifyObjective(chain, objective, options);
  if (!(certificate.stepSize > 0)) {
    throw new Error(
      `certified step size: the objective is not certified smooth on B_R (L_F = ${certificate.smoothness}); ` +
        "non-smooth components (relu, maxPool2d) have L = ∞, use smoothRelu/softplus and avgPool2d",
    );
  }
  const guarantee = convergenceGuarantee(certificate, { epsilon: options.epsilon ?? 1e-2 });
  return { stepSize: certificate.stepSize, certificate, guarantee };
}
