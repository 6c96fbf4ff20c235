import assert from "node:assert/strict";
import { type Chain, createChain } from "../src/chain/chain.js";
import type { ModelSpecInput } from "../src/chain/spec.js";
import type { Backend } from "../src/core/backend.js";
import { Rng } from "../src/core/rng.js";
import { dot, norm2 } from "../src/core/vector.js";
import { forward, jvp, vjp } from "../src/oracles/first-order.js";

/** Random normal array. */
export function randomArray(n: number, rng: Rng, scale = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = scale * rng.normal();
  return a;
}

/** ‖a − b‖ / max(‖a‖, ‖b‖, tiny). */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d += (a[i] - b[i]) ** 2;
  return Math.sqrt(d) / Math.max(norm2(a), norm2(b), 1e-300);
}

/** Result of {@link checkChainDerivatives}. */
export interface DerivativeCheck {
  paramError: number;
  inputError: number;
  adjointError: number;
}

/**
 * Checks the chain's VJP (w.r.t. parameters and input) against central finite differences of
 * φ(w, x) = ⟨ψ(w, x), s⟩ in float64, and the adjoint identity ⟨J v, s⟩ = ⟨v, Jᵀ s⟩ with the JVP.
 * Training mode can be chosen for batch-norm (batch statistics).
 */
export function checkChainDerivatives(
  spec: ModelSpecInput,
  options: {
    batch?: number;
    seed?: number;
    h?: number;
    training?: boolean;
    paramScale?: number;
    inputScale?: number;
    maxCoords?: number;
    /** Kernels of the chain (default: the portable backend). */
    backend?: Backend;
  } = {},
): DerivativeCheck {
  const batch = options.batch ?? 3;
  const rng = new Rng(options.seed ?? 1);
  const chain = createChain(spec, { dtype: "float64", backend: options.backend });
  const w = chain.initParams(options.seed ?? 1) as Float64Array;
  if (options.paramScale !== undefined) for (let i = 0; i < w.length; i++) w[i] = options.paramScale * rng.normal();
  const x = randomArray(batch * chain.inputSize, rng, options.inputScale ?? 1);
  const s = randomArray(batch * chain.outputSize, rng);
  const training = options.training ?? false;
  const state = chain.stateSize > 0 ? chain.initState() : undefined;
  const phi = (wv: Float64Array, xv: Float64Array): number => {
    const out = forwardCopy(chain, wv, xv, batch, training, state);
    return dot(out, s);
  };
  const { dw, dx } = vjp(chain, w, x, batch, s, { withInput: true, training, state });
  const h = options.h ?? 1e-6;
  const maxCoords = options.maxCoords ?? 400;
  // Finite differences on a random subset of coordinates when there are many.
  const pick = (n: number): number[] => {
    if (n <= maxCoords) return Array.from({ length: n }, (_, i) => i);
    const p = rng.permutation(n);
    return Array.from(p.subarray(0, maxCoords));
  };
  const fdCheck = (v: Float64Array, grad: ArrayLike<number>, f: () => number): number => {
    const idx = pick(v.length);
    const g = new Float64Array(idx.length);
    const fd = new Float64Array(idx.length);
    idx.forEach((i, j) => {
      const old = v[i];
      v[i] = old + h;
      const fp = f();
      v[i] = old - h;
      const fm = f();
      v[i] = old;
      fd[j] = (fp - fm) / (2 * h);
      g[j] = grad[i];
    });
    return relativeError(g, fd);
  };
  const paramError = chain.paramSize > 0 ? fdCheck(w, dw, () => phi(w, x)) : 0;
  const inputError = fdCheck(x, dx!, () => phi(w, x));
  // Adjoint identity with random directions (vw, vx): ⟨J_w vw + J_x vx, s⟩ = ⟨vw, J_wᵀ s⟩ + ⟨vx, J_xᵀ s⟩.
  const vw = randomArray(chain.paramSize, rng);
  const vx = randomArray(batch * chain.inputSize, rng);
  const jv = jvp(chain, w, x, batch, vw, vx, { training, state });
  const lhs = dot(jv, s);
  const rhs = dot(vw, dw) + dot(vx, dx!);
  const adjointError = Math.abs(lhs - rhs) / Math.max(Math.abs(lhs), Math.abs(rhs), 1e-300);
  return { paramError, inputError, adjointError };
}

function forwardCopy(
  chain: Chain,
  w: Float64Array,
  x: Float64Array,
  batch: number,
  training: boolean,
  state: Float64Array | Float32Array | undefined,
): Float64Array {
  // A copy of the output, since the workspace is reused by the next call.
  return Float64Array.from(forward(chain, w, x, batch, { training, state }));
}

/** Asserts the derivative checks of the issue: FD ≤ 1e-6 relative, adjoint ≤ 1e-10. */
export function assertDerivatives(spec: ModelSpecInput, options: Parameters<typeof checkChainDerivatives>[1] = {}): DerivativeCheck {
  const r = checkChainDerivatives(spec, options);
  assert.ok(r.paramError <= 1e-6, `parameter gradient error ${r.paramError}`);
  assert.ok(r.inputError <= 1e-6, `input gradient error ${r.inputError}`);
  assert.ok(r.adjointError <= 1e-10, `adjoint identity error ${r.adjointError}`);
  return r;
}
