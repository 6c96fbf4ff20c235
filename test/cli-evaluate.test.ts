import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readMetrics, runCli } from "./cli-helpers.js";

// `chainopt evaluate`: a run's weights on the splits it was trained with. The test split's numbers
// must be exactly those training logged at the end (the same samples, loss and weights); the last
// epoch's validation numbers likewise (no averaging, so the final weights are the last epoch's).

const root = mkdtempSync(join(tmpdir(), "chainopt-evaluate-"));
const run = join(root, "iris");
after(() => rmSync(root, { recursive: true, force: true }));

describe("chainopt evaluate", () => {
  before(async () => {
    const r = await runCli(["train", "--dataset", "iris", "--epochs", "3", "--seed", "2", "--out", run, "--json"]);
    assert.equal(r.code, 0, r.stderr);
  });

  it("reproduces the logged test and validation numbers and adds the training split", async () => {
    const r = await runCli(["evaluate", run, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { epoch: number; splits: Record<string, { loss: number; accuracy: number; size: number }> };
    const metrics = readMetrics(run);
    const final = metrics.find((m) => m.type === "final") as Record<string, number>;
    const last = metrics.filter((m) => m.type === "epoch").at(-1) as Record<string, number>;
    assert.equal(out.epoch, 3);
    assert.equal(out.splits.test.loss, final.test_loss);
    assert.equal(out.splits.test.accuracy, final.test_accuracy);
    assert.equal(out.splits.test.size, final.test_size);
    assert.equal(out.splits.validation.loss, last.validation_loss);
    assert.equal(out.splits.validation.accuracy, last.validation_accuracy);
    // iris: 150 samples, 20 % seeded test split, 10 % of the rest for validation.
    assert.equal(out.splits.train.size + out.splits.validation.size + out.splits.test.size, 150);
    assert.ok(out.splits.train.accuracy >= 0 && out.splits.train.accuracy <= 1);
    const only = JSON.parse((await runCli(["evaluate", run, "--split", "train", "--weights", "last", "--json"])).stdout);
    assert.deepEqual(Object.keys(only.splits), ["train"]);
    assert.equal(only.splits.train.loss, out.splits.train.loss);
  });

  it("names what is wrong: not a run, unknown split or weights, a missing checkpoint", async () => {
    const cases: [string[], RegExp][] = [
      [["evaluate", root], /not a run directory \(no config\.json\)/],
      [["evaluate", run, "--split", "tests"], /--split: expected some of train, validation, test, got "tests"/],
      [["evaluate", run, "--weights", "first"], /--weights: expected one of model, last, best, got "first"/],
      [["evaluate", run, "--weights", "best"], /best\.safetensors: not found/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(args);
      assert.notEqual(r.code, 0, args.join(" "));
      assert.match(r.stderr, message);
    }
  });
});
