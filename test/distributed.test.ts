import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { allreduceSumOrdered, SingleProcessCollective } from "../src/core/collective.js";
import { readSafetensors } from "../src/node/safetensors.js";
import { DataParallel } from "../src/train/data-parallel.js";
import { readMetrics, runCli, tensorBytes, waitFor } from "./cli-helpers.js";
import { MPI_SKIP, runMpi, startMpi } from "./mpi-helpers.js";

// Data-parallel training over MPI (docs/distributed.md): 2 ranks against 1 process on the same
// global batches, bit-identical deterministic reductions, a failing rank ending the job, and
// resume after a rank is killed.

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), "chainopt-mpi-"));
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

const TINY = [
  "--dataset",
  "synthetic-teacher",
  "--validation",
  "100",
  "--model",
  "mlp",
  "--widths",
  "24",
  "--loss",
  "squared",
  "--seed",
  "3",
];
const args = (extra: string[]) => ["train", ...TINY, "--no-progress", ...extra];

/** Every tensor of the final model as float64 numbers. */
function modelParams(dir: string): Map<string, Float64Array> {
  const out = new Map<string, Float64Array>();
  for (const [name, t] of readSafetensors(join(dir, "model.safetensors")).tensors)
    out.set(name, Float64Array.from(t.data as ArrayLike<number>));
  return out;
}

/** max |a − b| / max(max |a|, 1e-30) over all tensors. */
function relativeDifference(a: Map<string, Float64Array>, b: Map<string, Float64Array>): number {
  let diff = 0;
  let scale = 0;
  assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
  for (const [k, x] of a) {
    const y = b.get(k) as Float64Array;
    for (let i = 0; i < x.length; i++) {
      diff = Math.max(diff, Math.abs(x[i] - y[i]));
      scale = Math.max(scale, Math.abs(x[i]));
    }
  }
  return diff / Math.max(scale, 1e-30);
}

describe("data parallel, one process (no MPI needed)", () => {
  it("the shares of a batch cover it, and a single-process collective leaves the gradient as it is", () => {
    const one = new DataParallel(new SingleProcessCollective());
    assert.deepEqual(one.share(10), { lo: 0, hi: 10 });
    // The shares of N ranks partition [0, B) for any B ≥ 0 (also B < N: empty shares).
    for (const n of [2, 3, 7]) {
      for (const b of [0, 1, 5, 128, 255]) {
        let next = 0;
        for (let r = 0; r < n; r++) {
          const s = new DataParallel({ ...new SingleProcessCollective(), rank: r, size: n } as SingleProcessCollective).share(b);
          assert.equal(s.lo, next);
          assert.ok(s.hi >= s.lo);
          next = s.hi;
        }
        assert.equal(next, b);
      }
    }
    const x = new Float64Array([1, 2, 3]);
    allreduceSumOrdered(new SingleProcessCollective(), x);
    assert.deepEqual([...x], [1, 2, 3]);
  });

  it("--distributed without the MPI addon fails before writing anything, saying how to get it", async () => {
    // CHAINOPT_MPI_ADDON points the loader at a missing addon: what a machine without MPI sees.
    const out = join(root, "no-mpi");
    const r = await runCli(args(["--epochs", "1", "--out", out, "--distributed"]), { CHAINOPT_MPI_ADDON: join(root, "missing.node") });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--distributed needs the MPI addon/);
    assert.match(r.stderr, /apt-get install -y openmpi-bin libopenmpi-dev/);
    assert.ok(!existsSync(out), "nothing is written");
    // Everything else works without it.
    const plain = await runCli(args(["--epochs", "1", "--out", join(root, "plain")]), { CHAINOPT_MPI_ADDON: join(root, "missing.node") });
    assert.equal(plain.code, 0, plain.stderr);
  });

  it("--deterministic-reduce without --distributed is refused", async () => {
    const r = await runCli(args(["--epochs", "1", "--out", join(root, "det-alone"), "--deterministic-reduce"]));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--deterministic-reduce: only with --distributed/);
  });
});

describe("data parallel over MPI", { skip: MPI_SKIP }, () => {
  for (const [dtype, tol] of [
    ["float64", 1e-12],
    ["float32", 1e-6],
  ] as const) {
    it(`2 ranks equal 1 process on the same global batches (${dtype}, ≤ ${tol} relative)`, async () => {
      const common = ["--epochs", "3", "--batch-size", "50", "--dtype", dtype, "--lr", "0.05"];
      const one = join(root, `one-${dtype}`);
      const two = join(root, `two-${dtype}`);
      const r1 = await runCli(args([...common, "--out", one]));
      assert.equal(r1.code, 0, r1.stderr);
      const r2 = await runMpi(2, args([...common, "--out", two, "--distributed"]));
      assert.equal(r2.code, 0, r2.stderr);
      const d = relativeDifference(modelParams(one), modelParams(two));
      assert.ok(d <= tol, `relative difference ${d}`);
      // Same training losses (all-reduced) to the same tolerance.
      const l1 = readMetrics(one)
        .filter((m) => m.type === "epoch")
        .map((m) => m.train_loss as number);
      const l2 = readMetrics(two)
        .filter((m) => m.type === "epoch")
        .map((m) => m.train_loss as number);
      assert.equal(l2.length, 3);
      for (let i = 0; i < 3; i++) assert.ok(Math.abs(l1[i] - l2[i]) <= 10 * tol * Math.abs(l1[i]), `epoch ${i + 1}: ${l1[i]} vs ${l2[i]}`);
      // Validation loss: each rank evaluates its share, the sums are all-reduced.
      const v1 = readMetrics(one)
        .filter((m) => m.type === "epoch")
        .map((m) => m.validation_loss as number);
      const v2 = readMetrics(two)
        .filter((m) => m.type === "epoch")
        .map((m) => m.validation_loss as number);
      for (let i = 0; i < 3; i++)
        assert.ok(Math.abs(v1[i] - v2[i]) <= 10 * tol * Math.abs(v1[i]), `validation ${i + 1}: ${v1[i]} vs ${v2[i]}`);
      // Only rank 0 wrote a run directory, and it records the launch.
      assert.deepEqual(JSON.parse(readFileSync(join(two, "distributed.json"), "utf8")).ranks, 2);
    });
  }

  it("--optimizer ggn --distributed (Gram matrix split by rows): 2 ranks equal 1 process to ≤ 1e-10 (float64)", async () => {
    const common = ["--epochs", "2", "--batch-size", "60", "--dtype", "float64", "--optimizer", "ggn", "--damping", "0.01", "--lr", "0.5"];
    const one = join(root, "ggn-one");
    const two = join(root, "ggn-two");
    const r1 = await runCli(args([...common, "--out", one]));
    assert.equal(r1.code, 0, r1.stderr);
    const r2 = await runMpi(2, args([...common, "--out", two, "--distributed"]));
    assert.equal(r2.code, 0, r2.stderr);
    const d = relativeDifference(modelParams(one), modelParams(two));
    assert.ok(d <= 1e-10, `relative difference ${d}`);
    // A second-order method that is not row-split is refused, naming it.
    const r3 = await runMpi(2, args(["--epochs", "1", "--optimizer", "newton", "--out", join(root, "newton"), "--distributed"]));
    assert.notEqual(r3.code, 0);
    assert.match(r3.stderr, /--optimizer newton is not data-parallel/);
  });

  it("--deterministic-reduce: two 2-rank runs are bit-identical", async () => {
    const common = ["--epochs", "2", "--batch-size", "30", "--dtype", "float32", "--deterministic-reduce", "--distributed"];
    const a = join(root, "det-a");
    const b = join(root, "det-b");
    for (const out of [a, b]) {
      const r = await runMpi(2, args([...common, "--out", out]));
      assert.equal(r.code, 0, r.stderr);
    }
    const ta = tensorBytes(join(a, "model.safetensors"));
    const tb = tensorBytes(join(b, "model.safetensors"));
    for (const [k, v] of ta) assert.ok(v.equals(tb.get(k) as Buffer), `tensor ${k} differs`);
  });

  it("a sweep task launched on 2 ranks trains data-parallel; rank 0 alone writes", async () => {
    const file = join(root, "sweep.json");
    writeFileSync(
      file,
      JSON.stringify({
        name: "mpi-sweep",
        out: "mpi-sweep-out",
        base: { dataset: "synthetic-teacher", validation: 100, model: "mlp", widths: [8], loss: "squared", epochs: 1 },
        grid: { seed: [0, 1] },
      }),
    );
    const r = await runMpi(2, ["sweep", file, "--task", "1", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split("\n").filter((l) => l.startsWith("{"));
    assert.equal(lines.length, 1, "one line, from rank 0");
    const dir = JSON.parse(lines[0]).runDir as string;
    assert.equal(JSON.parse(readFileSync(join(dir, "distributed.json"), "utf8")).ranks, 2);
    assert.ok(existsSync(join(dir, "summary.json")));
  });

  it("a rank that throws ends every rank with a non-zero status (no hang)", async () => {
    // MPMD launch: rank 1 gets an invalid learning rate and throws while rank 0 waits in a collective.
    const good = args(["--epochs", "50", "--out", join(root, "throw")]);
    const bad = args(["--epochs", "50", "--lr", "-1", "--out", join(root, "throw-bad")]);
    const started = Date.now();
    const r = await runMpi(2, [good, bad]);
    const seconds = (Date.now() - started) / 1000;
    assert.notEqual(r.code, 0, "mpirun exited with status 0");
    assert.match(r.stderr, /rank 1 of 2: invalid training configuration/);
    // (Open MPI's own MPI_ABORT help text is not asserted: it depends on the installation's help
    // files, and some Debian images fail to print it.) That mpirun returned at all, non-zero, while
    // rank 0 waited in a collective, is the point: the abort reached every rank.
    process.stderr.write(`# a throwing rank: mpirun exited with ${r.code} after ${seconds.toFixed(1)} s\n`);
  });

  it("a killed rank ends the job; --resume with the same N finishes bit-identical to an uninterrupted run", async () => {
    const common = ["--epochs", "12", "--batch-size", "4", "--dtype", "float64", "--schedule", "cosine", "--deterministic-reduce"];
    const full = join(root, "kill-full");
    const rf = await runMpi(2, args([...common, "--out", full, "--distributed"]));
    assert.equal(rf.code, 0, rf.stderr);
    const killed = join(root, "kill-run");
    const job = startMpi(2, args([...common, "--out", killed, "--distributed"]));
    const epochs = () => readMetrics(killed).filter((m) => m.type === "epoch").length;
    await waitFor(() => epochs() >= 3, job.done, 60_000);
    // Kill rank 1 (a child of mpirun running the CLI with OMPI_COMM_WORLD_RANK=1).
    const pids = spawnSync("pgrep", ["-P", String(job.child.pid)], { encoding: "utf8" })
      .stdout.split("\n")
      .filter(Boolean)
      .map(Number);
    const rank1 = pids.find((p) => {
      try {
        return readFileSync(`/proc/${p}/environ`, "latin1").split("\0").includes("OMPI_COMM_WORLD_RANK=1");
      } catch {
        return false;
      }
    });
    assert.ok(rank1 !== undefined, `no rank-1 process among ${pids.join(", ")}`);
    const t = Date.now();
    process.kill(rank1, "SIGKILL");
    const r = await job.done;
    const seconds = (Date.now() - t) / 1000;
    assert.notEqual(r.code, 0, "mpirun exited with status 0 after a rank was killed");
    assert.ok(existsSync(join(killed, "checkpoints", "last.safetensors")), "the last good checkpoint is kept");
    assert.ok(!existsSync(join(killed, "summary.json")), "the killed run did not finish");
    process.stderr.write(`# a killed rank: mpirun exited with ${r.code} ${seconds.toFixed(1)} s after SIGKILL, at epoch ${epochs()}\n`);
    const rr = await runMpi(2, ["train", "--resume", killed, "--no-progress", "--distributed"]);
    assert.equal(rr.code, 0, rr.stderr);
    const a = tensorBytes(join(full, "model.safetensors"));
    const b = tensorBytes(join(killed, "model.safetensors"));
    for (const [k, v] of a) assert.ok(v.equals(b.get(k) as Buffer), `model tensor ${k} differs after resume`);
  });
});
