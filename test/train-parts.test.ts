import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  certifiedCheckpointExtra,
  dataNorms,
  prepareCertified,
  projectInitialization,
  recertify,
  restoreCertified,
} from "../src/certify/projected-sgd.js";
import { createChain } from "../src/chain/chain.js";
import type { ModelSpecInput } from "../src/chain/spec.js";
import { Rng } from "../src/core/rng.js";
import { createDataset } from "../src/data/dataset.js";
import { createObjective } from "../src/objectives/index.js";
import { checkSecondOrderBudget, SECOND_ORDER_MEMORY_LIMIT, secondOrderWorkBytes } from "../src/second-order/budget.js";

// The parts of `chainopt train` moved out of the job: the certified projected-SGD state
// (src/certify/projected-sgd.ts) and the second-order budget checks (src/second-order/budget.ts).

function regression(n: number, d: number, seed: number) {
  const rng = new Rng(seed);
  const x = new Float32Array(n * d).map(() => rng.normal());
  const targets = new Float32Array(n).map(() => rng.normal());
  return createDataset({ name: "random", inputShape: [d], x, targets, targetSize: 1 });
}

describe("certified projected SGD state (projected-sgd.ts)", () => {
  const spec: ModelSpecInput = { input: [3], layers: [{ type: "dense", units: 4 }, { type: "softplus" }, { type: "dense", units: 1 }] };

  it("dataNorms: the largest sample and target norms", () => {
    const train = regression(7, 3, 1);
    const { maxSampleNorm, maxTargetNorm } = dataNorms(train, "squared");
    for (let i = 0; i < train.size; i++) {
      const xi = Math.hypot(...train.x.subarray(3 * i, 3 * i + 3));
      assert.ok(xi <= maxSampleNorm + 1e-12);
      assert.ok(Math.abs((train.targets as Float32Array)[i]) <= (maxTargetNorm as number) + 1e-12);
    }
    assert.equal(dataNorms(train, "logistic").maxTargetNorm, undefined);
  });

  it("a re-certified, projected state survives its checkpoint entries; malformed entries are refused", () => {
    const chain = createChain(spec, { dtype: "float64" });
    const train = regression(10, 3, 2);
    const objective = createObjective("squared", 0);
    const options = { radius: 0.5, batchSize: 4, loss: "squared" };
    const a = prepareCertified(options, chain, objective, train);
    assert.ok(a.stepSize > 0 && Number.isFinite(a.stepSize));
    const w = chain.initParams(3).map((v) => 10 * v);
    projectInitialization(a, chain, w);
    assert.equal(a.initialProjection, true);
    const record = recertify(a, chain, w, { step: 5, epoch: 2 });
    assert.equal(record.type, "recertify");
    assert.ok(a.current.stepSize >= a.stepSize);
    a.project(w.map((v) => 100 * v));
    assert.equal(a.projections, 1);
    const b = prepareCertified(options, chain, objective, train);
    restoreCertified(b, JSON.parse(JSON.stringify(certifiedCheckpointExtra(a))));
    assert.deepEqual(certifiedCheckpointExtra(b), certifiedCheckpointExtra(a));
    assert.throws(() => restoreCertified(b, {}), /extra\.certified\) is missing/);
    assert.throws(() => restoreCertified(b, { certified: { radii: [1] } }), /extra\.certified\.radii is malformed/);
  });

  it("refuses a non-smooth objective, naming the component", () => {
    const chain = createChain({ input: [3], layers: [{ type: "dense", units: 4 }, { type: "relu" }, { type: "dense", units: 1 }] });
    assert.throws(
      () => prepareCertified({ batchSize: 4, loss: "squared" }, chain, createObjective("squared", 0), regression(8, 3, 4)),
      /--step-size certified: the objective is not smooth .*layers\[1\] \(relu\)/,
    );
  });
});

describe("second-order budget (budget.ts)", () => {
  const chain = createChain({ input: [3], layers: [{ type: "dense", units: 4 }, { type: "tanh" }, { type: "dense", units: 2 }] });

  it("the Gram methods need 3 q × q float64 matrices, q = batch × outputs; Newton grows faster than linearly in the batch", () => {
    for (const n of [1, 5, 17]) {
      assert.equal(secondOrderWorkBytes("gauss-newton", chain, n), 24 * (2 * n) ** 2);
      assert.equal(secondOrderWorkBytes("ggn", chain, n), 24 * (2 * n) ** 2);
    }
    // Dense stage matrices: terms quadratic in the batch (b × a, (a + ρ)²) dominate.
    assert.ok(secondOrderWorkBytes("newton", chain, 10) > 2 * secondOrderWorkBytes("newton", chain, 5));
  });

  it("accepts a small batch and refuses one past the limit or a loss the method does not handle, naming the flag", () => {
    checkSecondOrderBudget("gauss-newton", chain, { loss: "logistic", batch: 8 });
    checkSecondOrderBudget("newton", chain, { loss: "squared", batch: 8 });
    const q = Math.ceil(Math.sqrt(SECOND_ORDER_MEMORY_LIMIT / 24)) + 1; // past the limit
    assert.throws(
      () => checkSecondOrderBudget("gauss-newton", chain, { loss: "logistic", batch: Math.ceil(q / 2) }),
      /Gram matrix .* use a smaller --batch-size/,
    );
    assert.throws(() => checkSecondOrderBudget("ggn", chain, { loss: "logistic", batch: 8 }), /--loss squared/);
  });
});
