import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createChain } from "../src/chain/chain.js";
import { Rng } from "../src/core/rng.js";
import { appendLineDurable, readJsonLines, readJsonLinesDetailed, repairJsonLines, writeFileAtomic } from "../src/node/atomic.js";
import { chainTensorLayout, loadCheckpoint, saveCheckpoint } from "../src/node/checkpoint.js";
import { libraryVersion, RunDirectory } from "../src/node/run-dir.js";
import { decodeSafetensors, encodeSafetensors, readSafetensors, SafetensorsError, writeSafetensors } from "../src/node/safetensors.js";

const root = mkdtempSync(join(tmpdir(), "chainopt-records-"));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const fresh = (name: string) => {
  const d = join(root, `${name}-${counter++}`);
  mkdirSync(d, { recursive: true });
  return d;
};
const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

describe("atomic writes", () => {
  it("writes through a temporary file and leaves none behind", () => {
    const dir = fresh("atomic");
    const f = join(dir, "a.json");
    writeFileAtomic(f, "one");
    writeFileAtomic(f, "two");
    assert.equal(readFileSync(f, "utf8"), "two");
    assert.deepEqual(readdirSync(dir), ["a.json"]);
  });

  it("a process killed (SIGKILL) at random moments never leaves a partial file", async () => {
    const dir = fresh("kill");
    const target = join(dir, "data.bin");
    const atomicUrl = new URL("../src/node/atomic.js", import.meta.url).href;
    // The child rewrites a 4 MB file over and over; every version is one byte value repeated.
    const script = `import { writeFileAtomic } from ${JSON.stringify(atomicUrl)};
      let k = 0; process.stdout.write("ready\\n");
      for (;;) writeFileAtomic(${JSON.stringify(target)}, Buffer.alloc(4 << 20, k++ % 251));`;
    const size = 4 << 20;
    const rng = new Rng(5);
    let checked = 0;
    for (let round = 0; round < 6; round++) {
      const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
      await new Promise<void>((res) => child.stdout.once("data", () => res()));
      await new Promise((res) => setTimeout(res, 20 + rng.int(120)));
      child.kill("SIGKILL");
      await new Promise((res) => child.once("exit", res));
      if (!existsSync(target)) continue;
      const data = readFileSync(target);
      assert.equal(data.length, size, `round ${round}: partial file of ${data.length} bytes`);
      assert.ok(
        data.every((b) => b === data[0]),
        `round ${round}: mixed contents`,
      );
      checked++;
    }
    assert.ok(checked > 0, "the child never completed a write");
    // Leftovers are temporary files only.
    for (const f of readdirSync(dir)) assert.ok(f === "data.bin" || /^\.data\.bin\.[0-9a-f]+\.tmp$/.test(f), f);
  });
});

describe("JSON Lines", () => {
  it("skips a torn last line; repair cuts it so appends continue cleanly", () => {
    const f = join(fresh("jsonl"), "m.jsonl");
    appendLineDurable(f, { step: 1, loss: 0.5 });
    appendLineDurable(f, { step: 2, loss: 0.25 });
    appendFileSync(f, '{"step": 3, "lo');
    const r = readJsonLinesDetailed(f);
    assert.deepEqual(r.records, [
      { step: 1, loss: 0.5 },
      { step: 2, loss: 0.25 },
    ]);
    assert.equal(r.tornBytes, 15);
    assert.equal(repairJsonLines(f), 15);
    appendLineDurable(f, { step: 3, loss: 0.125 });
    assert.deepEqual(
      readJsonLines(f).map((x) => x.step),
      [1, 2, 3],
    );
    assert.deepEqual(readJsonLines(join(root, "missing.jsonl")), []);
  });

  it("a corrupt line in the middle is an error naming the file and line", () => {
    const f = join(fresh("jsonl"), "m.jsonl");
    writeFileSync(f, '{"a":1}\n{"a":\n{"a":2}\n');
    assert.throws(() => readJsonLines(f), /m\.jsonl:2: invalid JSON line/);
  });
});

describe("safetensors", () => {
  it("round trip is bit-exact (F32/F64 specials, integers, metadata) and aligned", () => {
    const f32 = new Float32Array([1.5, -0, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1e-45, 3.4028234663852886e38, Math.PI]);
    const u = new Uint32Array(f32.buffer);
    const f32nan = new Float32Array(2);
    new Uint32Array(f32nan.buffer).set([0x7fc00001, 0xffa00002]); // NaNs with payloads
    const f64 = new Float64Array(33);
    const rng = new Rng(1);
    const w = new Uint32Array(f64.buffer);
    for (let i = 0; i < w.length; i++) w[i] = rng.nextUint32();
    const tensors = {
      small: { data: new Uint8Array([1, 2, 3]) }, // odd length first: the writer reorders for alignment
      f32: { data: f32, shape: [7] },
      nan: { data: f32nan },
      f64: { data: f64, shape: [3, 11] },
      i32: { data: new Int32Array([-1, 2 ** 31 - 1, -(2 ** 31)]) },
      i64: { data: new BigInt64Array([-1n, 2n ** 62n]), shape: [2, 1] },
      scalar: { data: new Float64Array([2.5]), shape: [] },
      empty: { data: new Float32Array(0), shape: [0, 4] },
    };
    const file = join(fresh("st"), "t.safetensors");
    writeSafetensors(file, tensors, { note: "hello", json: '{"a":1}' });
    const bytes = readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    assert.equal((8 + n) % 8, 0, "data buffer starts at a multiple of 8");
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString("utf8")) as Record<
      string,
      { dtype: string; data_offsets: [number, number] }
    >;
    for (const [k, v] of Object.entries(header)) {
      if (k === "__metadata__") continue;
      const size = { F64: 8, F32: 4, I32: 4, I64: 8, U8: 1 }[v.dtype] ?? 1;
      assert.equal(v.data_offsets[0] % size, 0, `${k} aligned`);
    }
    const back = readSafetensors(file);
    assert.deepEqual(back.metadata, { note: "hello", json: '{"a":1}' });
    assert.deepEqual([...back.tensors.keys()].sort(), Object.keys(tensors).sort());
    for (const [k, t] of Object.entries(tensors)) {
      const r = back.tensors.get(k);
      assert.ok(r, k);
      assert.equal(r.data.constructor, t.data.constructor, k);
      assert.deepEqual(bytesOf(r.data), bytesOf(t.data), k);
    }
    assert.deepEqual(back.tensors.get("f64")?.shape, [3, 11]);
    assert.deepEqual(back.tensors.get("scalar")?.shape, []);
    assert.deepEqual(new Uint32Array((back.tensors.get("f32") as { data: Float32Array }).data.buffer), u);
  });

  const valid = () => encodeSafetensors({ a: { data: new Float32Array([1, 2, 3, 4]), shape: [2, 2] }, b: { data: new Float64Array([5]) } });
  /** Builds a file from a header object and a data buffer. */
  const craft = (header: unknown, data: Uint8Array, headerLength?: bigint) => {
    const h = Buffer.from(JSON.stringify(header));
    const out = Buffer.alloc(8 + h.length + data.length);
    out.writeBigUInt64LE(headerLength ?? BigInt(h.length), 0);
    h.copy(out, 8);
    Buffer.from(data).copy(out, 8 + h.length);
    return out;
  };
  const expectError = (bytes: Uint8Array, pattern: RegExp) => {
    assert.throws(
      () => decodeSafetensors(bytes, "bad.safetensors"),
      (e: unknown) => e instanceof SafetensorsError && /^bad\.safetensors: /.test(e.message) && pattern.test(e.message),
    );
  };

  it("rejects truncated files", () => {
    const ok = valid();
    expectError(ok.subarray(0, 5), /too short/);
    expectError(ok.subarray(0, 20), /runs past the end of the file.*truncated/);
    expectError(ok.subarray(0, ok.length - 3), /tensor "(a|b)": data_offsets .* run past the end of the data.*truncated/);
  });

  it("rejects bad headers", () => {
    expectError(craft({}, new Uint8Array(0), 10n ** 12n), /exceeds the limit/);
    const garbage = Buffer.from(valid());
    garbage.write("!", 8);
    expectError(garbage, /does not start with '\{'/);
    const h = Buffer.from('{"a": [1, 2');
    const notJson = Buffer.concat([Buffer.alloc(8), h]);
    notJson.writeBigUInt64LE(BigInt(h.length), 0);
    expectError(notJson, /not valid JSON/);
    expectError(craft({ a: { dtype: "F33", shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)), /tensor "a": unknown dtype "F33"/);
    expectError(
      craft({ a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /tensor "a": shape \[3\] × F32 .* needs 12 bytes, data_offsets give 8/,
    );
    expectError(craft({ a: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)), /tensor "a": shape/);
    expectError(craft({ __metadata__: { x: 1 } }, new Uint8Array(0)), /__metadata__ entry "x" is not a string/);
  });

  it("rejects overlapping offsets, holes and trailing bytes", () => {
    const overlap = { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [4, 12] } };
    expectError(craft(overlap, new Uint8Array(12)), /tensor "b": data overlaps tensor "a"/);
    const hole = { a: { dtype: "F32", shape: [1], data_offsets: [0, 4] }, b: { dtype: "F32", shape: [1], data_offsets: [8, 12] } };
    expectError(craft(hole, new Uint8Array(12)), /tensor "b": hole in the data buffer/);
    expectError(craft({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, new Uint8Array(6)), /2 bytes after the last tensor/);
  });

  it("reads the Python-written fixture files", () => {
    const { tensors, metadata } = readSafetensors(fileURLToPathSafe("../../test/fixtures/torch/mlp.safetensors"));
    assert.equal(metadata.format, "pt");
    assert.deepEqual(tensors.get("0.weight")?.shape, [16, 10]);
  });
});

function fileURLToPathSafe(rel: string): string {
  return new URL(rel, import.meta.url).pathname;
}

const spec = {
  input: [1, 6, 6],
  layers: [
    { type: "conv2d", filters: 2, kernel: 3 },
    { type: "batchNorm" },
    { type: "relu" },
    { type: "flatten" },
    { type: "dense", units: 5 },
    { type: "tanh" },
    { type: "dense", units: 3 },
  ],
} as const;

describe("checkpoints", () => {
  for (const dtype of ["float32", "float64"] as const) {
    it(`round trip is bit-exact (${dtype}): parameters, state, optimizer, RNG, counters`, () => {
      const chain = createChain(spec as never, { dtype });
      const params = chain.initParams(3);
      params[0] = Number.NaN;
      params[1] = -0;
      const state = chain.initState();
      for (let i = 0; i < state.length; i++) state[i] = Math.sqrt(i + 0.5);
      const rng = new Rng(9);
      rng.normal(); // leaves a cached spare deviate
      const m = dtype === "float32" ? new Float32Array(params.length).fill(0.1) : new Float64Array(params.length).fill(0.1);
      const file = join(fresh("ckpt"), "c.safetensors");
      saveCheckpoint(file, chain, {
        params,
        state,
        optimizer: {
          tensors: { m, v: new Float64Array([1 / 3]) },
          scalars: { t: 17, lr: 1e-3, bad: Number.NaN, big: Number.POSITIVE_INFINITY },
          info: { name: "adam" },
        },
        rng: { data: rng.getState(), init: new Rng(2).getState() },
        step: 123,
        epoch: 4,
        extra: { best: 0.5 },
      });
      const c = loadCheckpoint(file, chain);
      assert.deepEqual(bytesOf(c.params), bytesOf(params));
      assert.deepEqual(bytesOf(c.state), bytesOf(state));
      assert.deepEqual(bytesOf(c.optimizer?.tensors.m as Float32Array), bytesOf(m));
      assert.ok(c.optimizer?.tensors.v instanceof Float64Array);
      assert.deepEqual(c.optimizer?.scalars, { t: 17, lr: 1e-3, bad: Number.NaN, big: Number.POSITIVE_INFINITY });
      assert.deepEqual(c.optimizer?.info, { name: "adam" });
      assert.equal(c.step, 123);
      assert.equal(c.epoch, 4);
      assert.deepEqual(c.extra, { best: 0.5 });
      // The restored generator continues the same stream (including the cached normal deviate).
      const restored = new Rng(0);
      restored.setState(c.rng.data);
      for (let i = 0; i < 5; i++) assert.equal(restored.normal(), rng.normal());
      assert.equal(restored.nextUint32(), rng.nextUint32());
      // Names follow the documented layout.
      const names = [...readSafetensors(file).tensors.keys()];
      for (const n of [
        "0.conv2d.weight",
        "0.conv2d.bias",
        "4.dense.weight",
        "6.dense.bias",
        "1.batchNorm.running_mean",
        "1.batchNorm.running_var",
        "optimizer.m",
      ]) {
        assert.ok(names.includes(n), n);
      }
      assert.equal(chainTensorLayout(chain).length, 8);
    });
  }

  it("refuses a checkpoint of another precision or model, naming the file", () => {
    const chain = createChain(spec as never);
    const file = join(fresh("ckpt"), "c.safetensors");
    saveCheckpoint(file, chain, { params: chain.initParams(0) });
    assert.throws(
      () => loadCheckpoint(file, createChain(spec as never, { dtype: "float64" })),
      /c\.safetensors: checkpoint precision is float32, the chain's is float64/,
    );
    const other = createChain({ input: [1, 6, 6], layers: [{ type: "flatten" }, { type: "dense", units: 3 }] });
    assert.throws(() => loadCheckpoint(file, other), /model spec differs/);
    assert.throws(() => loadCheckpoint(file, other, { checkSpec: false }), /missing/);
  });
});

describe("run directory", () => {
  it("lays out config, metrics, checkpoints (last and best), model and summary; resumes", () => {
    const out = join(fresh("run"), "r");
    const chain = createChain(spec as never);
    const run = RunDirectory.create({ out });
    const config = run.writeConfig({
      name: "test",
      model: chain.spec,
      optimizer: { name: "sgd", lr: 0.1 },
      seed: 1,
      backend: { name: "portable" },
    });
    assert.equal(config.library.version, libraryVersion());
    assert.match(libraryVersion(), /^\d+\.\d+\.\d+/);
    const w = chain.initParams(1);
    const losses = [0.9, 0.5, 0.7];
    losses.forEach((loss, e) => {
      run.logMetrics({ type: "step", step: e * 10 + 5, epoch: e, loss: loss + 0.1, lr: 0.1, grad_norm: 1 });
      run.logMetrics({
        type: "epoch",
        step: (e + 1) * 10,
        epoch: e + 1,
        train_loss: loss,
        validation_loss: loss + 0.05,
        validation_accuracy: 0.5,
      });
      w[0] = e;
      run.saveCheckpoint(chain, { params: w, step: (e + 1) * 10, epoch: e + 1 }, { metric: "validation_loss", value: loss + 0.05 });
    });
    // Work after the last checkpoint, then a crash mid-line.
    run.logMetrics({ type: "step", step: 35, epoch: 3, loss: Number.NaN });
    appendFileSync(run.metricsPath, '{"type":"step","st');
    writeFileSync(join(run.checkpointsDir, ".last.safetensors.abc123.tmp"), "partial");
    const index = run.checkpointIndex();
    assert.deepEqual(index.last, { file: "last.safetensors", step: 30, epoch: 3, wall: index.last?.wall });
    assert.equal(index.best?.epoch, 2);
    assert.equal(run.loadBestCheckpoint(chain)?.params[0], 1);
    assert.equal(run.loadLastCheckpoint(chain)?.params[0], 2);
    assert.equal(run.readMetrics().at(-1)?.loss, "NaN");

    const resumed = RunDirectory.open(out);
    assert.equal(resumed.readConfig().name, "test");
    assert.deepEqual(
      resumed.readMetrics().map((r) => [r.type, r.step]),
      [
        ["step", 5],
        ["epoch", 10],
        ["step", 15],
        ["epoch", 20],
        ["step", 25],
        ["epoch", 30],
      ],
    );
    assert.ok(!readdirSync(resumed.checkpointsDir).some((f) => f.endsWith(".tmp")));
    assert.ok(resumed.wall() >= (index.last?.wall ?? 0));
    resumed.saveModel(chain, w, chain.initState(), { torch: true });
    resumed.writeSummary({ final_validation_loss: 0.75 });
    assert.deepEqual(readdirSync(out).sort(), [
      "checkpoints",
      "config.json",
      "metrics.jsonl",
      "model.safetensors",
      "model.torch.safetensors",
      "summary.json",
    ]);
    assert.deepEqual(readdirSync(resumed.checkpointsDir).sort(), ["best.safetensors", "index.json", "last.safetensors"]);
    assert.throws(() => RunDirectory.create({ out }), /exists and is not empty/);
  });

  it("default directory: <root>/<timestamp>-<name>, never reusing one", () => {
    const rootDir = fresh("runs");
    const now = new Date(Date.UTC(2024, 0, 2, 3, 4, 5));
    const a = RunDirectory.create({ root: rootDir, name: "mnist mlp", now });
    const b = RunDirectory.create({ root: rootDir, name: "mnist mlp", now });
    assert.equal(a.dir, join(rootDir, "20240102-030405-mnist_mlp"));
    assert.equal(b.dir, join(rootDir, "20240102-030405-mnist_mlp-2"));
    assert.ok(existsSync(a.checkpointsDir));
  });
});
