import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
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
