import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { runGgnExperiment } from "../src/node/experiments/ggn.js";
import { getExperiment } from "../src/node/experiments/registry.js";

// `chainopt experiment ggn` (docs/second-order.md) at a tiny scale: grids, choice, tables and plots.

const root = mkdtempSync(join(tmpdir(), "chainopt-experiment-ggn-"));
after(() => rmSync(root, { recursive: true, force: true }));

describe("experiment ggn", () => {
  it("is registered, with its options", () => {
    const def = getExperiment("ggn");
    assert.ok(def.options.some((o) => o.key === "scale"));
  });

  it("tiny scale: every grid run recorded, one chosen per method and data set, GGN fastest on the over-parameterized teacher", async () => {
    const out = join(root, "tiny");
    const r = await runGgnExperiment({
      scale: 0.02,
      width: 24,
      datasets: ["diabetes", "teacher"],
      teacherSamples: 16,
      ggnEpochs: 8,
      target: 1e-3,
      out,
    });
    assert.equal(r.runs.length, 2 * 9);
    for (const d of ["diabetes", "teacher"]) {
      for (const m of ["ggn", "sgd", "adam"]) {
        assert.equal(r.runs.filter((x) => x.dataset === d && x.method === m && x.chosen).length, 1, `${d} ${m}`);
      }
    }
    // 16 samples, 289 parameters: full-batch GGN reaches 1e-3 × the initial loss within 8 steps;
    // SGD and Adam do not in 8 epochs.
    const teacher = r.runs.filter((x) => x.dataset === "teacher" && x.chosen);
    const ggn = teacher.find((x) => x.method === "ggn");
    assert.ok(ggn && ggn.epochsToTarget !== null && ggn.epochsToTarget <= 8, JSON.stringify(ggn));
    for (const x of teacher.filter((y) => y.method !== "ggn")) assert.equal(x.secondsToTarget, null, `${x.method} reached the target`);
    for (const f of [
      "grid.csv",
      "curves.csv",
      "results.md",
      "summary.json",
      "plots/teacher-loss-vs-time.svg",
      "plots/diabetes-loss-vs-epoch.svg",
    ]) {
      assert.ok(existsSync(join(out, f)), f);
    }
    const grid = readFileSync(join(out, "grid.csv"), "utf8").trim().split("\n");
    assert.equal(grid.length, 1 + 18);
    assert.match(readFileSync(join(out, "results.md"), "utf8"), /\| teacher \| 16 \| 289 \| ggn/);
  });
});
