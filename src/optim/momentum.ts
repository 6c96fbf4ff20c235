import { allocate, dtypeOf, type FloatArray } from "../core/dtype.js";
import { axpyInto, scalInPlace } from "../core/kernels.js";
import { OptionReader } from "./options.js";
import type { GradientTransformation } from "./transform.js";

/** State of {@link traceMomentum}: the velocity buffer and the number of updates seen. */
export type TraceState = { count: number; trace: FloatArray };

/** Options of {@link traceMomentum}. */
export interface TraceMomentumOptions {
  /** Momentum μ ∈ [0, 1) (default 0.9). */
  decay?: number;
  /** Dampening d ∈ [0, 1): the gradient enters the velocity with weight 1 − d (default 0, as in PyTorch). */
  dampening?: number;
  /** Nesterov's look-ahead form (requires dampening 0, as in PyTorch). */
  nesterov?: boolean;
}

/**
 * Heavy-ball momentum, PyTorch form (torch.optim.SGD, PyTorch 1.13 documentation; Polyak, 1964;
 * Sutskever et al., ICML 2013):
 *
 *   v_1 = g_1,   v_t = μ v_{t−1} + (1 − d) g_t   (t > 1),
 *   update u_t = v_t,  or with `nesterov`  u_t = g_t + μ v_t.
 *
 * The velocity is a *sum* (not an average) of past gradients, so the effective step is about
 * η/(1 − μ); the first step copies the gradient (PyTorch's `buf = clone(d_p)`), which matters only
 * with dampening. For the lecture's averaged, bias-corrected form see {@link emaMomentum}.
 *
 * Nesterov: the lecture evaluates the gradient at the look-ahead point θ + ηα m̂ (slide "Nesterov
 * Momentum", where the velocity is called both v and m̂ and the step both ε and η: a notation slip).
 * PyTorch, following Sutskever et al. (2013) and Bengio et al. ("Advances in optimizing recurrent
 * networks", 2013, eq. 7), uses the equivalent reparametrization in which the gradient is taken at
 * the current iterate: θ ← θ − η (g + μ v). This is what is implemented, so that one gradient per step
 * at the current parameters suffices.
 */
export function traceMomentum(options: TraceMomentumOptions = {}): GradientTransformation<TraceState> {
  const r = new OptionReader("traceMomentum", options);
  const mu = r.number("decay", 0.9, { min: 0, below: 1 });
  const dampening = r.number("dampening", 0, { min: 0, below: 1 });
  const nesterov = r.boolean("nesterov", false);
  r.done();
  if (nesterov && dampening !== 0) r.fail("dampening", "must be 0 with nesterov (as in PyTorch)");
  const keep = 1 - dampening;
  return {
    name: nesterov ? "nesterovMomentum" : "traceMomentum",
    init: (params) => ({ count: 0, trace: allocate(dtypeOf(params), params.length) }),
    update(u, state, _params, ctx) {
      const v = state.trace;
      const backend = ctx.backend; // BLAS scal/axpy when native (src/core/kernels.ts)
      if (backend.kernels) {
        // One fused multi-threaded pass, with the roundings of the two passes below.
        backend.kernels.momentum(u.length, u, v, mu, keep, state.count === 0, nesterov);
        state.count++;
        return state;
      }
      if (state.count === 0) v.set(u);
      else {
        // v ← μv + (1 − d)g as two BLAS-1 passes (about 10× a scalar loop on long vectors).
        scalInPlace(backend, u.length, mu, v);
        axpyInto(backend, u.length, keep, u, v);
      }
      if (nesterov) axpyInto(backend, u.length, mu, v, u);
      else u.set(v);
      state.count++;
      return state;
    },
  };
}

/** Nesterov momentum, PyTorch form: {@link traceMomentum} with `nesterov: true`. */
export function nesterovMomentum(options: { decay?: number } = {}): GradientTransformation<TraceState> {
  return traceMomentum({ ...options, nesterov: true });
}

/** State of {@link emaMomentum}: the moving average m and the number of updates seen. */
export type EmaState = { count: number; ema: FloatArray };

/** Options of {@link emaMomentum}. */
export interface EmaMomentumOptions {
  /** Averaging constant α ∈ [0, 1) (default 0.9). */
  decay?: number;
  /** Divide by 1 − α^t (default true). */
  debias?: boolean;
}

/**
 * Momentum in the lecture's form (lecture 6, slide "Momentum"): an exponential moving average of
 * the gradients with bias correction,
 *
 *   m(t) = α m(t−1) + (1 − α) g(t),   m̂(t) = m(t) / (1 − α^t),   update u_t = m̂(t)
 *
 * (followed by the step −η, i.e. θ(t) = θ(t−1) − η m̂(t)). The slide writes
 * m(t) = α m(t−1) − (1 − α)∇R and θ(t) = θ(t−1) + η m̂(t), i.e. it folds the minus sign into m; the
 * two are the same method. This is also Adam's first moment (Kingma & Ba, 2015, Alg. 1) and Optax's
 * `ema(decay, debias=True)`. Unlike {@link traceMomentum} the step size does not grow by 1/(1 − α).
 */
export function emaMomentum(options: EmaMomentumOptions = {}): GradientTransformation<EmaState> {
  const r = new OptionReader("emaMomentum", options);
  const alpha = r.number("decay", 0.9, { min: 0, below: 1 });
  const debias = r.boolean("debias", true);
  r.done();
  return {
    name: "emaMomentum",
    init: (params) => ({ count: 0, ema: allocate(dtypeOf(params), params.length) }),
    update(u, state) {
      const m = state.ema;
      const count = state.count + 1;
      const c = debias ? 1 / (1 - alpha ** count) : 1;
      const one = 1 - alpha;
      for (let i = 0; i < u.length; i++) {
        m[i] = alpha * m[i] + one * u[i];
        u[i] = m[i] * c;
      }
      state.count = count;
      return state;
    },
  };
}
