import { type Chain, componentContext } from "../chain/chain.js";
import type { Backend } from "../core/backend.js";
import { allocate, type FloatArray } from "../core/dtype.js";
import type { Batch } from "../objectives/batch.js";
import type { Objective } from "../objectives/objective.js";
import { runForward } from "../oracles/first-order.js";
import { requireSecondOrder } from "./curvature.js";
import { choleskyInPlace, choleskySolveInPlace } from "./linalg.js";
import { lossHessianBlocks, type SecondOrderOptions } from "./linearize.js";

// Newton step by dynamic programming on the linearized/quadratized chain.
//
// The (proximal) Newton step (14) of Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (long version with appendices) Sec. 3.1 / Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019),
//   w⁺ = w + argmin_d q_{f∘ψ}(w + d; w) + q_r(w + d; w) + (μ/2)‖d‖²   (μ = 1/γ),
// is, by Prop. 3.1 case 3, the quadratic problem on the linearized chain
//   min Σ_l ½ z̃_lᵀ P_l z̃_l + p_lᵀ z̃_l + z̃_{l−1}ᵀ R_l ṽ_l + ½ ṽ_lᵀ Q_l ṽ_l + q_lᵀ ṽ_l + (μ/2)‖ṽ_l‖²
//   s.t. z̃_l = A_l z̃_{l−1} + B_l ṽ_l, z̃_0 = 0,
// with A_l = ∂φ_l/∂z, B_l = ∂φ_l/∂v (Jacobians of stage l at the current point), λ_τ = ∇f(z_τ),
// λ_{l−1} = A_lᵀ λ_l (the back-propagated slopes), p_τ = ∇f, P_τ = ∇²f, P_{l−1} = ∇²_zz⟨λ_l, φ_l⟩,
// R_l = ∇²_zv⟨λ_l, φ_l⟩, Q_l = λI + ∇²_vv⟨λ_l, φ_l⟩, q_l = λ v_l (r = (λ/2)‖·‖²).
// The stages here are the chain's components (a finer chain than the papers' layers: a component
// without parameters is a stage with ρ = 0), so the same recursion holds.
//
// Bellman's recursion (Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (long version with appendices) Eq. (17)) on the cost-to-go c_l(z̃) = ½ z̃ᵀ C_l z̃ + c_lᵀ z̃, from
// C_τ = P_τ, c_τ = p_τ backwards (a discrete-time Riccati recursion, the "inversion of intermediate
// quadratic costs at each layer", Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019) Sec. 3; Dunn & Bertsekas 1989):
//   K_vv = B_lᵀ C_l B_l + Q_l + μI,   K_vz = B_lᵀ C_l A_l + R_lᵀ,   k_v = B_lᵀ c_l + q_l,
//   ṽ_l*(z̃) = −K_vv⁻¹ (k_v + K_vz z̃),
//   C_{l−1} = A_lᵀ C_l A_l + P_{l−1} − K_vzᵀ K_vv⁻¹ K_vz,   c_{l−1} = A_lᵀ c_l − K_vzᵀ K_vv⁻¹ k_v,
// then a forward roll-out from z̃_0 = 0. K_vv is positive definite at every stage exactly when the
// whole regularized Newton problem is strongly convex (each K_vv is a Schur complement of its
// Hessian), i.e. when ∇²F(w) + μI ≻ 0: "well-posed". Otherwise the Cholesky factorization fails
// and {@link NewtonNotPositiveDefiniteError} is thrown (increase μ, i.e. decrease γ).
//
// Cost: each stage forms dense matrices of the sizes of its input (a = N·inputSize), output
// (b = N·outputSize) and parameters (ρ): b backward calls for (A, B), a + ρ second-order backward
// calls for the second derivatives, O(b²a + a²b + ρ³ + ρ²(a + b)) arithmetic for the recursion.
// Linear in the depth for a fixed width, cubic in the layer sizes: for small networks only.

/** Thrown when the regularized Newton subproblem is not strongly convex (a stage's K_vv is not PD). */
export class NewtonNotPositiveDefiniteError extends Error {
  constructor(
    readonly component: number,
    damping: number,
  ) {
    super(
      `Newton step: the regularized Hessian is not positive definite at component ${component} with damping μ = ${damping}; increase the damping (decrease the step size γ)`,
    );
    this.name = "NewtonNotPositiveDefiniteError";
  }
}

/** The Newton subproblem at a point: the stage matrices of the linearized/quadratized chain. */
export interface NewtonSubproblem {
  /** F(w) on the batch. */
  readonly value: number;
  /** ∇F(w) (float64). */
  readonly gradient: Float64Array;
  /** The Newton direction d = −(∇²F(w) + μI)⁻¹ ∇F(w), by the Riccati recursion (float64). */
  direction(damping: number): Float64Array;
}

interface Stage {
  index: number;
  a: number; // input dimension N·inputSize
  b: number; // output dimension N·outputSize
  rho: number; // parameters
  A: Float64Array; // b × a
  B: Float64Array; // b × ρ
  H: Float64Array | null; // (a+ρ) × (a+ρ) second derivatives of ⟨λ, φ⟩, null when zero
  u: Float64Array; // the parameters v_l
}

/** Prepares the Newton subproblem of F at w on a batch by dynamic programming (w is copied). */
export function prepareNewton(
  chain: Chain,
  objective: Objective,
  w: FloatArray,
  batch: Batch,
  options: SecondOrderOptions = {},
): NewtonSubproblem {
  chain.checkParams(w);
  requireSecondOrder(chain, "Newton step");
  const training = options.training ?? true;
  const n = batch.size;
  const comps = chain.components;
  const kk = comps.length;
  const w0 = w.slice();
  const ws = runForward(chain, w0, batch.x, n, training, options.state, false);
  const ctx = componentContext(chain, n, training, false);
  const output = ws.activations[kk];
  const q = n * chain.outputSize;
  // Slopes λ_i at each component's output, and the gradient.
  const lams: FloatArray[] = new Array(kk + 1);
  lams[kk] = allocate(chain.dtype, q);
  const loss = objective.loss.evaluate(output, batch, chain.outputSize, lams[kk]);
  const lossHessian = blockDiagonal(lossHessianBlocks(objective.loss, output, batch, chain.outputSize), n, chain.outputSize);
  let first = comps.findIndex((c) => c.paramSize > 0);
  if (first < 0) first = kk;
  const gradC = allocate(chain.dtype, chain.paramSize);
  for (let i = kk - 1; i >= first; i--) {
    const c = comps[i];
    const io = ws.io[i];
    io.params = chain.paramBlock(w0, i);
    lams[i] = allocate(chain.dtype, n * c.inputSize);
    c.backward(ctx, io, lams[i + 1], i > first ? lams[i] : null, c.paramSize > 0 ? chain.paramBlock(gradC, i) : null);
  }
  const gradient = new Float64Array(chain.paramSize);
  let r2 = 0;
  for (let i = 0; i < gradient.length; i++) {
    gradient[i] = gradC[i] + objective.l2 * w0[i];
    r2 += w0[i] * w0[i];
  }
  // Stage matrices.
  const stages: Stage[] = [];
  for (let i = first; i < kk; i++) {
    const c = comps[i];
    const io = ws.io[i];
    io.params = chain.paramBlock(w0, i);
    const a = n * c.inputSize;
    const b = n * c.outputSize;
    const rho = c.paramSize;
    const A = new Float64Array(b * a);
    const B = new Float64Array(b * rho);
    const e = allocate(chain.dtype, b);
    const dx = allocate(chain.dtype, a);
    const dp = allocate(chain.dtype, rho);
    for (let r = 0; r < b; r++) {
      // Row r of [A B] = (∂φ/∂(z, v))ᵀ e_r, one backward call.
      e.fill(0);
      e[r] = 1;
      c.backward(ctx, io, e, i > first ? dx : null, rho > 0 ? dp : null);
      if (i > first) for (let j = 0; j < a; j++) A[r * a + j] = dx[j];
      for (let j = 0; j < rho; j++) B[r * rho + j] = dp[j];
    }
    let H: Float64Array | null = null;
    if (c.role !== "reshape") {
      // Columns of ∇²⟨λ_{i+1}, φ⟩ over (z, v) by the second-order backward with ddy = 0.
      const m = a + rho;
      H = new Float64Array(m * m);
      const zero = allocate(chain.dtype, b);
      const ex = allocate(chain.dtype, a);
      const ev = allocate(chain.dtype, rho);
      const ddx = allocate(chain.dtype, a);
      const ddp = allocate(chain.dtype, rho);
      const bt = c.backwardTangent as NonNullable<typeof c.backwardTangent>;
      const lam = lams[i + 1];
      const startCol = i > first ? 0 : a; // at the first stage z̃_in = 0: only the v-columns matter
      for (let j = startCol; j < m; j++) {
        ex.fill(0);
        ev.fill(0);
        if (j < a) ex[j] = 1;
        else ev[j - a] = 1;
        bt.call(c, ctx, io, lam, zero, j < a ? ex : null, j < a ? null : ev, ddx, rho > 0 ? ddp : null);
        for (let r = 0; r < a; r++) H[r * m + j] = ddx[r];
        for (let r = 0; r < rho; r++) H[(a + r) * m + j] = ddp[r];
      }
      if (startCol > 0) for (let j = a; j < m; j++) for (let r = 0; r < a; r++) H[j * m + r] = H[r * m + j];
      symmetrize(H, m);
    }
    stages.push({ index: i, a, b, rho, A, B, H, u: new Float64Array(chain.paramBlock(w0, i)) });
  }
  const lambda = objective.l2;
  const backend = chain.backend;
  return {
    value: loss + 0.5 * lambda * r2,
    gradient,
    direction(damping: number): Float64Array {
      return riccati(backend, stages, lossHessian, new Float64Array(lams[kk]), lambda, damping, chain);
    },
  };
}

/** The Newton direction −(∇²F(w) + μI)⁻¹∇F(w) by dynamic programming (see {@link prepareNewton}). */
export function newtonDirection(
  chain: Chain,
  objective: Objective,
  w: FloatArray,
  batch: Batch,
  damping: number,
  options: SecondOrderOptions = {},
): Float64Array {
  return prepareNewton(chain, objective, w, batch, options).direction(damping);
}

/** The papers' proximal Newton step (14) with step size γ: w ← w + d(1/γ), in place. */
export function newtonStep(
  chain: Chain,
  objective: Objective,
  w: FloatArray,
  batch: Batch,
  stepSize: number,
  options: SecondOrderOptions = {},
): { value: number; direction: Float64Array } {
  if (!(stepSize > 0)) throw new Error(`stepSize: expected a positive number, got ${stepSize}`);
  const sub = prepareNewton(chain, objective, w, batch, options);
  const d = sub.direction(1 / stepSize);
  for (let i = 0; i < w.length; i++) w[i] += d[i];
  return { value: sub.value, direction: d };
}

function riccati(
  backend: Backend,
  stages: Stage[],
  lossHessian: Float64Array,
  lossGrad: Float64Array,
  lambda: number,
  damping: number,
  chain: Chain,
): Float64Array {
  const mm = (
    tA: boolean,
    tB: boolean,
    m: number,
    n: number,
    k: number,
    a: Float64Array,
    lda: number,
    b: Float64Array,
    ldb: number,
    beta: number,
    c: Float64Array,
  ) => {
    if (m > 0 && n > 0) backend.gemm(tA, tB, m, n, k, 1, a, lda, b, ldb, beta, c, n);
  };
  let C = lossHessian;
  let cv = lossGrad;
  const gains: { L: Float64Array; Kvz: Float64Array; kv: Float64Array }[] = new Array(stages.length);
  for (let s = stages.length - 1; s >= 0; s--) {
    const { a, b, rho, A, B, H, u, index } = stages[s];
    const firstStage = s === 0;
    const m = a + rho;
    const CA = firstStage ? new Float64Array(0) : new Float64Array(b * a);
    if (!firstStage) mm(false, false, b, a, b, C, b, A, a, 0, CA);
    let Cn = new Float64Array(0);
    let cn = new Float64Array(0);
    if (!firstStage) {
      // C_{l−1} = Aᵀ C A + H_zz, c_{l−1} = Aᵀ c (then the Schur complement below).
      Cn = new Float64Array(a * a);
      mm(true, false, a, a, b, A, a, CA, a, 0, Cn);
      if (H) for (let r = 0; r < a; r++) for (let j = 0; j < a; j++) Cn[r * a + j] += H[r * m + j];
      cn = new Float64Array(a);
      for (let r = 0; r < b; r++) {
        const cr = cv[r];
        if (cr !== 0) for (let j = 0; j < a; j++) cn[j] += A[r * a + j] * cr;
      }
    }
    if (rho > 0) {
      const CB = new Float64Array(b * rho);
      mm(false, false, b, rho, b, C, b, B, rho, 0, CB);
      const Kvv = new Float64Array(rho * rho);
      mm(true, false, rho, rho, b, B, rho, CB, rho, 0, Kvv);
      const mu = lambda + damping;
      for (let r = 0; r < rho; r++) {
        if (H) for (let j = 0; j < rho; j++) Kvv[r * rho + j] += H[(a + r) * m + a + j];
        Kvv[r * rho + r] += mu;
      }
      symmetrize(Kvv, rho);
      const kv = new Float64Array(rho);
      for (let r = 0; r < b; r++) {
        const cr = cv[r];
        if (cr !== 0) for (let j = 0; j < rho; j++) kv[j] += B[r * rho + j] * cr;
      }
      for (let j = 0; j < rho; j++) kv[j] += lambda * u[j];
      let Kvz = new Float64Array(0);
      if (!firstStage) {
        // K_vz = Bᵀ C A + R_lᵀ (R_lᵀ = H_vz).
        Kvz = new Float64Array(rho * a);
        mm(true, false, rho, a, b, B, rho, CA, a, 0, Kvz);
        if (H) for (let r = 0; r < rho; r++) for (let j = 0; j < a; j++) Kvz[r * a + j] += H[(a + r) * m + j];
      }
      if (!choleskyInPlace(backend, Kvv, rho)) throw new NewtonNotPositiveDefiniteError(index, damping);
      gains[s] = { L: Kvv, Kvz, kv };
      if (!firstStage) {
        // X = K_vv⁻¹ [K_vz, k_v]; C −= K_vzᵀ X_z, c −= K_vzᵀ X_k.
        const X = new Float64Array(rho * (a + 1));
        for (let r = 0; r < rho; r++) {
          X.set(Kvz.subarray(r * a, (r + 1) * a), r * (a + 1));
          X[r * (a + 1) + a] = kv[r];
        }
        choleskySolveInPlace(backend, Kvv, rho, X, a + 1);
        const S = new Float64Array(a * (a + 1));
        mm(true, false, a, a + 1, rho, Kvz, a, X, a + 1, 0, S);
        for (let r = 0; r < a; r++) {
          for (let j = 0; j < a; j++) Cn[r * a + j] -= S[r * (a + 1) + j];
          cn[r] -= S[r * (a + 1) + a];
        }
      }
    }
    if (!firstStage) {
      symmetrize(Cn, a);
      C = Cn;
      cv = cn;
    }
  }
  // Forward roll-out from z̃ = 0.
  const d = new Float64Array(chain.paramSize);
  let z = new Float64Array(stages.length > 0 ? stages[0].a : 0);
  stages.forEach((st, s) => {
    const { a, b, rho, A, B, index } = st;
    const v = new Float64Array(rho);
    if (rho > 0) {
      const { L, Kvz, kv } = gains[s];
      for (let r = 0; r < rho; r++) {
        let t = kv[r];
        if (s > 0) for (let j = 0; j < a; j++) t += Kvz[r * a + j] * z[j];
        v[r] = -t;
      }
      choleskySolveInPlace(backend, L, rho, v, 1);
      d.set(v, chain.paramOffsets[index]);
    }
    const zn = new Float64Array(b);
    if (s > 0) for (let r = 0; r < b; r++) for (let j = 0; j < a; j++) zn[r] += A[r * a + j] * z[j];
    for (let r = 0; r < b; r++) for (let j = 0; j < rho; j++) zn[r] += B[r * rho + j] * v[j];
    z = zn;
  });
  return d;
}

function blockDiagonal(blocks: Float64Array, n: number, k: number): Float64Array {
  const q = n * k;
  const out = new Float64Array(q * q);
  for (let i = 0; i < n; i++)
    for (let r = 0; r < k; r++) for (let c = 0; c < k; c++) out[(i * k + r) * q + i * k + c] = blocks[i * k * k + r * k + c];
  return out;
}

function symmetrize(a: Float64Array, n: number): void {
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) {
      const m = 0.5 * (a[i * n + j] + a[j * n + i]);
      a[i * n + j] = m;
      a[j * n + i] = m;
    }
}
