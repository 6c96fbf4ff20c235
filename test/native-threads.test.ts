// One thread pool (docs/performance.md, "Threading policy"): which OpenBLAS build the addon loaded,
// that one thread setting reaches OpenBLAS and OpenMP alike, and that results at 1 and 2 threads
// agree to float tolerance and repeat bit for bit at a fixed thread count (what resume needs).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { after, describe, it } from "node:test";
import { createChain } from "../src/chain/chain.js";
import { convnet } from "../src/chain/presets.js";
import type { Backend } from "../src/core/backend.js";
import { Rng } from "../src/core/rng.js";
import { createDataset, fullBatch } from "../src/data/dataset.js";
import { loadNativeBackend, type NativeBackend, nativeLoadError, threadingPolicy, userEnvironment } from "../src/node/native-backend.js";
import { createObjective } from "../src/objectives/objective.js";
import { sgd } from "../src/optim/aliases.js";
import { Trainer } from "../src/train/trainer.js";
import { relativeError } from "./helpers.js";

const native = loadNativeBackend();
const skip = native ? false : `native addon not available (${nativeLoadError()})`;
const counts = native?.raw.getThreadCounts;
const skipCounts = skip || (counts ? false : "addon built before getThreadCounts: rebuild it with `node scripts/build-native.mjs`");
const startThreads = native?.threads ?? 1;
after(() => native?.setThreads(startThreads));

/** Debian's OpenMP build of OpenBLAS (libopenblas0-openmp), which native/src/openblas-flags.mjs prefers. */
const openMpBuildInstalled =
  process.env.CHAINOPT_OPENBLAS?.trim().toLowerCase() !== "pthreads" &&
  ["x86_64-linux-gnu", "aarch64-linux-gnu"].some((t) => existsSync(`/usr/lib/${t}/openblas-openmp/libopenblas.so.0`));

/** C = A·Bᵀ (m×k by n×k) on `backend`, float32, from fixed random data. */
function gemm(backend: Backend, m: number, n: number, k: number): Float32Array {
  const rng = new Rng(7);
  const a = Float32Array.from({ length: m * k }, () => rng.normal());
  const b = Float32Array.from({ length: n * k }, () => rng.normal());
  const c = new Float32Array(m * n);
  backend.gemm(false, true, m, n, k, 1, a, k, b, k, 0, c, n);
  return c;
}

/** Parameters after 3 SGD-momentum training steps of a small ConvNet (3×16×16, batch 16) on `backend`. */
function convSteps(backend: NativeBackend): Float32Array {
  const shape = [3, 16, 16];
  const chain = createChain(convnet({ input: shape }), { backend, dtype: "float32" });
  const trainer = new Trainer(
    { chain, objective: createObjective("logistic"), optimizer: sgd({ lr: 0.05, momentum: 0.9 }), batchSize: 16, seed: 0 },
    { params: chain.initParams(3) },
  );
  const rng = new Rng(11);
  const x = Float32Array.from({ length: 16 * 3 * 16 * 16 }, () => rng.normal());
  const labels = Int32Array.from({ length: 16 }, (_, i) => i % 10);
  const batch = fullBatch(createDataset({ name: "synthetic", inputShape: shape, x, labels, classes: 10 }), "float32");
  for (let s = 0; s < 3; s++) trainer.trainStep(batch);
  return Float32Array.from(trainer.finalParams());
}

describe("native threading: one pool", { skip }, () => {
  it("reports OpenBLAS's build and the policy in effect (describe, info)", () => {
    const info = native!.info();
    const mode = native!.raw.getParallel();
    assert.ok([0, 1, 2].includes(mode), `openblas_get_parallel() = ${mode}`);
    assert.equal(info.parallel, ["sequential", "pthreads", "openmp"][mode]);
    assert.equal(info.policy, threadingPolicy(info.parallel));
    assert.match(native!.describe(), mode === 2 ? /OpenMP build, one thread pool/ : new RegExp(`${info.parallel} build`));
    if (native!.raw.getBlasLibrary) assert.match(info.libraryPath ?? "", /openblas/i);
  });

  it("links OpenBLAS's OpenMP build when it is installed", {
    skip: openMpBuildInstalled ? false : "libopenblas0-openmp not installed",
  }, () => {
    assert.equal(
      native!.raw.getParallel(),
      2,
      `openblas_get_parallel() = ${native!.raw.getParallel()} (${native!.info().libraryPath}): the OpenMP build is installed, rebuild the addon with \`node scripts/build-native.mjs --force\``,
    );
    assert.match(native!.info().libraryPath ?? "/openblas-openmp/", /openblas-openmp/);
  });

  it("one thread setting reaches OpenBLAS and OpenMP, and survives small (serial) GEMMs", { skip: skipCounts }, () => {
    for (const t of [1, 2, 3, 1]) {
      native!.setThreads(t);
      assert.deepEqual({ ...counts!(), parallel: 0 }, { openblas: t, openmp: t, parallel: 0 }, `after setThreads(${t})`);
      // A product under the serial threshold runs on one thread and restores both counts.
      gemm(native!, 8, 8, 8);
      native!.raw.saxpy?.(100_000, 0.5, new Float32Array(100_000), new Float32Array(100_000));
      native!.raw.saxpy?.(300_000, 0.5, new Float32Array(300_000), new Float32Array(300_000)); // threaded
      assert.deepEqual({ ...counts!(), parallel: 0 }, { openblas: t, openmp: t, parallel: 0 }, `after small calls at ${t}`);
      gemm(native!, 300, 300, 300);
      assert.deepEqual({ ...counts!(), parallel: 0 }, { openblas: t, openmp: t, parallel: 0 }, `after a large GEMM at ${t}`);
    }
  });

  it("GEMM at 1 and 2 threads agrees to float tolerance and repeats bit for bit", () => {
    const results = new Map<number, Float32Array>();
    for (const t of [1, 2]) {
      native!.setThreads(t);
      const c = gemm(native!, 256, 320, 288); // above the serial threshold: split across threads
      assert.deepEqual(gemm(native!, 256, 320, 288), c, `GEMM at ${t} threads is not reproducible`);
      results.set(t, c);
    }
    const e = relativeError(results.get(1)!, results.get(2)!);
    assert.ok(e < 1e-5, `GEMM at 1 vs 2 threads: relative error ${e}`);
  });

  it("ConvNet training steps at 1 and 2 threads agree to float tolerance and repeat bit for bit", () => {
    const results = new Map<number, Float32Array>();
    for (const t of [1, 2]) {
      native!.setThreads(t);
      const p = convSteps(native!);
      assert.deepEqual(convSteps(native!), p, `ConvNet steps at ${t} threads are not reproducible`);
      results.set(t, p);
    }
    const e = relativeError(results.get(1)!, results.get(2)!);
    assert.ok(e < 1e-4, `ConvNet parameters after 3 steps, 1 vs 2 threads: relative error ${e}`);
  });

  it("OpenMP waits passively unless the user chose how it waits", () => {
    /** OMP_WAIT_POLICY and GOMP_SPINCOUNT after the loader ran in a child process with `env`. */
    const waitSettings = (extra: Record<string, string>): [string | null, string | null] => {
      const env: Record<string, string | undefined> = { ...process.env, ...extra };
      for (const k of ["OMP_WAIT_POLICY", "GOMP_SPINCOUNT"]) if (!(k in extra)) delete env[k];
      const module = new URL("../src/node/native-backend.js", import.meta.url).href;
      const code = `import { loadNativeBackend } from ${JSON.stringify(module)}; loadNativeBackend(); console.log(JSON.stringify([process.env.OMP_WAIT_POLICY ?? null, process.env.GOMP_SPINCOUNT ?? null]))`;
      return JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", code], { env, encoding: "utf8" })) as [
        string | null,
        string | null,
      ];
    };
    assert.deepEqual(waitSettings({}), ["PASSIVE", null]);
    assert.deepEqual(waitSettings({ GOMP_SPINCOUNT: "10000" }), [null, "10000"]);
    assert.deepEqual(waitSettings({ OMP_WAIT_POLICY: "active" }), ["active", null]);
  });

  it("serial thresholds: the measured defaults, settable for bench/thresholds.ts, bad input refused", {
    skip: native?.raw.serialThresholds ? false : "addon without serialThresholds",
  }, () => {
    const st = native!.raw.serialThresholds!.bind(native!.raw);
    const defaults = st();
    assert.deepEqual(defaults, [8e6, 2 ** 19, 2 ** 19]);
    try {
      assert.deepEqual(st([1, 2, 3]), [1, 2, 3]);
      assert.throws(() => st([1, 2] as unknown as [number, number, number]), /expected \[gemm, level12, elementwise\]/);
      assert.throws(() => st([1, -2, 3]), /thresholds must be numbers in \[0, 9e15\]/);
    } finally {
      st(defaults);
    }
    assert.deepEqual(st(), defaults);
  });

  it("child processes get the user's environment without the loader's threading defaults", () => {
    const env = userEnvironment({ ...process.env, UNRELATED: "x" });
    assert.equal(env.UNRELATED, "x");
    // A variable the loader set itself is dropped; one the user set (to anything else) is kept.
    if (process.env.OPENBLAS_THREAD_TIMEOUT === "4") assert.equal(env.OPENBLAS_THREAD_TIMEOUT, undefined);
    assert.equal(userEnvironment({ OPENBLAS_THREAD_TIMEOUT: "9" }).OPENBLAS_THREAD_TIMEOUT, "9");
  });
});
