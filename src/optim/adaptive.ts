import { allocate, dtypeOf, type FloatArray } from "../core/dtype.js";
import { OptionReader } from "./options.js";
import type { GradientTransformation } from "./transform.js";

// Per-coordinate adaptive scalings: AdaGrad, RMSprop, Adam/AMSGrad. Each divides the incoming
// updates by a running root of squared gradients; the learning rate is applied afterwards by
// scaleByLearningRate.
//
// Precision: float64 parameters are updated in double arithmetic; float32 parameters in float32
// arithmetic, as torch.optim and Optax update float32 parameters: the hyper-parameters are rounded
// to float32 once and every operation is one correctly rounded float32 operation. JavaScript has
// no float32 arithmetic, so the portable loops below round each double result with Math.fround:
// for + − × ÷ and √ of float32 operands the double result rounded to float32 equals the float32
// result (the double format has at least 2·24 + 2 significant bits; Figueroa, "When is double
// rounding innocuous?", SIGNUM Newsletter 30(3), 1995). The native kernels (native/src/
// chainopt_kernels.cc) compute in float32 directly, so both backends agree bit for bit, and the
// native loops run 8 lanes wide (AVX2) instead of 4 doubles.

const fr = Math.fround;

/** AdaGrad on float32 arrays in float32 arithmetic: s ← s + g·g, u ← g / (√s + δ). */
function rssFloat32(u: Float32Array, s: Float32Array, eps: number): void {
  const e = fr(eps);
  for (let i = 0; i < u.length; i++) {
    const g = u[i];
    const si = fr(s[i] + fr(g * g));
    s[i] = si;
    u[i] = g / fr(fr(Math.sqrt(si)) + e);
  }
}

/** RMSprop on float32 arrays in float32 arithmetic: ν ← ρν + ((1−ρ)g)g, [μ ← ρμ + (1−ρ)g], u ← g / (√(ν [− μ·μ]) + ε). */
function rmsFloat32(u: Float32Array, nu: Float32Array, mu: Float32Array | null, rho64: number, one64: number, eps64: number): void {
  const rho = fr(rho64);
  const one = fr(one64);
  const eps = fr(eps64);
  for (let i = 0; i < u.length; i++) {
    const g = u[i];
    const ni = fr(fr(rho * nu[i]) + fr(fr(one * g) * g));
    nu[i] = ni;
    let variance = ni;
    if (mu) {
      const mi = fr(fr(rho * mu[i]) + fr(one * g));
      mu[i] = mi;
      variance = fr(ni - fr(mi * mi));
    }
    u[i] = g / fr(fr(Math.sqrt(variance)) + eps);
  }
}

/**
 * Adam/AMSGrad on float32 arrays in float32 arithmetic: m ← β₁m + c₁g, v ← β₂v + (c₂g)g,
 * [v_max ← max(v_max, v)], u ← (m / bc₁) / (√v / √bc₂ + ε), the constants rounded to float32 first.
 */
function adamFloat32(
  u: Float32Array,
  m: Float32Array,
  v: Float32Array,
  vMax: Float32Array | null,
  b1d: number,
  c1d: number,
  b2d: number,
  c2d: number,
  bc1d: number,
  bc2Sqrtd: number,
  epsd: number,
): void {
  const b1 = fr(b1d);
  const c1 = fr(c1d);
  const b2 = fr(b2d);
  const c2 = fr(c2d);
  const bc1 = fr(bc1d);
  const bc2Sqrt = fr(bc2Sqrtd);
  const eps = fr(epsd);
  for (let i = 0; i < u.length; i++) {
    const g = u[i];
    const mi = fr(fr(b1 * m[i]) + fr(c1 * g));
    const vi = fr(fr(b2 * v[i]) + fr(fr(c2 * g) * g));
    m[i] = mi;
    v[i] = vi;
    let d = vi;
    if (vMax) {
      if (!(vi <= vMax[i])) vMax[i] = vi; // propagates NaN, like torch.maximum
      d = vMax[i];
    }
    u[i] = fr(mi / bc1) / fr(fr(fr(Math.sqrt(d)) / bc2Sqrt) + eps);
  }
}

/** State of {@link scaleByRss}: the running sums of squared gradients γ_i²(t). */
export type RssState = { sumOfSquares: FloatArray };

/** Options of {@link scaleByRss}. */
export interface ScaleByRssOptions {
  /** γ_i²(0) (default 0, PyTorch's `initial_accumulator_value`). */
  initialAccumulatorValue?: number;
  /** δ > 0 added to γ_i (default 1e-10, as in PyTorch). */
  eps?: number;
}

/**
 * AdaGrad's scaling (Duchi, Hazan & Singer, JMLR 2011; lecture 6, slide "AdaGrad"):
 *
 *   γ_i²(t) = γ_i²(t−1) + g_i(t)²,   u_i = g_i(t) / (δ + γ_i(t)),
 *
 * so that θ_i(t+1) = θ_i(t) − η/(δ + γ_i(t)) · g_i(t) once scaled by −η. δ is added outside the
 * root, as on the slide and in torch.optim.Adagrad (Optax's `scale_by_rss` adds it inside). The slide
 * writes the numerator as ∇R(t); per coordinate it is g_i(t), the i-th partial derivative.
 */
export function scaleByRss(options: ScaleByRssOptions = {}): GradientTransformation<RssState> {
  const r = new OptionReader("scaleByRss", options);
  const initial = r.number("initialAccumulatorValue", 0, { min: 0 });
  const eps = r.number("eps", 1e-10, { min: 0 });
  r.done();
  return {
    name: "scaleByRss",
    init(params) {
      const s = allocate(dtypeOf(params), params.length);
      if (initial !== 0) s.fill(initial);
      return { sumOfSquares: s };
    },
    update(u, state, _params, ctx) {
      const s = state.sumOfSquares;
      // The same loop, multi-threaded, on a backend with native element-wise kernels.
      if (ctx.backend.kernels) {
        ctx.backend.kernels.rss(u.length, u, s, eps);
        return state;
      }
      if (u instanceof Float32Array && s instanceof Float32Array) {
        rssFloat32(u, s, eps);
        return state;
      }
      for (let i = 0; i < u.length; i++) {
        const g = u[i];
        s[i] += g * g;
        u[i] = g / (Math.sqrt(s[i]) + eps);
      }
      return state;
    },
  };
}

/** State of {@link scaleByRms}: the moving averages of g² (and of g when centered). */
export type RmsState = { nu: FloatArray; mu?: FloatArray };

/** Options of {@link scaleByRms}. */
export interface ScaleByRmsOptions {
  /** Averaging constant ρ ∈ [0, 1) (PyTorch's `alpha`, default 0.99). */
  decay?: number;
  /** ε added to the root (outside it, as in PyTorch; default 1e-8). */
  eps?: number;
  /** Divide by the estimated standard deviation √(E[g²] − E[g]²) instead (Graves, 2013; default false). */
  centered?: boolean;
}

/**
 * RMSprop's scaling (Tieleman & Hinton, Coursera lecture 6.5, 2012; torch.optim.RMSprop, PyTorch
 * 1.13 documentation):
 *
 *   ν_i(t) = ρ ν_i(t−1) + (1 − ρ) g_i(t)²,   u_i = g_i(t) / (√ν_i(t) + ε),
 *
 * with ν(0) = 0 and no bias correction, ε outside the root (PyTorch's placement; Optax's
 * `scale_by_rms` puts it inside). The lecture (slide "AdaGrad (cont'd) and RMSprop") writes
 * γ_i²(t) = Σ_s ρ^{t−s} g_is², without the factor (1 − ρ): that only rescales η by 1/√(1 − ρ), and the
 * implemented form is the one of the original method and of PyTorch. `centered` subtracts the
 * squared moving average of g under the root, as PyTorch's `centered=True`.
 */
export function scaleByRms(options: ScaleByRmsOptions = {}): GradientTransformation<RmsState> {
  const r = new OptionReader("scaleByRms", options);
  const rho = r.number("decay", 0.99, { min: 0, below: 1 });
  const eps = r.number("eps", 1e-8, { min: 0 });
  const centered = r.boolean("centered", false);
  r.done();
  const one = 1 - rho;
  return {
    name: "scaleByRms",
    init(params) {
      const dtype = dtypeOf(params);
      return centered ? { nu: allocate(dtype, params.length), mu: allocate(dtype, params.length) } : { nu: allocate(dtype, params.length) };
    },
    update(u, state, _params, ctx) {
      const nu = state.nu;
      const mu = state.mu;
      if (ctx.backend.kernels) {
        ctx.backend.kernels.rms(u.length, u, nu, centered && mu ? mu : null, rho, one, eps);
        return state;
      }
      if (u instanceof Float32Array && nu instanceof Float32Array && (!centered || mu instanceof Float32Array)) {
        rmsFloat32(u, nu, centered && mu instanceof Float32Array ? mu : null, rho, one, eps);
        return state;
      }
      if (centered && mu) {
        for (let i = 0; i < u.length; i++) {
          const g = u[i];
          nu[i] = rho * nu[i] + one * g * g;
          mu[i] = rho * mu[i] + one * g;
          u[i] = g / (Math.sqrt(nu[i] - mu[i] * mu[i]) + eps);
        }
      } else {
        for (let i = 0; i < u.length; i++) {
          const g = u[i];
          nu[i] = rho * nu[i] + one * g * g;
          u[i] = g / (Math.sqrt(nu[i]) + eps);
        }
      }
      return state;
    },
  };
}

/** State of {@link scaleByAdam}: step count, first and second moments, and the running maximum of ν for AMSGrad. */
export type AdamState = { count: number; mu: FloatArray; nu: FloatArray; nuMax?: FloatArray };

/** Options of {@link scaleByAdam}. */
export interface ScaleByAdamOptions {
  /** β₁ ∈ [0, 1) (default 0.9). */
  b1?: number;
  /** β₂ ∈ [0, 1) (default 0.999). */
  b2?: number;
  /** ε added to √v̂ (default 1e-8). */
  eps?: number;
  /** AMSGrad: normalize by the running maximum of the second moment (default false). */
  amsgrad?: boolean;
}

/**
 * Adam's scaling (Kingma & Ba, "Adam: a method for stochastic optimization", ICLR 2015, Alg. 1;
 * lecture 6, slide "ADAM"):
 *
 *   m(t) = β₁ m(t−1) + (1 − β₁) g(t),   v(t) = β₂ v(t−1) + (1 − β₂) g(t)²,
 *   m̂(t) = m(t)/(1 − β₁^t),   v̂(t) = v(t)/(1 − β₂^t),   u = m̂(t) / (√v̂(t) + ε),
 *
 * so that θ(t) = θ(t−1) − η u once scaled by −η. The slide prints θ(t) = θ(t−1) **+** η m̂/(√v̂ + ε),
 * a sign slip: with m̂ an average of gradients, "+" would ascend. (Here ε is added to √v̂, the
 * bias-corrected root, exactly as in Alg. 1 and torch.optim.Adam.)
 *
 * AMSGrad (Reddi, Kale & Kumar, "On the convergence of Adam and beyond", ICLR 2018), PyTorch form:
 * v_max(t) = max(v_max(t−1), v(t)) on the *uncorrected* v, and u = m̂ / (√v_max/√(1 − β₂^t) + ε)
 * (torch.optim.Adam with amsgrad=True, PyTorch 1.13).
 */
export function scaleByAdam(options: ScaleByAdamOptions = {}): GradientTransformation<AdamState> {
  const r = new OptionReader("scaleByAdam", options);
  const b1 = r.number("b1", 0.9, { min: 0, below: 1 });
  const b2 = r.number("b2", 0.999, { min: 0, below: 1 });
  const eps = r.number("eps", 1e-8, { min: 0 });
  const amsgrad = r.boolean("amsgrad", false);
  r.done();
  const c1 = 1 - b1;
  const c2 = 1 - b2;
  return {
    name: amsgrad ? "scaleByAmsgrad" : "scaleByAdam",
    init(params) {
      const dtype = dtypeOf(params);
      const n = params.length;
      const s: AdamState = { count: 0, mu: allocate(dtype, n), nu: allocate(dtype, n) };
      if (amsgrad) s.nuMax = allocate(dtype, n);
      return s;
    },
    update(u, state, _params, ctx) {
      const count = state.count + 1;
      const bc1 = 1 - b1 ** count;
      const bc2Sqrt = Math.sqrt(1 - b2 ** count);
      const m = state.mu;
      const v = state.nu;
      const vMax = amsgrad ? state.nuMax : undefined;
      if (ctx.backend.kernels) ctx.backend.kernels.adam(u.length, u, m, v, vMax ?? null, b1, c1, b2, c2, bc1, bc2Sqrt, eps);
      else if (
        u instanceof Float32Array &&
        m instanceof Float32Array &&
        v instanceof Float32Array &&
        (!vMax || vMax instanceof Float32Array)
      )
        adamFloat32(u, m, v, vMax instanceof Float32Array ? vMax : null, b1, c1, b2, c2, bc1, bc2Sqrt, eps);
      else if (vMax) {
        for (let i = 0; i < u.length; i++) {
          const g = u[i];
          m[i] = b1 * m[i] + c1 * g;
          v[i] = b2 * v[i] + c2 * g * g;
          if (!(v[i] <= vMax[i])) vMax[i] = v[i]; // propagates NaN, like torch.maximum
          u[i] = m[i] / bc1 / (Math.sqrt(vMax[i]) / bc2Sqrt + eps);
        }
      } else {
        for (let i = 0; i < u.length; i++) {
          const g = u[i];
          m[i] = b1 * m[i] + c1 * g;
          v[i] = b2 * v[i] + c2 * g * g;
          u[i] = m[i] / bc1 / (Math.sqrt(v[i]) / bc2Sqrt + eps);
        }
      }
      state.count = count;
      return state;
    },
  };
}
