import { allocate, dtypeOf, type FloatArray } from "../core/dtype.js";
import { OptionReader } from "./options.js";
import type { GradientTransformation } from "./transform.js";

// Per-coordinate adaptive scalings: AdaGrad, RMSprop, Adam/AMSGrad. Each divides the incoming
// updates by a running root of squared gradients; the learning rate is applied afterwards by
// scaleByLearningRate.

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
