import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { adversarialExperiment, runAdversarialExperiment } from "../src/node/experiments/adversarial.js";
import { Trainer } from "../src/train/trainer.js";
import { AdversarialTransform, boxDomain, createChain, createDataset, createObjective, createOptimizer, Rng } from "./flat.js";

// Adversarial training: the trainer's batch transform resumes bit-identically from a snapshot
// (the attack generator is part of it), and `chainopt experiment adversarial` at a tiny size
// writes its tables and keeps its invariants.

const root = mkdtempSync(join(tmpdir(), "chainopt-adv-exp-"));
after(() => rmSync(root, { recursive: true, force: true }));

describe("adversarial training", () => {
  it("a trainer with an adversarial batch transform resumes bit-identically from a snapshot", () => {
    const rng = new Rng(4);
    const x = new Float32Array(60 * 6).map(() => rng.uniform());
    const labels = Int32Array.from({ length: 60 }, (_, i) => (x[i * 6] + x[i * 6 + 1] > 1 ? 1 : 0));
    const train = createDataset({ name: "toy", inputShape: [6], x, labels, classes: 2 });
    const chain = createChain({ input: [6], layers: [{ type: "dense", units: 8 }, { type: "tanh" }, { type: "dense", units: 2 }] });
    const objective = createObjective("logistic");
    const make = () =>
      new Trainer(
        {
          chain,
          objective,
          optimizer: createOptimizer("adam", { lr: 0.01 }),
          batchSize: 16,
          seed: 1,
          batchTransform: new AdversarialTransform({
            loss: objective.loss,
            attack: { kind: "pgd", norm: "l2", eps: 0.3, steps: 3, domain: boxDomain() },
            mix: 0.5,
            seed: 9,
          }),
        },
        { params: chain.initParams(0) },
      );
    const a = make();
    for (let e = 0; e < 3; e++) a.runEpoch({ train });
    const b = make();
    b.runEpoch({ train });
    const snap = b.snapshot();
    const c = make();
    c.restore(snap);
    for (let e = 0; e < 2; e++) c.runEpoch({ train });
    assert.deepEqual(Array.from(c.w), Array.from(a.w));
    // Without the transform's state the continuation differs (the snapshot matters).
    const d = make();
    d.restore({ ...snap, batchTransform: null });
    for (let e = 0; e < 2; e++) d.runEpoch({ train });
    assert.notDeepEqual(Array.from(d.w), Array.from(a.w));
  });

  it("experiment adversarial (tiny): curves, weight movement, robust ≤ clean, files", async () => {
    const out = join(root, "exp");
    const r = await runAdversarialExperiment({
      widths: [8, 32],
      trainSamples: 120,
      testSamples: 60,
      epochs: 2,
      steps: 2,
      evalSteps: 2,
      out,
    });
    assert.equal(r.widths.length, 2);
    for (const w of r.widths) {
      assert.equal(w.curve.length, 3);
      assert.equal(w.curve[0].movement, 0);
      assert.ok(w.curve[2].movement > 0);
      for (const p of w.curve) assert.ok(p.robustTrainLoss >= p.cleanTrainLoss - 1e-9);
      assert.ok(w.robustTestAccuracy <= w.cleanTestAccuracy);
      for (let k = 1; k < w.certifiedAccuracy.length; k++)
        assert.ok(w.certifiedAccuracy[k].accuracy <= w.certifiedAccuracy[k - 1].accuracy);
    }
    for (const f of ["curves.csv", "results.md", "summary.json", "config.json", "plots/robust-training-loss.svg"])
      assert.ok(existsSync(join(out, f)), f);
    assert.match(readFileSync(join(out, "results.md"), "utf8"), /\| 32 \|/);
  });

  it("experiment adversarial: interrupted (Ctrl-C) and resumed, its tables equal an uninterrupted run's", async () => {
    const options = { widths: [8, 16], trainSamples: 60, testSamples: 30, epochs: 2, steps: 1, evalSteps: 1, batchSize: 20 };
    const whole = join(root, "whole");
    await runAdversarialExperiment({ ...options, out: whole });
    const split = join(root, "split");
    const signal = { stopRequested: false };
    const io = {
      signal,
      log: (line: string) => {
        // Stop after the first epoch of the first run.
        if (line.startsWith("width 8, epoch 1:")) signal.stopRequested = true;
      },
    };
    await assert.rejects(runAdversarialExperiment({ ...options, out: split }, io), /interrupted; continue with --resume/);
    assert.ok(!existsSync(join(split, "curves.csv")));
    assert.ok(!existsSync(join(split, "runs", "width-16")), "the second run never started");
    await assert.rejects(
      adversarialExperiment.run({ ...options, epochs: 3, resume: split }, { log: () => {} }),
      /epochs: 2 in .*config\.json, 3 now/,
    );
    const lines: string[] = [];
    await adversarialExperiment.run({ ...options, resume: split }, { log: (l) => lines.push(l) });
    assert.ok(lines.some((l) => l.startsWith("width 8, epoch 2:")));
    assert.ok(!lines.some((l) => l.startsWith("width 8, epoch 1:")), "epoch 1 is read back, not trained again");
    // Every column but the wall clock.
    const header = readFileSync(join(whole, "curves.csv"), "utf8").split("\n")[0].split(",");
    const seconds = header.indexOf("seconds");
    assert.ok(seconds >= 0);
    // Every column but the wall clock.
    const cells = (dir: string) =>
      readFileSync(join(dir, "curves.csv"), "utf8")
        .trim()
        .split("\n")
        .map((l) => l.split(",").filter((_, i) => i !== seconds));
    assert.equal(cells(whole).length, 1 + 2 * 3);
    assert.deepEqual(cells(split), cells(whole));
    assert.equal(readFileSync(join(split, "results.md"), "utf8"), readFileSync(join(whole, "results.md"), "utf8"));
  });

  it("experiment adversarial: a bad option is named and nothing is written", async () => {
    const out = join(root, "bad");
    await assert.rejects(runAdversarialExperiment({ epochs: 0, out }), /^Error: epochs: expected a positive integer/);
    await assert.rejects(runAdversarialExperiment({ widths: [8, 8], out }), /widths: expected distinct widths/);
    await assert.rejects(adversarialExperiment.run({ norm: "l3", out }, { log: () => {} }), /norm: expected one of linf, l2/);
    await assert.rejects(adversarialExperiment.run({ certifyRadii: [-1], out }, { log: () => {} }), /certifyRadii/);
    assert.ok(!existsSync(out));
    assert.deepEqual(
      readdirSync(root).filter((d) => d.startsWith("bad")),
      [],
    );
  });
});
