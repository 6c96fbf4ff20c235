import { type Chain, componentContext } from "../chain/chain.js";
import { allocate, type FloatArray } from "../core/dtype.js";
import type { Batch } from "../objectives/batch.js";
import type { Objective } from "../objectives/objective.js";
import { runForward } from "../oracles/first-order.js";
import { asChainArray, jvpFromWorkspace, type SecondOrderOptions, vjpFromWorkspace } from "./linearize.js";

// Curvature products of the objective F(w) = f(ψ(w)) + (λ/2)‖w‖² (Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (long version with appendices), Eq. (2)).

/**
 * Gauss-Newton-vector product (∇ψ(w) ∇²f(ψ(w)) ∇ψ(w)ᵀ + λ I) v = Jᵀ H_f J v + λ v, the curvature
 * of the regularized Gauss-Newton step (13) (Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (long version with appendices) Sec. 3.1; Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019) Prop. 3.1
 * case 2: P_τ = ∇²f, all second derivatives of the chain dropped). Exact, by one forward pass, one
 * JVP (J v), one loss-Hessian product and one VJP (Jᵀ ·), the JVP and VJP reusing the forward pass.
 * Returns an array of the chain's precision (`out` when given).
 */
export function gaussNewtonVectorProduct(
  chain: Chain,
  objective: Objective,
  w: FloatArray,
  batch: Batch,
  v: ArrayLike<number>,
  options: SecondOrderOptions & { out?: FloatArray } = {},
): FloatArray {
  checkVector(chain, v, "v");
  const training = options.training ?? true;
  const ws = runForward(chain, w, batch.x, batch.size, training, options.state, false);
  const output = ws.activations[chain.components.length];
  const jv = jvpFromWorkspace(chain, ws, w, batch.size, v, training);
  const hjv = allocate(chain.dtype, jv.length);
  objective.loss.hessianVector(output, batch, chain.outputSize, jv, hjv);
  const out = options.out ?? allocate(chain.dtype, chain.paramSize);
  vjpFromWorkspace(chain, ws, w, batch.size, hjv, out, training);
  if (objective.l2 !== 0) for (let i = 0; i < out.length; i++) out[i] += objective.l2 * v[i];
  return out;
}

/**
 * Hessian-vector product ∇²F(w) v by forward-over-reverse differentiation: the derivative of the
 * back-propagation (gradient) along w + εv. Passes (Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019) Prop. 3.1 case 3, with
 * the second-order tensors never formed):
 * 1. forward pass, storing x_0, …, x_K (and the tapes);
 * 2. tangent pass ẋ_{i+1} = JVP_i(ẋ_i, v_i), ẋ_0 = 0;
 * 3. at the output λ_K = ∇f(x_K) and its tangent λ̇_K = ∇²f(x_K) ẋ_K;
 * 4. for i = K−1, …, 0: λ_i = B_iᵀ λ_{i+1} (backward) and (λ̇_i, ġ_i) = Component.backwardTangent
 *    (the directional derivative of backward: B_iᵀ λ̇_{i+1} plus the second derivatives of the
 *    component contracted with λ_{i+1} and (ẋ_i, v_i));
 * then ∇²F v = (ġ_1; …; ġ_K) + λ v. Every component must implement `backwardTangent`; otherwise
 * this throws naming it (use {@link gaussNewtonVectorProduct}). Returns the chain's precision.
 */
export function hessianVectorProduct(
  chain: Chain,
  objective: Objective,
  w: FloatArray,
  batch: Batch,
  v: ArrayLike<number>,
  options: SecondOrderOptions & { out?: FloatArray } = {},
): FloatArray {
  checkVector(chain, v, "v");
  requireSecondOrder(chain, "hessianVectorProduct");
  const training = options.training ?? true;
  const n = batch.size;
  const ws = runForward(chain, w, batch.x, n, training, options.state, false);
  const ctx = componentContext(chain, n, training, false);
  const comps = chain.components;
  const k = comps.length;
  const vc = asChainArray(chain, v);
  // 2. Tangents of the activations (null = zero).
  const tangents: (FloatArray | null)[] = [null];
  comps.forEach((c, i) => {
    const dp = c.paramSize > 0 ? chain.paramBlock(vc, i) : null;
    const t = tangents[i];
    if (t === null && dp === null) {
      tangents.push(null);
      return;
    }
    const out = allocate(chain.dtype, n * c.outputSize);
    const io = ws.io[i];
    io.params = chain.paramBlock(w, i);
    c.jvp(ctx, io, t, dp, out);
    tangents.push(out);
  });
  // 3. Output slope and its tangent.
  const output = ws.activations[k];
  let lam = allocate(chain.dtype, output.length);
  objective.loss.evaluate(output, batch, chain.outputSize, lam);
  let dlam = allocate(chain.dtype, output.length);
  const tk = tangents[k];
  if (tk) objective.loss.hessianVector(output, batch, chain.outputSize, tk, dlam);
  // 4. Backward and its derivative.
  const out = options.out ?? allocate(chain.dtype, chain.paramSize);
  out.fill(0);
  let firstWithParams = comps.findIndex((c) => c.paramSize > 0);
  if (firstWithParams < 0) firstWithParams = k;
  for (let i = k - 1; i >= firstWithParams; i--) {
    const c = comps[i];
    const io = ws.io[i];
    io.params = chain.paramBlock(w, i);
    const needInput = i > firstWithParams;
    const lamPrev = needInput ? allocate(chain.dtype, n * c.inputSize) : null;
    const dlamPrev = needInput ? allocate(chain.dtype, n * c.inputSize) : null;
    const dp = c.paramSize > 0 ? chain.paramBlock(vc, i) : null;
    const hp = c.paramSize > 0 ? chain.paramBlock(out, i) : null;
    // backwardTangent first: it reads lam (the slope at this component's output), untouched by it.
    (c.backwardTangent as NonNullable<typeof c.backwardTangent>).call(c, ctx, io, lam, dlam, tangents[i], dp, dlamPrev, hp);
    if (needInput) {
      c.backward(ctx, io, lam, lamPrev, null);
      lam = lamPrev as FloatArray;
      dlam = dlamPrev as FloatArray;
    }
  }
  if (objective.l2 !== 0) for (let i = 0; i < out.length; i++) out[i] += objective.l2 * v[i];
  return out;
}

/** Throws, naming the first component without a second-order backward, when there is one. */
export function requireSecondOrder(chain: Chain, what: string): void {
  let first = chain.components.findIndex((c) => c.paramSize > 0);
  if (first < 0) first = chain.components.length;
  chain.components.forEach((c, i) => {
    if (i >= first && typeof c.backwardTangent !== "function") {
      throw new Error(
        `${what}: component layers[${i}] (${c.type}) has no second-order backward (backwardTangent), so Hessian-vector products ` +
          "and Newton steps are unavailable for this model; use the Gauss-Newton product/step instead",
      );
    }
  });
}

function checkVector(chain: Chain, v: ArrayLike<number>, field: string): void {
  if (v.length !== chain.paramSize) throw new Error(`${field}: expected ${chain.paramSize} entries, got ${v.length}`);
}
