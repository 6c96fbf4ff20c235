import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import {
  type AttackNorm,
  attackBatch,
  type Batch,
  boxDomain,
  createChain,
  createObjective,
  type InputDomain,
  lossInputGradient,
  type ModelSpecInput,
  Rng,
  robustEvaluation,
  toRaw,
} from "../src/index.js";

// Attacks (src/adversarial/attack.ts): the input-gradient oracle against float64 central
// differences, PGD's feasibility (ball and box) on random instances, robust ≤ clean accuracy, and
// agreement with a PyTorch reference (scripts/torch-fixtures/attack_fixture.py).

const loss = createObjective("logistic").loss;

function randomBatch(rng: Rng, n: number, d: number, classes: number, domain: InputDomain): Batch {
  const x = new Float64Array(n * d);
  for (let i = 0; i < x.length; i++) x[i] = (rng.uniform() - domain.mean[0]) / domain.std[0];
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) labels[i] = rng.int(classes);
  return { x, size: n, labels };
}

describe("input-gradient oracle", () => {
  const specs: Record<string, ModelSpecInput> = {
    mlp: {
      input: [5],
      layers: [
        { type: "dense", units: 7 },
        { type: "tanh" },
        { type: "dense", units: 6 },
        { type: "softplus" },
        { type: "dense", units: 3 },
      ],
    },
    conv: {
      input: [2, 5, 5],
      layers: [
        { type: "conv2d", filters: 3, kernel: 3, padding: 1 },
        { type: "sigmoid" },
        { type: "avgPool2d", size: 2 },
        { type: "flatten" },
        { type: "dense", units: 4 },
      ],
    },
  };
  for (const [name, spec] of Object.entries(specs)) {
    it(`${name}: ∇_x f matches float64 central differences`, () => {
      const chain = createChain(spec, { dtype: "float64" });
      const w = chain.initParams(3);
      const rng = new Rng(5);
      const b = randomBatch(rng, 3, chain.inputSize, chain.outputSize, boxDomain());
      const { dx, loss: f0 } = lossInputGradient(chain, loss, w, b);
      const g = Float64Array.from(dx);
      assert.ok(Number.isFinite(f0));
      const h = 1e-6;
      let worst = 0;
      let scale = 0;
      for (let j = 0; j < b.x.length; j++) {
        const xp = Float64Array.from(b.x);
        xp[j] += h;
        const xm = Float64Array.from(b.x);
        xm[j] -= h;
        const fp = lossInputGradient(chain, loss, w, { ...b, x: xp }).loss;
        const fm = lossInputGradient(chain, loss, w, { ...b, x: xm }).loss;
        worst = Math.max(worst, Math.abs((fp - fm) / (2 * h) - g[j]));
        scale = Math.max(scale, Math.abs(g[j]));
      }
      assert.ok(scale > 1e-4, "the gradient is not trivially zero");
      assert.ok(worst / scale < 1e-6, `relative error ${worst / scale}`);
    });
  }
});

describe("attacks", () => {
  const spec: ModelSpecInput = {
    input: [1, 4, 4],
    layers: [{ type: "flatten" }, { type: "dense", units: 16 }, { type: "relu" }, { type: "dense", units: 3 }],
  };
  const domain: InputDomain = { lower: 0, upper: 1, mean: [0.3], std: [0.4] };

  it("PGD and FGSM never leave the ball or the box (random instances)", () => {
    const rng = new Rng(11);
    for (let trial = 0; trial < 40; trial++) {
      const chain = createChain(spec, { dtype: trial % 2 ? "float32" : "float64" });
      const w = chain.initParams(trial);
      const b = randomBatch(rng, 5, chain.inputSize, 3, domain);
      const norm: AttackNorm = trial % 4 < 2 ? "linf" : "l2";
      const eps = 0.02 + rng.uniform() * (norm === "linf" ? 0.5 : 3);
      const kind = trial % 5 === 0 ? "fgsm" : "pgd";
      const res = attackBatch(chain, loss, w, b, {
        kind,
        norm,
        eps,
        steps: 1 + rng.int(8),
        stepSize: rng.uniform() * 2 * eps + 1e-3,
        restarts: 1 + rng.int(3),
        domain,
        rng,
      });
      const x0 = toRaw(chain, domain, b.x, b.size);
      const xa = toRaw(chain, domain, res.x, b.size);
      const d = chain.inputSize;
      const tol = chain.dtype === "float32" ? 1e-6 * (1 + eps) : 1e-12;
      for (let i = 0; i < b.size; i++) {
        let s = 0;
        let m = 0;
        for (let j = i * d; j < (i + 1) * d; j++) {
          assert.ok(xa[j] >= -tol && xa[j] <= 1 + tol, `box violated: ${xa[j]}`);
          s += (xa[j] - x0[j]) ** 2;
          m = Math.max(m, Math.abs(xa[j] - x0[j]));
        }
        const dist = norm === "linf" ? m : Math.sqrt(s);
        assert.ok(dist <= eps * (1 + 1e-9) + tol, `${kind} ${norm}: ‖δ‖ = ${dist} > ε = ${eps}`);
      }
    }
  });

  it("robust accuracy ≤ clean accuracy, and PGD raises the loss", () => {
    const rng = new Rng(2);
    for (let trial = 0; trial < 6; trial++) {
      const chain = createChain(spec, { dtype: "float64" });
      const w = chain.initParams(100 + trial);
      const b = randomBatch(rng, 20, chain.inputSize, 3, domain);
      const r = robustEvaluation(chain, loss, w, b, { kind: "pgd", norm: trial % 2 ? "l2" : "linf", eps: 0.2, steps: 10, domain, rng });
      assert.ok(r.robustAccuracy <= r.cleanAccuracy);
      assert.ok(r.robustLoss >= r.cleanLoss, `robust loss ${r.robustLoss} < clean ${r.cleanLoss}`);
    }
  });

  it("rejects a negative ε, an unknown norm and inputs outside the box", () => {
    const chain = createChain(spec, { dtype: "float64" });
    const w = chain.initParams(0);
    const b = randomBatch(new Rng(1), 2, chain.inputSize, 3, domain);
    assert.throws(() => attackBatch(chain, loss, w, b, { kind: "pgd", norm: "linf", eps: -1, domain, rng: new Rng(0) }), /eps/);
    assert.throws(() => attackBatch(chain, loss, w, b, { kind: "pgd", norm: "l1" as AttackNorm, eps: 1, domain, rng: new Rng(0) }), /norm/);
    const far = { ...b, x: Float64Array.from(b.x, (v) => v + 100) };
    assert.throws(() => attackBatch(chain, loss, w, far, { kind: "fgsm", norm: "linf", eps: 0.1, domain }), /outside the box/);
  });

  it("agrees with the PyTorch reference (same weights, start and steps)", () => {
    const fx = JSON.parse(readFileSync(new URL("../../test/fixtures/torch-attack.json", import.meta.url), "utf8")) as {
      spec: ModelSpecInput;
      domain: InputDomain;
      params: number[];
      x: number[];
      labels: number[];
      cases: {
        kind: "fgsm" | "pgd";
        norm: AttackNorm;
        eps: number;
        steps: number;
        stepSize: number;
        start: number[] | null;
        adversarial: number[];
      }[];
    };
    for (const dtype of ["float64", "float32"] as const) {
      const chain = createChain(fx.spec, { dtype });
      const w = dtype === "float64" ? Float64Array.from(fx.params) : Float32Array.from(fx.params);
      const b: Batch = {
        x: dtype === "float64" ? Float64Array.from(fx.x) : Float32Array.from(fx.x),
        size: fx.labels.length,
        labels: Int32Array.from(fx.labels),
      };
      for (const c of fx.cases) {
        const r = attackBatch(chain, loss, w, b, {
          kind: c.kind,
          norm: c.norm,
          eps: c.eps,
          steps: c.steps,
          stepSize: c.stepSize,
          start: c.start ?? undefined,
          restarts: 1,
          domain: fx.domain,
        });
        let worst = 0;
        for (let j = 0; j < c.adversarial.length; j++) worst = Math.max(worst, Math.abs(r.x[j] - c.adversarial[j]));
        // float64: agreement to rounding; float32: to float32 rounding of values of order 4 (z = (x − 0.5)/0.25).
        const tol = dtype === "float64" ? 1e-12 : 4e-6;
        assert.ok(worst <= tol, `${dtype} ${c.kind} ${c.norm}: max |Δ| = ${worst}`);
      }
    }
  });
});
