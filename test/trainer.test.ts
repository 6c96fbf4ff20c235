import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createChain } from "../src/chain/chain.js";
import { Rng } from "../src/core/rng.js";
import { allFinite } from "../src/core/vector.js";
import { BatchLoader, createDataset, type Dataset } from "../src/data/dataset.js";
import { createObjective } from "../src/objectives/objective.js";
import { createOptimizer } from "../src/optim/aliases.js";
import { createSchedule } from "../src/optim/schedules.js";
import { stateToTensors } from "../src/optim/state.js";
import { NumericalFaultError, Trainer, type TrainerOptions } from "../src/train/trainer.js";

// The Trainer in process: snapshot/restore continues bit-identically with every piece of state
// (optimizer, schedule step, data order, averaging, early stopping); non-finite steps stop with a
// message naming the step and layer, or are undone exactly in skip mode.

const spec = {
  input: [6],
  layers: [{ type: "dense", units: 8 }, { type: "batchNorm" }, { type: "tanh" }, { type: "dense", units: 3 }],
};

function data(n: number, seed: number): Dataset {
  const rng = new Rng(seed);
  const x = new Float32Array(n * 6);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < 6; j++) {
      x[i * 6 + j] = rng.normal();
      s += (j + 1) * x[i * 6 + j];
    }
    labels[i] = s > 2 ? 2 : s > -2 ? 1 : 0;
  }
  return createDataset({ name: `toy-${seed}`, inputShape: [6], x, labels, classes: 3 });
}

const train = data(90, 1);
const validation = data(30, 2);

function makeTrainer(overrides: Partial<TrainerOptions> = {}, lr = 0.05): Trainer {
  const chain = createChain(spec as never);
  const schedule = createSchedule("cosine", { lr, totalSteps: 6 * 8 });
  return new Trainer(
    {
      chain,
      objective: createObjective("logistic"),
      optimizer: createOptimizer("momentum", { lr: schedule, momentum: 0.9 }),
      learningRate: schedule,
      batchSize: 16,
      seed: 5,
      average: { kind: "polyak" },
      earlyStopping: { patience: 2 },
      ...overrides,
    },
    { params: chain.initParams(3) },
  );
}

const bytes = (a: Float32Array | Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe("Trainer", () => {
  it("snapshot after epoch 3, restore into a fresh trainer: bit-identical to the uninterrupted run", () => {
    const a = makeTrainer();
    const records = [];
    for (let e = 0; e < 6 && !a.stopped; e++) records.push(a.runEpoch({ train, validation }));
    const b = makeTrainer();
    for (let e = 0; e < 3; e++) b.runEpoch({ train, validation });
    const snap = b.snapshot();
    const c = makeTrainer();
    c.restore(snap);
    const resumed = [];
    while (c.epoch < 6 && !c.stopped) resumed.push(c.runEpoch({ train, validation }));
    const strip = (r: object) => ({ ...r, seconds: 0, samplesPerSecond: 0 });
    assert.deepEqual(resumed.map(strip), records.slice(3).map(strip));
    assert.ok(bytes(c.w).equals(bytes(a.w)));
    assert.ok(bytes(c.finalParams()).equals(bytes(a.finalParams())));
    assert.ok(bytes(c.state).equals(bytes(a.state)));
    assert.deepEqual(stateToTensors(c.optimizerState), stateToTensors(a.optimizerState));
    assert.equal(c.step, a.step);
    // The schedule's position resumed: the learning rate of the last step is cosine's, not η.
    assert.ok(records.at(-1)!.learningRate < 0.05);
  });

  it("restore keeps an early-stopped run stopped, and refuses a snapshot of another configuration", () => {
    const a = makeTrainer({ earlyStopping: { patience: 1, minDelta: 10 } });
    a.runEpoch({ train, validation });
    a.runEpoch({ train, validation });
    assert.equal(a.stopped, true);
    const b = makeTrainer({ earlyStopping: { patience: 1, minDelta: 10 } });
    b.restore(a.snapshot());
    assert.equal(b.stopped, true);
    assert.throws(
      () => makeTrainer({ average: undefined }).restore(a.snapshot()),
      /has an averaged iterate, but this trainer does not average/,
    );
  });

  it("a non-finite step stops with an error naming the step and the layer", () => {
    const t = makeTrainer({ average: undefined, earlyStopping: undefined, optimizer: createOptimizer("sgd", { lr: 1e38 }) });
    let error: unknown;
    try {
      for (let e = 0; e < 3; e++) t.runEpoch({ train });
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof NumericalFaultError, String(error));
    assert.match(
      error.message,
      /^non-finite (loss|gradient|parameters) at step \d+ \(epoch \d+, batch \d+ of 6\); first at layers\[\d\] \((dense|batchNorm|tanh)\) /,
    );
    assert.ok(error.step >= 1);
    assert.match(String(error.component), /^layers\[\d\]/);
  });

  it("skip mode undoes a non-finite step exactly (parameters, optimizer and batch-norm state) and counts it", () => {
    const t = makeTrainer({
      average: undefined,
      earlyStopping: undefined,
      onNaN: "skip",
      optimizer: createOptimizer("adam", { lr: 1e30 }),
    });
    const loader = new BatchLoader(train, { batchSize: 16, dtype: "float32" });
    let skipped = 0;
    for (let k = 0; k < 12; k++) {
      const w0 = t.w.slice();
      const s0 = t.state.slice();
      const o0 = stateToTensors(t.optimizerState);
      const r = t.trainStep(loader.batch(k % 6, null));
      assert.equal(t.step, k + 1);
      assert.ok(allFinite(t.w) && allFinite(t.state));
      if (r.skipped) {
        skipped++;
        assert.ok(bytes(t.w).equals(bytes(w0)));
        assert.ok(bytes(t.state).equals(bytes(s0)));
        assert.deepEqual(stateToTensors(t.optimizerState), o0);
      }
    }
    // Adam's first steps move every weight by ≈ η = 1e30: the next forward pass overflows.
    assert.ok(skipped > 0);
    // Every later step is skipped: a whole epoch's worth of consecutive skips stops the run
    // (TrainerOptions.maxConsecutiveSkips, docs/training.md) instead of "succeeding" without progress.
    assert.throws(() => t.runEpoch({ train }), /--on-nan skip: \d+ consecutive steps were skipped/);
  });

  it("skip mode: maxConsecutiveSkips bounds the skips in a row; each epoch record counts its skipped steps", () => {
    const t = makeTrainer({
      average: undefined,
      earlyStopping: undefined,
      onNaN: "skip",
      maxConsecutiveSkips: 1000,
      optimizer: createOptimizer("adam", { lr: 1e30 }),
    });
    const r = t.runEpoch({ train });
    assert.equal(r.steps, 6);
    assert.ok(r.skippedSteps > 0 && r.skippedSteps < 6, String(r.skippedSteps));
    const t2 = makeTrainer({ average: undefined, earlyStopping: undefined, onNaN: "skip", maxConsecutiveSkips: 3 });
    t2.runEpoch({ train });
    const bad = makeTrainer({
      average: undefined,
      earlyStopping: undefined,
      onNaN: "skip",
      maxConsecutiveSkips: 3,
      optimizer: createOptimizer("adam", { lr: 1e30 }),
    });
    assert.throws(() => bad.runEpoch({ train }), /3 consecutive steps were skipped .*the limit is 3/);
  });
});
