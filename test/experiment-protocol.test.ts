import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createChain } from "../src/chain/chain.js";
import { Rng } from "../src/core/rng.js";
import { createDataset, type Dataset } from "../src/data/dataset.js";
import { ExperimentProtocol } from "../src/node/experiments/protocol.js";
import { createObjective } from "../src/objectives/objective.js";
import { createOptimizer } from "../src/optim/aliases.js";
import type { EpochRecord } from "../src/train/trainer.js";

// Experiments as protocols over fitToRunDir: runs live in runs/<name>/, an interrupted experiment
// resumes (bit-identical), a finished run is read back without training, the options are checked
// on resume, and names from data stay inside the folder.

const spec = { input: [4], layers: [{ type: "dense", units: 6 }, { type: "tanh" }, { type: "dense", units: 2 }] };

function data(n: number, seed: number): Dataset {
  const rng = new Rng(seed);
  const x = new Float32Array(n * 4);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < 4; j++) x[i * 4 + j] = rng.normal();
    labels[i] = x[i * 4] + 0.5 * x[i * 4 + 1] > 0 ? 1 : 0;
  }
  return createDataset({ name: `toy-${seed}`, inputShape: [4], x, labels, classes: 2 });
}

const sets = { train: data(48, 1), test: data(20, 2) };
const chain = () => createChain(spec as never, { dtype: "float64" });
const fitOptions = () => ({
  objective: createObjective("logistic", 1e-4),
  optimizer: createOptimizer("sgd", { lr: 0.1 }),
  batchSize: 16,
  seed: 3,
  epochs: 3,
  // An experiment's own per-epoch measurement, kept in metrics.jsonl.
  epochMetrics: (_r: EpochRecord, t: { w: Float32Array | Float64Array }) => ({ firstWeight: t.w[0] }),
});
const bytes = (a: Float32Array | Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "chainopt-protocol-"));
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("ExperimentProtocol", () => {
  it("an interrupted experiment resumes bit-identically; a finished run is read back, not retrained", async () => {
    const full = ExperimentProtocol.begin("toy", { out: join(tempDir(), "full") }, { lr: 0.1 });
    const reference = await full.train("sgd", chain(), sets, fitOptions());
    assert.equal(reference.source, "trained");
    assert.equal(reference.epochs.length, 3);
    assert.equal(typeof reference.epochs[2].first_weight, "number");
    full.table("results", [{ run: "sgd", test_loss: reference.test?.loss ?? null }]);
    full.finish({ runs: 1 });
    assert.ok(existsSync(join(full.dir, "results.csv")));

    const out = join(tempDir(), "split");
    const first = ExperimentProtocol.begin("toy", { out }, { lr: 0.1 });
    await assert.rejects(
      first.train("sgd", chain(), sets, { ...fitOptions(), callbacks: { onEpochEnd: (r) => (r.epoch === 1 ? "stop" : undefined) } }),
      /interrupted; continue with --resume/,
    );
    // The same folder is locked while its process holds it.
    assert.throws(() => ExperimentProtocol.begin("toy", { resume: out }, { lr: 0.1 }), /held|lock/i);
    first.finish({});
    assert.throws(() => ExperimentProtocol.begin("toy", { resume: out }, { lr: 0.2 }), /lr: 0\.1 in .*config\.json, 0\.2 now/);
    assert.throws(() => ExperimentProtocol.begin("other", { resume: out }, { lr: 0.1 }), /not a "other" experiment/);

    const second = ExperimentProtocol.begin("toy", { resume: out, threads: 1 } as never, { lr: 0.1, threads: 2 });
    const resumed = await second.train("sgd", chain(), sets, fitOptions());
    assert.equal(resumed.source, "trained");
    assert.ok(bytes(resumed.params).equals(bytes(reference.params)));
    assert.deepEqual(resumed.test, reference.test);
    assert.deepEqual(
      resumed.epochs.map((m) => m.first_weight),
      reference.epochs.map((m) => m.first_weight),
    );
    second.finish({});

    const third = ExperimentProtocol.begin("toy", { resume: out }, { lr: 0.1 });
    const again = await third.train("sgd", chain(), sets, fitOptions());
    assert.equal(again.source, "finished");
    assert.ok(bytes(again.params).equals(bytes(reference.params)));
    assert.equal(again.test?.loss, reference.test?.loss);
    assert.equal(again.test?.accuracy, reference.test?.accuracy);
    assert.deepEqual(
      again.history.map((r) => r.trainLoss),
      reference.history.map((r) => r.trainLoss),
    );
    third.finish({});
  });

  it("a diverged run (divergence: record) is returned and read back, not retrained on resume; release() is idempotent", async () => {
    const out = join(tempDir(), "diverged");
    const blowUp = () => ({ ...fitOptions(), optimizer: createOptimizer("sgd", { lr: 1e300 }), epochs: 3, divergence: "record" as const });
    const first = ExperimentProtocol.begin("toy", { out }, {});
    const run = await first.train("huge-lr", chain(), sets, blowUp());
    assert.equal(run.source, "diverged");
    assert.ok(run.fault && run.fault.step >= 1 && run.history.length < 3);
    assert.equal(run.test, undefined);
    assert.ok(!existsSync(join(run.runDir, "summary.json")));
    const metrics = readFileSync(join(run.runDir, "metrics.jsonl"), "utf8");
    assert.equal(metrics.split("\n").filter((l) => l.includes('"type":"fault"')).length, 1);
    // Stopped before the next run's first epoch: interrupted; release() lets this process resume.
    const signal = { stopRequested: true };
    first.release();
    const second = ExperimentProtocol.begin("toy", { resume: out }, {}, signal);
    const again = await second.train("huge-lr", chain(), sets, blowUp());
    assert.equal(again.source, "diverged");
    assert.deepEqual(again.fault, run.fault);
    assert.deepEqual(
      again.history.map((r) => r.trainLoss),
      run.history.map((r) => r.trainLoss),
    );
    assert.ok(bytes(again.params).equals(bytes(run.params)));
    assert.equal(readFileSync(join(run.runDir, "metrics.jsonl"), "utf8"), metrics, "not trained again");
    await assert.rejects(second.train("sgd", chain(), sets, fitOptions()), /interrupted; continue with --resume/);
    second.release();
    second.release();
    const third = ExperimentProtocol.begin("toy", { resume: out }, {});
    assert.equal((await third.train("sgd", chain(), sets, fitOptions())).source, "trained");
    third.finish({});
  });

  it("names from data stay inside the experiment folder", async () => {
    const p = ExperimentProtocol.begin("toy", { out: join(tempDir(), "names") }, {});
    const run = await p.train("../../escape", chain(), sets, { ...fitOptions(), epochs: 1 });
    assert.ok(run.runDir.startsWith(join(p.dir, "runs")));
    const file = p.table("../../../tmp/x", [{ a: 1 }]);
    assert.ok(file.startsWith(p.dir));
    assert.equal(readFileSync(file, "utf8").split("\n")[0], "a");
    p.finish({});
  });

  it("a finished run asked for more epochs continues (lockstep), bit-identical to one run", async () => {
    const p = ExperimentProtocol.begin("toy", { out: join(tempDir(), "lockstep") }, {});
    const whole = await p.train("whole", chain(), sets, fitOptions());
    let last = await p.train("steps", chain(), sets, { ...fitOptions(), epochs: 1 });
    assert.equal(last.epochs.length, 1);
    for (const epochs of [2, 3]) {
      last = await p.train("steps", chain(), sets, { ...fitOptions(), epochs });
      assert.equal(last.source, "trained");
    }
    assert.ok(bytes(last.params).equals(bytes(whole.params)));
    assert.deepEqual(
      last.epochs.map((m) => m.first_weight),
      whole.epochs.map((m) => m.first_weight),
    );
    // Asked for fewer epochs than it has, a finished run is read back as it is.
    const again = await p.train("steps", chain(), sets, { ...fitOptions(), epochs: 2 });
    assert.equal(again.source, "finished");
    assert.equal(again.epochs.length, 3);
    assert.equal(again.test?.loss, whole.test?.loss);
    p.finish({});
  });

  it("a diverged run is recorded with divergence: record (and read back as such), else rethrown", async () => {
    const p = ExperimentProtocol.begin("toy", { out: join(tempDir(), "diverged") }, {});
    const blowUp = { ...fitOptions(), optimizer: createOptimizer("sgd", { lr: 1e300 }), learningRate: 1e300 };
    await assert.rejects(p.train("thrown", chain(), sets, blowUp), (e: Error) => e.name === "NumericalFaultError");
    const run = await p.train("recorded", chain(), sets, { ...blowUp, divergence: "record" });
    assert.equal(run.source, "diverged");
    assert.ok(run.fault && run.fault.step >= 1 && run.fault.message.length > 0);
    // The params are those of the last good checkpoint (finite).
    assert.ok(run.params.every((x) => Number.isFinite(x)));
    const again = await p.train("recorded", chain(), sets, { ...blowUp, divergence: "record" });
    assert.equal(again.source, "diverged");
    assert.deepEqual(again.fault, run.fault);
    assert.ok(bytes(again.params).equals(bytes(run.params)));
    p.finish({});
  });

  it("release() frees the folder of an interrupted experiment for --resume in the same process", async () => {
    const out = join(tempDir(), "released");
    const first = ExperimentProtocol.begin("toy", { out }, {});
    await assert.rejects(
      first.train("sgd", chain(), sets, { ...fitOptions(), callbacks: { onEpochEnd: () => "stop" } }),
      /interrupted; continue with --resume/,
    );
    first.release();
    assert.ok(!existsSync(join(out, "summary.json")));
    const second = ExperimentProtocol.begin("toy", { resume: out }, {});
    assert.equal((await second.train("sgd", chain(), sets, fitOptions())).epochs.length, 3);
    second.finish({});
  });
});
