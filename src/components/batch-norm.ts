import { z } from "zod";
import type { Backend, BatchNormGeometry, DnnPrimitives } from "../core/backend.js";
import { allocate, type DType, type FloatArray } from "../core/dtype.js";
import { type Component, type ComponentContext, type LayerIO, type ParamSpec, paramTable, plainLayouts } from "./component.js";
import type { InputBounds, NonlinearConstants } from "./smoothness.js";

/** Spec schema of `{ type: "batchNorm", epsilon, momentum, affine }`. */
export const batchNormSpecSchema = z
  .object({
    type: z.literal("batchNorm"),
    epsilon: z.number().positive().default(1e-5),
    momentum: z.number().min(0).max(1).default(0.1),
    affine: z.boolean().default(false),
  })
  .strict();
/** A validated `batchNorm` layer spec. */
export type BatchNormSpec = z.output<typeof batchNormSpecSchema>;

/**
 * K = sup_{z, ‖v‖=1} ‖D²h₁(z)[v, v]‖ for h₁(z) = z/√(‖z‖² + 1): 48/(25√5) ≈ 0.858650, rounded up
 * (see {@link BatchNorm.smoothness}; proof in docs/certificates.md).
 */
export const BATCH_NORM_CURVATURE = 0.8587;

/** What the oneDNN path of a {@link BatchNorm} call leaves for its backward pass. */
export interface BatchNormDnnTape {
  /** Per-channel μ and biased σ² of the call: the batch's (training) or a copy of the running ones. */
  readonly mean: Float32Array;
  readonly variance: Float32Array;
  /**
   * Whether {@link BatchNormTape.xhat} is out of date: oneDNN does not return x̂, so the TypeScript
   * JVP and second-order backward recompute it from x, μ and 1/√(σ² + ε) when they need it.
   */
  xhatStale: boolean;
}

/** Intermediates of a {@link BatchNorm} call. */
export interface BatchNormTape {
  /** The normalized input x̂ (`batch × size`); stale after a oneDNN forward until needed (see `dnn`). */
  readonly xhat: FloatArray;
  /** Per channel 1/√(σ² + ε), of the batch (training) or of the running variance (evaluation). */
  readonly invStd: Float64Array;
  /** Per-channel scratch for the VJP/JVP reductions. */
  readonly sum1: Float64Array;
  readonly sum2: Float64Array;
  /** Set when the call ran on oneDNN (float32 on a backend with {@link DnnPrimitives.batchNormForward}), else null. */
  dnn: BatchNormDnnTape | null;
}

/**
 * Batch normalization (Ioffe & Szegedy, 2015; Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), App. B-4, Eq. (14)):
 * x̂ = (x − μ)/√(σ² + ε) per channel, then y = γ ⊙ x̂ + β when `affine` (γ, β stored in that order,
 * initialized to 1 and 0 as PyTorch does), else y = x̂. Channels are the first axis of the
 * per-sample shape: for [C, H, W] samples (BatchNorm2d) the statistics run over the m = N·H·W
 * entries of each channel; for flat [F] samples (BatchNorm1d) over the m = N samples of each
 * feature.
 *
 * Training mode: μ = (1/m) Σ x, σ² = (1/m) Σ (x − μ)² (biased, as Eq. (14) and PyTorch), and the
 * output depends on the whole batch. Writing s = 1/√(σ² + ε) and differentiating through μ and σ²
 * (dμ = mean(dx), dσ² = (2/m) Σ (x − μ) dx, ds = −s³ dσ²/2):
 *   dx̂ = s·(dx − mean(dx) − x̂ ⊙ mean(x̂ ⊙ dx)),
 * a symmetric operator per channel (s·(I − 11ᵀ/m − x̂x̂ᵀ/m)), so the VJP is the same formula
 * applied to g = γ ⊙ dy: dx = s·(g − mean(g) − x̂ ⊙ mean(x̂ ⊙ g)); dγ = Σ dy ⊙ x̂, dβ = Σ dy.
 * The JVP is dy = γ ⊙ dx̂ + dγ ⊙ x̂ + dβ.
 *
 * Evaluation mode: μ, σ² are the running statistics of the state (running mean [C] then running
 * variance [C]); the map is affine in x with dx̂ = s·dx.
 *
 * Running statistics (PyTorch's convention), updated in training mode when `ctx.updateState`:
 * running ← (1 − momentum)·running + momentum·batch, with the unbiased batch variance
 * σ²·m/(m − 1) for the running variance.
 *
 * float32 data on a backend with oneDNN's batch normalization ({@link DnnPrimitives.batchNormForward})
 * runs forward and backward there (the same formulas: biased batch variance, ε inside the root,
 * oneDNN's use_global_stats for evaluation mode; the running statistics are updated here from the
 * μ and σ² it returns, as above). float64, the portable backend, the JVP and the second-order
 * backward keep the TypeScript loops (the latter two recompute x̂ from the oneDNN call's μ and σ²).
 */
export class BatchNorm implements Component<BatchNormTape> {
  readonly type = "batchNorm";

  /**
   * Smoothness constants (docs/certificates.md) in training mode (batch statistics), without affine part
   * (affine batch-norm has parameters in a nonlinear part, which the certificate does not cover).
   * Per channel, on its n = N·spatial entries z: ν(z) = √n·h(Pz) with P = I − 11ᵀ/n (the
   * centering, ‖P‖ = 1), h(y) = y/√(‖y‖² + δ) and δ = nε (since σ² = ‖Pz‖²/n). Channels are
   * disjoint blocks (smoothness.ts: max over blocks).
   * - ∇h(y) = (I − y yᵀ/s²)/s, s = √(‖y‖² + δ): eigenvalues 1/s and δ/s³, at most 1/√δ (at y = 0).
   *   So ℓ = √n/√(nε) = 1/√ε = ‖∇ν(0)‖; ν(0) = 0.
   * - With y = √δ·z, D²h(y) = D²h₁(z)/δ for h₁(z) = z/√(‖z‖² + 1); writing z = t·e and
   *   v = cos θ·e + sin θ·f, D²h₁(z)[v, v] = (−t(2cos²θ + 1)/q³ + 3t³cos²θ/q⁵)·e − (2t cos θ sin θ/q³)·f
   *   with q = √(1 + t²). Its largest norm over t ≥ 0, θ is K = 3t/q⁵ at t = 1/2, θ = 0,
   *   i.e. K = 48/(25√5) ≈ 0.85865 (proof in docs/certificates.md, "The batch-norm curvature
   *   constant"; we use 0.8587, rounded up).
   *   So L = √n·K/δ = K/(√n·ε).
   * - ‖ν(z)‖² = Σ_channels n σ²/(σ² + ε) < n·C: m = √(N·size).
   * Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019), Sec. 5.2 prints m_batch = dm (the root is missing: √(dm)),
   * ℓ_batch = 2ε^{-1/2} (loose by 2) and L_batch = 2m^{-1/2}ε^{-1} with m the batch size, where
   * the statistics of a convolution's channel run over n = N·H·W entries (loose by 2.3√(HW)).
   * test/certify.test.ts checks ℓ and L against finite differences.
   */
  smoothness(input: InputBounds): NonlinearConstants {
    const eps = this.spec.epsilon;
    const n = input.batch * this.spatial;
    const ell = 1 / Math.sqrt(eps);
    return {
      kind: "nonlinear",
      bound: Math.sqrt(input.batch * this.inputSize),
      lipschitz: ell,
      smoothness: n > 1 ? BATCH_NORM_CURVATURE / (Math.sqrt(n) * eps) : 0,
      valueAtZero: 0,
      jacobianAtZero: n > 1 ? ell : 0,
    };
  }
  readonly role = "nonlinear" as const;
  readonly inputShape: readonly number[];
  readonly outputShape: readonly number[];
  readonly inputSize: number;
  readonly outputSize: number;
  readonly params: readonly ParamSpec[];
  readonly paramSize: number;
  readonly stateSize: number;
  /** Number of channels (features for flat inputs). */
  readonly channels: number;
  /** Entries per channel per sample (H·W, or 1 for flat inputs). */
  readonly spatial: number;

  constructor(
    readonly spec: BatchNormSpec,
    inputShape: readonly number[],
  ) {
    this.inputShape = inputShape;
    this.outputShape = inputShape;
    this.channels = inputShape[0];
    this.spatial = inputShape.slice(1).reduce((a, b) => a * b, 1);
    this.inputSize = this.channels * this.spatial;
    this.outputSize = this.inputSize;
    this.params = spec.affine
      ? paramTable([
          ["weight", [this.channels]],
          ["bias", [this.channels]],
        ])
      : [];
    this.paramSize = spec.affine ? 2 * this.channels : 0;
    this.stateSize = 2 * this.channels;
  }

  initParams(params: FloatArray): void {
    if (!this.spec.affine) return;
    params.fill(1, 0, this.channels);
    params.fill(0, this.channels, 2 * this.channels);
  }

  /** Running mean 0, running variance 1 (PyTorch's initial values). */
  initState(state: FloatArray): void {
    state.fill(0, 0, this.channels);
    state.fill(1, this.channels, 2 * this.channels);
  }

  createTape(batch: number, dtype: DType): BatchNormTape {
    const c = this.channels;
    return {
      xhat: allocate(dtype, batch * this.inputSize),
      invStd: new Float64Array(c),
      sum1: new Float64Array(c),
      sum2: new Float64Array(c),
      dnn: null,
    };
  }

  /**
   * Whether a call at `batch` runs on oneDNN (as dnnFor decides for a float32 chain) on N × C × H × W
   * activations, which may then be blocked (src/chain/layouts.ts); x and y share one layout.
   */
  acceptsBlockedLayouts(backend: Backend, batch: number, dtype: DType): boolean {
    const dnn = backend.dnn;
    return dtype === "float32" && batch >= 1 && this.inputShape.length === 3 && !!dnn?.batchNormForward && !!dnn.batchNormBackward;
  }
  /** Batch norm cannot change the layout: its input and output are blocked together or not at all. */
  readonly layoutTied = true;

  /**
   * The backend's oneDNN primitives when this call runs on them: float32 data and parameters, a
   * backend that has oneDNN's batch normalization. The same answer for forward and backward of one call.
   */
  private dnnFor(ctx: ComponentContext, x: FloatArray, params: FloatArray): DnnPrimitives | null {
    const dnn = ctx.backend.dnn;
    if (!dnn?.batchNormForward || !dnn.batchNormBackward || !(x instanceof Float32Array) || ctx.batch < 1) return null;
    return !this.spec.affine || params instanceof Float32Array ? dnn : null;
  }

  private geometry(batch: number): BatchNormGeometry {
    return { batch, channels: this.channels, spatial: this.spatial };
  }

  /** γ and β as float32 views of the parameters (null, null without the affine part). */
  private scaleShift(params: FloatArray): [Float32Array | null, Float32Array | null] {
    if (!this.spec.affine) return [null, null];
    const C = this.channels;
    return [params.subarray(0, C) as Float32Array, params.subarray(C, 2 * C) as Float32Array];
  }

  forward(ctx: ComponentContext, io: LayerIO<BatchNormTape>): void {
    const { x, y, params, state, tape } = io;
    const { xhat, invStd, sum1: mean, sum2: variance } = tape;
    const C = this.channels;
    const S = this.spatial;
    const N = ctx.batch;
    const eps = this.spec.epsilon;
    if (ctx.training && N * S < 2) {
      throw new Error(`batchNorm: training mode needs more than one value per channel (got batch ${N} × ${S} per channel), as in PyTorch`);
    }
    if (!ctx.training && state.length !== 2 * C) {
      throw new Error(
        "batchNorm: evaluation mode uses the running statistics, but no state was given; pass `state` " +
          "(e.g. chain.initState(), updated by training steps) or use training mode",
      );
    }
    const dnn = this.dnnFor(ctx, x, params);
    if (dnn) {
      this.forwardDnn(ctx, io, dnn);
      return;
    }
    plainLayouts(io, this.type);
    tape.dnn = null;
    if (ctx.training) {
      const m = N * S;
      // Two-pass mean and variance, accumulated in float64.
      mean.fill(0);
      variance.fill(0);
      for (let n = 0; n < N; n++) {
        for (let c = 0; c < C; c++) {
          const o = (n * C + c) * S;
          let s = 0;
          for (let p = 0; p < S; p++) s += x[o + p];
          mean[c] += s;
        }
      }
      for (let c = 0; c < C; c++) mean[c] /= m;
      for (let n = 0; n < N; n++) {
        for (let c = 0; c < C; c++) {
          const o = (n * C + c) * S;
          const mu = mean[c];
          let s = 0;
          for (let p = 0; p < S; p++) {
            const d = x[o + p] - mu;
            s += d * d;
          }
          variance[c] += s;
        }
      }
      for (let c = 0; c < C; c++) {
        variance[c] /= m;
        invStd[c] = 1 / Math.sqrt(variance[c] + eps);
      }
      if (ctx.updateState && state.length === 2 * C) {
        const mom = this.spec.momentum;
        const unbias = m / (m - 1);
        for (let c = 0; c < C; c++) {
          state[c] = (1 - mom) * state[c] + mom * mean[c];
          state[C + c] = (1 - mom) * state[C + c] + mom * variance[c] * unbias;
        }
      }
    } else {
      for (let c = 0; c < C; c++) {
        mean[c] = state[c];
        invStd[c] = 1 / Math.sqrt(state[C + c] + eps);
      }
    }
    const affine = this.spec.affine;
    for (let n = 0; n < N; n++) {
      for (let c = 0; c < C; c++) {
        const o = (n * C + c) * S;
        const mu = mean[c];
        const s = invStd[c];
        const g = affine ? params[c] : 1;
        const b = affine ? params[C + c] : 0;
        for (let p = 0; p < S; p++) {
          const v = (x[o + p] - mu) * s;
          xhat[o + p] = v;
          y[o + p] = g * v + b;
        }
      }
    }
  }

  /**
   * The forward pass on oneDNN: batch statistics (training) or the running ones (evaluation) in the
   * tape, the running statistics updated from the batch's μ and σ² exactly as on the TypeScript
   * path, and 1/√(σ² + ε) kept for the TypeScript JVP.
   */
  private forwardDnn(ctx: ComponentContext, io: LayerIO<BatchNormTape>, dnn: DnnPrimitives): void {
    const { x, y, params, state, tape } = io;
    const C = this.channels;
    const eps = this.spec.epsilon;
    const d = tape.dnn ?? { mean: new Float32Array(C), variance: new Float32Array(C), xhatStale: true };
    tape.dnn = d;
    d.xhatStale = true;
    const { mean, variance } = d;
    if (!ctx.training) {
      for (let c = 0; c < C; c++) {
        mean[c] = state[c];
        variance[c] = state[C + c];
      }
    }
    const [scale, shift] = this.scaleShift(params);
    dnn.batchNormForward!(
      this.geometry(ctx.batch),
      ctx.training,
      eps,
      x as Float32Array,
      scale,
      shift,
      mean,
      variance,
      y as Float32Array,
      io.xLayout,
    );
    for (let c = 0; c < C; c++) tape.invStd[c] = 1 / Math.sqrt(variance[c] + eps);
    if (ctx.training && ctx.updateState && state.length === 2 * C) {
      const m = ctx.batch * this.spatial;
      const mom = this.spec.momentum;
      const unbias = m / (m - 1);
      for (let c = 0; c < C; c++) {
        state[c] = (1 - mom) * state[c] + mom * mean[c];
        state[C + c] = (1 - mom) * state[C + c] + mom * variance[c] * unbias;
      }
    }
  }

  /** Recomputes x̂ = (x − μ)·s after a oneDNN forward, for the TypeScript JVP and second-order backward. */
  private freshXhat(ctx: ComponentContext, io: LayerIO<BatchNormTape>): void {
    const { x, tape } = io;
    const d = tape.dnn;
    if (!d?.xhatStale) return;
    const C = this.channels;
    const S = this.spatial;
    for (let n = 0; n < ctx.batch; n++) {
      for (let c = 0; c < C; c++) {
        const o = (n * C + c) * S;
        const mu = d.mean[c];
        const s = tape.invStd[c];
        for (let p = 0; p < S; p++) tape.xhat[o + p] = (x[o + p] - mu) * s;
      }
    }
    d.xhatStale = false;
  }

  backward(ctx: ComponentContext, io: LayerIO<BatchNormTape>, dy: FloatArray, dx: FloatArray | null, dparams: FloatArray | null): void {
    const { params, tape } = io;
    const dnn = tape.dnn ? this.dnnFor(ctx, io.x, params) : null;
    if (dnn && tape.dnn && dy instanceof Float32Array) {
      // oneDNN's backward with the forward's statistics (prop_kind::backward; use_global_stats in
      // evaluation mode): the formulas of the class comment.
      const C = this.channels;
      const [scale, shift] = this.scaleShift(params);
      const dp = dparams && this.spec.affine ? (dparams as Float32Array) : null;
      dnn.batchNormBackward!(
        this.geometry(ctx.batch),
        ctx.training,
        this.spec.epsilon,
        io.x as Float32Array,
        dy,
        tape.dnn.mean,
        tape.dnn.variance,
        scale,
        shift,
        dx as Float32Array | null,
        dp ? dp.subarray(0, C) : null,
        dp ? dp.subarray(C, 2 * C) : null,
        io.xLayout,
      );
      return;
    }
    plainLayouts(io, this.type);
    this.freshXhat(ctx, io);
    const { xhat, invStd, sum1, sum2 } = tape;
    const C = this.channels;
    const S = this.spatial;
    const N = ctx.batch;
    // sum1 = Σ dy, sum2 = Σ dy ⊙ x̂ per channel: the gradients of β and γ.
    this.channelSums(N, dy, xhat, sum1, sum2);
    if (dparams && this.spec.affine) {
      for (let c = 0; c < C; c++) {
        dparams[c] = sum2[c];
        dparams[C + c] = sum1[c];
      }
    }
    if (!dx) return;
    const affine = this.spec.affine;
    if (ctx.training) {
      // g = γ dy: mean(g) = γ Σdy/m, mean(x̂ g) = γ Σ(x̂ dy)/m.
      const m = N * S;
      for (let n = 0; n < N; n++) {
        for (let c = 0; c < C; c++) {
          const o = (n * C + c) * S;
          const gs = (affine ? params[c] : 1) * invStd[c];
          const a = sum1[c] / m;
          const b = sum2[c] / m;
          for (let p = 0; p < S; p++) dx[o + p] = gs * (dy[o + p] - a - xhat[o + p] * b);
        }
      }
    } else {
      for (let n = 0; n < N; n++) {
        for (let c = 0; c < C; c++) {
          const o = (n * C + c) * S;
          const gs = (affine ? params[c] : 1) * invStd[c];
          for (let p = 0; p < S; p++) dx[o + p] = gs * dy[o + p];
        }
      }
    }
  }

  /** The JVP stays on TypeScript on every backend (after a oneDNN forward, with x̂ recomputed). */
  jvp(ctx: ComponentContext, io: LayerIO<BatchNormTape>, dx: FloatArray | null, dparams: FloatArray | null, dy: FloatArray): void {
    this.freshXhat(ctx, io);
    const { params, tape } = io;
    const { xhat, invStd, sum1, sum2 } = tape;
    const C = this.channels;
    const S = this.spatial;
    const N = ctx.batch;
    const affine = this.spec.affine;
    const dp = affine ? dparams : null;
    if (dx) {
      if (ctx.training) this.channelSums(N, dx, xhat, sum1, sum2);
      const m = N * S;
      for (let n = 0; n < N; n++) {
        for (let c = 0; c < C; c++) {
          const o = (n * C + c) * S;
          const gs = (affine ? params[c] : 1) * invStd[c];
          const a = ctx.training ? sum1[c] / m : 0;
          const b = ctx.training ? sum2[c] / m : 0;
          const dg = dp ? dp[c] : 0;
          const db = dp ? dp[C + c] : 0;
          for (let p = 0; p < S; p++) {
            const xh = xhat[o + p];
            dy[o + p] = gs * (dx[o + p] - a - xh * b) + dg * xh + db;
          }
        }
      }
    } else if (dp) {
      for (let n = 0; n < N; n++) {
        for (let c = 0; c < C; c++) {
          const o = (n * C + c) * S;
          const dg = dp[c];
          const db = dp[C + c];
          for (let p = 0; p < S; p++) dy[o + p] = dg * xhat[o + p] + db;
        }
      }
    } else dy.fill(0, 0, N * this.outputSize);
  }

  /**
   * Second-order backward (Component.backwardTangent): the directional derivative of
   * {@link BatchNorm.backward} along the input direction t = dx, the parameter direction (γ̇, β̇)
   * and the slope direction ddy. Derivation (per channel, m entries, s = 1/√(σ² + ε), g = γ dy,
   * means over the channel's m entries; the formulas of the class comment differentiated once more):
   * - ṡ = −s³ σ̇²/2 with σ̇² = (2/m) Σ (x − μ) t = (2/s) mean(x̂ t), so ṡ/s = −s mean(x̂ t);
   * - the tangent of x̂ is x̂̇ = s (t − mean(t) − x̂ mean(x̂ t)) (the JVP without γ);
   * - ġ = γ ddy + γ̇ dy;
   * - backward is dx = s (g − mean(g) − x̂ mean(x̂ g)), so
   *   ddx = (ṡ/s) dx + s (ġ − mean(ġ) − x̂̇ mean(x̂ g) − x̂ mean(x̂̇ g + x̂ ġ));
   * - dγ = Σ dy x̂ and dβ = Σ dy, so ddγ = Σ (ddy x̂ + dy x̂̇) and ddβ = Σ ddy.
   * Evaluation mode (running statistics, an affine map of x): x̂̇ = s t and ddx = s ġ.
   * TypeScript on every backend (after a oneDNN forward, with x̂ recomputed from its μ and σ²).
   */
  backwardTangent(
    ctx: ComponentContext,
    io: LayerIO<BatchNormTape>,
    dy: FloatArray,
    ddy: FloatArray,
    dx: FloatArray | null,
    dparams: FloatArray | null,
    ddx: FloatArray | null,
    ddparams: FloatArray | null,
  ): void {
    this.freshXhat(ctx, io);
    const { params, tape } = io;
    const { xhat, invStd } = tape;
    const C = this.channels;
    const S = this.spatial;
    const N = ctx.batch;
    const m = N * S;
    const affine = this.spec.affine;
    const training = ctx.training;
    const dp = affine ? dparams : null;
    // Per-channel means: mean(t), mean(x̂ t), mean(g), mean(x̂ g), then mean(ġ), mean(x̂̇ g + x̂ ġ).
    const mt = new Float64Array(C);
    const mxt = new Float64Array(C);
    const mg = new Float64Array(C);
    const mxg = new Float64Array(C);
    const mgd = new Float64Array(C);
    const mmix = new Float64Array(C);
    const gam = (c: number): number => (affine ? params[c] : 1);
    if (training) {
      for (let n = 0; n < N; n++)
        for (let c = 0; c < C; c++) {
          const o = (n * C + c) * S;
          const gc = gam(c);
          for (let p = 0; p < S; p++) {
            const xh = xhat[o + p];
            const g = gc * dy[o + p];
            mg[c] += g;
            mxg[c] += xh * g;
            if (dx) {
              mt[c] += dx[o + p];
              mxt[c] += xh * dx[o + p];
            }
          }
        }
      for (let c = 0; c < C; c++) {
        mt[c] /= m;
        mxt[c] /= m;
        mg[c] /= m;
        mxg[c] /= m;
      }
    }
    // x̂̇ at entry (o + p) of channel c.
    const xhatDot = (c: number, i: number): number => {
      if (!dx) return 0;
      return training ? invStd[c] * (dx[i] - mt[c] - xhat[i] * mxt[c]) : invStd[c] * dx[i];
    };
    const gDot = (c: number, i: number): number => gam(c) * ddy[i] + (dp ? dp[c] * dy[i] : 0);
    if (ddparams && affine) {
      ddparams.fill(0, 0, 2 * C);
      for (let n = 0; n < N; n++)
        for (let c = 0; c < C; c++) {
          const o = (n * C + c) * S;
          let a = 0;
          let b = 0;
          for (let p = 0; p < S; p++) {
            const i = o + p;
            a += ddy[i] * xhat[i] + dy[i] * xhatDot(c, i);
            b += ddy[i];
          }
          ddparams[c] += a;
          ddparams[C + c] += b;
        }
    }
    if (!ddx) return;
    if (!training) {
      for (let n = 0; n < N; n++)
        for (let c = 0; c < C; c++) {
          const o = (n * C + c) * S;
          for (let p = 0; p < S; p++) ddx[o + p] = invStd[c] * gDot(c, o + p);
        }
      return;
    }
    for (let n = 0; n < N; n++)
      for (let c = 0; c < C; c++) {
        const o = (n * C + c) * S;
        const gc = gam(c);
        for (let p = 0; p < S; p++) {
          const i = o + p;
          const gd = gDot(c, i);
          mgd[c] += gd;
          mmix[c] += xhatDot(c, i) * gc * dy[i] + xhat[i] * gd;
        }
      }
    for (let c = 0; c < C; c++) {
      mgd[c] /= m;
      mmix[c] /= m;
    }
    for (let n = 0; n < N; n++)
      for (let c = 0; c < C; c++) {
        const o = (n * C + c) * S;
        const s = invStd[c];
        const gc = gam(c);
        const sdot = dx ? -s * mxt[c] : 0;
        for (let p = 0; p < S; p++) {
          const i = o + p;
          const xh = xhat[i];
          const first = s * (gc * dy[i] - mg[c] - xh * mxg[c]);
          ddx[i] = sdot * first + s * (gDot(c, i) - mgd[c] - xhatDot(c, i) * mxg[c] - xh * mmix[c]);
        }
      }
  }

  /** s1[c] = Σ v, s2[c] = Σ v ⊙ x̂ over the entries of channel c. */
  private channelSums(N: number, v: FloatArray, xhat: FloatArray, s1: Float64Array, s2: Float64Array): void {
    const C = this.channels;
    const S = this.spatial;
    s1.fill(0);
    s2.fill(0);
    for (let n = 0; n < N; n++) {
      for (let c = 0; c < C; c++) {
        const o = (n * C + c) * S;
        let a = 0;
        let b = 0;
        for (let p = 0; p < S; p++) {
          const vp = v[o + p];
          a += vp;
          b += vp * xhat[o + p];
        }
        s1[c] += a;
        s2[c] += b;
      }
    }
  }
}
