import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Chain, createChain } from "../src/chain/chain.js";
import type { ModelSpecInput } from "../src/chain/spec.js";
import { Rng } from "../src/core/rng.js";
import { dot } from "../src/core/vector.js";
import { type Batch, createObjective, type Objective } from "../src/objectives/index.js";
import type { Loss } from "../src/objectives/loss.js";
import { jvp, objectiveValue, runForward, valueAndGradient } from "../src/oracles/first-order.js";
import {
  createSecondOrderStepper,
  empiricalNtk,
  gaussNewtonVectorProduct,
  gramFromWorkspace,
  hessianVectorProduct,
  lossHessianBlocks,
  NewtonNotPositiveDefiniteError,
  newtonDirection,
  prepareGaussNewton,
  prepareGgn,
} from "../src/second-order/index.js";
import { randomArray, relativeError } from "./helpers.js";

// Second-order oracles (docs/second-order.md), float64 on tiny networks.

const mlp = (act: string, input = 4, hidden = 5, out = 3): ModelSpecInput => ({
  input: [input],
  layers: [
    { type: "dense", units: hidden },
    { type: act } as never,
    { type: "dense", units: hidden - 1 },
    { type: "softplus" },
    { type: "dense", units: out },
  ],
});

interface Problem {
  chain: Chain;
  w: Float64Array;
  batch: Batch;
  objective: Objective;
  rng: Rng;
}

function problem(spec: ModelSpecInput, loss: "logistic" | "squared", l2: number, n = 3, seed = 1): Problem {
  const rng = new Rng(seed);
  const chain = createChain(spec, { dtype: "float64" });
  const w = chain.initParams(seed) as Float64Array;
  const x = randomArray(n * chain.inputSize, rng);
  const k = chain.outputSize;
  const batch: Batch =
    loss === "logistic"
      ? { x, size: n, labels: Int32Array.from({ length: n }, (_, i) => i % k) }
      : { x, size: n, targets: randomArray(n * k, rng) };
  return { chain, w, batch, objective: createObjective(loss, l2), rng };
}

function gradientAt(p: Problem, w: Float64Array): Float64Array {
  return Float64Array.from(valueAndGradient(p.chain, p.objective, w, p.batch).grad);
}

/** Explicit J (q × p) from p JVPs with unit directions. */
function explicitJacobian(p: Problem): Float64Array {
  const { chain, w, batch } = p;
  const q = batch.size * chain.outputSize;
  const np = chain.paramSize;
  const jac = new Float64Array(q * np);
  const e = new Float64Array(np);
  for (let j = 0; j < np; j++) {
    e.fill(0);
    e[j] = 1;
    const col = jvp(chain, w, batch.x, batch.size, e);
    for (let r = 0; r < q; r++) jac[r * np + j] = col[r];
  }
  return jac;
}

/** Explicit Hessian ∇²F (p × p) from p Hessian-vector products, and its smallest eigenvalue. */
function explicitHessian(p: Problem): { h: Float64Array; minEig: number } {
  const np = p.chain.paramSize;
  const h = new Float64Array(np * np);
  const e = new Float64Array(np);
  for (let j = 0; j < np; j++) {
    e.fill(0);
    e[j] = 1;
    const col = hessianVectorProduct(p.chain, p.objective, p.w, p.batch, e);
    for (let r = 0; r < np; r++) h[r * np + j] = col[r];
  }
  const ev = p.chain.backend.symmetricEigen?.(Float64Array.from(h), np, false) as Float64Array;
  return { h, minEig: ev[0] };
}

/** Dense Newton direction −(H + μI)⁻¹∇F. */
function denseNewton(p: Problem, hessian: Float64Array, mu: number): Float64Array {
  const np = p.chain.paramSize;
  const h = Float64Array.from(hessian);
  for (let i = 0; i < np; i++) h[i * np + i] += mu;
  const g = gradientAt(p, p.w);
  for (let i = 0; i < np; i++) g[i] = -g[i];
  assert.ok(p.chain.backend.solve?.(h, np, g, 1));
  return g;
}

describe("second-order: curvature products", () => {
  for (const act of ["tanh", "sigmoid", "softplus", "smoothRelu"]) {
    it(`Hessian-vector product matches finite differences of gradients and is symmetric (${act})`, () => {
      const spec = mlp(act);
      if (act === "smoothRelu") (spec.layers[1] as { mu?: number }).mu = 2;
      const p = problem(spec, "logistic", 0.01);
      const v = randomArray(p.chain.paramSize, p.rng);
      const u = randomArray(p.chain.paramSize, p.rng);
      const hv = Float64Array.from(hessianVectorProduct(p.chain, p.objective, p.w, p.batch, v));
      const h = 1e-5;
      const wp = p.w.map((x, i) => x + h * v[i]);
      const wm = p.w.map((x, i) => x - h * v[i]);
      const gp = gradientAt(p, wp);
      const gm = gradientAt(p, wm);
      const fd = gp.map((x, i) => (x - gm[i]) / (2 * h));
      const err = relativeError(hv, fd);
      assert.ok(err < 1e-7, `HVP vs FD: ${err}`);
      const hu = Float64Array.from(hessianVectorProduct(p.chain, p.objective, p.w, p.batch, u));
      const sym = Math.abs(dot(u, hv) - dot(v, hu)) / Math.abs(dot(u, hv));
      assert.ok(sym < 1e-12, `symmetry: ${sym}`);
    });
  }

  it("Hessian-vector product through softmax, flatten and average pooling", () => {
    const spec: ModelSpecInput = {
      input: [1, 4, 4],
      layers: [
        { type: "avgPool2d", size: 2 },
        { type: "flatten" },
        { type: "dense", units: 5 },
        { type: "softmax" },
        { type: "dense", units: 3 },
      ],
    };
    const p = problem(spec, "squared", 0.1);
    const v = randomArray(p.chain.paramSize, p.rng);
    const hv = Float64Array.from(hessianVectorProduct(p.chain, p.objective, p.w, p.batch, v));
    const h = 1e-5;
    const gp = gradientAt(
      p,
      p.w.map((x, i) => x + h * v[i]),
    );
    const gm = gradientAt(
      p,
      p.w.map((x, i) => x - h * v[i]),
    );
    const err = relativeError(
      hv,
      gp.map((x, i) => (x - gm[i]) / (2 * h)),
    );
    assert.ok(err < 1e-7, `HVP vs FD: ${err}`);
  });

  it("Hessian-vector product names a component without second-order backward", () => {
    const spec: ModelSpecInput = {
      input: [1, 4, 4],
      layers: [{ type: "conv2d", filters: 2, kernel: 3 }, { type: "flatten" }, { type: "dense", units: 2 }],
    };
    const p = problem(spec, "squared", 0);
    // Every built-in component has a second-order backward: hide the convolution's on this instance.
    Object.defineProperty(p.chain.components[0], "backwardTangent", { value: undefined });
    assert.throws(
      () => hessianVectorProduct(p.chain, p.objective, p.w, p.batch, new Float64Array(p.chain.paramSize)),
      /layers\[0\] \(conv2d\)/,
    );
  });

  it("the logistic loss's one-pass Hessian blocks equal the blocks read off Hessian-vector products, bit for bit", () => {
    const loss = createObjective("logistic").loss;
    assert.ok(loss.hessianBlocks, "the logistic loss has hessianBlocks");
    const rng = new Rng(31);
    const n = 7;
    const k = 5;
    const output = Float64Array.from(randomArray(n * k, rng, 4));
    output[3] = 40; // a confident sample: tiny probabilities elsewhere
    const batch: Batch = { x: new Float64Array(n), size: n, labels: Int32Array.from({ length: n }, (_, i) => (i * 3) % k) };
    const fast = new Float64Array(n * k * k).fill(Number.NaN);
    loss.hessianBlocks(output, batch, k, fast);
    // The generic path: the blocks read off k Hessian-vector products (a loss without hessianBlocks).
    const generic = lossHessianBlocks(Object.create(loss, { hessianBlocks: { value: undefined } }) as Loss, output, batch, k);
    for (let i = 0; i < fast.length; i++) assert.ok(Object.is(fast[i], generic[i]), `entry ${i}: ${fast[i]} vs ${generic[i]}`);
    assert.throws(() => loss.hessianBlocks?.(output, { ...batch, labels: undefined }, k, fast), /no labels/);
  });

  it("Gauss-Newton-vector product equals Jᵀ H J v + λv with J from JVPs", () => {
    for (const loss of ["logistic", "squared"] as const) {
      const p = problem(mlp("tanh"), loss, 0.05);
      const jac = explicitJacobian(p);
      const q = p.batch.size * p.chain.outputSize;
      const np = p.chain.paramSize;
      const v = randomArray(np, p.rng);
      const jv = new Float64Array(q);
      for (let r = 0; r < q; r++) for (let j = 0; j < np; j++) jv[r] += jac[r * np + j] * v[j];
      const out = runForward(p.chain, p.w, p.batch.x, p.batch.size, true, undefined, false).activations[p.chain.components.length];
      const hjv = new Float64Array(q);
      p.objective.loss.hessianVector(out, p.batch, p.chain.outputSize, jv, hjv);
      const expected = new Float64Array(np);
      for (let j = 0; j < np; j++) {
        let s = 0;
        for (let r = 0; r < q; r++) s += jac[r * np + j] * hjv[r];
        expected[j] = s + 0.05 * v[j];
      }
      const got = gaussNewtonVectorProduct(p.chain, p.objective, p.w, p.batch, v);
      const err = relativeError(got, expected);
      assert.ok(err < 1e-12, `${loss}: GNVP error ${err}`);
    }
  });

  it("empirical NTK equals J Jᵀ (structured and generic paths)", () => {
    const p = problem(mlp("tanh"), "squared", 0, 4);
    const jac = explicitJacobian(p);
    const q = p.batch.size * p.chain.outputSize;
    const np = p.chain.paramSize;
    const expected = new Float64Array(q * q);
    for (let r = 0; r < q; r++)
      for (let s = 0; s < q; s++) for (let j = 0; j < np; j++) expected[r * q + s] += jac[r * np + j] * jac[s * np + j];
    const ntk = empiricalNtk(p.chain, p.w, p.batch.x, p.batch.size);
    assert.ok(relativeError(ntk, expected) < 1e-13, `structured: ${relativeError(ntk, expected)}`);
    const generic = empiricalNtk(p.chain, p.w, p.batch.x, p.batch.size, { path: "generic" });
    assert.ok(relativeError(generic, expected) < 1e-13);
    // Blocked generic path under a tiny memory budget (3 rows at a time).
    const ws = runForward(p.chain, p.w, p.batch.x, p.batch.size, true, undefined, false);
    const blocked = gramFromWorkspace(p.chain, ws, p.w, p.batch.size, null, true, { path: "generic", maxJacobianBytes: 6 * np * 8 });
    assert.ok(relativeError(blocked.gram, expected) < 1e-13);
    assert.ok(blocked.info.backwardPasses > q);
  });
});

describe("second-order: Gauss-Newton, GGN, Newton", () => {
  for (const loss of ["logistic", "squared"] as const) {
    it(`Gauss-Newton (a) dual and (b) Gram agree to 1e-8 and solve the normal equations (${loss})`, () => {
      const p = problem(mlp("tanh"), loss, 0.03, 4);
      const mu = 0.2;
      const a = prepareGaussNewton(p.chain, p.objective, p.w, p.batch, { implementation: "dual" });
      const b = prepareGaussNewton(p.chain, p.objective, p.w, p.batch, { implementation: "gram" });
      const da = a.direction(mu);
      const db = b.direction(mu);
      const err = relativeError(da, db);
      assert.ok(err < 1e-8, `(a) vs (b): ${err}`);
      const q = p.batch.size * p.chain.outputSize;
      assert.equal(a.oracleCalls, 2 * q + 3); // 1 + 2q + (J w) + (Jᵀ s)
      // (Jᵀ H J + (λ + μ) I) d = −∇F.
      const res = gaussNewtonVectorProduct(p.chain, p.objective, p.w, p.batch, db);
      for (let i = 0; i < res.length; i++) res[i] += mu * db[i] + b.gradient[i];
      assert.ok(Math.sqrt(dot(res, res)) / Math.sqrt(dot(b.gradient, b.gradient)) < 1e-10);
      // Re-solving with another μ after other calls re-runs the forward pass transparently.
      objectiveValue(
        p.chain,
        p.objective,
        p.w.map((x) => x + 1),
        p.batch,
      );
      assert.ok(relativeError(a.direction(10 * mu), b.direction(10 * mu)) < 1e-8);
    });
  }

  it("GGN equals the Gauss-Newton step for the squared loss with λ = N μ", () => {
    const p = problem(mlp("tanh"), "squared", 0, 5);
    const mu = 0.05;
    const gn = prepareGaussNewton(p.chain, p.objective, p.w, p.batch).direction(mu);
    const ggn = prepareGgn(p.chain, p.objective, p.w, p.batch).direction(p.batch.size * mu, 1);
    const err = relativeError(gn, ggn);
    assert.ok(err < 1e-10, `GGN vs GN: ${err}`);
  });

  for (const act of ["tanh", "sigmoid", "softplus"]) {
    for (const loss of ["logistic", "squared"] as const) {
      it(`Newton by dynamic programming equals the dense Newton step (${act}, ${loss})`, () => {
        const p = problem(mlp(act), loss, 0.01, 3);
        const { h, minEig } = explicitHessian(p);
        // Well-posed: ∇²F + μI ≻ 0 (the Hessian of a network is indefinite in general).
        for (const mu of [Math.max(0, -minEig) + 0.05, Math.max(0, -minEig) + 1]) {
          const err = relativeError(newtonDirection(p.chain, p.objective, p.w, p.batch, mu), denseNewton(p, h, mu));
          assert.ok(err < 1e-8, `Newton DP vs dense (μ = ${mu}): ${err}`);
        }
        // Ill-posed: some stage's K_vv is not positive definite.
        if (minEig < -0.05)
          assert.throws(() => newtonDirection(p.chain, p.objective, p.w, p.batch, -minEig - 0.05), NewtonNotPositiveDefiniteError);
      });
    }
  }

  it("Newton by DP with a leading flatten, softmax inside, and a rank-deficient output layer", () => {
    const spec: ModelSpecInput = {
      input: [2, 2],
      layers: [{ type: "flatten" }, { type: "dense", units: 3 }, { type: "softmax" }, { type: "dense", units: 2 }, { type: "tanh" }],
    };
    const p = problem(spec, "squared", 0.02, 2);
    const { h, minEig } = explicitHessian(p);
    const mu = Math.max(0, -minEig) + 0.1;
    const err = relativeError(newtonDirection(p.chain, p.objective, p.w, p.batch, mu), denseNewton(p, h, mu));
    assert.ok(err < 1e-8, `Newton DP vs dense: ${err}`);
  });

  it("Armijo line search raises the damping tenfold until sufficient decrease", () => {
    const p = problem(mlp("tanh"), "logistic", 0, 4, 3);
    for (let i = 0; i < p.w.length; i++) p.w[i] *= 3; // far from a minimum: tiny damping overshoots
    const stepper = createSecondOrderStepper({ method: "gauss-newton", damping: 1e-8, lineSearch: true });
    const state = stepper.initialState();
    const before = objectiveValue(p.chain, p.objective, p.w, p.batch, { training: true });
    const r = stepper.step(p.chain, p.objective, p.w, p.batch, state);
    assert.ok(r.accepted);
    assert.ok(r.tries > 1, "the undamped direction should overshoot first");
    assert.ok(Math.abs(r.value - before) < 1e-12);
    assert.ok(r.newValue < r.value);
    assert.ok(Math.abs(objectiveValue(p.chain, p.objective, p.w, p.batch, { training: true }) - r.newValue) < 1e-12);
    // The accepted damping is 1e-8 · 10^(tries − 1).
    assert.ok(Math.abs(r.damping / (1e-8 * 10 ** (r.tries - 1)) - 1) < 1e-9);
    assert.equal(state.damping, r.damping);
    // The sufficient-decrease condition holds at the accepted damping.
    const sub = prepareGaussNewton(p.chain, p.objective, p.w, p.batch);
    assert.ok(Number.isFinite(sub.value));
  });

  for (const method of ["gauss-newton", "ggn", "newton"] as const) {
    it(`${method} stepper descends on a small regression problem`, () => {
      const rng = new Rng(7);
      const chain = createChain(
        { input: [2], layers: [{ type: "dense", units: 8 }, { type: "tanh" }, { type: "dense", units: 1 }] },
        { dtype: "float64" },
      );
      const w = chain.initParams(7) as Float64Array;
      const n = 6;
      const x = randomArray(n * 2, rng);
      const targets = Float64Array.from({ length: n }, (_, i) => Math.sin(2 * x[2 * i]) + 0.5 * x[2 * i + 1]);
      const batch: Batch = { x, size: n, targets };
      const objective = createObjective("squared", 0);
      const stepper = createSecondOrderStepper(
        method === "ggn" ? { method, damping: 1e-6 } : { method, damping: 1e-2, lineSearch: true, dampingDecrease: 10 },
      );
      const start = objectiveValue(chain, objective, w, batch);
      let last = start;
      for (let t = 0; t < 15; t++) {
        const r = stepper.step(chain, objective, w, batch);
        if (method !== "ggn") assert.ok(r.newValue <= r.value);
        last = r.newValue;
      }
      assert.ok(last < 1e-3 * start, `${method}: ${start} → ${last}`);
    });
  }
});
