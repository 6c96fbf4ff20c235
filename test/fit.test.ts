import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createChain } from "../src/chain/chain.js";
import { Rng } from "../src/core/rng.js";
import { createDataset, type Dataset } from "../src/data/dataset.js";
import { fitToRunDir } from "../src/node/fit-run.js";
import { ConvexClusteringLoss } from "../src/objectives/clustering.js";
import { createObjective } from "../src/objectives/objective.js";
import { createOptimizer } from "../src/optim/aliases.js";
import { createSchedule } from "../src/optim/schedules.js";
import { type FitOptions, fit } from "../src/train/fit.js";
import { type EpochRecord, NumericalFaultError, Trainer } from "../src/train/trainer.js";

// The public training API: `fit` is the Trainer's epoch loop (bit-identical to driving the Trainer
// by hand), with callbacks; `fitToRunDir` adds a run directory and resumes bit-identically.

const spec = {
  input: [5],
  layers: [{ type: "dense", units: 7 }, { type: "batchNorm" }, { type: "tanh" }, { type: "dense", units: 3 }],
};

function data(n: number, seed: number): Dataset {
  const rng = new Rng(seed);
  const x = new Float32Array(n * 5);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < 5; j++) {
      x[i * 5 + j] = rng.normal();
      s += (j - 2) * x[i * 5 + j];
    }
    labels[i] = s > 1.5 ? 2 : s > -1.5 ? 1 : 0;
  }
  return createDataset({ name: `toy-${seed}`, inputShape: [5], x, labels, classes: 3 });
}

const sets = { train: data(70, 1), validation: data(20, 2), test: data(25, 3) };
const chain = () => createChain(spec as never, { dtype: "float64" });

function options(overrides: Partial<FitOptions> = {}): FitOptions {
  const schedule = createSchedule("cosine", { lr: 0.1, totalSteps: 4 * 5 });
  return {
    objective: createObjective("logistic", 1e-4),
    optimizer: createOptimizer("momentum", { lr: schedule, momentum: 0.9 }),
    learningRate: schedule,
    batchSize: 16,
    seed: 4,
    epochs: 4,
    average: { kind: "polyak" },
    ...overrides,
  };
}

const bytes = (a: Float32Array | Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const strip = (r: EpochRecord) => ({ ...r, seconds: 0, samplesPerSecond: 0 });

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "chainopt-fit-"));
  dirs.push(d);
  return d;
};

describe("fit", () => {
  it("is the Trainer's loop: same history, parameters and test numbers as driving the Trainer by hand", async () => {
    const c = chain();
    const steps: number[] = [];
    const ended: number[] = [];
    const result = await fit(c, sets, {
      ...options(),
      callbacks: { onStep: (p) => steps.push(p.batch), onEpochEnd: (r) => void ended.push(r.epoch) },
    });
    const o = options();
    const c2 = chain();
    const trainer = new Trainer({ ...o, chain: c2 }, { params: c2.initParams(o.seed) });
    const records: EpochRecord[] = [];
    for (let e = 0; e < 4; e++) records.push(trainer.runEpoch({ train: sets.train, validation: sets.validation }));
    assert.deepEqual(result.history.map(strip), records.map(strip));
    assert.ok(bytes(result.params).equals(bytes(trainer.finalParams())));
    const test = trainer.evaluate(sets.test, trainer.finalParams());
    assert.deepEqual(result.test, test);
    assert.equal(steps.length, 4 * 5); // ⌈70 / 16⌉ = 5 batches per epoch
    assert.deepEqual(ended, [1, 2, 3, 4]);
    assert.equal(result.interrupted, false);
    assert.ok(result.history.every((r) => Number.isFinite(r.valLoss) && r.valAccuracy !== undefined));
  });

  it("onEpochEnd returning 'stop' interrupts (no test numbers); resuming from the snapshot is bit-identical", async () => {
    const full = await fit(chain(), sets, options());
    const first = await fit(chain(), sets, {
      ...options(),
      callbacks: { onEpochEnd: (r) => (r.epoch === 2 ? "stop" : undefined) },
    });
    assert.equal(first.interrupted, true);
    assert.equal(first.history.length, 2);
    assert.equal(first.test, undefined);
    const rest = await fit(chain(), sets, { ...options(), resume: first.trainer.snapshot() });
    assert.deepEqual(rest.history.map(strip), full.history.slice(2).map(strip));
    assert.ok(bytes(rest.params).equals(bytes(full.params)));
  });

  it("shouldStop before the first epoch trains nothing", async () => {
    const c = chain();
    const w0 = c.initParams(4);
    const r = await fit(c, sets, { ...options({ average: undefined }), callbacks: { shouldStop: () => true } });
    assert.equal(r.interrupted, true);
    assert.equal(r.history.length, 0);
    assert.ok(bytes(r.params).equals(bytes(w0)));
  });

  it("the NaN policy: stop throws a NumericalFaultError naming the step; skip trains on", async () => {
    const huge = { optimizer: createOptimizer("sgd", { lr: 1e300 }), learningRate: 1e300, average: undefined };
    await assert.rejects(fit(chain(), sets, options(huge)), (e: unknown) => e instanceof NumericalFaultError && /step \d+/.test(e.message));
    // Every step after the first overflows: skip mode stops after an epoch's worth of consecutive
    // skips (TrainerOptions.maxConsecutiveSkips, docs/training.md) unless the limit is raised.
    await assert.rejects(fit(chain(), sets, options({ ...huge, onNaN: "skip" })), /consecutive steps were skipped/);
    const r = await fit(chain(), sets, options({ ...huge, onNaN: "skip", maxConsecutiveSkips: 1000 }));
    assert.equal(r.history.length, 4);
    assert.ok(r.history.some((h) => h.skippedSteps > 0));
  });
});

describe("fitToRunDir", () => {
  it("writes config, metrics, checkpoints, model and summary; a stopped run resumes bit-identically", async () => {
    const full = await fitToRunDir(chain(), sets, { ...options(), out: join(tempDir(), "full"), config: { data: "toy" } });
    const lines = readFileSync(join(full.runDir, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((l) => l.type),
      ["epoch", "epoch", "epoch", "epoch", "final"],
    );
    const config = JSON.parse(readFileSync(join(full.runDir, "config.json"), "utf8"));
    assert.equal(config.data, "toy");
    assert.deepEqual(config.model.input, [5]);
    const summary = JSON.parse(readFileSync(join(full.runDir, "summary.json"), "utf8"));
    assert.equal(summary.epochs, 4);
    assert.equal(summary.testAccuracy, full.test?.accuracy);

    const out = join(tempDir(), "split");
    const signal = { stopRequested: false };
    const first = await fitToRunDir(chain(), sets, {
      ...options(),
      out,
      signal,
      callbacks: {
        onEpochEnd: (r) => {
          if (r.epoch === 1) signal.stopRequested = true;
          return undefined;
        },
      },
    });
    assert.equal(first.interrupted, true);
    assert.equal(first.history.length, 1);
    const rest = await fitToRunDir(chain(), sets, { ...options(), resumeDir: out });
    assert.equal(rest.interrupted, false);
    assert.deepEqual(rest.history.map(strip), full.history.map(strip));
    assert.ok(bytes(rest.params).equals(bytes(full.params)));
    assert.deepEqual(rest.test, full.test);
  });

  it("checkpointEvery: checkpoints every k epochs, at the end and on a stop request; resumes bit-identically", async () => {
    const every = { ...options(), checkpointEvery: 3 };
    const lastEpoch = (dir: string) => JSON.parse(readFileSync(join(dir, "checkpoints", "index.json"), "utf8")).last.epoch as number;
    const full = await fitToRunDir(chain(), sets, { ...every, out: join(tempDir(), "full") });
    assert.equal(lastEpoch(full.runDir), 4);
    const reference = await fitToRunDir(chain(), sets, { ...options(), out: join(tempDir(), "every-epoch") });
    assert.ok(bytes(full.params).equals(bytes(reference.params)));
    // Stopped by the caller at epoch 2 (no checkpoint there): the resume repeats epochs 1-2 from epoch 0.
    const byCallback = join(tempDir(), "callback");
    const first = await fitToRunDir(chain(), sets, {
      ...every,
      out: byCallback,
      callbacks: { onEpochEnd: (r) => (r.epoch === 2 ? "stop" : undefined) },
    });
    assert.equal(first.interrupted, true);
    assert.equal(lastEpoch(byCallback), 0);
    // Stopped through the signal at epoch 2: checkpointed there.
    const bySignal = join(tempDir(), "signal");
    const signal = { stopRequested: false };
    await fitToRunDir(chain(), sets, {
      ...every,
      out: bySignal,
      signal,
      callbacks: {
        onEpochStart: (e) => {
          if (e === 2) signal.stopRequested = true;
        },
      },
    });
    assert.equal(lastEpoch(bySignal), 2);
    for (const dir of [byCallback, bySignal]) {
      const rest = await fitToRunDir(chain(), sets, { ...every, resumeDir: dir });
      assert.deepEqual(rest.history.map(strip), full.history.map(strip));
      assert.ok(bytes(rest.params).equals(bytes(full.params)));
      const epochs = readFileSync(join(dir, "metrics.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l))
        .filter((l) => l.type === "epoch")
        .map((l) => l.epoch);
      assert.deepEqual(epochs, [1, 2, 3, 4]);
    }
    const bad = join(tempDir(), "bad");
    await assert.rejects(
      fitToRunDir(chain(), sets, { ...options(), checkpointEvery: 0, out: bad }),
      /checkpointEvery: expected a positive integer/,
    );
    assert.ok(!existsSync(bad));
  });

  it("a loss with state (the clustering objective's warm start) is checkpointed: the resume is bit-identical", async () => {
    // Full-batch, loose inner accuracy: each epoch's inner solve depends on where it is warm-started.
    const clustering = (overrides: Partial<FitOptions> = {}): FitOptions => ({
      objective: createObjective(new ConvexClusteringLoss({ lambda: 0.05, neighbors: 5, tolerance: 1e-2, maxIterations: 20 })),
      optimizer: createOptimizer("adam", { lr: 0.01 }),
      batchSize: sets.train.size,
      shuffle: false,
      seed: 1,
      epochs: 4,
      ...overrides,
    });
    const train = { train: sets.train };
    const full = await fitToRunDir(chain(), train, { ...clustering(), out: join(tempDir(), "full") });
    const out = join(tempDir(), "split");
    await fitToRunDir(chain(), train, { ...clustering(), out, callbacks: { onEpochEnd: (r) => (r.epoch === 2 ? "stop" : undefined) } });
    const rest = await fitToRunDir(chain(), train, { ...clustering(), resumeDir: out });
    assert.ok(bytes(rest.params).equals(bytes(full.params)));
    assert.deepEqual(rest.history.map(strip), full.history.map(strip));
    // The warm start matters here: resumed without it, the run takes another path.
    const first = await fit(chain(), train, clustering({ epochs: 2 }));
    const snapshot = first.trainer.snapshot();
    assert.ok(snapshot.loss instanceof Float64Array && snapshot.loss.length > 0);
    const cold = await fit(chain(), train, clustering({ resume: { ...snapshot, loss: null } }));
    const warm = await fit(chain(), train, clustering({ resume: snapshot }));
    assert.ok(bytes(warm.params).equals(bytes(full.params)));
    assert.ok(!bytes(cold.params).equals(bytes(full.params)));
  });

  it("a numerical fault is logged and names the last good checkpoint", async () => {
    const out = join(tempDir(), "nan");
    await assert.rejects(
      fitToRunDir(chain(), sets, { ...options({ optimizer: createOptimizer("sgd", { lr: 1e300 }), average: undefined }), out }),
      /last good checkpoint is kept: .*last\.safetensors \(epoch 0, step 0\)/,
    );
    const lines = readFileSync(join(out, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.equal(lines.at(-1).type, "fault");
  });
});
