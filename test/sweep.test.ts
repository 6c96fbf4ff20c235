import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parseSweep, readSweepFile, safeSegment, taskIndexFrom } from "../src/node/sweep.js";
import { aggregate, loadSweepResults, meanStd } from "../src/node/sweep-report.js";
import { jsonLines, runCli } from "./cli-helpers.js";

// `chainopt sweep` and `chainopt report SWEEP_DIR` (docs/distributed.md).

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), "chainopt-sweep-"));
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

const BASE = { dataset: "synthetic-teacher", validation: 100, model: "mlp", widths: [8], loss: "squared", epochs: 2, batchSize: 64 };

function writeSweep(name: string, out: string): string {
  const file = join(root, `${name}.json`);
  writeFileSync(file, JSON.stringify({ name, out, base: BASE, grid: { lr: [0.01, 0.03], seed: [0, 1] } }));
  return file;
}

describe("sweep files", () => {
  it("expand into numbered tasks, last axis fastest, null unsets an option", () => {
    const s = parseSweep({ name: "g", base: { epochs: 1, smoothEpsilon: 0.5 }, grid: { smoothEpsilon: [null, 0.1], seed: [0, 1, 2] } });
    assert.equal(s.tasks.length, 6);
    assert.deepEqual(s.tasks[4].assignment, { smoothEpsilon: 0.1, seed: 1 });
    assert.equal((s.tasks[1].config as Record<string, unknown>).smoothEpsilon, undefined);
    assert.equal(s.tasks[4].config.smoothEpsilon, 0.1);
    assert.equal(new Set(s.tasks.map((t) => t.name)).size, 6, "task folder names are distinct");
  });

  it("a bundle axis varies options together; the repository's Section V sweeps parse (90 tasks each)", () => {
    const s = parseSweep({
      name: "b",
      base: { epochs: 1 },
      grid: { smoothing: [{}, { smoothEpsilon: 0.1, radii: [1, 2] }], seed: [0, 1] },
    });
    assert.equal(s.tasks.length, 4);
    assert.equal(s.tasks[0].config.smoothEpsilon, undefined);
    assert.deepEqual(s.tasks[3].config.radii, [1, 2]);
    assert.match(s.tasks[3].name, /smoothing=smoothEpsilon=0.1-seed=1$/);
    assert.throws(
      () => parseSweep({ name: "b", grid: { smoothing: [{ smoothEpsilon: -1 }] } }),
      /grid\.smoothing\[0\]\.smoothEpsilon: Too small/,
    );
    for (const kind of ["mlp", "convnet"]) {
      const file = fileURLToPath(new URL(`../../sweeps/smoothing-section-v-${kind}.json`, import.meta.url));
      const sweep = readSweepFile(file);
      assert.equal(sweep.tasks.length, 90);
      assert.deepEqual(
        sweep.axes.map((a) => [a.name, a.values.length]),
        [
          ["smoothing", 9],
          ["seed", 10],
        ],
      );
      for (const t of sweep.tasks) {
        assert.equal(t.config.epochs, 200);
        assert.equal(t.config.batchSize, 256);
        assert.equal(t.config.l2, 1e-6);
      }
      // The measured subsets (docs/distributed.md): the same settings on 3 tasks, fewer epochs.
      const subset = readSweepFile(file.replace(".json", "-subset.json"));
      assert.equal(subset.tasks.length, 3);
      for (const [i, t] of subset.tasks.entries()) {
        const full = sweep.tasks.find((f) => f.config.seed === 0 && f.config.smoothEpsilon === t.config.smoothEpsilon);
        assert.ok(full, `subset task ${i} is not a task of the full sweep`);
        const { epochs: _a, ...rest } = t.config;
        const { epochs: _b, ...fullRest } = full.config;
        assert.deepEqual(rest, fullRest, `subset task ${i}: only the epochs may differ`);
      }
    }
  });

  it("errors name the field at fault", () => {
    const bad = { name: "b", base: { epochs: 0, out: "x" }, grid: { lr: [0.1, -1], nope: [1], seed: [] } };
    assert.throws(
      () => parseSweep(bad),
      (e: Error) => /grid\.seed: an axis needs at least one value/.test(e.message),
    );
    assert.throws(
      () => parseSweep({ ...bad, grid: { lr: [0.1, -1], nope: [1] } }),
      (e: Error) =>
        /base\.epochs: Too small/.test(e.message) &&
        /base\.out: set by the sweep/.test(e.message) &&
        /grid\.lr\[1\]: Too small/.test(e.message) &&
        /grid\.nope: not a train option/.test(e.message),
    );
    assert.throws(() => parseSweep({ name: "../x", grid: {} }), /name: letters, digits/);
    assert.throws(() => parseSweep({ name: "x", grid: {}, extra: 1 }), /Unrecognized key/);
  });

  it("folder names from data stay one safe path segment (property)", () => {
    const nasty = ["../../etc", "/abs/path", "a/b\\c", "..", ".", "", "x".repeat(500), "spaces and ünïcode", "\u0000nul"];
    for (const v of nasty) {
      const s = safeSegment(v);
      assert.ok(!s.includes("/") && !s.includes("\\") && s !== "." && s !== ".." && s.length > 0 && s.length <= 40, JSON.stringify(s));
    }
    const sweep = parseSweep({
      name: "p",
      base: { epochs: 1 },
      grid: { dataset: ["../../../../tmp/evil", "mnist"], model: ["a/../../b.json", { input: [1] }] },
    });
    for (const t of sweep.tasks) assert.match(t.name, /^[A-Za-z0-9.+=_-]+$/);
  });

  it("the task index: --task, then SLURM_ARRAY_TASK_ID, then JOB_COMPLETION_INDEX; out of range named", () => {
    assert.equal(taskIndexFrom("2", 4, {}), 2);
    assert.equal(taskIndexFrom(undefined, 4, { SLURM_ARRAY_TASK_ID: "3", JOB_COMPLETION_INDEX: "1" }), 3);
    assert.equal(taskIndexFrom(undefined, 4, { JOB_COMPLETION_INDEX: "1" }), 1);
    assert.equal(taskIndexFrom(undefined, 4, {}), null);
    assert.throws(() => taskIndexFrom("4", 4, {}), /--task: task 4 does not exist/);
    assert.throws(() => taskIndexFrom(undefined, 4, { SLURM_ARRAY_TASK_ID: "x" }), /SLURM_ARRAY_TASK_ID: expected a task index/);
  });

  it("mean and sample standard deviation", () => {
    assert.deepEqual(meanStd([1, 3]), { mean: 2, std: Math.SQRT2, n: 2 });
    assert.deepEqual(meanStd([5]), { mean: 5, std: 0, n: 1 });
  });
});

describe("chainopt sweep (CLI)", () => {
  it("4 tasks as 4 --task processes (one by SLURM_ARRAY_TASK_ID) give the report of running them one by one", async () => {
    const parallelFile = writeSweep("par", "par-out");
    const serialFile = writeSweep("ser", "ser-out");
    const runs = await Promise.all([
      runCli(["sweep", parallelFile, "--task", "0", "--json"]),
      runCli(["sweep", parallelFile, "--task", "1", "--json"]),
      runCli(["sweep", parallelFile, "--task", "2", "--json"]),
      runCli(["sweep", parallelFile, "--json"], { SLURM_ARRAY_TASK_ID: "3" }),
    ]);
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      runs.map((r) => jsonLines(r.stdout)[0].task),
      [0, 1, 2, 3],
    );
    const serial = await runCli(["sweep", serialFile, "--json"]);
    assert.equal(serial.code, 0, serial.stderr);
    assert.equal(jsonLines(serial.stdout).length, 4);
    const a = loadSweepResults(join(root, "par-out"));
    const b = loadSweepResults(join(root, "ser-out"));
    assert.equal(a.results.length, 4);
    assert.deepEqual(aggregate(a.results, a.manifest.axes, ["lr"]), aggregate(b.results, b.manifest.axes, ["lr"]));
    // Re-running skips finished tasks.
    const again = await runCli(["sweep", serialFile, "--task", "1", "--json"]);
    assert.equal(jsonLines(again.stdout)[0].outcome, "skipped");
    // A task killed before its end (no summary.json) resumes from its checkpoint.
    const t2 = readdirSync(join(root, "ser-out")).filter((d) => d.startsWith("task-0002"))[0];
    unlinkSync(join(root, "ser-out", t2, "summary.json"));
    const resumed = await runCli(["sweep", serialFile, "--task", "2", "--json"]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(jsonLines(resumed.stdout)[0].outcome, "resumed");
    assert.ok(existsSync(join(root, "ser-out", t2, "summary.json")));
    // The report of the sweep folder: tables and a plot per axis.
    const html = join(root, "report.html");
    const rep = await runCli(["report", join(root, "par-out"), "--out", html, "--no-png"]);
    assert.equal(rep.code, 0, rep.stderr);
    const page = readFileSync(html, "utf8");
    assert.match(page, /By lr \(mean ± std over seeds and the other axes\)/);
    assert.match(page, /4 of 4 task\(s\) finished/);
    assert.ok(existsSync(join(root, "report-plots", "axis-lr-test_loss.svg")));
  });

  it("a bad sweep file fails naming the field, before anything is written", async () => {
    const file = join(root, "bad.json");
    writeFileSync(file, JSON.stringify({ name: "bad", out: "bad-out", base: BASE, grid: { lr: [0.1, "fast"] } }));
    const r = await runCli(["sweep", file]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /grid\.lr\[1\]: /);
    assert.ok(!existsSync(join(root, "bad-out")));
  });
});
