import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { averagePool, type ClusteringExperimentOptions, runClusteringExperiment } from "../src/node/experiments/clustering.js";
import { adjustedRandIndex, convexClusteringWithCount, kMeans } from "../src/train/cluster-metrics.js";
import { jsonLines, runCli } from "./cli-helpers.js";
import { knnGaussianWeights, Rng } from "./flat.js";

// Clustering metrics, `train --objective clustering|autoencoder`, `analyze --loss …`, and the
// deep-clustering experiment at a tiny scale.

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), "chainopt-unsupervised-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

describe("clustering metrics", () => {
  it("adjusted Rand index: invariance to relabeling, reference values", () => {
    assert.equal(adjustedRandIndex([0, 0, 1, 1], [1, 1, 0, 0]), 1);
    // sklearn.metrics.adjusted_rand_score([0, 0, 1, 1], [0, 0, 1, 2]) = 0.5714285714285715 (= 4/7).
    assert.ok(Math.abs(adjustedRandIndex([0, 0, 1, 1], [0, 0, 1, 2]) - 4 / 7) < 1e-15);
    assert.equal(adjustedRandIndex([0, 0, 0, 0], [0, 1, 2, 3]), 0);
    assert.throws(() => adjustedRandIndex([0], [0, 1]), /1 and 2 labels/);
  });

  it("k-means and the convex clustering path recover separated blobs", () => {
    const rng = new Rng(1);
    const n = 30;
    const x = new Float64Array(n * 2);
    const truth = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      truth[i] = i % 3;
      x[2 * i] = 8 * truth[i] + 0.3 * rng.normal();
      x[2 * i + 1] = 0.3 * rng.normal();
    }
    assert.equal(adjustedRandIndex(kMeans(x, n, 2, 3).labels, truth), 1);
    const edges = knnGaussianWeights(x, n, 2, 4);
    const p = convexClusteringWithCount(x, n, 2, edges, 3);
    assert.equal(p.clusters, 3);
    assert.equal(adjustedRandIndex(p.labels, truth), 1);
  });
});

describe("unsupervised objectives on the command line", () => {
  it("train --objective clustering and autoencoder run, report no accuracy, and decrease the objective", async () => {
    const base = ["--dataset", "iris", "--validation", "30", "--epochs", "3", "--activation", "tanh", "--json", "--schedule", "constant"];
    const cl = await runCli([
      "train",
      ...base,
      "--widths",
      "8",
      "--objective",
      "clustering",
      "--clustering-lambda",
      "0.5",
      "--optimizer",
      "adam",
      "--lr",
      "0.01",
      "--out",
      join(root, "cl"),
    ]);
    assert.equal(cl.code, 0, cl.stderr);
    const ae = await runCli([
      "train",
      ...base,
      "--widths",
      "2",
      "--objective",
      "autoencoder",
      "--optimizer",
      "adam",
      "--lr",
      "0.01",
      "--out",
      join(root, "ae"),
    ]);
    assert.equal(ae.code, 0, ae.stderr);
    for (const r of [cl, ae]) {
      const epochs = jsonLines(r.stdout).filter((l) => l.final === undefined);
      assert.equal(epochs.length, 3);
      for (const e of epochs) assert.equal(e.valAccuracy, null);
      assert.ok((epochs[2].trainLoss as number) < (epochs[0].trainLoss as number), JSON.stringify(epochs));
    }
  });

  it("refuses --loss, second-order methods with clustering, and clustering options without it; nothing written", async () => {
    const cases: [string[], RegExp][] = [
      [["--objective", "clustering", "--loss", "squared"], /--loss: --objective clustering is its own loss/],
      [["--objective", "clustering", "--optimizer", "newton"], /second derivatives are not provided/],
      [["--clustering-lambda", "1"], /--clustering-lambda: options of --objective clustering/],
    ];
    for (const [args, re] of cases) {
      const out = join(root, `bad-${Math.random()}`);
      const r = await runCli(["train", "--dataset", "iris", "--validation", "30", "--epochs", "1", ...args, "--out", out]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, re);
      assert.ok(!existsSync(out));
    }
  });

  it("analyze certifies both objectives (L_f = 1/N) and checks the auto-encoder's shape", async () => {
    const spec = join(root, "ae.json");
    writeFileSync(
      spec,
      JSON.stringify({ input: [4], layers: [{ type: "dense", units: 2 }, { type: "softplus" }, { type: "dense", units: 4 }] }),
    );
    for (const loss of ["clustering", "autoencoder"]) {
      const r = await runCli(["analyze", "--model", spec, "--batch", "8", "--loss", loss, "--json"]);
      assert.equal(r.code, 0, r.stderr);
      const c = JSON.parse(r.stdout) as { certificate: { loss: { smoothness: number }; smoothness: number } };
      assert.equal(c.certificate.loss.smoothness, 1 / 8);
      assert.ok(Number.isFinite(c.certificate.smoothness) && c.certificate.smoothness > 0);
    }
    const bad = join(root, "not-ae.json");
    writeFileSync(bad, JSON.stringify({ input: [4], layers: [{ type: "dense", units: 3 }] }));
    const r = await runCli(["analyze", "--model", bad, "--loss", "autoencoder"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /output size \(3\) must equal its input size \(4\)/);
  });

  it("the deep-clustering experiment runs at a tiny scale and writes its table", async () => {
    const out = join(root, "exp");
    const r = await runClusteringExperiment({ datasets: ["iris"], samples: 60, epochs: 5, hidden: 8, out });
    assert.equal(r.rows.length, 1);
    const row = r.rows[0];
    for (const v of [row.kmeansRaw, row.convexRaw.ari, row.deep.ari, row.deep.kmeansAri, row.autoencoder.kmeansAri])
      assert.ok(v >= -1 && v <= 1);
    assert.ok(existsSync(join(out, "results.md")) && existsSync(join(out, "summary.json")));
  });

  it("the deep-clustering experiment stopped through io.signal resumes to the uninterrupted tables; bad options write nothing", async () => {
    const tiny = { datasets: ["iris"], samples: 60, epochs: 5, hidden: 8 };
    const full = join(root, "exp-full");
    await runClusteringExperiment({ ...tiny, out: full });
    const out = join(root, "exp-stopped");
    // Stop during the auto-encoder run (the deep run has 5 epochs; the signal is read twice per epoch).
    let reads = 0;
    const signal = {
      get stopRequested() {
        return ++reads > 16;
      },
    };
    await assert.rejects(
      runClusteringExperiment({ ...tiny, out }, { log: () => {}, signal }),
      /run iris-autoencoder was interrupted; continue with --resume/,
    );
    assert.ok(
      existsSync(join(out, "runs", "iris-deep", "summary.json")) && !existsSync(join(out, "runs", "iris-autoencoder", "summary.json")),
    );
    assert.ok(!existsSync(join(out, "results.csv")));
    const resumed = await runClusteringExperiment({ ...tiny, resume: out });
    assert.equal(resumed.runDir, out);
    // Equal tables, wall-clock columns aside.
    const table = (dir: string) => {
      const lines = readFileSync(join(dir, "results.csv"), "utf8").trim().split("\n");
      const keep = lines[0].split(",").map((column) => !column.startsWith("seconds"));
      return lines.map((line) => line.split(",").filter((_, i) => keep[i]));
    };
    assert.deepEqual(table(out), table(full));
    assert.equal(table(out)[0].length, 20);
    const rows = (dir: string) =>
      (JSON.parse(readFileSync(join(dir, "summary.json"), "utf8")).rows as Record<string, unknown>[]).map(({ seconds, ...r }) => r);
    assert.deepEqual(rows(out), rows(full));
    for (const [bad, message] of [
      [{ epochs: 0 }, /epochs: expected a positive integer, got 0/],
      [{ lr: -1 }, /lr: expected a positive number, got -1/],
      [{ samples: 1.5 }, /samples: expected a positive integer/],
      [{ datasets: [] }, /datasets: expected at least one data set/],
    ] as [ClusteringExperimentOptions, RegExp][]) {
      const dir = join(root, "exp-bad");
      await assert.rejects(runClusteringExperiment({ ...tiny, ...bad, out: dir }), message);
      assert.ok(!existsSync(dir));
    }
  });

  it("average pooling: identity for f = 1, block means, the image mean kept; a non-divisor refused", () => {
    const rng = new Rng(5);
    const n = 3;
    const side = 6;
    const x = Float64Array.from({ length: n * side * side }, () => rng.uniform());
    assert.deepEqual(averagePool(x, n, side, 1), x);
    const p = averagePool(x, n, side, 3);
    assert.equal(p.length, n * 4);
    for (let i = 0; i < n; i++) {
      // Block (1, 0) of image i: rows 3..5, columns 0..2.
      let block = 0;
      for (let r = 3; r < 6; r++) for (let c = 0; c < 3; c++) block += x[i * 36 + r * 6 + c] / 9;
      assert.ok(Math.abs(p[i * 4 + 2] - block) < 1e-15);
      let a = 0;
      let b = 0;
      for (let t = 0; t < 36; t++) a += x[i * 36 + t] / 36;
      for (let t = 0; t < 4; t++) b += p[i * 4 + t] / 4;
      assert.ok(Math.abs(a - b) < 1e-14);
    }
    assert.throws(() => averagePool(x, n, side, 4), /pool: expected a divisor of 6, got 4/);
  });

  it("the deep-clustering experiment runs on an MNIST subset (pooled) at a tiny scale; a bad pool is refused first", async () => {
    const out = join(root, "exp-mnist");
    const r = await runClusteringExperiment({ datasets: ["mnist"], samples: 40, epochs: 3, hidden: 8, pool: 7, out });
    assert.equal(r.rows.length, 1);
    const row = r.rows[0];
    assert.deepEqual([row.dataset, row.samples, row.inputs, row.classes], ["mnist", 40, 16, 10]);
    for (const v of [row.kmeansRaw, row.convexRaw.ari, row.deep.ari, row.deep.kmeansAri, row.autoencoder.kmeansAri])
      assert.ok(v >= -1 && v <= 1);
    for (const v of Object.values(row.seconds)) assert.ok(v >= 0 && Number.isFinite(v));
    const md = readFileSync(join(out, "results.md"), "utf8");
    assert.match(md, /average-pooled 7×7 \(4×4 = 16 inputs\)/);
    assert.match(md, /\| mnist \| 40 \| 16 \| 10 \|/);
    const bad = join(root, "exp-bad-pool");
    await assert.rejects(
      runClusteringExperiment({ datasets: ["mnist"], samples: 40, pool: 5, out: bad }),
      /pool: expected a divisor of 28/,
    );
    await assert.rejects(runClusteringExperiment({ datasets: ["cifar10"], out: bad }), /datasets: expected one of .*mnist, got "cifar10"/);
    assert.ok(!existsSync(bad));
  });
});
