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
    // One run directory per training run, with the full training loss of each epoch.
    const metrics = readFileSync(join(out, "runs/teacher-ggn-0.1/metrics.jsonl"), "utf8").trim().split("\n");
    const epochs = metrics.map((l) => JSON.parse(l) as Record<string, unknown>).filter((m) => m.type === "epoch");
    assert.deepEqual(
      epochs.map((m) => m.full_loss),
      r.runs
        .find((x) => x.dataset === "teacher" && x.method === "ggn" && x.hyper === 0.1)
        ?.curve.slice(1)
        .map((c) => c.loss),
    );
  });

  // Tiny, with a deterministic choice (one value per grid except SGD, whose runs do not reach the
  // target and are chosen by final loss) and an SGD rate that diverges.
  const tiny = {
    datasets: ["teacher"],
    width: 16,
    teacherSamples: 16,
    epochs: 3,
    ggnEpochs: 3,
    dampingGrid: [0.1],
    sgdGrid: [0.01, 1e300],
    adamGrid: [1e-3],
  };

  it("stopped during the experiment, it continues with --resume to the same tables as an uninterrupted run", async () => {
    const def = getExperiment("ggn");
    const full = join(root, "full");
    await def.run({ ...tiny, out: full }, { log: () => {} });
    const split = join(root, "split");
    const signal = { stopRequested: false };
    const log = (line: string) => {
      if (line.includes("ggn (λ 0.1)")) signal.stopRequested = true;
    };
    await assert.rejects(def.run({ ...tiny, out: split }, { log, signal }), /continue with --resume .*split/);
    assert.ok(!existsSync(join(split, "grid.csv")));
    const lines: string[] = [];
    await def.run({ ...tiny, resume: split }, { log: (l) => lines.push(l) });
    assert.ok(lines.some((l) => l.includes("ggn (λ 0.1)") && l.includes("(read back)")));
    const timing = ["seconds", "seconds_to_target"];
    for (const table of ["grid.csv", "curves.csv"]) {
      const a = csv(readFileSync(join(full, table), "utf8"), timing);
      assert.deepEqual(csv(readFileSync(join(split, table), "utf8"), timing), a, table);
    }
    const grid = csv(readFileSync(join(full, "grid.csv"), "utf8"), []);
    assert.deepEqual(
      grid.map((g) => [g.method, g.value, g.diverged, g.chosen]),
      [
        ["ggn", "0.1", "false", "true"],
        ["sgd", "0.01", "false", "true"],
        ["sgd", "1e+300", "true", "false"],
        ["adam", "0.001", "false", "true"],
      ],
    );
  });

  it("bad options are refused before anything is written, naming the option", async () => {
    const def = getExperiment("ggn");
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ datasets: ["iris"] }, /datasets: expected diabetes, boston, teacher, got "iris"/],
      [{ datasets: [] }, /datasets: expected one or more/],
      [{ dampingGrid: [0.1, -1] }, /dampingGrid: expected positive numbers/],
      [{ sgdGrid: [] }, /sgdGrid: expected positive numbers/],
      [{ target: 2 }, /target: expected a number in \(0, 1\)/],
      [{ ggnBatch: -1 }, /ggnBatch: expected an integer ≥ 0/],
      [{ width: 2.5 }, /width: expected an integer/],
    ];
    for (const [bad, message] of cases) {
      const out = join(root, "bad");
      await assert.rejects(def.run({ ...tiny, ...bad, out }, { log: () => {} }), message);
      assert.ok(!existsSync(out), `${JSON.stringify(bad)}: ${out} was created`);
    }
  });
});

/** Rows of a CSV as objects, without the columns `drop` (wall-clock times). */
function csv(text: string, drop: string[]): Record<string, string>[] {
  const [head, ...lines] = text.trim().split("\n");
  const cols = head.split(",");
  return lines.map((l) => Object.fromEntries(l.split(",").flatMap((v, i) => (drop.includes(cols[i]) ? [] : [[cols[i], v]]))));
}
