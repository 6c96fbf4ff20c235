import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type Batch,
  type Chain,
  createChain,
  createObjective,
  dot,
  hessianVectorProduct,
  type ModelSpecInput,
  newtonDirection,
  type Objective,
  Rng,
  valueAndGradient,
} from "./flat.js";
import { randomArray, relativeError } from "./helpers.js";

// Second-order backward of conv2d and batch-norm: Hessian-vector products against float64 central
// differences of gradients, and the Newton step by dynamic programming against the dense step.

/** A small ConvNet with batch-norm: a "same" convolution (fast paths), a strided one, both norms. */
const convnet = (affine: boolean): ModelSpecInput => ({
  input: [2, 5, 5],
  layers: [
    { type: "conv2d", filters: 2, kernel: 3, padding: 1 },
    { type: "batchNorm", affine },
    { type: "tanh" },
    { type: "conv2d", filters: 2, kernel: 3, stride: 2, padding: 1 },
    { type: "batchNorm", affine: true },
    { type: "softplus" },
    { type: "avgPool2d", size: 3 },
    { type: "flatten" },
    { type: "dense", units: 3 },
  ],
});

interface Problem {
  chain: Chain;
  w: Float64Array;
  batch: Batch;
  objective: Objective;
  rng: Rng;
  training: boolean;
  state?: Float64Array;
}

function problem(spec: ModelSpecInput, loss: "logistic" | "squared", l2: number, training: boolean, n = 3, seed = 2): Problem {
  const rng = new Rng(seed);
  const chain = createChain(spec, { dtype: "float64" });
  const w = chain.initParams(seed) as Float64Array;
  // Perturb γ, β away from (1, 0) so that every term of the batch-norm derivative is exercised.
  for (let i = 0; i < w.length; i++) w[i] += 0.1 * rng.normal();
  const x = randomArray(n * chain.inputSize, rng);
  const k = chain.outputSize;
  const batch: Batch =
    loss === "logistic"
      ? { x, size: n, labels: Int32Array.from({ length: n }, (_, i) => i % k) }
      : { x, size: n, targets: randomArray(n * k, rng) };
  let state: Float64Array | undefined;
  if (!training) {
    state = chain.initState() as Float64Array;
    // Running statistics different from (0, 1) (means and variances alike positive).
    for (let i = 0; i < state.length; i++) state[i] = 0.5 + Math.abs(rng.normal());
  }
  return { chain, w, batch, objective: createObjective(loss, l2), rng, training, state };
}

function gradientAt(p: Problem, w: Float64Array): Float64Array {
  return Float64Array.from(valueAndGradient(p.chain, p.objective, w, p.batch, { training: p.training, state: p.state }).grad);
}

function hvp(p: Problem, v: ArrayLike<number>): Float64Array {
  return Float64Array.from(hessianVectorProduct(p.chain, p.objective, p.w, p.batch, v, { training: p.training, state: p.state }));
}

describe("second order on ConvNets with batch-norm", () => {
  for (const training of [true, false]) {
    for (const affine of [true, false]) {
      it(`Hessian-vector product matches central differences and is symmetric (${training ? "training" : "evaluation"}, affine ${affine})`, () => {
        const p = problem(convnet(affine), "logistic", 0.01, training);
        const v = randomArray(p.chain.paramSize, p.rng);
        const u = randomArray(p.chain.paramSize, p.rng);
        const hv = hvp(p, v);
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
        if (process.env.CHAINOPT_REPORT) console.log(`conv+bn HVP vs FD ${training} ${affine}: ${err}`);
        const hu = hvp(p, u);
        const sym = Math.abs(dot(u, hv) - dot(v, hu)) / Math.abs(dot(u, hv));
        assert.ok(sym < 1e-10, `symmetry: ${sym}`);
      });
    }
  }

  it("Hessian-vector product when the convolution processes the batch in several column chunks", () => {
    // 40×40 inputs, 3×3 kernels: 14 400 column entries per sample, so the 2¹⁷-entry column cap
    // splits a batch of 12 into chunks of 9 and 3 (conv2d.ts, COLUMN_CAP); a strided second
    // convolution takes the generic (non-shifted) im2col path with an input tangent.
    const spec: ModelSpecInput = {
      input: [1, 40, 40],
      layers: [
        { type: "conv2d", filters: 2, kernel: 3, padding: 1 },
        { type: "batchNorm", affine: true },
        { type: "tanh" },
        { type: "conv2d", filters: 2, kernel: 4, stride: 3 },
        { type: "softplus" },
        { type: "avgPool2d", size: 13 },
        { type: "flatten" },
        { type: "dense", units: 2 },
      ],
    };
    const p = problem(spec, "squared", 0.01, true, 12, 4);
    assert.ok((p.chain.components[0].createTape(12, "float64") as { chunk: number }).chunk < 12, "the first convolution should be chunked");
    const v = randomArray(p.chain.paramSize, p.rng);
    const hv = hvp(p, v);
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

  for (const loss of ["logistic", "squared"] as const) {
    it(`Newton by dynamic programming equals the dense Newton step on a ConvNet with batch-norm (${loss})`, () => {
      const p = problem(convnet(true), loss, 0.01, true);
      const np = p.chain.paramSize;
      const hess = new Float64Array(np * np);
      const e = new Float64Array(np);
      for (let j = 0; j < np; j++) {
        e.fill(0);
        e[j] = 1;
        const col = hvp(p, e);
        for (let r = 0; r < np; r++) hess[r * np + j] = col[r];
      }
      const ev = p.chain.backend.symmetricEigen?.(Float64Array.from(hess), np, false) as Float64Array;
      const mu = Math.max(0, -ev[0]) + 0.1;
      const hm = Float64Array.from(hess);
      for (let i = 0; i < np; i++) hm[i * np + i] += mu;
      const g = gradientAt(p, p.w).map((x) => -x);
      assert.ok(p.chain.backend.solve?.(hm, np, g, 1));
      const dp = newtonDirection(p.chain, p.objective, p.w, p.batch, mu);
      const err = relativeError(dp, g);
      assert.ok(err < 1e-8, `Newton DP vs dense: ${err}`);
      if (process.env.CHAINOPT_REPORT) console.log(`conv+bn Newton DP vs dense ${loss}: ${err}`);
    });
  }
});
