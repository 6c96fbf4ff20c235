import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { type Chain, createChain } from "../src/chain/chain.js";
import { type ModelSpecInput, parseModelSpec } from "../src/chain/spec.js";
import { MaxPool2d } from "../src/components/max-pool.js";
import { Relu } from "../src/components/relu.js";
import type { SmoothMaxPool2d } from "../src/components/smooth-max-pool.js";
import { SmoothRelu } from "../src/components/smooth-relu.js";
import { Rng } from "../src/core/rng.js";
import { runSmoothingExperiment, smoothingExperiment } from "../src/node/experiments/smoothing.js";
import { createObjective } from "../src/objectives/objective.js";
import { forward, objectiveValue, vjp } from "../src/oracles/first-order.js";
import { smooth, smoothModelSpec } from "../src/smoothing/smooth.js";
import { smoothingErrorWitness } from "../src/smoothing/witness.js";
import { runCli } from "./cli-helpers.js";
import { assertDerivatives, randomArray } from "./helpers.js";

const root = mkdtempSync(join(tmpdir(), "chainopt-smoothing-"));
after(() => rmSync(root, { recursive: true, force: true }));

function dist(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s);
}

function out64(chain: Chain, w: Float64Array, x: Float64Array, batch = 1): Float64Array {
  return Float64Array.from(forward(chain, w, x, batch));
}

describe("smoothable components (docs/smoothing.md)", () => {
  it("SmoothReLU_μ: 0 ≤ relu − α_μ ≤ μ (attained) and α_μ′ is 1/(2μ)-Lipschitz (attained) on a dense grid", () => {
    for (const mu of [1e-3, 0.1, 2]) {
      const a = new SmoothRelu({ type: "smoothRelu", mu }, [1]);
      const r = new Relu({ type: "relu" }, [1]);
      let maxGap = 0;
      let minGap = Infinity;
      let maxRatio = 0;
      const n = 20001;
      const lo = -5 * mu;
      const hi = 5 * mu;
      let prevX = lo;
      let prevD = a.derivative(lo);
      for (let i = 0; i < n; i++) {
        const x = lo + ((hi - lo) * i) / (n - 1);
        const gap = r.value(x) - a.value(x);
        maxGap = Math.max(maxGap, gap);
        minGap = Math.min(minGap, gap);
        if (i > 0) maxRatio = Math.max(maxRatio, Math.abs(a.derivative(x) - prevD) / (x - prevX));
        prevX = x;
        prevD = a.derivative(x);
      }
      assert.ok(minGap >= -1e-15 * mu, `μ=${mu}: gap ${minGap} < 0`);
      assert.ok(maxGap <= mu * (1 + 1e-12) && maxGap >= mu * (1 - 1e-12), `μ=${mu}: max gap ${maxGap}`);
      assert.ok(maxRatio <= (1 / (2 * mu)) * (1 + 1e-9) && maxRatio >= (1 / (2 * mu)) * (1 - 1e-6), `μ=${mu}: ratio ${maxRatio}`);
    }
  });

  it("log-sum-exp pooling: 0 ≤ lse_μ − max ≤ μ log k on random windows, both ends attained", () => {
    const rng = new Rng(3);
    for (const [size, mu] of [
      [2, 0.05],
      [3, 1],
    ] as const) {
      const spec = { input: [2, 6, 6], layers: [{ type: "maxPool2d" as const, size }] };
      const max = createChain(spec, { dtype: "float64" });
      const soft = createChain({ input: [2, 6, 6], layers: [{ type: "smoothMaxPool2d" as const, size, mu }] }, { dtype: "float64" });
      const w = new Float64Array(0);
      const k = size * size;
      for (let trial = 0; trial < 50; trial++) {
        const scale = [0.01, 1, 100][trial % 3];
        const x = randomArray(72, rng, scale);
        const a = out64(max, w, x);
        const b = out64(soft, w, x);
        for (let i = 0; i < a.length; i++) {
          assert.ok(b[i] - a[i] >= -1e-12 && b[i] - a[i] <= mu * Math.log(k) + 1e-12, `gap ${b[i] - a[i]}`);
        }
      }
      // Equal entries: lse − max = μ log k exactly; one dominant entry: → 0.
      const eq = new Float64Array(72).fill(0.3);
      const d = out64(soft, w, eq);
      assert.ok(Math.abs(d[0] - 0.3 - mu * Math.log(k)) < 1e-12);
      const dom = new Float64Array(72);
      for (let i = 0; i < 72; i += 1) dom[i] = i % 6 === 0 && Math.floor(i / 6) % size === 0 ? 100 * mu : 0;
      const dd = out64(soft, w, dom);
      assert.ok(dd[0] - 100 * mu < 1e-30 + mu * (k - 1) * Math.exp(-100));
    }
  });

  it("smoothMaxPool2d: declared ℓ and L = √c/(2μ) bound observed ratios; L attained (to 2%) without overlap", () => {
    const rng = new Rng(5);
    for (const [spec, attain] of [
      [{ type: "smoothMaxPool2d" as const, size: 2, mu: 0.3 }, true],
      [{ type: "smoothMaxPool2d" as const, size: 3, stride: 1, padding: 1, mu: 0.2 }, false],
    ] as const) {
      const chain = createChain({ input: [1, 6, 6], layers: [spec] }, { dtype: "float64" });
      const c = chain.components[0] as SmoothMaxPool2d;
      const k = c.smoothness({ batch: 1, norm: Infinity });
      const w = new Float64Array(0);
      let bestL = 0;
      let bestEll = 0;
      const grad = (x: Float64Array, v: Float64Array) => Float64Array.from(vjp(chain, w, x, 1, v, { withInput: true }).dx!);
      for (let trial = 0; trial < 300; trial++) {
        const v = randomArray(chain.outputSize, rng);
        const nv = Math.hypot(...v);
        for (let i = 0; i < v.length; i++) v[i] /= nv;
        // Equal entries in every window (p uniform): the Hessian's top direction is (e_i − e_j)/√2.
        const x = trial % 2 === 0 ? new Float64Array(36) : randomArray(36, rng, 0.3);
        const h = randomArray(36, rng, 1e-4);
        const y = x.map((xi, i) => xi + h[i]);
        bestL = Math.max(bestL, dist(grad(x, v), grad(y, v)) / Math.hypot(...h));
        bestEll = Math.max(bestEll, dist(out64(chain, w, x), out64(chain, w, y)) / Math.hypot(...h));
      }
      assert.ok(bestL <= k.smoothness * (1 + 1e-6), `L: observed ${bestL} > ${k.smoothness}`);
      assert.ok(bestEll <= k.lipschitz * (1 + 1e-9), `ℓ: observed ${bestEll} > ${k.lipschitz}`);
      if (attain) {
        // Targeted: v = e_0, x = 0, direction (e_00 − e_01)/√2 in the first window.
        const v = new Float64Array(chain.outputSize);
        v[0] = 1;
        // Two equal entries holding all the mass (p = (½, ½, 0, 0)): λ_max(diag p − ppᵀ) = 1/2.
        const x = new Float64Array(36);
        x[6] = -1e3;
        x[7] = -1e3;
        const y = x.slice();
        y[0] = 1e-5;
        y[1] = -1e-5;
        const ratio = dist(grad(x, v), grad(y, v)) / Math.hypot(y[0], y[1]);
        assert.ok(Math.abs(ratio - k.smoothness) / k.smoothness < 0.02, `L attained: ${ratio} vs ${k.smoothness}`);
      }
      // ‖π(0)‖ = μ log k_o √η exactly without padding.
      const z = out64(chain, w, new Float64Array(36));
      if (attain) assert.ok(Math.abs(Math.hypot(...z) - k.valueAtZero) < 1e-12);
    }
  });

  it("smoothMaxPool2d derivatives (VJP vs finite differences, adjoint with the JVP)", () => {
    assertDerivatives({ input: [2, 5, 5], layers: [{ type: "smoothMaxPool2d", size: 2, mu: 0.5 }] });
    assertDerivatives({ input: [1, 7, 7], layers: [{ type: "smoothMaxPool2d", size: 3, stride: 2, padding: 1, mu: 0.2 }] });
    assertDerivatives({
      input: [2, 6, 6],
      layers: [
        { type: "conv2d", filters: 3, kernel: 3, padding: 1 },
        { type: "smoothRelu", mu: 0.1 },
        { type: "smoothMaxPool2d", size: 2, mu: 0.05 },
        { type: "flatten" },
        { type: "dense", units: 2 },
      ],
    });
  });

  it("the components' rules: a δ-accurate replacement on the batch, attained by ReLU", () => {
    const rng = new Rng(9);
    for (const batch of [1, 3]) {
      const relu = new Relu({ type: "relu" }, [10]);
      const rule = relu.smoothing({ batch, norm: Infinity });
      for (const delta of [1e-3, 1]) {
        const spec = rule.spec(delta);
        assert.equal(spec.type, "smoothRelu");
        const a = createChain({ input: [10], layers: [{ type: "relu" }] }, { dtype: "float64" });
        const b = createChain({ input: [10], layers: [spec] }, { dtype: "float64" });
        const w = new Float64Array(0);
        for (const scale of [delta, 100 * delta]) {
          const x = randomArray(10 * batch, rng, scale);
          assert.ok(dist(out64(a, w, x, batch), out64(b, w, x, batch)) <= delta * (1 + 1e-12));
        }
        const big = new Float64Array(10 * batch).fill(10 * delta); // every coordinate ≥ 2μ: error μ each
        assert.ok(Math.abs(dist(out64(a, w, big, batch), out64(b, w, big, batch)) - delta) < 1e-12 * Math.max(1, delta));
        // smoothness of the replacement = K/δ
        const k = b.components[0].smoothness!({ batch, norm: Infinity });
        assert.ok(
          Math.abs((k as { smoothness: number }).smoothness - rule.smoothnessPerAccuracy / delta) <
            1e-9 * (rule.smoothnessPerAccuracy / delta),
        );
      }
      const pool = new MaxPool2d({ type: "maxPool2d", size: 2, padding: 0 }, [2, 4, 4]);
      const prule = pool.smoothing({ batch, norm: Infinity });
      const a = createChain({ input: [2, 4, 4], layers: [{ type: "maxPool2d", size: 2 }] }, { dtype: "float64" });
      const b = createChain({ input: [2, 4, 4], layers: [prule.spec(0.5)] }, { dtype: "float64" });
      const w = new Float64Array(0);
      for (let trial = 0; trial < 20; trial++) {
        const x = randomArray(32 * batch, rng, trial % 2 ? 0.01 : 3);
        assert.ok(dist(out64(a, w, x, batch), out64(b, w, x, batch)) <= 0.5 * (1 + 1e-12));
      }
      const flat = new Float64Array(32 * batch).fill(1); // ties everywhere: μ log 4 per window, total 0.5
      assert.ok(Math.abs(dist(out64(a, w, flat, batch), out64(b, w, flat, batch)) - 0.5) < 1e-12);
    }
  });
});

describe("automatic smoothing (docs/smoothing.md: Algorithm 2)", () => {
  it("the backward pass: factors ℓ_{t,j+1} = Π_{s>t}(R_s L_b) Π ℓ_a and accuracies ν/(n·factor)", () => {
    const spec: ModelSpecInput = {
      input: [4],
      layers: [{ type: "dense", units: 5 }, { type: "relu" }, { type: "dense", units: 6 }, { type: "relu" }, { type: "dense", units: 2 }],
    };
    const r = smooth(spec, { epsilon: 0.3, radii: [2, 3, 5], dtype: "float64" });
    const relus = r.parts.filter((p) => p.type === "relu");
    assert.equal(r.smoothedParts, 2);
    assert.deepEqual(
      relus.map((p) => p.multiplier),
      [3 * 5, 5],
    );
    assert.ok(Math.abs(relus[0].accuracy - 0.3 / (2 * 15)) < 1e-15);
    assert.ok(Math.abs(relus[1].accuracy - 0.3 / (2 * 5)) < 1e-15);
    // per-coordinate μ = δ/√(width)
    assert.ok(Math.abs(relus[0].parameter - relus[0].accuracy / Math.sqrt(5)) < 1e-15);
    assert.equal(r.spec.layers[1].type, "smoothRelu");
    assert.equal(r.spec.layers[3].type, "smoothRelu");
    assert.ok(Number.isFinite(r.certificate.chain.smoothness) && r.certificate.stepSize > 0);
    // The constants of ψ_ε grow like K/ε.
    const r2 = smooth(spec, { epsilon: 0.03, radii: [2, 3, 5], dtype: "float64" });
    assert.ok(r2.certificate.chain.smoothness > 5 * r.certificate.chain.smoothness);
  });

  it("Lemma 8: |F(u) − F_ε(u)| ≤ ε on B_R for random data and parameters; smoothModelSpec returns the spec", () => {
    const spec: ModelSpecInput = {
      input: [1, 6, 6],
      layers: [
        { type: "conv2d", filters: 2, kernel: 3, padding: 1 },
        { type: "relu" },
        { type: "maxPool2d", size: 2 },
        { type: "flatten" },
        { type: "dense", units: 3 },
      ],
    };
    const radii = [1.5, 2];
    const { spec: sspec, certificate } = smoothModelSpec(spec, { epsilon: 0.05, radii, l2: 1e-3 });
    assert.equal(certificate.target, "objective");
    assert.ok(Math.abs(certificate.outputAccuracy - 0.05 / Math.SQRT2) < 1e-15);
    const a = createChain(spec, { dtype: "float64" });
    const b = createChain(sspec, { dtype: "float64" });
    const obj = createObjective("logistic", 1e-3);
    const rng = new Rng(11);
    let worst = 0;
    for (let trial = 0; trial < 30; trial++) {
      const w = randomArray(a.paramSize, rng) as Float64Array;
      smoothingProject(a, w, radii);
      const n = 8;
      const batch = { x: randomArray(n * 36, rng, 3), size: n, labels: Int32Array.from({ length: n }, (_, i) => i % 3) };
      worst = Math.max(worst, Math.abs(objectiveValue(a, obj, w, batch) - objectiveValue(b, obj, w, batch)));
    }
    assert.ok(worst <= 0.05, `|F − F_ε| = ${worst}`);
    assert.ok(Math.abs(certificate.objective.transferredMinimality(0.05) - 0.15) < 1e-15);
  });

  it("property test: the largest observed ‖ψ − ψ_ε‖ never exceeds the certificate; tightness reported", () => {
    const rng = new Rng(2024);
    const rows: string[] = [];
    for (let trial = 0; trial < 10; trial++) {
      const conv = trial % 2 === 1;
      const depth = 1 + (trial % 3);
      const layers: ModelSpecInput["layers"] = [];
      let input: number[];
      if (conv) {
        input = [1 + (trial % 2), 6, 6];
        layers.push({ type: "conv2d", filters: 2 + (trial % 2), kernel: 3, padding: 1 }, { type: "relu" }, { type: "maxPool2d", size: 2 });
        if (depth > 2) layers.push({ type: "conv2d", filters: 2, kernel: 2 }, { type: "relu" });
        layers.push({ type: "flatten" }, { type: "dense", units: 3 });
      } else {
        input = [3 + (trial % 3)];
        for (let d = 0; d < depth; d++) layers.push({ type: "dense", units: 3 + ((trial + d) % 4) }, { type: "relu" });
        layers.push({ type: "dense", units: 2 });
      }
      const spec: ModelSpecInput = { input, layers };
      const a = createChain(spec, { dtype: "float64" });
      const tau = a.layers.filter((l) => l.biaffine >= 0).length;
      const radii = Array.from({ length: tau }, () => 0.5 + 2.5 * rng.uniform());
      const epsilon = [1e-3, 0.1, 1, 10][trial % 4];
      const r = smooth(spec, { epsilon, radii, dtype: "float64" });
      const wit = smoothingErrorWitness(a, r.chain, { radii, starts: 2, steps: 25, seed: trial, inputScales: [1, 30] });
      assert.ok(wit.maxError <= r.outputAccuracy * (1 + 1e-9), `trial ${trial}: observed ${wit.maxError} > certified ${r.outputAccuracy}`);
      rows.push(
        `${conv ? "conv" : "mlp"} τ=${tau} ε=${epsilon}: ratio ${(r.outputAccuracy / wit.maxError).toFixed(2)} (sampled only ${(r.outputAccuracy / wit.sampledError).toFixed(1)})`,
      );
    }
    console.log(`certificate / observed:\n  ${rows.join("\n  ")}`);
  });
});

/** In place: each block onto its ball (test helper; the library's projectOntoBall needs the chain). */
function smoothingProject(chain: Chain, w: Float64Array, radii: number[]): void {
  let t = 0;
  for (const layer of chain.layers) {
    if (layer.biaffine < 0) continue;
    const u = chain.paramBlock(w, layer.biaffine);
    const n = Math.hypot(...u);
    if (n > radii[t]) for (let i = 0; i < u.length; i++) u[i] *= radii[t] / n;
    t++;
  }
}

describe("smooth CLI and experiment", () => {
  it("chainopt smooth prints the per-layer smoothing and writes the smoothed spec", async () => {
    const out = join(root, "smoothed.json");
    const r = await runCli(["smooth", "--model", "convnet", "--epsilon", "1", "--radius", "2,3,4", "--json", "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { outputAccuracy: number; parts: { type: string; replacement: { type: string } | null }[] };
    assert.equal(j.outputAccuracy, 1);
    assert.deepEqual(
      j.parts.filter((p) => p.replacement).map((p) => p.replacement!.type),
      ["smoothRelu", "smoothMaxPool2d", "smoothRelu", "smoothMaxPool2d"],
    );
    const spec = parseModelSpec(JSON.parse(readFileSync(out, "utf8")));
    assert.ok(spec.layers.some((l) => l.type === "smoothMaxPool2d"));
    const text = await runCli(["smooth", "--model", "mlp", "--epsilon", "0.1", "--radius", "5"]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /smoothRelu\(μ = /);
    assert.match(text.stdout, /Lemma 9/);
  });

  it("experiment smoothing at a tiny scale writes Table III, Tables I–II and Figure 4", async () => {
    const r = await runSmoothingExperiment({
      models: ["mlp"],
      trainSamples: 64,
      testSamples: 64,
      batchSize: 32,
      epochs: 1,
      seeds: 2,
      width: 0.01,
      epsilons: [1e-3, 1],
      stepGrid: [0.01, 0.1],
      burnIn: 2,
      out: join(root, "exp"),
    });
    const c = await runSmoothingExperiment({
      models: ["convnet"],
      trainSamples: 32,
      testSamples: 32,
      batchSize: 16,
      epochs: 1,
      seeds: 1,
      epsilons: [1],
      stepGrid: [0.1],
      burnIn: 1,
      control: false,
      out: join(root, "exp-conv"),
    });
    for (const [dir, m] of [
      [r.runDir, "mlp"],
      [c.runDir, "convnet"],
    ]) {
      for (const f of ["table3.csv", "table12.csv", "figure4.csv", "step-grid.csv", "certificates.csv"])
        assert.ok(existsSync(join(dir, `${m}-${f}`)), f);
      assert.ok(existsSync(join(dir, "plots", `${m}-figure4.svg`)));
      assert.match(readFileSync(join(dir, "results.md"), "utf8"), /Table III/);
    }
    const m = r.models[0];
    assert.ok(m.reproducible, "the lockstep non-smooth run must repeat pass 1");
    assert.equal(m.runs.length, 2 * 3);
    assert.equal(m.distances.length, 3 * m.epochs); // 2 ε + the control run, at the end of each epoch
    // Smaller ε, smaller per-layer μ.
    const mu = (e: number) => m.smoothings.find((s) => s.epsilon === e)!.result.layers.find((l) => l.layer === 1)!.parameters[0];
    assert.ok(mu(1e-3) < mu(1));
    assert.ok(c.models[0].reproducible);
    assert.equal(c.models[0].runs.length, 2);
  });

  it("experiment smoothing: interrupted (Ctrl-C) in the lockstep and resumed, its tables equal an uninterrupted run's", async () => {
    const options = {
      models: ["mlp"],
      trainSamples: 64,
      testSamples: 32,
      batchSize: 32,
      epochs: 3,
      seeds: 1,
      width: 0.01,
      epsilons: [1e-3, 1],
      // 1e30 diverges in the burn-in: recorded (objective +∞), and read back as such on resume.
      stepGrid: [0.01, 0.1, 1e30],
      burnIn: 2,
    };
    const whole = join(root, "whole");
    const w = await runSmoothingExperiment({ ...options, out: whole });
    assert.ok(w.models[0].reproducible);
    assert.deepEqual(
      w.models[0].stepGrid.map((g) => g.objective === Number.POSITIVE_INFINITY),
      [false, false, true],
    );
    const split = join(root, "split");
    const signal = { stopRequested: false };
    const io = {
      signal,
      log: (line: string) => {
        if (line.startsWith("  pass 2 seed 0, epoch 1:")) signal.stopRequested = true;
      },
    };
    await assert.rejects(runSmoothingExperiment({ ...options, out: split }, io), /interrupted; continue with --resume/);
    assert.ok(!existsSync(join(split, "mlp-table3.csv")));
    const lines: string[] = [];
    await smoothingExperiment.run({ ...options, resume: split }, { log: (l) => lines.push(l) });
    assert.ok(lines.some((l) => l.startsWith("  pass 2 seed 0, epoch 3:")));
    const csvs = readdirSync(whole).filter((f) => f.endsWith(".csv"));
    assert.deepEqual(csvs.sort(), [
      "mlp-certificates.csv",
      "mlp-figure4.csv",
      "mlp-runs.csv",
      "mlp-step-grid.csv",
      "mlp-table12.csv",
      "mlp-table3.csv",
    ]);
    // No CSV of the experiment holds a wall-clock number: all must be equal.
    for (const f of csvs) assert.equal(readFileSync(join(split, f), "utf8"), readFileSync(join(whole, f), "utf8"), f);
    assert.equal(readFileSync(join(whole, "mlp-figure4.csv"), "utf8").trim().split("\n").length, 1 + 3 * 3);
  });

  it("experiment smoothing: a bad option is named and nothing is written", async () => {
    const out = join(root, "bad");
    await assert.rejects(runSmoothingExperiment({ models: ["mlp", "resnet"], out }), /models: unknown model "resnet"/);
    await assert.rejects(runSmoothingExperiment({ epsilons: [1, 0], out }), /epsilons: expected positive numbers/);
    await assert.rejects(runSmoothingExperiment({ stepGrid: [], out }), /stepGrid/);
    await assert.rejects(smoothingExperiment.run({ seeds: 0, out }, { log: () => {} }), /seeds: expected a positive integer/);
    await assert.rejects(smoothingExperiment.run({ scale: 2, out }, { log: () => {} }), /scale: expected a number in \(0, 1\]/);
    assert.ok(!existsSync(out));
  });
});
