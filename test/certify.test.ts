import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type CertificateVariant,
  certifiedStep,
  certifiedStepSize,
  certifyChain,
  certifyObjective,
  convergenceGuarantee,
  layerNorms,
  localRadii,
  projectOntoBall,
  tightnessReport,
  witnessChain,
  witnessObjective,
} from "../src/certify/index.js";
import { type Chain, createChain } from "../src/chain/chain.js";
import { getPreset } from "../src/chain/presets.js";
import type { LayerSpecInput, ModelSpecInput } from "../src/chain/spec.js";
import { BATCH_NORM_CURVATURE } from "../src/components/batch-norm.js";
import type { NonlinearConstants } from "../src/components/index.js";
import { Rng } from "../src/core/rng.js";
import { createObjective, LogisticLoss, SquaredLoss } from "../src/objectives/index.js";
import { forward, jvp, vjp } from "../src/oracles/first-order.js";

// Property tests of docs/certificates.md: every certificate ≥ every witness (witnesses are values of the
// defining ratios at points of B_R, so a valid upper bound can never be below them), plus numerical
// checks of each component's constants.

const SLACK = 1 + 1e-9; // float64 rounding in the witnesses

function norm(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return Math.sqrt(s);
}

function randn(n: number, rng: Rng, scale = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = scale * rng.normal();
  return a;
}

function unit(a: Float64Array): Float64Array {
  const n = norm(a);
  return a.map((v) => v / n);
}

/** Constants of the single nonlinear component of a one-component chain. */
function constantsOf(chain: Chain, batch: number, inputNorm = Infinity): NonlinearConstants {
  const c = chain.components[0];
  const k = c.smoothness?.({ batch, norm: inputNorm });
  assert.ok(k && k.kind === "nonlinear");
  return k;
}

/**
 * Lower bounds on the Lipschitz and smoothness constants of x ↦ ψ(x) for a parameter-free chain
 * (in training mode): power iteration for ‖∇ψ(x)‖ and ‖(J(x + h v) − J(x − h v)) v‖/(2h).
 */
function inputWitness(chain: Chain, batch: number, x: Float64Array, v0: Float64Array): { lipschitz: number; smoothness: number } {
  const w = new Float64Array(0);
  const opts = { training: true };
  let v = unit(v0);
  for (let k = 0; k < 30; k++) {
    const jv = Float64Array.from(jvp(chain, w, x, batch, null, v, opts));
    const back = vjp(chain, w, x, batch, jv, { ...opts, withInput: true }).dx as Float64Array;
    v = unit(Float64Array.from(back));
  }
  const lipschitz = norm(jvp(chain, w, x, batch, null, v, opts));
  const h = 1e-4;
  const dir = unit(v0);
  const xp = x.map((xi, i) => xi + h * dir[i]);
  const xm = x.map((xi, i) => xi - h * dir[i]);
  const a = Float64Array.from(jvp(chain, w, xp, batch, null, dir, opts));
  const b = jvp(chain, w, xm, batch, null, dir, opts);
  let d = 0;
  for (let i = 0; i < a.length; i++) d += (a[i] - b[i]) ** 2;
  return { lipschitz, smoothness: Math.sqrt(d) / (2 * h) };
}

describe("component constants", () => {
  it("activations: |α′| ≤ ℓ, |α″| ≤ L, α(0), α′(0) (finite differences on a grid)", () => {
    const cases: LayerSpecInput[] = [
      { type: "softplus" },
      { type: "softplus", beta: 3 },
      { type: "sigmoid" },
      { type: "tanh" },
      { type: "smoothRelu", mu: 0.3 },
      { type: "relu" },
    ];
    for (const spec of cases) {
      const chain = createChain({ input: [1], layers: [spec] }, { dtype: "float64" });
      const k = constantsOf(chain, 1);
      const c = chain.components[0] as unknown as { value(x: number): number; derivative(x: number): number };
      let maxD = 0;
      let maxD2 = 0;
      const h = 1e-4;
      for (let x = -12; x <= 12; x += 1e-3) {
        maxD = Math.max(maxD, Math.abs(c.derivative(x)));
        maxD2 = Math.max(maxD2, Math.abs(c.derivative(x + h) - c.derivative(x - h)) / (2 * h));
      }
      assert.ok(maxD <= k.lipschitz * SLACK, `${spec.type}: |α′| ${maxD} > ℓ ${k.lipschitz}`);
      assert.ok(maxD >= 0.999 * k.lipschitz, `${spec.type}: ℓ ${k.lipschitz} not attained (${maxD})`);
      if (Number.isFinite(k.smoothness)) {
        assert.ok(maxD2 <= k.smoothness * (1 + 1e-6), `${spec.type}: |α″| ${maxD2} > L ${k.smoothness}`);
        assert.ok(maxD2 >= 0.999 * k.smoothness, `${spec.type}: L ${k.smoothness} not attained (${maxD2})`);
        assert.ok(Math.abs(Math.abs(c.derivative(0)) - k.jacobianAtZero) < 1e-12, `${spec.type}: α′(0)`);
      }
      assert.ok(Math.abs(Math.abs(c.value(0)) - k.valueAtZero) < 1e-12, `${spec.type}: α(0)`);
    }
  });

  it("softplus: the printed ℓ = 2, L = 4 (Roulet & Harchaoui, Allerton 2019, Sec. 5.2) are loose; ours are ℓ = 1, L = β/4", () => {
    const chain = createChain({ input: [1], layers: [{ type: "softplus" }] }, { dtype: "float64" });
    const k = constantsOf(chain, 1);
    assert.equal(k.lipschitz, 1);
    assert.equal(k.smoothness, 0.25);
  });

  it("dense: L_b = 1 and lᵘ = √N are attained (rank-one X and W; bias)", () => {
    const n = 5;
    const chain = createChain({ input: [4], layers: [{ type: "dense", units: 3 }] }, { dtype: "float64" });
    const k = chain.components[0].smoothness?.({ batch: n, norm: 1 });
    assert.ok(k && k.kind === "biaffine");
    assert.equal(k.bilinear, 1);
    assert.equal(k.paramLipschitz, Math.sqrt(n));
    const rng = new Rng(3);
    const row = randn(4, rng);
    const x = new Float64Array(n * 4);
    for (let i = 0; i < n; i++) x.set(row, i * 4);
    const w = new Float64Array(chain.paramSize);
    for (let j = 0; j < 3; j++) for (let i = 0; i < 4; i++) w[j * 4 + i] = (j === 0 ? 1 : 0) * row[i];
    const y = forward(chain, w, x, n);
    assert.ok(Math.abs(norm(y) - norm(x) * norm(w)) < 1e-9);
  });

  it("conv2d: L_b = √(c_h c_w) bounds ‖β(z, w)‖/(‖z‖‖w‖) and is nearly attained; printed (k/s)² is loose", () => {
    const cases = [
      { kernel: 3, stride: 1, padding: 1, size: 12 },
      { kernel: 3, stride: 2, padding: 1, size: 11 },
      { kernel: 2, stride: 2, padding: 0, size: 8 },
      { kernel: 5, stride: 2, padding: 2, size: 13 },
    ];
    for (const cs of cases) {
      const spec: ModelSpecInput = {
        input: [2, cs.size, cs.size],
        layers: [{ type: "conv2d", filters: 2, kernel: cs.kernel, stride: cs.stride, padding: cs.padding, bias: false }],
      };
      const chain = createChain(spec, { dtype: "float64" });
      const k = chain.components[0].smoothness?.({ batch: 2, norm: 1 });
      assert.ok(k && k.kind === "biaffine");
      const coverage = Math.ceil(cs.kernel / cs.stride);
      assert.ok(k.bilinear <= coverage + 1e-12);
      assert.ok(k.bilinear < (cs.kernel / cs.stride) ** 2 || cs.kernel === cs.stride);
      // Alternating maximization of ‖β(z, w)‖ over unit z, w (β is linear in each).
      const rng = new Rng(5);
      let z = unit(new Float64Array(2 * chain.inputSize).fill(1).map((v) => v + 0.01 * rng.normal()));
      let w = unit(randn(chain.paramSize, rng).map(Math.abs));
      let best = 0;
      for (let it = 0; it < 40; it++) {
        const y = Float64Array.from(forward(chain, w, z, 2));
        const g = vjp(chain, w, z, 2, y, { withInput: true });
        w = unit(Float64Array.from(g.dw));
        const y2 = Float64Array.from(forward(chain, w, z, 2));
        z = unit(Float64Array.from(vjp(chain, w, z, 2, y2, { withInput: true }).dx as Float64Array));
        best = Math.max(best, norm(forward(chain, w, z, 2)));
      }
      assert.ok(best <= k.bilinear * SLACK, `conv ${JSON.stringify(cs)}: witness ${best} > L_b ${k.bilinear}`);
      assert.ok(best >= 0.6 * k.bilinear, `conv ${JSON.stringify(cs)}: L_b ${k.bilinear} far from witness ${best}`);
    }
  });

  it("pooling: ℓ_avg = √(c/(kh·kw)) (1/k without overlap, printed 1), ℓ_max = √c, both attained or bounded", () => {
    const rng = new Rng(9);
    for (const [size, stride] of [
      [2, 2],
      [3, 2],
      [3, 1],
    ]) {
      for (const type of ["avgPool2d", "maxPool2d"] as const) {
        const chain = createChain({ input: [2, 8, 8], layers: [{ type, size, stride }] }, { dtype: "float64" });
        const k = constantsOf(chain, 2, 1);
        const x = randn(2 * chain.inputSize, rng);
        const wit = inputWitness(chain, 2, x, randn(x.length, rng));
        assert.ok(wit.lipschitz <= k.lipschitz * SLACK, `${type} ${size}/${stride}: ${wit.lipschitz} > ${k.lipschitz}`);
        if (type === "avgPool2d") {
          // Attained without overlap; with overlap the Cauchy–Schwarz/coverage bound is looser.
          const attained = size === stride ? 0.999 : 0.7;
          assert.ok(wit.lipschitz >= attained * k.lipschitz, `${type} ${size}/${stride}: ℓ ${k.lipschitz} vs ${wit.lipschitz}`);
          if (size === stride) assert.ok(Math.abs(k.lipschitz - 1 / size) < 1e-12);
        } else assert.equal(k.smoothness, Infinity);
      }
    }
  });

  it("softmax: ℓ = 1/2, L = 1 bound the witnesses", () => {
    const rng = new Rng(11);
    const chain = createChain({ input: [4], layers: [{ type: "softmax" }] }, { dtype: "float64" });
    const k = constantsOf(chain, 3);
    for (let trial = 0; trial < 30; trial++) {
      const x = randn(12, rng, 2);
      const wit = inputWitness(chain, 3, x, randn(12, rng));
      assert.ok(wit.lipschitz <= k.lipschitz * SLACK);
      assert.ok(wit.smoothness <= k.smoothness * SLACK);
    }
    // K = 2 at 0: ℓ = 1/2 attained.
    const two = createChain({ input: [2], layers: [{ type: "softmax" }] }, { dtype: "float64" });
    const wit = inputWitness(two, 1, new Float64Array(2), Float64Array.from([1, -1]));
    assert.ok(Math.abs(wit.lipschitz - 0.5) < 1e-9);
  });

  it("batch-norm: ℓ = 1/√ε and L = K/(√n ε) are attained (K = 48/(25√5) at ‖Pz‖ = √(nε)/2)", () => {
    for (const [eps, shape, batch] of [
      [0.5, [3], 7],
      [1e-2, [2, 3, 3], 4],
      [100, [2, 2, 2], 3],
    ] as const) {
      const chain = createChain({ input: [...shape], layers: [{ type: "batchNorm", epsilon: eps }] }, { dtype: "float64" });
      const k = constantsOf(chain, batch);
      const spatial = shape.length > 1 ? (shape[1] as number) * (shape[2] as number) : 1;
      const n = batch * spatial;
      assert.ok(Math.abs(k.lipschitz - 1 / Math.sqrt(eps)) < 1e-12);
      assert.ok(Math.abs(k.smoothness - BATCH_NORM_CURVATURE / (Math.sqrt(n) * eps)) < 1e-12);
      // Extremal point: channel 0 holds a centered y with ‖y‖ = √(nε)/2, direction v = y/‖y‖.
      const rng = new Rng(13);
      const size = chain.inputSize;
      const x = new Float64Array(batch * size);
      const y = new Float64Array(n).map(() => rng.normal());
      const mean = y.reduce((a, b) => a + b, 0) / n;
      for (let i = 0; i < n; i++) y[i] -= mean;
      const ny = norm(y);
      const target = Math.sqrt(n * eps) / 2;
      for (let i = 0; i < n; i++) {
        const s = Math.floor(i / spatial);
        x[s * size + (i % spatial)] = (y[i] * target) / ny;
      }
      const v = new Float64Array(x.length);
      for (let i = 0; i < n; i++) {
        const s = Math.floor(i / spatial);
        v[s * size + (i % spatial)] = y[i] / ny;
      }
      const wit = inputWitness(chain, batch, x, v);
      assert.ok(wit.smoothness <= k.smoothness * SLACK, `BN ε=${eps}: ${wit.smoothness} > ${k.smoothness}`);
      assert.ok(wit.smoothness >= 0.999 * k.smoothness, `BN ε=${eps}: L ${k.smoothness} vs witness ${wit.smoothness}`);
      const atZero = inputWitness(
        chain,
        batch,
        new Float64Array(x.length).fill(0).map(() => 1e-9 * rng.normal()),
        v,
      );
      assert.ok(atZero.lipschitz <= k.lipschitz * SLACK && atZero.lipschitz >= 0.999 * k.lipschitz);
    }
  });

  it("losses: ‖∇f‖ ≤ ℓ_f and ‖∇²f v‖ ≤ L_f ‖v‖ on bounded outputs", () => {
    const rng = new Rng(17);
    const n = 4;
    const kk = 3;
    for (const loss of [new LogisticLoss(), new SquaredLoss()]) {
      for (let trial = 0; trial < 50; trial++) {
        const out = randn(n * kk, rng, trial % 5);
        const labels = Int32Array.from({ length: n }, () => Math.floor(rng.uniform() * kk));
        const batch = { x: new Float64Array(0), size: n, labels };
        const c = loss.smoothness!({ batch: n, outputSize: kk, norm: norm(out) });
        const g = new Float64Array(n * kk);
        const f = loss.evaluate(out, batch, kk, g);
        assert.ok(f <= c.bound * SLACK && f >= 0);
        assert.ok(norm(g) <= c.lipschitz * SLACK);
        const v = unit(randn(n * kk, rng));
        const hv = new Float64Array(n * kk);
        loss.hessianVector(out, batch, kk, v, hv);
        assert.ok(norm(hv) <= c.smoothness * SLACK);
      }
    }
    // Logistic L_f = 1/(2N) is attained for K = 2 at 0.
    const loss = new LogisticLoss();
    const hv = new Float64Array(2);
    loss.hessianVector(
      new Float64Array(2),
      { x: new Float64Array(0), size: 1, labels: Int32Array.from([0]) },
      2,
      Float64Array.from([Math.SQRT1_2, -Math.SQRT1_2]),
      hv,
    );
    assert.ok(Math.abs(norm(hv) - 0.5) < 1e-12);
  });
});

/** A random small architecture: MLP or ConvNet with a random activation, depth and pooling. */
function randomArchitecture(rng: Rng, index: number): { name: string; spec: ModelSpecInput; smooth: boolean } {
  const acts: LayerSpecInput[] = [
    { type: "softplus" },
    { type: "tanh" },
    { type: "sigmoid" },
    { type: "smoothRelu", mu: 0.2 },
    { type: "relu" },
  ];
  const act = acts[index % acts.length];
  const smooth = act.type !== "relu";
  const pick = (n: number): number => Math.floor(rng.uniform() * n);
  if (index % 2 === 0) {
    const depth = 1 + pick(4);
    const layers: LayerSpecInput[] = [];
    for (let d = 0; d < depth - 1; d++) layers.push({ type: "dense", units: 2 + pick(4) }, { ...act });
    layers.push({ type: "dense", units: 2 + pick(2), bias: rng.uniform() < 0.8 });
    return { name: `mlp-${act.type}-d${depth}`, spec: { input: [2 + pick(4)], layers }, smooth };
  }
  const convs = 1 + pick(2);
  const layers: LayerSpecInput[] = [];
  for (let d = 0; d < convs; d++) {
    layers.push({ type: "conv2d", filters: 2 + pick(2), kernel: 2 + pick(2), stride: 1 + pick(2), padding: pick(2) });
    if (rng.uniform() < 0.3) layers.push({ type: "batchNorm", epsilon: [0.1, 1, 10][pick(3)] });
    layers.push({ ...act });
    if (d === 0) layers.push(smooth ? { type: "avgPool2d", size: 2 } : { type: "maxPool2d", size: 2 });
  }
  layers.push({ type: "flatten" }, { type: "dense", units: 2 + pick(2) });
  return { name: `convnet-${act.type}-d${convs + 1}`, spec: { input: [1 + pick(2), 8, 8], layers }, smooth };
}

describe("certificates ≥ witnesses", () => {
  it("random MLPs and ConvNets, radii and losses: m, ℓ, L of the chain and ℓ_F, L_F of the objective", () => {
    const rng = new Rng(2024);
    const variants: CertificateVariant[] = ["printed", "corrected", "tight"];
    for (let index = 0; index < 30; index++) {
      let arch: ReturnType<typeof randomArchitecture>;
      let chain: Chain;
      try {
        arch = randomArchitecture(rng, index);
        chain = createChain(arch.spec, { dtype: "float64" });
      } catch {
        continue; // an image too small for the random kernels
      }
      const tau = chain.layers.filter((l) => l.biaffine >= 0).length;
      const radii = Array.from({ length: tau }, () => 0.3 + 2 * rng.uniform());
      const batch = 2 + Math.floor(rng.uniform() * 3);
      const inputNorm = 0.5 + 2 * rng.uniform();
      const objective = createObjective(index % 3 === 0 ? "squared" : "logistic", index % 4 === 0 ? 0.05 : 0);
      const opts = { radii, batch, inputNorm, seed: index, starts: 3, steps: 8, power: 6 };
      const cw = witnessChain(chain, opts);
      const ow = witnessObjective(chain, objective, opts);
      const certs = variants.map((variant) => certifyObjective(chain, objective, { radii, batch, inputNorm, variant }));
      for (const cert of certs) {
        const tag = `${arch.name} (${cert.chain.variant})`;
        assert.ok(cert.chain.bound >= cw.bound / SLACK, `${tag}: m ${cert.chain.bound} < witness ${cw.bound}`);
        assert.ok(cert.chain.lipschitz >= cw.lipschitz / SLACK, `${tag}: ℓ ${cert.chain.lipschitz} < witness ${cw.lipschitz}`);
        assert.ok(cert.lipschitz >= ow.lipschitz / SLACK, `${tag}: ℓ_F ${cert.lipschitz} < witness ${ow.lipschitz}`);
        if (arch.smooth) {
          assert.ok(Number.isFinite(cert.chain.smoothness), `${tag}: L not finite`);
          assert.ok(cert.chain.smoothness >= cw.smoothness / SLACK, `${tag}: L ${cert.chain.smoothness} < witness ${cw.smoothness}`);
          assert.ok(cert.smoothness >= ow.smoothness / SLACK, `${tag}: L_F ${cert.smoothness} < witness ${ow.smoothness}`);
          assert.ok(cert.smoothness >= ow.hessianEigenvalue / SLACK);
        } else assert.equal(cert.chain.smoothness, Infinity);
      }
      // tight ≤ corrected ≤ printed.
      for (const key of ["bound", "lipschitz", "smoothness"] as const) {
        assert.ok(certs[2].chain[key] <= certs[1].chain[key] * SLACK, `${arch.name}: tight ${key} above corrected`);
        assert.ok(certs[1].chain[key] <= certs[0].chain[key] * SLACK, `${arch.name}: corrected ${key} above printed`);
      }
    }
  });

  it("tightness report: ratios ≥ 1, the tight variant gains on the corrected one", () => {
    const rows = tightnessReport(
      [
        { name: "mlp-d2", spec: { input: [3], layers: [{ type: "dense", units: 4 }, { type: "tanh" }, { type: "dense", units: 2 }] } },
        {
          name: "mlp-d3",
          spec: {
            input: [3],
            layers: [
              { type: "dense", units: 4 },
              { type: "softplus" },
              { type: "dense", units: 4 },
              { type: "softplus" },
              { type: "dense", units: 2 },
            ],
          },
        },
      ],
      { radii: 1, batch: 2, inputNorm: 1, starts: 2, steps: 5, power: 5, variants: ["corrected", "tight"] },
    );
    assert.equal(rows.length, 4);
    for (const r of rows)
      for (const v of Object.values(r.ratio)) assert.ok((v as number) >= 1 / SLACK, `${r.name} ${r.variant}: ratio ${v}`);
    assert.ok(rows[1].ratio.smoothness <= rows[0].ratio.smoothness && rows[3].ratio.lipschitz < rows[2].ratio.lipschitz);
  });
});

describe("certificate API", () => {
  it("VGG-16 on 224×224×3, batch 128, is certified in well under a second", () => {
    const t0 = performance.now();
    for (const name of ["vgg16", "vgg16-smooth", "vgg16-smooth-bn"]) {
      const chain = createChain(getPreset(name, { epsilon: 1e-2 }));
      const cert = certifyObjective(chain, createObjective("logistic"), { radii: 1, batch: 128, inputNorm: 1 });
      assert.equal(cert.chain.layers.length, 16);
      assert.ok(cert.chain.lipschitz > 0 && Number.isFinite(cert.chain.lipschitz));
      if (name !== "vgg16") assert.ok(cert.stepSize > 0);
      else assert.equal(cert.stepSize, 0);
    }
    assert.ok(performance.now() - t0 < 1000);
  });

  it("radii, input norms and errors", () => {
    const chain = createChain({ input: [3], layers: [{ type: "dense", units: 2 }, { type: "relu" }, { type: "dense", units: 2 }] });
    assert.throws(() => certifyChain(chain, { radii: [1], batch: 2, inputNorm: 1 }), /radii: expected 2/);
    assert.throws(() => certifyChain(chain, { radii: 1, batch: 2 }), /inputNorm/);
    const a = certifyChain(chain, { radii: 1, batch: 4, maxSampleNorm: 3 });
    assert.equal(a.inputNorm, 6);
    assert.throws(() => certifiedStep(chain, createObjective("logistic"), { radii: 1, batch: 2, inputNorm: 1 }), /not certified smooth/);
    const affine = createChain({
      input: [3],
      layers: [
        { type: "dense", units: 2 },
        { type: "batchNorm", affine: true },
      ],
    });
    assert.throws(() => certifyChain(affine, { radii: 1, batch: 2, inputNorm: 1 }), /affine/);
  });

  it("step size, guarantees, projection and local radii", () => {
    const chain = createChain(
      { input: [3], layers: [{ type: "dense", units: 4 }, { type: "softplus" }, { type: "dense", units: 2 }] },
      { dtype: "float64" },
    );
    const objective = createObjective("logistic", 1e-3);
    const { stepSize, certificate, guarantee } = certifiedStep(chain, objective, { radii: [2, 1], batch: 8, inputNorm: 1, epsilon: 0.1 });
    assert.equal(stepSize, 1 / certificate.smoothness);
    assert.equal(certifiedStepSize(certificate), stepSize);
    assert.equal(guarantee.gdIterations, Math.ceil((2 * certificate.smoothness * certificate.bound) / 0.01));
    const g = convergenceGuarantee(certificate, { epsilon: 0.1, gap: 1, variance: 0.5 });
    assert.equal(g.sgdIterations, Math.ceil((4 * certificate.smoothness) / 0.01));
    assert.equal(g.sgdFloor, 3);
    const w = chain.initParams(1);
    w.forEach((_, i) => {
      w[i] *= 10;
    });
    const before = layerNorms(chain, w);
    const p = projectOntoBall(chain, w, [2, 1]);
    assert.equal(p.inside, false);
    assert.deepEqual(p.norms, before);
    const after = layerNorms(chain, w);
    assert.ok(Math.abs(after[0] - 2) < 1e-12 && Math.abs(after[1] - 1) < 1e-12);
    assert.equal(projectOntoBall(chain, w, [2, 1]).inside, true);
    assert.deepEqual(localRadii(chain, w, 0.5, [2, 3]), [2, 1.5]);
  });
});

// The batch-norm curvature constant (docs/certificates.md, "The batch-norm curvature constant"):
// K = sup_{z, ‖v‖=1} ‖D²h₁(z)[v, v]‖ for h₁(z) = z/√(‖z‖² + 1) is 48/(25√5), attained at ‖z‖ = 1/2, v ∥ z.
describe("batch-norm curvature constant", () => {
  const K = 48 / (25 * Math.sqrt(5));
  const h1 = (z: number[]) => {
    const s = 1 / Math.sqrt(z.reduce((a, x) => a + x * x, 0) + 1);
    return z.map((x) => x * s);
  };
  /** ‖D²h₁(z)[v, v]‖ by central second differences (float64). */
  const secondDifference = (z: number[], v: number[], eta = 1e-4) => {
    const p = h1(z.map((x, i) => x + eta * v[i]));
    const m = h1(z.map((x, i) => x - eta * v[i]));
    const c = h1(z);
    return Math.hypot(...c.map((ci, i) => (p[i] - 2 * ci + m[i]) / (eta * eta)));
  };
  /** The closed form of docs/certificates.md with z = t·e, v = cos θ·e + sin θ·f. */
  const closedForm = (t: number, theta: number) => {
    const c = Math.cos(theta);
    const s = Math.sin(theta);
    const q = Math.sqrt(1 + t * t);
    return Math.hypot((-t * (2 * c * c + 1)) / q ** 3 + (3 * t ** 3 * c * c) / q ** 5, (2 * t * c * s) / q ** 3);
  };

  it("the closed form matches central differences, and its maximum 48/(25√5) is attained at t = 1/2, θ = 0", () => {
    const rng = new Rng(11);
    for (let k = 0; k < 50; k++) {
      const t = 3 * rng.uniform();
      const theta = Math.PI * rng.uniform();
      const z = [t, 0, 0];
      const v = [Math.cos(theta), Math.sin(theta), 0];
      assert.ok(Math.abs(secondDifference(z, v) - closedForm(t, theta)) < 1e-6, `t = ${t}, θ = ${theta}`);
    }
    assert.ok(Math.abs(secondDifference([0.5, 0, 0], [1, 0, 0]) - K) < 1e-6);
    assert.ok(Math.abs(closedForm(0.5, 0) - K) < 1e-15);
  });

  it("no (t, θ) on a fine grid and no random z, v in ℝ⁴ exceeds 48/(25√5)", () => {
    let best = 0;
    for (let i = 0; i <= 3000; i++) for (let j = 0; j <= 90; j++) best = Math.max(best, closedForm(i / 500, (j * Math.PI) / 90));
    assert.ok(best <= K * (1 + 1e-12), `grid maximum ${best} > ${K}`);
    assert.ok(best > K - 1e-6, "the grid passes through the maximizer");
    const rng = new Rng(12);
    for (let k = 0; k < 300; k++) {
      const z = [0, 1, 2, 3].map(() => rng.normal() * (k % 3 === 0 ? 0.3 : 1.5));
      const v = [0, 1, 2, 3].map(() => rng.normal());
      const nv = Math.hypot(...v);
      assert.ok(
        secondDifference(
          z,
          v.map((x) => x / nv),
        ) <=
          K + 1e-6,
      );
    }
  });

  it("BATCH_NORM_CURVATURE is 48/(25√5) rounded up, within 1e-4", () => {
    assert.ok(BATCH_NORM_CURVATURE >= K && BATCH_NORM_CURVATURE < K + 1e-4, `${BATCH_NORM_CURVATURE} vs ${K}`);
  });
});
