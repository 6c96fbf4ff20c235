import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { PNG } from "pngjs";
import { jsonLines, readMetrics, runCli } from "./cli-helpers.js";

// `chainopt train --adversarial` on a tiny MNIST subset: robust validation metrics, resume
// bit-identical (the attack's generator is checkpointed), errors naming the flag.

const root = mkdtempSync(join(tmpdir(), "chainopt-adv-"));
after(() => rmSync(root, { recursive: true, force: true }));
const DATA = ["--dataset", "mnist", "--limit", "400", "--validation", "100", "--batch-size", "50", "--widths", "16", "--seed", "3"];
const ADV = ["--adversarial", "pgd", "--adv-eps", "0.1", "--adv-steps", "2", "--adv-mix", "0.5", "--schedule", "constant", "--lr", "0.05"];

describe("chainopt train --adversarial", () => {
  it("logs robust validation metrics and resumes bit-identically (attack generator included)", async () => {
    const full = join(root, "full");
    const r = await runCli(["train", ...DATA, ...ADV, "--epochs", "3", "--out", full, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const epochs = readMetrics(full).filter((m) => m.type === "epoch");
    assert.equal(epochs.length, 3);
    for (const m of epochs) {
      const acc = m.validation_robust_accuracy as number;
      assert.ok(acc >= 0 && acc <= (m.validation_accuracy as number), `robust ${acc} vs clean ${m.validation_accuracy}`);
      assert.ok((m.validation_robust_loss as number) >= (m.validation_loss as number) - 1e-9);
    }
    const lines = jsonLines(r.stdout);
    assert.ok(lines[0].validationRobustAccuracy !== undefined);
    const part = join(root, "part");
    const a = await runCli(["train", ...DATA, ...ADV, "--epochs", "1", "--out", part]);
    assert.equal(a.code, 0, a.stderr);
    const b = await runCli(["train", "--resume", part, "--epochs", "3"]);
    assert.equal(b.code, 0, b.stderr);
    assert.ok(readFileSync(join(full, "model.safetensors")).equals(readFileSync(join(part, "model.safetensors"))), "resumed model differs");
  });

  it("errors name the flag: negative --adv-eps, unknown --adv-norm, a data set without an input box", async () => {
    const neg = await runCli(["train", ...DATA, "--adversarial", "pgd", "--adv-eps=-0.1", "--out", join(root, "neg")]);
    assert.notEqual(neg.code, 0);
    assert.match(neg.stderr, /--adv-eps/);
    const norm = await runCli([
      "train",
      ...DATA,
      "--adversarial",
      "pgd",
      "--adv-eps",
      "0.1",
      "--adv-norm",
      "l1",
      "--out",
      join(root, "norm"),
    ]);
    assert.match(norm.stderr, /--adv-norm: unknown norm "l1"/);
    const box = await runCli(["train", "--dataset", "iris", "--adversarial", "fgsm", "--adv-eps", "0.1", "--out", join(root, "box")]);
    assert.match(box.stderr, /--adversarial: the data set iris has no input box/);
    const kind = await runCli(["train", ...DATA, "--adversarial", "cw", "--adv-eps", "0.1", "--out", join(root, "kind")]);
    assert.match(kind.stderr, /--adversarial: unknown attack "cw"/);
  });
});

describe("chainopt attack and analyze --input-space", () => {
  const run = join(root, "clean");
  it("attack: clean ≥ robust accuracy, more robust at smaller ε, a PNG grid; errors name the flag", async () => {
    const t = await runCli(["train", ...DATA, "--epochs", "2", "--out", run]);
    assert.equal(t.code, 0, t.stderr);
    const results: Record<string, number>[] = [];
    for (const eps of ["0.02", "0.2"]) {
      const r = await runCli(["attack", "--run", run, "--eps", eps, "--steps", "5", "--samples", "60", "--json"]);
      assert.equal(r.code, 0, r.stderr);
      const o = jsonLines(r.stdout)[0] as Record<string, number>;
      assert.equal(o.samples, 60);
      assert.ok(o.robustAccuracy <= o.cleanAccuracy);
      results.push(o);
    }
    assert.ok(results[1].robustAccuracy <= results[0].robustAccuracy + 0.05);
    assert.ok(results[1].robustAccuracy < results[1].cleanAccuracy, "ε = 0.2 ℓ∞ flips some MNIST samples");
    const png = PNG.sync.read(readFileSync(join(run, "adversarial-linf-0.2.png")));
    assert.equal(png.height, 3 * 30 + 2);
    const w = join(root, "grid.png");
    const l2 = await runCli([
      "attack",
      "--weights",
      join(run, "model.safetensors"),
      "--dataset",
      "mnist",
      "--eps",
      "1",
      "--norm",
      "l2",
      "--attack",
      "fgsm",
      "--samples",
      "20",
      "--png",
      w,
    ]);
    assert.equal(l2.code, 0, l2.stderr);
    assert.ok(existsSync(w));
    const bad = await runCli(["attack", "--run", run, "--eps", "0.1", "--norm", "l3"]);
    assert.match(bad.stderr, /--norm: unknown norm "l3"/);
    const noData = await runCli(["attack", "--weights", join(run, "model.safetensors"), "--eps", "0.1"]);
    assert.match(noData.stderr, /--dataset: required with --weights/);
    const tabular = await runCli(["attack", "--weights", join(run, "model.safetensors"), "--dataset", "iris", "--eps", "0.1"]);
    assert.match(tabular.stderr, /iris has no input box/);
  });

  it("analyze --input-space: certified ≤ … bounds are ordered; certified accuracy ≤ attacked accuracy", async () => {
    const r = await runCli([
      "analyze",
      "--input-space",
      "--weights",
      join(run, "model.safetensors"),
      "--dataset",
      "mnist",
      "--samples",
      "50",
      "--search-samples",
      "5",
      "--eps-list",
      "0,0.1,0.5",
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const a = jsonLines(r.stdout)[0] as {
      certified: number;
      autolip: number;
      frobeniusProduct: number;
      jacobianLower: number;
      attackLower: number;
      medianCertifiedRadius: number;
      medianAttackRadius: number;
      atRadius: { eps: number; certifiedAccuracy: number; attackAccuracy: number }[];
    };
    assert.ok(a.jacobianLower <= a.certified && a.attackLower <= a.certified);
    assert.ok(a.autolip <= a.certified * (1 + 1e-9) && a.certified <= a.frobeniusProduct);
    assert.ok(a.medianCertifiedRadius <= a.medianAttackRadius);
    for (const x of a.atRadius) assert.ok(x.certifiedAccuracy <= x.attackAccuracy, JSON.stringify(x));
    const text = await runCli(["analyze", "--input-space", "--run", run, "--samples", "30", "--search-samples", "3"]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /certified upper bound/);
  });
});
