import type { Chain } from "../chain/chain.js";
import type { Component, ComponentContext, LayerIO } from "../components/component.js";
import type { Conv2d } from "../components/conv2d.js";
import type { Backend } from "../core/backend.js";
import type { FloatArray } from "../core/dtype.js";
import { portableBackend } from "../core/portable.js";
import { Rng } from "../core/rng.js";
import { jvp, vjp } from "../oracles/first-order.js";
import type { InputDomain } from "./attack.js";

// Lipschitz constants of a chain in its *input*, at fixed weights, and the certified ℓ2 radii
// they give for classifiers (docs/adversarial.md). All constants are for one sample and the
// Euclidean norm of the chain's (normalized) input; `inputScale` converts to raw input units.

/** Input constant of one component. */
export interface ComponentInputConstant {
  readonly index: number;
  readonly type: string;
  /** A sound upper bound on the component's input Lipschitz constant (per sample, ℓ2). */
  readonly upper: number;
  /**
   * Linear components: the spectral norm by power iteration on AᵀA (A by the component's JVP, Aᵀ
   * by its VJP). It converges to ‖A‖₂ from below (a lower bound, not a certificate).
   */
  readonly spectral?: number;
  /** Linear components: the Frobenius norm ‖A‖_F ≥ ‖A‖₂ (the naive constant). */
  readonly frobenius?: number;
  /** How `upper` was obtained. */
  readonly method: string;
}

/** Result of {@link inputLipschitz}. */
export interface InputLipschitz {
  readonly components: readonly ComponentInputConstant[];
  /**
   * ∏_t upper_t: a sound Lipschitz constant of x ↦ ψ(x, w) (composition of Lipschitz maps;
   * AutoLip, Virmaux & Scaman 2018, "Lipschitz regularity of deep neural networks: analysis and
   * efficient estimation", arXiv:1805.10965, Sec. 4, with certified spectral norms).
   */
  readonly lipschitz: number;
  /** ∏_t of the power-iteration spectral norms (the AutoLip estimate as published; not certified). */
  readonly autolip: number;
  /** ∏_t with Frobenius norms in place of spectral norms (the naive product of layer norms). */
  readonly frobeniusProduct: number;
  /**
   * When the chain ends with a dense component: its index, and the certified Lipschitz constant of
   * the chain up to that component's input (for per-pair margins); else null.
   */
  readonly lastDense: { readonly index: number; readonly penultimate: number } | null;
}

/** Options of {@link inputLipschitz}. */
export interface InputLipschitzOptions {
  /** Batch-norm running statistics (evaluation mode). Required for chains with batch-norm. */
  state?: FloatArray;
  /** Power-iteration steps at most (default 500). */
  iterations?: number;
  /** Stop power iteration when the estimate's relative change is below this (default 1e-10). */
  tolerance?: number;
  /** Seed of the power iterations' starts (default 0). */
  seed?: number;
  /** Kernels for Gram iterations (default the chain's backend). */
  backend?: Backend;
}

/**
 * A sound upper bound on ‖A‖₂ for a `rows × cols` row-major matrix by Gram iteration (Delattre,
 * Barthélemy, Araujo & Allauzen 2023, "Efficient Bound of Lipschitz Constant for Convolutional
 * Layers by Gram Iteration", arXiv:2305.16173, Thm. 1): with G₀ = AAᵀ or AᵀA (the smaller) and
 * G_{t+1} = G_t² (symmetric), σ₁(G_t) = σ₁(A)^{2^{t+1}} and ‖G_t‖_F ≥ σ₁(G_t), so
 * ‖A‖₂ ≤ ‖G_t‖_F^{1/2^{t+1}}, a bound that decreases to ‖A‖₂ (its excess factor is at most
 * rank^{1/2^{t+2}}). Each G is rescaled to unit Frobenius norm, the scale kept in logarithms. Stops
 * when the bound is within `target` (relative) of `lower` (a known lower bound, e.g. power
 * iteration's) or after `maxSquarings`. The result is inflated by 1e-9 relative against the
 * rounding of the float64 products (each step's relative error, about s·2⁻⁵³, is raised to the
 * power 1/2^{t+1}).
 */
export function gramIterationBound(
  a: ArrayLike<number>,
  rows: number,
  cols: number,
  options: { backend?: Backend; lower?: number; target?: number; maxSquarings?: number } = {},
): number {
  const backend = options.backend ?? portableBackend;
  if (rows === 0 || cols === 0) return 0;
  const m = Float64Array.from(a as ArrayLike<number>);
  const s = Math.min(rows, cols);
  let g = new Float64Array(s * s);
  // G₀ = A Aᵀ (rows ≤ cols) or Aᵀ A.
  if (rows <= cols) backend.gemm(false, true, s, s, cols, 1, m, cols, m, cols, 0, g, s);
  else backend.gemm(true, false, s, s, rows, 1, m, cols, m, cols, 0, g, s);
  let logScale = 0; // G_true = e^{logScale} · g
  let power = 2; // G_t carries σ₁(A)^{power}
  let tmp = new Float64Array(s * s);
  const lower = options.lower ?? 0;
  const target = options.target ?? 1e-6;
  const maxSquarings = options.maxSquarings ?? 24;
  let bound = Number.POSITIVE_INFINITY;
  for (let t = 0; ; t++) {
    let f = 0;
    for (let i = 0; i < g.length; i++) f += g[i] * g[i];
    f = Math.sqrt(f);
    if (f === 0) return 0;
    bound = Math.min(bound, Math.exp((logScale + Math.log(f)) / power));
    if (t >= maxSquarings || (lower > 0 && bound <= lower * (1 + target))) break;
    for (let i = 0; i < g.length; i++) g[i] /= f;
    logScale = 2 * (logScale + Math.log(f));
    backend.gemm(false, false, s, s, s, 1, g, s, g, s, 0, tmp, s);
    [g, tmp] = [tmp, g];
    power *= 2;
  }
  return bound * (1 + 1e-9);
}

/** ‖a‖ of a vector (float64 accumulation). */
function norm(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return Math.sqrt(s);
}

/**
 * Power iteration on AᵀA for a linear map given by `apply` (A v) and `adjoint` (Aᵀ u): returns
 * ‖A v_k‖ for the unit iterate v_k, a lower bound on ‖A‖₂ that converges to it (geometrically, at
 * the rate (σ₂/σ₁)² for a random start).
 */
export function operatorNormPowerIteration(
  n: number,
  apply: (v: Float64Array) => ArrayLike<number>,
  adjoint: (u: ArrayLike<number>) => ArrayLike<number>,
  options: { iterations?: number; tolerance?: number; rng?: Rng } = {},
): number {
  const rng = options.rng ?? new Rng(0);
  let v = new Float64Array(n);
  for (let i = 0; i < n; i++) v[i] = rng.normal();
  let nv = norm(v);
  if (nv === 0) return 0;
  for (let i = 0; i < n; i++) v[i] /= nv;
  let sigma = 0;
  const iterations = options.iterations ?? 500;
  const tol = options.tolerance ?? 1e-10;
  for (let k = 0; k < iterations; k++) {
    const u = apply(v);
    const s = norm(u);
    if (s === 0) return Math.max(sigma, 0);
    const w = Float64Array.from(adjoint(u));
    nv = norm(w);
    if (nv === 0) return s;
    for (let i = 0; i < n; i++) w[i] /= nv;
    v = w;
    const done = Math.abs(s - sigma) <= tol * s;
    sigma = Math.max(sigma, s);
    if (done) break;
  }
  return sigma;
}

/** The component's input JVP and VJP at batch 1 in float64 (linear components: independent of x). */
function linearMaps(
  c: Component,
  params: FloatArray,
  backend: Backend,
): { apply: (v: Float64Array) => Float64Array; adjoint: (u: ArrayLike<number>) => Float64Array } {
  const ctx: ComponentContext = { backend, batch: 1, training: false, updateState: false };
  const io: LayerIO<unknown> = {
    x: new Float64Array(c.inputSize),
    y: new Float64Array(c.outputSize),
    params: Float64Array.from(params),
    state: new Float64Array(0),
    tape: c.createTape(1, "float64"),
  };
  c.forward(ctx, io);
  return {
    apply: (v) => {
      const out = new Float64Array(c.outputSize);
      c.jvp(ctx, io, v, null, out);
      return out;
    },
    adjoint: (u) => {
      const dy = Float64Array.from(u);
      const dx = new Float64Array(c.inputSize);
      c.backward(ctx, io, dy, dx, null);
      return dx;
    },
  };
}

/** The explicit matrix (outputSize × inputSize) of a linear map, column by column. */
function explicitMatrix(n: number, m: number, apply: (v: Float64Array) => Float64Array): Float64Array {
  const a = new Float64Array(m * n);
  const e = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    e[j] = 1;
    const col = apply(e);
    for (let i = 0; i < m; i++) a[i * n + j] = col[i];
    e[j] = 0;
  }
  return a;
}

/** Explicit operators up to this many entries get a Gram-iteration bound on the whole operator. */
const EXPLICIT_LIMIT = 4_000_000;

/**
 * Per-component input Lipschitz constants of the chain at parameters w, and their products
 * (docs/adversarial.md, "Input-space Lipschitz constants"):
 * - dense, conv2d (the linear map x ↦ b(x, u) − b(0, u)): ‖A‖₂, certified by Gram iteration on
 *   the weight matrix (dense) or on the explicit operator (conv2d, up to 4·10⁶ entries; beyond,
 *   ‖conv‖₂ ≤ √(c_h c_w)·‖K‖₂ with K the `filters × (channels·kh·kw)` kernel matrix and c_h c_w the
 *   largest number of windows holding one pixel: ‖conv z‖² = Σ_patches ‖K Π_k z‖² ≤ ‖K‖₂² c‖z‖²);
 *   the power-iteration value and the Frobenius norm are reported beside it;
 * - avgPool2d: linear, its component constant √(c/(kh·kw)) (src/components/avg-pool.ts) and its
 *   power-iteration value;
 * - batchNorm in evaluation mode: x ↦ γ_c (x − μ_c)/√(σ²_c + ε) + β_c, diagonal, so
 *   max_c |γ_c|/√(σ²_c + ε);
 * - activations, max-pooling, softmax, flatten: the components' own Lipschitz constants
 *   (`Component.smoothness`, per sample, valid on every input).
 */
export function inputLipschitz(chain: Chain, w: FloatArray, options: InputLipschitzOptions = {}): InputLipschitz {
  chain.checkParams(w);
  const rng = new Rng(options.seed ?? 0);
  const backend = options.backend ?? chain.backend;
  const out: ComponentInputConstant[] = [];
  const power = (n: number, maps: ReturnType<typeof linearMaps>) =>
    operatorNormPowerIteration(n, maps.apply, maps.adjoint, { iterations: options.iterations, tolerance: options.tolerance, rng });
  chain.components.forEach((c, i) => {
    const params = chain.paramBlock(w, i);
    if (c.type === "dense") {
      const maps = linearMaps(c, params, backend);
      const spectral = power(c.inputSize, maps);
      const weight = params.subarray(0, c.outputSize * c.inputSize);
      const upper = Math.max(spectral, gramIterationBound(weight, c.outputSize, c.inputSize, { backend, lower: spectral }));
      out.push({ index: i, type: c.type, upper, spectral, frobenius: norm(weight), method: "Gram iteration on W" });
    } else if (c.type === "conv2d") {
      const conv = c as unknown as Conv2d;
      const maps = linearMaps(c, params, backend);
      const spectral = power(c.inputSize, maps);
      const ksize = conv.inC * conv.kh * conv.kw;
      const kernel = params.subarray(0, conv.outC * ksize);
      let upper: number;
      let method: string;
      // ‖A‖_F² = Σ over output pixels of the squared weights their window reaches: computed exactly
      // from the explicit operator when small, else bounded by c·‖K‖_F² as above.
      let frobenius: number;
      if (c.inputSize * c.outputSize <= EXPLICIT_LIMIT) {
        const a = explicitMatrix(c.inputSize, c.outputSize, maps.apply);
        upper = gramIterationBound(a, c.outputSize, c.inputSize, { backend, lower: spectral });
        frobenius = norm(a);
        method = "Gram iteration on the convolution operator";
      } else {
        const coverage = c.smoothness
          ? (c.smoothness({ batch: 1, norm: Number.POSITIVE_INFINITY }) as { bilinear: number }).bilinear
          : Infinity;
        upper = coverage * gramIterationBound(kernel, conv.outC, ksize, { backend, lower: spectral / coverage });
        frobenius = coverage * norm(kernel);
        method = "√(window coverage) · Gram iteration on the kernel matrix";
      }
      out.push({ index: i, type: c.type, upper: Math.max(upper, spectral), spectral, frobenius, method });
    } else if (c.type === "avgPool2d") {
      const maps = linearMaps(c, params, backend);
      const spectral = power(c.inputSize, maps);
      const upper = constantOf(c);
      out.push({ index: i, type: c.type, upper: Math.max(upper, spectral), spectral, frobenius: upper, method: "√(c/(kh·kw))" });
    } else if (c.type === "batchNorm") {
      if (chain.stateSize > 0 && !options.state) throw new Error("state: batch-norm in evaluation mode needs the running statistics");
      const st = chain.stateBlock(options.state as FloatArray, i);
      const ch = st.length / 2;
      const eps = (c.spec as { epsilon: number }).epsilon;
      let m = 0;
      for (let k = 0; k < ch; k++) {
        const gamma = c.paramSize > 0 ? Math.abs(params[k]) : 1;
        m = Math.max(m, gamma / Math.sqrt(st[ch + k] + eps));
      }
      out.push({ index: i, type: c.type, upper: m, spectral: m, frobenius: m, method: "max_c |γ_c|/√(σ²_c + ε) (evaluation mode)" });
    } else if (c.type === "flatten") {
      out.push({ index: i, type: c.type, upper: 1, method: "isometry" });
    } else {
      if (c.paramSize > 0)
        throw new Error(`layers[${i}] (${c.type}): no input Lipschitz constant for a parameterized component of this type`);
      out.push({ index: i, type: c.type, upper: constantOf(c), method: "component constant" });
    }
  });
  const prod = (k: number, f: (x: ComponentInputConstant) => number) => out.slice(0, k).reduce((p, x) => p * f(x), 1);
  const k = out.length;
  const last = chain.components[k - 1];
  return {
    components: out,
    lipschitz: prod(k, (x) => x.upper),
    autolip: prod(k, (x) => x.spectral ?? x.upper),
    frobeniusProduct: prod(k, (x) => x.frobenius ?? x.upper),
    lastDense: last?.type === "dense" ? { index: k - 1, penultimate: prod(k - 1, (x) => x.upper) } : null,
  };
}

/** A parameter-free component's per-sample Lipschitz constant (its `smoothness` at batch 1). */
function constantOf(c: Component): number {
  if (!c.smoothness) throw new Error(`${c.type}: no Lipschitz constant declared`);
  const k = c.smoothness({ batch: 1, norm: Number.POSITIVE_INFINITY });
  if (k.kind !== "nonlinear") throw new Error(`${c.type}: expected a nonlinear component`);
  return k.lipschitz;
}

/** max_c 1/std_c: ‖z − z'‖ ≤ this · ‖x − x'‖ for z = (x − mean)/std, so L_raw = L · this. */
export function inputScale(domain: Pick<InputDomain, "std">): number {
  return Math.max(...domain.std.map((s) => 1 / s));
}

/** Certified radii of a labelled batch. */
export interface CertifiedRadii {
  /** Per sample: the certified ℓ2 radius in raw input units (0 for misclassified samples). */
  readonly radius: Float64Array;
  /** Per sample: the radius of the global-margin bound margin/(√2 L) (0 when misclassified). */
  readonly globalRadius: Float64Array;
  /** Per sample: 1 when classified correctly. */
  readonly correct: Uint8Array;
}

/**
 * Certified ℓ2 radii (raw units) of the samples of a batch for a classifier ψ with input
 * Lipschitz constants `lip` (from {@link inputLipschitz} at the same w), inputs normalized with
 * `scale` = {@link inputScale} (1 when not normalized):
 * - global margin (Tsuzuku, Sato & Sugiyama 2018, "Lipschitz-Margin Training", arXiv:1802.04034,
 *   Prop. 1): with margin M = ψ_y − max_{j≠y} ψ_j and ψ L-Lipschitz, ψ_y − ψ_j can drop by at most
 *   √2·L·‖δ‖ (‖e_y − e_j‖ = √2), so no ‖δ‖ < M/(√2 L) changes the prediction;
 * - per pair, when the chain ends with a dense layer ψ = W h(x) + b with h L_h-Lipschitz:
 *   ψ_y − ψ_j = ⟨w_y − w_j, h(x)⟩ + b_y − b_j is ‖w_y − w_j‖·L_h-Lipschitz, so the radius is
 *   min_{j≠y} (ψ_y − ψ_j)/(‖w_y − w_j‖ L_h). Since ‖w_y − w_j‖ = ‖Wᵀ(e_y − e_j)‖ ≤ √2‖W‖₂ this
 *   is never smaller; the certified radius is the larger of the two.
 * Both in normalized units are divided by `scale` to give raw units.
 */
export function certifiedRadii(
  chain: Chain,
  w: FloatArray,
  output: ArrayLike<number>,
  labels: Int32Array,
  size: number,
  lip: InputLipschitz,
  scale = 1,
): CertifiedRadii {
  const k = chain.outputSize;
  const radius = new Float64Array(size);
  const globalRadius = new Float64Array(size);
  const correct = new Uint8Array(size);
  let rowDiff: ((y: number, j: number) => number) | null = null;
  if (lip.lastDense) {
    const W = chain.paramBlock(w, lip.lastDense.index);
    const n = chain.components[lip.lastDense.index].inputSize;
    const cache = new Map<number, number>();
    rowDiff = (y, j) => {
      const key = y * k + j;
      let v = cache.get(key);
      if (v === undefined) {
        let s = 0;
        for (let t = 0; t < n; t++) s += (W[y * n + t] - W[j * n + t]) ** 2;
        v = Math.sqrt(s);
        cache.set(key, v);
        cache.set(j * k + y, v);
      }
      return v;
    };
  }
  for (let i = 0; i < size; i++) {
    const o = i * k;
    const y = labels[i];
    let other = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < k; j++) if (j !== y && output[o + j] > other) other = output[o + j];
    const margin = output[o + y] - other;
    if (!(margin > 0)) continue;
    correct[i] = 1;
    globalRadius[i] = lip.lipschitz > 0 ? margin / (Math.SQRT2 * lip.lipschitz * scale) : Number.POSITIVE_INFINITY;
    let r = globalRadius[i];
    if (rowDiff && lip.lastDense) {
      let pair = Number.POSITIVE_INFINITY;
      for (let j = 0; j < k; j++) {
        if (j === y) continue;
        const c = rowDiff(y, j) * lip.lastDense.penultimate * scale;
        pair = Math.min(pair, c > 0 ? (output[o + y] - output[o + j]) / c : Number.POSITIVE_INFINITY);
      }
      r = Math.max(r, pair);
    }
    radius[i] = r;
  }
  return { radius, globalRadius, correct };
}

/** Fraction of samples certified at radius ε: correct, with certified radius > ε (≥ 0 at ε = 0). */
export function certifiedAccuracy(radii: Pick<CertifiedRadii, "radius" | "correct">, eps: number): number {
  const n = radii.radius.length;
  if (n === 0) return Number.NaN;
  let c = 0;
  for (let i = 0; i < n; i++) if (radii.correct[i] && (eps === 0 || radii.radius[i] > eps)) c++;
  return c / n;
}

/**
 * A lower bound on the chain's input Lipschitz constant: the largest spectral norm of the input
 * Jacobian ∂ψ/∂x at the given samples (power iteration with the chain's JVP and VJP; any local
 * Jacobian norm at a point of differentiability is at most the Lipschitz constant). In
 * normalized units.
 */
export function jacobianLowerBound(
  chain: Chain,
  w: FloatArray,
  x: ArrayLike<number>,
  size: number,
  options: { state?: FloatArray; iterations?: number; seed?: number } = {},
): number {
  const d = chain.inputSize;
  const rng = new Rng(options.seed ?? 0);
  let best = 0;
  for (let i = 0; i < size; i++) {
    const xi = Array.prototype.slice.call(x, i * d, (i + 1) * d) as number[];
    const s = operatorNormPowerIteration(
      d,
      (v) => jvp(chain, w, xi, 1, null, v, { state: options.state }),
      (u) => vjp(chain, w, xi, 1, u, { withInput: true, state: options.state }).dx as FloatArray,
      { iterations: options.iterations ?? 50, tolerance: 1e-8, rng },
    );
    best = Math.max(best, s);
  }
  return best;
}
