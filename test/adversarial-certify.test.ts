import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  attackBatch,
  type Batch,
  certifiedAccuracy,
  certifiedRadii,
  createChain,
  createObjective,
  forward,
  gramIterationBound,
  type InputDomain,
  inputLipschitz,
  inputScale,
  jacobianLowerBound,
  type ModelSpecInput,
  operatorNormPowerIteration,
  Rng,
  toRaw,
  valueAndGradient,
} from "../src/index.js";

// Certified robustness (src/adversarial/lipschitz.ts): Gram-iteration bounds against power
// iteration, the input Lipschitz bound against local Jacobian norms, and no attack ever succeeding
// inside a certified radius, on random and trained networks.

const loss = createObjective("logistic").loss;

describe("spectral norms", () => {
  it("Gram iteration bounds ‖A‖₂ from above, tightly; power iteration from below", () => {
    const rng = new Rng(3);
    for (let trial = 0; trial < 20; trial++) {
      const rows = 1 + rng.int(30);
      const cols = 1 + rng.int(30);
      const a = new Float64Array(rows * cols);
      for (let i = 0; i < a.length; i++) a[i] = rng.normal();
      const apply = (v: Float64Array) => {
        const u = new Float64Array(rows);
        for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) u[i] += a[i * cols + j] * v[j];
        return u;
      };
      const adjoint = (u: ArrayLike<number>) => {
        const v = new Float64Array(cols);
        for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) v[j] += a[i * cols + j] * u[i];
        return v;
      };
      const sigma = operatorNormPowerIteration(cols, apply, adjoint, { iterations: 5000, tolerance: 1e-15, rng });
      const bound = gramIterationBound(a, rows, cols, { lower: sigma, target: 1e-9 });
      assert.ok(bound >= sigma, `bound ${bound} < power iteration ${sigma}`);
      assert.ok(bound <= sigma * (1 + 1e-6), `bound ${bound} not tight vs ${sigma}`);
      // Any vector's gain is below the bound.
      const v = new Float64Array(cols).map(() => rng.normal());
      const gain = Math.hypot(...apply(v)) / Math.hypot(...v);
      assert.ok(gain <= bound);
    }
  });
});

const specs: Record<string, ModelSpecInput> = {
  mlp: {
    input: [1, 4, 4],
    layers: [
      { type: "flatten" },
      { type: "dense", units: 20 },
      { type: "relu" },
      { type: "dense", units: 12 },
      { type: "tanh" },
      { type: "dense", units: 4 },
    ],
  },
  conv: {
    input: [1, 6, 6],
    layers: [
      { type: "conv2d", filters: 3, kernel: 3, padding: 1 },
      { type: "batchNorm" },
      { type: "relu" },
      { type: "maxPool2d", size: 2 },
      { type: "flatten" },
      { type: "dense", units: 4 },
    ],
  },
};
const domain: InputDomain = { lower: 0, upper: 1, mean: [0.5], std: [0.5] };

function batchOf(chain: ReturnType<typeof createChain>, rng: Rng, n: number, teacher?: (x: Float64Array) => number): Batch {
  const d = chain.inputSize;
  const x = new Float64Array(n * d);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const raw = new Float64Array(d).map(() => rng.uniform());
    for (let j = 0; j < d; j++) x[i * d + j] = (raw[j] - domain.mean[0]) / domain.std[0];
    labels[i] = teacher ? teacher(raw) : rng.int(chain.outputSize);
  }
  return { x, size: n, labels };
}

function train(chain: ReturnType<typeof createChain>, w: Float64Array, b: Batch, state: Float64Array | undefined, steps: number): void {
  const objective = createObjective("logistic");
  for (let s = 0; s < steps; s++) {
    const { grad } = valueAndGradient(chain, objective, w, b, { state, updateState: !!state, training: true });
    for (let i = 0; i < w.length; i++) w[i] -= 0.2 * grad[i];
  }
}

describe("certified radii", () => {
  for (const [name, spec] of Object.entries(specs)) {
    for (const trained of [false, true]) {
      it(`${name} (${trained ? "trained" : "random"}): L ≥ local Jacobian norms; no attack succeeds inside a certified radius`, () => {
        const chain = createChain(spec, { dtype: "float64" });
        const rng = new Rng(trained ? 7 : 8);
        const w = chain.initParams(trained ? 1 : 2) as Float64Array;
        const state = chain.stateSize > 0 ? (chain.initState() as Float64Array) : undefined;
        const teacher = (raw: Float64Array) => (raw[0] + raw[3] > 1 ? 1 : 0) + (raw[5] > 0.5 ? 2 : 0);
        const b = batchOf(chain, rng, 24, teacher);
        if (trained) train(chain, w, b, state, 150);
        const lip = inputLipschitz(chain, w, { state });
        assert.ok(lip.frobeniusProduct >= lip.autolip * (1 - 1e-12));
        assert.ok(lip.lipschitz >= lip.autolip * (1 - 1e-12));
        const local = jacobianLowerBound(chain, w, b.x, b.size, { state, iterations: 100 });
        assert.ok(local <= lip.lipschitz * (1 + 1e-9), `local ${local} > certified ${lip.lipschitz}`);
        const out = Float64Array.from(forward(chain, w, b.x, b.size, { state }));
        const scale = inputScale(domain);
        const radii = certifiedRadii(chain, w, out, b.labels!, b.size, lip, scale);
        assert.ok(
          radii.correct.some((c) => c === 1),
          "some sample is classified correctly",
        );
        for (let i = 0; i < b.size; i++) assert.ok(radii.radius[i] >= radii.globalRadius[i]);
        // Attack each sample at its certified radius: the prediction never changes.
        const x0 = toRaw(chain, domain, b.x, b.size);
        let flips = 0;
        for (const factor of [1 - 1e-9, 30]) {
          for (let i = 0; i < b.size; i++) {
            if (!radii.correct[i]) continue;
            const one: Batch = {
              x: b.x.subarray(i * chain.inputSize, (i + 1) * chain.inputSize),
              size: 1,
              labels: b.labels!.subarray(i, i + 1),
            };
            const eps = radii.radius[i] * factor;
            const adv = attackBatch(chain, loss, w, one, { kind: "pgd", norm: "l2", eps, steps: 30, restarts: 3, domain, rng, state });
            const o = forward(chain, w, adv.x, 1, { state });
            let best = 0;
            for (let k = 1; k < chain.outputSize; k++) if (o[k] > o[best]) best = k;
            if (best !== one.labels![0]) {
              flips++;
              const xa = toRaw(chain, domain, adv.x, 1);
              let s = 0;
              for (let j = 0; j < chain.inputSize; j++) s += (xa[j] - x0[i * chain.inputSize + j]) ** 2;
              assert.ok(
                Math.sqrt(s) >= radii.radius[i],
                `sample ${i}: attack succeeded at ‖δ‖ = ${Math.sqrt(s)} < certified ${radii.radius[i]}`,
              );
              assert.ok(factor > 1, `sample ${i}: the attack succeeded inside its certified radius`);
            }
          }
        }
        assert.ok(flips > 0, "the attack succeeds somewhere beyond the certified radii (the test is not vacuous)");
        assert.ok(certifiedAccuracy(radii, 0) >= certifiedAccuracy(radii, 0.01));
      });
    }
  }
});
