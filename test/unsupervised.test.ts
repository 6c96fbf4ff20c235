import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  AutoencoderLoss,
  type Batch,
  ConvexClusteringLoss,
  clusterAssignments,
  createChain,
  createObjective,
  knnGaussianWeights,
  Rng,
  solveConvexClustering,
  valueAndGradient,
} from "./flat.js";
import { randomArray, relativeError } from "./helpers.js";

// Unsupervised objectives: convex clustering (inner solver, gradient through the minimizer,
// constants, assignments) and the auto-encoder, gradient-checked in float64.

/** Two (or more) well separated Gaussian blobs in R^d. */
function blobs(sizes: number[], d: number, sep: number, rng: Rng): { x: Float64Array; labels: Int32Array } {
  const n = sizes.reduce((a, b) => a + b, 0);
  const x = new Float64Array(n * d);
  const labels = new Int32Array(n);
  let i = 0;
  sizes.forEach((s, c) => {
    for (let k = 0; k < s; k++, i++) {
      labels[i] = c;
      for (let t = 0; t < d; t++) x[i * d + t] = (t === 0 ? c * sep : 0) + 0.3 * rng.normal();
    }
  });
  return { x, labels };
}

describe("convex clustering: the inner problem", () => {
  it("k-NN Gaussian weights: symmetric k-NN graph, weights in (0, 1], at least k edges per point", () => {
    const rng = new Rng(1);
    const x = randomArray(12 * 3, rng);
    const edges = knnGaussianWeights(x, 12, 3, 3);
    const deg = new Array(12).fill(0);
    for (const e of edges) {
      assert.ok(e.i < e.j && e.w > 0 && e.w <= 1);
      deg[e.i]++;
      deg[e.j]++;
    }
    for (const k of deg) assert.ok(k >= 3);
    assert.equal(new Set(edges.map((e) => `${e.i},${e.j}`)).size, edges.length);
  });

  it("AMA reaches its stated accuracy: gap certificate, KKT residual, λ = 0 and λ large", () => {
    const rng = new Rng(2);
    const n = 15;
    const q = 2;
    const psi = randomArray(n * q, rng);
    const edges = knnGaussianWeights(psi, n, q, 4);
    const tight = solveConvexClustering(psi, n, q, edges, 0.3, { tolerance: 1e-12, maxIterations: 200000 });
    const loose = solveConvexClustering(psi, n, q, edges, 0.3, { tolerance: 1e-4 });
    assert.ok(loose.converged && tight.converged);
    let psiNorm = 0;
    for (const v of psi) psiNorm += v * v;
    const bound = 1e-4 * Math.max(Math.sqrt(psiNorm), 1);
    assert.ok(loose.accuracy <= bound);
    // ‖Ỹ − Y*‖ ≤ √(2 gap) (measured against the tight solve).
    assert.ok(relativeError(loose.y, tight.y) * Math.sqrt(psiNorm) <= loose.accuracy + tight.accuracy + 1e-12);
    // λ = 0: Y* = Ψ. λ large on a connected graph: every point fused at the mean.
    const zero = solveConvexClustering(psi, n, q, edges, 0);
    assert.ok(relativeError(zero.y, psi) < 1e-15);
    const big = solveConvexClustering(psi, n, q, edges, 1e3, { tolerance: 1e-10, maxIterations: 100000 });
    const mean = [0, 0];
    for (let i = 0; i < n; i++) for (let t = 0; t < q; t++) mean[t] += psi[i * q + t] / n;
    for (let i = 0; i < n; i++) for (let t = 0; t < q; t++) assert.ok(Math.abs(big.y[i * q + t] - mean[t]) < 1e-6);
    assert.equal(new Set(clusterAssignments(big.y, n, q, edges, 2 * big.accuracy + 1e-9)).size, 1);
  });

  it("recovers two separated blobs as two clusters", () => {
    const rng = new Rng(3);
    const { x, labels } = blobs([10, 12], 2, 6, rng);
    const n = 22;
    const edges = knnGaussianWeights(x, n, 2, 5);
    // The k-NN graph has one component per blob: a large γ fuses each component, and nothing across.
    const sol = solveConvexClustering(x, n, 2, edges, 20, { tolerance: 1e-9, maxIterations: 100000 });
    const assign = clusterAssignments(sol.y, n, 2, edges, 2 * sol.accuracy + 1e-7);
    assert.equal(new Set(assign).size, 2);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) assert.equal(assign[i] === assign[j], labels[i] === labels[j]);
  });
});

describe("convex clustering: the objective f(Ψ) and its gradient Ψ − Y*", () => {
  it("∇f = (Ψ − Y*)/N matches central differences of f; and through a chain, of F(w)", () => {
    const rng = new Rng(4);
    const n = 8;
    const q = 2;
    const loss = new ConvexClusteringLoss({ lambda: 0.2, neighbors: 3, tolerance: 1e-13, maxIterations: 500000 });
    const x = randomArray(n * 3, rng);
    const batch: Batch = { x, size: n };
    const psi = randomArray(n * q, rng);
    const grad = new Float64Array(n * q);
    loss.evaluate(psi, batch, q, grad);
    const h = 1e-6;
    const fd = new Float64Array(n * q);
    for (let t = 0; t < n * q; t++) {
      const p = Float64Array.from(psi);
      p[t] += h;
      const fp = loss.evaluate(p, batch, q, null);
      p[t] -= 2 * h;
      const fm = loss.evaluate(p, batch, q, null);
      fd[t] = (fp - fm) / (2 * h);
    }
    const err = relativeError(grad, fd);
    assert.ok(err < 1e-6, `∇f vs FD: ${err}`);
    // Through a chain: F(w) = f(ψ(w)).
    const chain = createChain(
      { input: [3], layers: [{ type: "dense", units: 4 }, { type: "tanh" }, { type: "dense", units: q }] },
      { dtype: "float64" },
    );
    const w = chain.initParams(4) as Float64Array;
    const objective = createObjective(loss, 0);
    const g = Float64Array.from(valueAndGradient(chain, objective, w, batch).grad);
    const fdw = new Float64Array(w.length);
    for (let t = 0; t < w.length; t++) {
      const wp = Float64Array.from(w);
      wp[t] += h;
      const fp = valueAndGradient(chain, objective, wp, batch).loss;
      wp[t] -= 2 * h;
      const fm = valueAndGradient(chain, objective, wp, batch).loss;
      fdw[t] = (fp - fm) / (2 * h);
    }
    const errw = relativeError(g, fdw);
    assert.ok(errw < 1e-6, `∇F vs FD: ${errw}`);
  });

  it("certificate constants hold on random pairs: f ≤ m²/(2N), ‖∇f‖ ≤ m/N, ∇f is 1/N-Lipschitz", () => {
    const rng = new Rng(5);
    const n = 10;
    const q = 3;
    const loss = new ConvexClusteringLoss({ lambda: 0.5, neighbors: 3, tolerance: 1e-10, maxIterations: 100000 });
    const batch: Batch = { x: randomArray(n * 2, rng), size: n };
    for (let trial = 0; trial < 5; trial++) {
      const a = randomArray(n * q, rng, 2);
      const b = a.map((v) => v + 0.3 * rng.normal());
      const ga = new Float64Array(n * q);
      const gb = new Float64Array(n * q);
      const fa = loss.evaluate(a, batch, q, ga);
      loss.evaluate(b, batch, q, gb);
      const m = Math.sqrt(a.reduce((s, v) => s + v * v, 0));
      const c = loss.smoothness({ batch: n, outputSize: q, norm: m });
      assert.ok(fa <= c.bound * (1 + 1e-9));
      assert.ok(Math.sqrt(ga.reduce((s, v) => s + v * v, 0)) <= c.lipschitz * (1 + 1e-9));
      const dg = Math.sqrt(ga.reduce((s, v, i) => s + (v - gb[i]) ** 2, 0));
      const d = Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0));
      assert.ok(dg <= c.smoothness * d * (1 + 1e-6), `${dg} > ${c.smoothness * d}`);
    }
  });
});

describe("convex clustering objective: batches and warm starts", () => {
  it("a reused batch buffer refilled with other samples gets its own k-NN graph; a restored warm start applies to its batch only", () => {
    const rng = new Rng(9);
    const n = 10;
    const a = randomArray(n * 3, rng);
    const b = randomArray(n * 3, rng);
    const psi = randomArray(n * 2, rng);
    const options = { lambda: 0.3, neighbors: 3, tolerance: 1e-3, maxIterations: 30 };
    // A batch loader fills one buffer with each batch.
    const buffer = Float64Array.from(a);
    const loss = new ConvexClusteringLoss(options);
    loss.evaluate(psi, { x: buffer, size: n }, 2, null);
    const graphA = loss.last?.edges;
    buffer.set(b);
    loss.evaluate(psi, { x: buffer, size: n }, 2, null);
    assert.notEqual(loss.last?.edges, graphA);
    assert.deepEqual(loss.last?.edges, knnGaussianWeights(b, n, 3, 3));
    // Warm start: the state saved after a solve on b restarts the next solve on b exactly as before.
    const saved = loss.saveState();
    assert.ok(saved);
    const next = loss.evaluate(psi, { x: Float64Array.from(b), size: n }, 2, null);
    const restored = new ConvexClusteringLoss(options);
    restored.restoreState(saved);
    assert.equal(restored.evaluate(psi, { x: Float64Array.from(b), size: n }, 2, null), next);
    // On another batch it is not used: a cold start, as in a fresh loss.
    const other = new ConvexClusteringLoss(options);
    other.restoreState(saved);
    assert.equal(
      other.evaluate(psi, { x: a, size: n }, 2, null),
      new ConvexClusteringLoss(options).evaluate(psi, { x: a, size: n }, 2, null),
    );
  });
});

describe("auto-encoder objective", () => {
  it("f = ‖Ψ − X‖²/(2N): gradient check through a chain whose output shape equals its input's; shape mismatch named", () => {
    const rng = new Rng(6);
    const chain = createChain(
      { input: [4], layers: [{ type: "dense", units: 2 }, { type: "softplus" }, { type: "dense", units: 4 }] },
      { dtype: "float64" },
    );
    const w = chain.initParams(6) as Float64Array;
    const batch: Batch = { x: randomArray(5 * 4, rng), size: 5 };
    const objective = createObjective("autoencoder");
    const { loss, grad } = valueAndGradient(chain, objective, w, batch);
    assert.ok(loss > 0);
    const h = 1e-6;
    const fd = new Float64Array(w.length);
    for (let t = 0; t < w.length; t++) {
      const wp = Float64Array.from(w);
      wp[t] += h;
      const fp = valueAndGradient(chain, objective, wp, batch).loss;
      wp[t] -= 2 * h;
      fd[t] = (fp - valueAndGradient(chain, objective, wp, batch).loss) / (2 * h);
    }
    assert.ok(relativeError(grad, fd) < 1e-8, `${relativeError(grad, fd)}`);
    const wrong = createChain({ input: [4], layers: [{ type: "dense", units: 3 }] }, { dtype: "float64" });
    assert.throws(
      () => valueAndGradient(wrong, objective, wrong.initParams(1), batch),
      /output size \(3\) must equal its input size \(4\)/,
    );
    assert.throws(() => new AutoencoderLoss().smoothness({ batch: 5, outputSize: 4, norm: 1 }), /targetNorm/);
  });
});
