import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Chain } from "../src/chain/chain.js";
import { parseModelSpec } from "../src/chain/spec.js";
import { appendLineDurable } from "../src/node/atomic.js";
import { checkResumeConfig, configDigest } from "../src/node/config-digest.js";
import { loadDataset, loadIdxSet } from "../src/node/datasets.js";
import { writeIdx } from "../src/node/idx.js";
import { checkTrainingMemory, estimateTrainingMemory } from "../src/node/memory.js";
import { LOCK_FILE, RunLock, RunLockedError } from "../src/node/run-lock.js";
import { readMetrics, runCli, startCli, waitFor } from "./cli-helpers.js";

// Defects of a careful user's first runs (docs/training.md): every check before anything is
// written, memory estimated before allocating, one process per run directory, the configuration
// of a resumed run checked against its checkpoint, and messages that name the flag, file or folder.

const TINY = ["--dataset", "mnist", "--limit", "300", "--validation", "100", "--widths", "16"];

let root: string;
let count = 0;
const fresh = (name: string) => join(root, `${name}-${++count}`);
before(() => {
  root = mkdtempSync(join(tmpdir(), "chainopt-guards-"));
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

describe("memory estimate before allocating (src/node/memory.ts)", () => {
  it("counts parameters, activations and workspace per layer from the shapes", () => {
    const chain = new Chain(
      parseModelSpec({ input: [4], layers: [{ type: "dense", units: 10 }, { type: "relu" }, { type: "dense", units: 3 }] }),
    );
    const e = estimateTrainingMemory(chain, { batchSize: 8, evalBatchSize: 8, optimizerSlots: 1 });
    // dense 4→10: 50 parameters × 4 bytes × (params, grad, snapshot, 1 slot); 16 samples × 10 outputs × 4 bytes.
    assert.equal(e.layers[0].paramBytes, 50 * 4 * 4);
    assert.equal(e.layers[0].activationBytes, 16 * 10 * 4);
    assert.equal(e.layers[2].paramBytes, 33 * 4 * 4);
    assert.equal(e.workspaceBytes, 2 * 8 * 10 * 4 + 16 * 4 * 4);
    assert.equal(e.total, e.paramBytes + e.activationBytes + e.workspaceBytes);
    assert.throws(() => checkTrainingMemory(chain, { batchSize: 8, maxBytes: 1000 }), /layers\[0\] \(dense, 10 units\)/);
  });

  it("refuses a 200 000 000-unit layer and units: 1e12 naming the layer, before the run directory exists", async () => {
    for (const units of [200_000_000, 1e12]) {
      const spec = join(root, `big-${units}.json`);
      writeFileSync(
        spec,
        JSON.stringify({ input: [1, 28, 28], layers: [{ type: "flatten" }, { type: "dense", units }, { type: "dense", units: 10 }] }),
      );
      const out = fresh("big");
      const r = await runCli(["train", ...TINY, "--epochs", "1", "--model", spec, "--out", out]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`layers\\[1\\] \\(dense, ${units} units\\) alone needs [\\d.]+ [GTP]iB`));
      assert.ok(!existsSync(out), "nothing written");
    }
  });

  it("--max-memory refuses a model over the given size, naming the layer", async () => {
    const out = fresh("maxmem");
    const r = await runCli(["train", ...TINY, "--epochs", "1", "--max-memory", "64K", "--out", out]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /more than --max-memory 64\.0 KiB; layers\[\d\] \((dense|flatten)[^)]*\) alone needs/);
    assert.ok(!existsSync(out));
  });
});

describe("run-directory lock (src/node/run-lock.ts)", () => {
  it("a second `train --resume DIR` while the first trains is refused naming the holder; a dead holder's lock is recovered", async () => {
    const out = fresh("locked");
    const first = startCli(["train", ...TINY, "--epochs", "1000", "--batch-size", "50", "--out", out]);
    await waitFor(() => existsSync(join(out, LOCK_FILE)) && readMetrics(out).some((m) => m.type === "epoch"), first.done);
    const holder = JSON.parse(readFileSync(join(out, LOCK_FILE), "utf8")) as { pid: number; host: string };
    assert.equal(holder.pid, first.child.pid);
    const second = await runCli(["train", "--resume", out, "--epochs", "1001"]);
    assert.equal(second.code, 1, second.stderr);
    assert.match(second.stderr, new RegExp(`the run is in use by process ${holder.pid} on this host since `));
    // The first process dies without releasing the lock: the lock is stale, a resume recovers it.
    first.child.kill("SIGKILL");
    await first.done;
    assert.ok(existsSync(join(out, LOCK_FILE)), "a killed process leaves its lock");
    const index = JSON.parse(readFileSync(join(out, "checkpoints", "index.json"), "utf8")) as { last: { epoch: number } };
    const resumed = await runCli(["train", "--resume", out, "--epochs", String(index.last.epoch + 1)]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.ok(!existsSync(join(out, LOCK_FILE)), "released at the end");
    const epochs = readMetrics(out)
      .filter((m) => m.type === "epoch")
      .map((m) => m.epoch);
    assert.deepEqual(epochs, [...new Set(epochs)], "no duplicate epochs");
  });

  it("RunLock: exclusive in one process, recovers the lock of a dead pid", () => {
    const dir = fresh("lockunit");
    mkdirSync(dir);
    const a = RunLock.acquire(dir);
    assert.throws(() => RunLock.acquire(dir), RunLockedError);
    a.release();
    const dead = spawnSync(process.execPath, ["-e", "process.exit(0)"]).pid as number;
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: dead, host: a.info.host, started: "then" }));
    const b = RunLock.acquire(dir);
    assert.equal(b.recovered?.pid, dead);
    b.release();
    assert.ok(!existsSync(join(dir, LOCK_FILE)));
  });
});

describe("configuration digest on resume (src/node/config-digest.ts)", () => {
  it("refuses a config.json edited between interrupt and --resume, naming the key, unless --allow-config-change", async () => {
    const out = fresh("digest");
    const r = await runCli(["train", ...TINY, "--epochs", "1", "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    const file = join(out, "config.json");
    const saved = JSON.parse(readFileSync(file, "utf8")) as { train: Record<string, unknown> };
    writeFileSync(file, JSON.stringify({ ...saved, train: { ...saved.train, lr: 0.5 } }));
    const refused = await runCli(["train", "--resume", out, "--epochs", "2"]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /train\.lr: 0\.02 in the checkpoint, 0\.5 now/);
    assert.match(refused.stderr, /--allow-config-change/);
    assert.equal(readMetrics(out).filter((m) => m.type === "epoch").length, 1, "nothing trained");
    const allowed = await runCli(["train", "--resume", out, "--epochs", "2", "--allow-config-change"]);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.equal(readMetrics(out).filter((m) => m.type === "epoch").length, 2);
  });

  it("the digest ignores key order and the keys that do not change the computation", () => {
    const a = { lr: 0.1, seed: 1, epochs: 3, threads: 2 };
    assert.equal(configDigest(a), configDigest({ seed: 1, lr: 0.1, epochs: 30 }));
    assert.notEqual(configDigest(a), configDigest({ ...a, lr: 0.2 }));
    assert.deepEqual(checkResumeConfig(a, join(root, "no-such-checkpoint")), []);
  });
});

describe("checks before anything is written", () => {
  it("logistic loss on a regression set (diabetes) fails before the run directory exists", async (t) => {
    try {
      await loadDataset("diabetes");
    } catch (e) {
      t.skip(`sklearn data not available: ${(e as Error).message}`);
      return;
    }
    const out = fresh("diabetes");
    const r = await runCli(["train", "--dataset", "diabetes", "--validation", "0.2", "--epochs", "1", "--out", out]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /loss: the logistic loss needs class labels, but diabetes is a regression data set.*--loss squared/);
    assert.ok(!existsSync(out));
  });

  it("a validation set as large as the training set fails before the run directory exists", async () => {
    const out = fresh("validation");
    const r = await runCli(["train", "--dataset", "mnist", "--limit", "300", "--validation", "300", "--epochs", "1", "--out", out]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /validation/);
    assert.ok(!existsSync(out));
  });

  it("--validation larger than the data set (iris, 120 training samples) names the flag, the field and the size; nothing written", async (t) => {
    try {
      await loadDataset("iris");
    } catch (e) {
      t.skip(`sklearn data not available: ${(e as Error).message}`);
      return;
    }
    for (const [validation, why] of [
      ["200", /that leaves no training samples/],
      ["120", /that leaves no training samples/],
      ["0.9999", /a fraction of 0\.9999 is 120 samples, which leaves no training samples/],
      ["1.5", /expected a count ≥ 1 or a fraction in \(0, 1\)/],
    ] as const) {
      const out = fresh("validation-iris");
      const r = await runCli(["train", "--dataset", "iris", "--validation", validation, "--epochs", "1", "--out", out]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(`--validation ${validation.replace(".", "\\.")} \\(configuration field "validation"\\): iris has 120 training samples`),
      );
      assert.match(r.stderr, why);
      assert.ok(!existsSync(out));
    }
    // The same from a configuration file.
    const config = join(root, "validation.json");
    writeFileSync(config, JSON.stringify({ dataset: "iris", validation: 500, epochs: 1 }));
    const out = fresh("validation-config");
    const r = await runCli(["train", "--config", config, "--out", out]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /--validation 500 \(configuration field "validation"\): iris has 120 training samples/);
    assert.ok(!existsSync(out));
  });

  it("MNIST test images of another shape fail at loading, naming the file", async () => {
    const dir = fresh("mnist-shape");
    mkdirSync(dir);
    writeIdx(join(dir, "train-images-idx3-ubyte"), [2, 28, 28], new Uint8Array(2 * 784));
    writeIdx(join(dir, "train-labels-idx1-ubyte"), [2], new Uint8Array(2));
    writeIdx(join(dir, "t10k-images-idx3-ubyte"), [2, 32, 32], new Uint8Array(2 * 1024));
    writeIdx(join(dir, "t10k-labels-idx1-ubyte"), [2], new Uint8Array(2));
    await assert.rejects(loadIdxSet(dir, "mnist", "", {}), (e: Error) =>
      e.message.startsWith(`${join(dir, "t10k-images-idx3-ubyte")}: images of shape 1×32×32, expected 1×28×28`),
    );
  });

  it("CIFAR-10 cache files reshaped with the same byte count fail, naming the file", async () => {
    const dataDir = fresh("cifar-shape");
    const dir = join(dataDir, "cifar10");
    mkdirSync(dir, { recursive: true });
    writeIdx(join(dir, "train-images.idx"), [2, 3, 16, 64], new Uint8Array(2 * 3072));
    writeIdx(join(dir, "train-labels.idx"), [2], new Uint8Array(2));
    writeIdx(join(dir, "test-images.idx"), [2, 3, 32, 32], new Uint8Array(2 * 3072));
    writeIdx(join(dir, "test-labels.idx"), [2], new Uint8Array(2));
    await assert.rejects(loadDataset("cifar10", { dataDir, download: false }), (e: Error) =>
      e.message.includes(`${join(dir, "train-images.idx")}: images of shape 3×16×64, expected 3×32×32`),
    );
  });
});

describe("messages", () => {
  it("a --out that cannot be created names the folder (no hang, no bare ENOENT)", async () => {
    const r = await runCli(["train", ...TINY, "--epochs", "1", "--out", "/proc/chainopt-test-run/run"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /--out \/proc\/chainopt-test-run\/run: cannot create the folder \/proc\/chainopt-test-run in \/proc/);
  });

  it("a read-only --out folder is refused before anything is written", {
    skip: process.getuid?.() === 0 ? "root ignores permissions" : false,
  }, async () => {
    const ro = fresh("ro");
    mkdirSync(ro, { mode: 0o555 });
    const r = await runCli(["train", ...TINY, "--epochs", "1", "--out", join(ro, "run")]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`the folder ${ro} is not writable`));
  });

  it("ENOSPC names the file", { skip: existsSync("/dev/full") ? false : "no /dev/full" }, () => {
    assert.throws(
      () => appendLineDurable("/dev/full", { a: 1 }),
      (e: NodeJS.ErrnoException) => {
        return e.code === "ENOSPC" && e.message === "/dev/full: cannot append to: no space left on device (ENOSPC)";
      },
    );
  });

  it("--threads 100000 names the flag and the limit; --lr '' says the flag needs a number", async () => {
    const threads = await runCli(["train", ...TINY, "--epochs", "1", "--threads", "100000", "--out", fresh("threads")]);
    assert.equal(threads.code, 1);
    assert.match(threads.stderr, /--threads 100000: at most \d+ \(/);
    assert.doesNotMatch(threads.stderr, /setNumThreads/);
    const lr = await runCli(["train", ...TINY, "--epochs", "1", "--lr", ""]);
    assert.equal(lr.code, 1);
    assert.match(lr.stderr, /--lr needs a number, got an empty value/);
  });

  it("--on-nan skip stops with exit code 1 when no step succeeds, and warns about skipped steps", async () => {
    const out = fresh("allskip");
    const r = await runCli(["train", ...TINY, "--epochs", "3", "--lr", "1e30", "--on-nan", "skip", "--out", out]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /--on-nan skip: \d+ consecutive steps were skipped .*the limit is \d+/);
    assert.ok(!existsSync(join(out, "model.safetensors")));
  });

  it("CHAINOPT_BACKEND: an unknown value names the variable and the allowed values; portable gives no install advice", async () => {
    const bogus = await runCli(["train", ...TINY, "--epochs", "1", "--out", fresh("bogus")], { CHAINOPT_BACKEND: "bogus" });
    assert.equal(bogus.code, 1);
    assert.match(bogus.stderr, /CHAINOPT_BACKEND=bogus: unknown backend; allowed values: auto, openblas, portable/);
    const portable = await runCli(["train", ...TINY, "--epochs", "1", "--out", fresh("portable")], { CHAINOPT_BACKEND: "portable" });
    assert.equal(portable.code, 0, portable.stderr);
    assert.match(portable.stderr, /portable TypeScript backend \(CHAINOPT_BACKEND=portable\)/);
    assert.doesNotMatch(portable.stderr, /install OpenBLAS/);
    const doctor = await runCli(["doctor", "--no-bench"], { CHAINOPT_BACKEND: "portable" });
    assert.equal(doctor.code, 0, doctor.stderr);
    assert.doesNotMatch(doctor.stdout + doctor.stderr, /install OpenBLAS/);
    const doctorBogus = await runCli(["doctor", "--no-bench"], { CHAINOPT_BACKEND: "bogus" });
    assert.equal(doctorBogus.code, 1);
    assert.match(doctorBogus.stderr, /CHAINOPT_BACKEND=bogus: unknown backend; allowed values/);
  });

  it("analyze accepts --bn-epsilon as an alias of --epsilon-bn", async () => {
    const a = await runCli(["analyze", "--model", "vgg16-bn", "--input", "3x32x32", "--bn-epsilon", "0.01", "--json"]);
    const b = await runCli(["analyze", "--model", "vgg16-bn", "--input", "3x32x32", "--epsilon-bn", "0.01", "--json"]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(a.stdout, b.stdout);
  });
});
