import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { layerNorms } from "../src/certify/certificate.js";
import { createChain } from "../src/chain/chain.js";
import { loadCheckpoint } from "../src/node/checkpoint.js";
import { loadRunData } from "../src/node/report.js";
import { parsePerLayerRecord } from "../src/report/schema.js";
import { epochRecordsWithoutTimes, jsonLines, readMetrics, runCli, tensorBytes } from "./cli-helpers.js";

// `chainopt train` with the second-order methods (docs/second-order.md) and with the certified step size
// (docs/certificates.md), end to end as a child process on the diabetes regression set (442 samples,
// of which 354 train and 88 form the seeded test split; 10 features, standardized).

const REGRESSION = ["--dataset", "diabetes", "--loss", "squared", "--validation", "0", "--seed", "3"];

let root: string;
let count = 0;
const fresh = (name: string) => join(root, `${name}-${++count}`);
before(() => {
  root = mkdtempSync(join(tmpdir(), "chainopt-cli-second-order-"));
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

const trainLosses = (stdout: string) =>
  jsonLines(stdout)
    .filter((l) => l.final === undefined)
    .map((l) => l.trainLoss as number);

describe("chainopt train --optimizer gauss-newton|ggn|newton", () => {
  const runs: { method: string; args: string[] }[] = [
    // Full batch (160 samples): the epoch's train loss is the loss before its one step.
    { method: "gauss-newton", args: ["--widths", "8", "--activation", "tanh", "--limit", "160", "--batch-size", "160", "--epochs", "6"] },
    {
      method: "ggn",
      args: ["--widths", "8", "--activation", "tanh", "--limit", "160", "--batch-size", "160", "--epochs", "6", "--damping", "1"],
    },
    // Newton by dynamic programming stores dense stage matrices: a tiny model and batch.
    { method: "newton", args: ["--widths", "4", "--activation", "tanh", "--limit", "64", "--batch-size", "32", "--epochs", "4"] },
  ];
  for (const { method, args } of runs) {
    it(`${method}: a tiny run decreases the training loss; --json reports the damping; summary.json the stepper`, async () => {
      const out = fresh(method);
      const r = await runCli(["train", ...REGRESSION, ...args, "--optimizer", method, "--json", "--out", out]);
      assert.equal(r.code, 0, r.stderr);
      const losses = trainLosses(r.stdout);
      assert.ok(losses.length >= 4, r.stdout);
      assert.ok(losses.every(Number.isFinite), r.stdout);
      assert.ok(losses.at(-1)! < 0.7 * losses[0], `${method}: train loss ${losses.join(" → ")}`);
      const lines = jsonLines(r.stdout);
      assert.equal(typeof lines[0].damping, "number");
      assert.equal(typeof lines[0].rejectedSteps, "number");
      assert.equal((lines[lines.length - 1].secondOrder as { method: string }).method, method);
      const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8")) as { secondOrder: { steps: number } };
      assert.ok(summary.secondOrder.steps > 0);
      const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8")) as { train: { optimizer: string; lr: number } };
      assert.equal(config.train.optimizer, method);
      assert.equal(config.train.lr, 1);
    });
  }

  it("gauss-newton: --resume after 2 of 4 epochs (checkpoint with the damping) ends bit-identical to the uninterrupted run", async () => {
    // A small initial damping with line search: μ grows on Armijo failures, so the resumed run must
    // restore it from the checkpoint (extra.stepper) to continue identically.
    const args = [
      "train",
      ...REGRESSION,
      "--widths",
      "16",
      "--activation",
      "tanh",
      "--batch-size",
      "64",
      "--optimizer",
      "gauss-newton",
      "--damping",
      "1e-6",
      "--json",
    ];
    const full = fresh("gn-full");
    const part = fresh("gn-part");
    const [a, b] = await Promise.all([
      runCli([...args, "--epochs", "4", "--out", full]),
      runCli([...args, "--epochs", "2", "--out", part]),
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const config = JSON.parse(readFileSync(join(part, "config.json"), "utf8")) as { model: unknown };
    const chain = createChain(config.model as never);
    const ck = loadCheckpoint(join(part, "checkpoints", "last.safetensors"), chain);
    const stepper = ck.extra.stepper as { damping: number; steps: number };
    assert.equal(stepper.steps, 2 * Math.ceil(354 / 64)); // 2 epochs of the 354 training samples
    const fullDamping = readMetrics(full).filter((m) => m.type === "epoch");
    assert.equal(stepper.damping, fullDamping[1].damping, "the checkpoint holds the damping of epoch 2");
    assert.ok(
      fullDamping.some((m) => (m.damping as number) > 1e-6),
      "the damping never changed: the test would not see a lost damping",
    );

    const resumed = await runCli(["train", "--resume", part, "--epochs", "4", "--json"]);
    assert.equal(resumed.code, 0, resumed.stderr);
    for (const f of ["model.safetensors", join("checkpoints", "last.safetensors")]) {
      const x = tensorBytes(join(full, f));
      const y = tensorBytes(join(part, f));
      assert.deepEqual([...y.keys()].sort(), [...x.keys()].sort());
      for (const [name, bytes] of x) assert.ok(bytes.equals(y.get(name) as Buffer), `${f}: tensor ${name} differs`);
    }
    assert.ok(readFileSync(join(full, "model.safetensors")).equals(readFileSync(join(part, "model.safetensors"))));
    assert.deepEqual(epochRecordsWithoutTimes(part), epochRecordsWithoutTimes(full));
  });

  it("refuses what does not apply, before writing anything", async () => {
    const cases: { args: string[]; message: RegExp }[] = [
      {
        args: [...REGRESSION.filter((x) => x !== "squared" && x !== "--loss"), "--optimizer", "ggn"],
        message: /optimizer ggn: Gram-Gauss-Newton is defined for regression with the squared loss \(--loss squared\)/,
      },
      {
        args: ["--dataset", "mnist", "--limit", "300", "--validation", "100", "--model", "convnet", "--optimizer", "newton"],
        // conv2d and batch-norm have a second-order backward; the ConvNet's dense stage matrices are too large.
        message:
          /optimizer newton: the Newton step by dynamic programming stores dense stage matrices, about .* GiB .*--optimizer gauss-newton/,
      },
      {
        args: [...REGRESSION, "--widths", "512", "--batch-size", "400", "--optimizer", "newton"],
        message: /optimizer newton: the Newton step by dynamic programming stores dense stage matrices, about .* GiB/,
      },
      { args: [...REGRESSION, "--optimizer", "adam", "--damping", "1"], message: /--damping: options of the second-order methods/ },
      {
        args: [...REGRESSION, "--optimizer", "ggn", "--gn-implementation", "dual"],
        message: /--gn-implementation: applies to --optimizer gauss-newton only/,
      },
      {
        args: [...REGRESSION, "--optimizer", "gauss-newton", "--momentum", "0.9"],
        message: /--optimizer gauss-newton: --momentum is an option of the first-order/,
      },
      {
        args: [...REGRESSION, "--activation", "softplus", "--step-size", "certified", "--lr", "0.1"],
        message: /--step-size certified: .*drop --lr/,
      },
      { args: [...REGRESSION, "--radius", "2"], message: /--radius: options of --step-size certified/ },
      {
        args: [...REGRESSION, "--activation", "relu", "--step-size", "certified"],
        message: /--step-size certified: the objective is not smooth .*layers\[\d\] \(relu\).*softplus.*--smooth-epsilon/,
      },
      {
        args: [...REGRESSION, "--activation", "softplus", "--widths", "8,8", "--step-size", "certified", "--radii", "1,2"],
        message: /--radii: expected 3 values \(one per layer with parameters\), got 2/,
      },
    ];
    const results = await Promise.all(
      cases.map(async (c) => {
        const out = fresh("error");
        return { c, out, r: await runCli(["train", ...c.args, "--epochs", "1", "--out", out]) };
      }),
    );
    for (const { c, out, r } of results) {
      assert.equal(r.code, 1, `${c.args.join(" ")}: exit code ${r.code}\n${r.stderr}`);
      assert.match(r.stderr, c.message, c.args.join(" "));
      assert.ok(!existsSync(out), `${c.args.join(" ")}: wrote ${out}`);
    }
  });
});

describe("chainopt train --step-size certified", () => {
  it("a tiny softplus MLP: projected SGD with 1/L_F decreases the loss, stays inside B_R, writes certificate.json for the report", async () => {
    const out = fresh("certified");
    const r = await runCli([
      "train",
      ...REGRESSION,
      "--widths",
      "16",
      "--activation",
      "softplus",
      "--batch-size",
      "32",
      "--epochs",
      "5",
      "--step-size",
      "certified",
      "--radius",
      "1",
      "--json",
      "--out",
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const lines = jsonLines(r.stdout);
    const losses = trainLosses(r.stdout);
    assert.ok(losses.at(-1)! < 0.9 * losses[0], `train loss ${losses.join(" → ")}`);
    const final = lines.at(-1) as { certified: { stepSize: number; smoothness: number; stayedInside: boolean; projections: number } };
    const cert = final.certified;
    // 1/L_F, or smaller when the last partial batch (354 training samples after the test split = 11·32 + 2) has a larger L_F.
    assert.ok(cert.stepSize > 0 && cert.stepSize <= (1 + 1e-12) / cert.smoothness, JSON.stringify(cert));
    assert.equal(cert.stayedInside, true);
    for (const l of lines.slice(0, -1)) {
      assert.equal(l.learningRate, cert.stepSize);
      assert.equal(typeof l.projections, "number");
    }
    // The final parameters lie in B_R.
    const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8")) as { model: unknown; train: { optimizer: string } };
    assert.equal(config.train.optimizer, "sgd");
    const chain = createChain(config.model as never);
    const w = loadCheckpoint(join(out, "model.safetensors"), chain).params;
    for (const n of layerNorms(chain, w)) assert.ok(n <= 1 + 1e-6, `layer norm ${n}`);
    // certificate.json: the per-layer schema of the report, plus the objective's constants.
    const file = JSON.parse(readFileSync(join(out, "certificate.json"), "utf8")) as Record<string, unknown> & {
      objective: { stepSize: number; smoothness: number };
      run: { stayedInside: boolean };
    };
    const record = parsePerLayerRecord(file, "certificate.json");
    assert.deepEqual(record.layers, ["1 dense+softplus", "2 dense"]);
    assert.deepEqual(record.quantities.radius, [1, 1]);
    assert.ok(record.quantities.smoothness.every((x) => typeof x === "number" && x > 0));
    assert.equal(file.objective.stepSize, cert.stepSize);
    assert.equal(file.run.stayedInside, true);
    assert.ok(loadRunData(out).perLayer?.certificate, "the report does not see certificate.json");
  });

  it("--smooth-epsilon: a ReLU MLP is smoothed (|F − F_ε| ≤ ε on B_R) and then certified; smoothing.json is written", async () => {
    const out = fresh("smooth");
    const r = await runCli([
      "train",
      ...REGRESSION,
      "--widths",
      "16",
      "--activation",
      "relu",
      "--epochs",
      "1",
      "--step-size",
      "certified",
      "--smooth-epsilon",
      "0.1",
      "--json",
      "--out",
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const final = jsonLines(r.stdout).at(-1) as { certified: { stepSize: number } };
    assert.ok(final.certified.stepSize > 0);
    const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8")) as { model: { layers: { type: string }[] } };
    assert.ok(
      config.model.layers.some((l) => l.type === "smoothRelu"),
      JSON.stringify(config.model),
    );
    const record = parsePerLayerRecord(JSON.parse(readFileSync(join(out, "smoothing.json"), "utf8")), "smoothing.json");
    assert.ok((record.quantities.mu[0] as number) > 0);
  });

  it("--recertify-every: local certificates around the iterate give larger steps; both are reported", async () => {
    const out = fresh("recertify");
    const r = await runCli([
      "train",
      ...REGRESSION,
      "--widths",
      "16",
      "--activation",
      "softplus",
      "--batch-size",
      "32",
      "--epochs",
      "4",
      "--step-size",
      "certified",
      "--radius",
      "2",
      "--recertify-every",
      "2",
      "--local-delta",
      "0.1",
      "--json",
      "--out",
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const final = jsonLines(r.stdout).at(-1) as {
      certified: { stepSize: number; currentStepSize: number; recertifications: { epoch: number; stepSize: number }[] };
    };
    const c = final.certified;
    assert.deepEqual(
      c.recertifications.map((x) => x.epoch),
      [2],
    );
    assert.ok(c.recertifications[0].stepSize > c.stepSize, JSON.stringify(c));
    assert.equal(c.currentStepSize, c.recertifications[0].stepSize);
    const epochs = jsonLines(r.stdout).filter((l) => l.final === undefined);
    assert.equal(epochs[0].stepSize, c.stepSize);
    assert.equal(epochs[2].stepSize, c.currentStepSize);
  });
});
