import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createChain } from "../src/chain/chain.js";
import type { ModelSpecInput } from "../src/chain/spec.js";
import { PortableBackend, portableBackend } from "../src/core/portable.js";
import { Rng } from "../src/core/rng.js";
import { bestBackend, loadNativeBackend, nativeLoadError } from "../src/node/index.js";
import { assertDerivatives, randomArray, relativeError } from "./helpers.js";

const native = loadNativeBackend();
const skip = native ? false : `native addon not available (${nativeLoadError()}); build it with \`npx chainopt build-native\``;
const portable = new PortableBackend();

type Ctor = Float32ArrayConstructor | Float64ArrayConstructor;

/** A view of `length` random elements at offset `offset` inside a larger buffer, the rest filled with sentinels. */
function view(ctor: Ctor, length: number, offset: number, rng: Rng): Float32Array | Float64Array {
  const base = new ctor(offset + length + 3).fill(7777);
  const v = base.subarray(offset, offset + length);
  for (let i = 0; i < length; i++) v[i] = rng.normal();
  return v;
}

/** Runs the same gemm on native and portable (separate copies of C) and compares C, including the padding between rows. */
function compareGemm(
  ctor: Ctor,
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  opts: { alpha?: number; beta?: number; pad?: number; offset?: number; seed?: number } = {},
): void {
  const rng = new Rng(opts.seed ?? 1);
  const pad = opts.pad ?? 0;
  const offset = opts.offset ?? 0;
  const alpha = opts.alpha ?? 1;
  const beta = opts.beta ?? 0;
  const lda = (transA ? m : k) + pad;
  const ldb = (transB ? k : n) + pad;
  const ldc = n + pad;
  const rowsA = transA ? k : m;
  const rowsB = transB ? n : k;
  const a = view(ctor, Math.max(0, (rowsA - 1) * lda + (transA ? m : k)), offset, rng);
  const b = view(ctor, Math.max(0, (rowsB - 1) * ldb + (transB ? k : n)), offset + 1, rng);
  const c1 = view(ctor, Math.max(0, (m - 1) * ldc + n), offset + 2, rng);
  const c2 = c1.slice();
  native!.gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c1, ldc);
  portable.gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c2, ldc);
  const tol = ctor === Float32Array ? 1e-5 : 1e-13;
  const label = `${ctor.name} transA=${transA} transB=${transB} m=${m} n=${n} k=${k} pad=${pad} α=${alpha} β=${beta}`;
  assert.ok(relativeError(c1, c2) <= tol, `${label}: relative error ${relativeError(c1, c2)}`);
  // Padding between rows of C must be untouched.
  for (let i = 0; i < m; i++)
    for (let j = n; j < ldc && i * ldc + j < c1.length; j++) assert.equal(c1[i * ldc + j], c2[i * ldc + j], label);
  // Elements outside the view must be untouched (no writes past the subarray).
  const after = new (ctor as Float64ArrayConstructor)(c1.buffer, c1.byteOffset + c1.byteLength, 3);
  assert.deepEqual([...after], [7777, 7777, 7777], `${label}: wrote past the view`);
}

/** Random symmetric positive definite n×n matrix B Bᵀ + n I. */
function spd(n: number, rng: Rng): Float64Array {
  const b = randomArray(n * n, rng);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = i === j ? n : 0;
      for (let p = 0; p < n; p++) s += b[i * n + p] * b[j * n + p];
      a[i * n + j] = s;
    }
  return a;
}

describe("native OpenBLAS backend", { skip }, () => {
  it("describes itself and sets threads", () => {
    const info = native!.info();
    assert.equal(info.library, "OpenBLAS");
    assert.match(info.version, /^\d+\.\d+/);
    assert.ok(info.coreName.length > 0);
    assert.match(native!.describe(), /OpenBLAS .*core .*thread/);
    const before = native!.threads;
    native!.setThreads(1);
    assert.equal(native!.threads, 1);
    native!.setThreads(before);
    assert.equal(native!.threads, before);
    assert.throws(() => native!.setThreads(0), RangeError);
  });

  it("gemm matches the portable backend: 4 transpose combinations, odd sizes, float32 and float64", () => {
    for (const ctor of [Float32Array, Float64Array] as Ctor[])
      for (const transA of [false, true])
        for (const transB of [false, true])
          for (const [m, n, k] of [
            [1, 1, 1],
            [3, 5, 7],
            [17, 13, 31],
            [64, 33, 129],
          ])
            compareGemm(ctor, transA, transB, m, n, k, { seed: m + n + k });
  });

  it("gemm honours alpha, beta, leading dimensions > n and subarray views with offsets", () => {
    for (const ctor of [Float32Array, Float64Array] as Ctor[])
      for (const transA of [false, true])
        for (const transB of [false, true]) {
          compareGemm(ctor, transA, transB, 9, 11, 6, { alpha: -0.5, beta: 0.25, pad: 3, offset: 5 });
          compareGemm(ctor, transA, transB, 20, 7, 15, { alpha: 2, beta: 1, pad: 1, offset: 1 });
          compareGemm(ctor, transA, transB, 5, 4, 3, { alpha: 0, beta: -1, offset: 2 });
          compareGemm(ctor, transA, transB, 4, 6, 0, { alpha: 1, beta: 0.5, pad: 1 });
        }
  });

  it("gemm with beta = 0 overwrites NaNs in C", () => {
    for (const ctor of [Float32Array, Float64Array] as Ctor[]) {
      const a = new ctor([1, 2, 3, 4]);
      const c = new ctor(4).fill(Number.NaN);
      native!.gemm(false, false, 2, 2, 2, 1, a, 2, a, 2, 0, c, 2);
      assert.deepEqual([...c], [7, 10, 15, 22]);
    }
  });

  it("gemm rejects bad arguments with errors naming them", () => {
    const a = new Float32Array(6);
    const c = new Float32Array(4);
    assert.throws(() => native!.gemm(false, false, 2, 2, 3, 1, a, 3, new Float32Array(5), 2, 0, c, 2), {
      name: "RangeError",
      message: /sgemm: argument 'b' has 5 elements, needs at least 6/,
    });
    assert.throws(() => native!.gemm(false, false, 2, 2, 3, 1, a, 2, a, 2, 0, c, 2), { name: "RangeError", message: /'lda' = 2/ });
    assert.throws(() => native!.gemm(false, false, 2, 3, 3, 1, a, 3, new Float32Array(9), 3, 0, c, 3), {
      name: "RangeError",
      message: /'c' has 4 elements/,
    });
    assert.throws(() => native!.gemm(false, false, 2, 2, 3, 1, new Float64Array(6), 3, a, 2, 0, c, 2), {
      name: "TypeError",
      message: /sgemm: argument 'a' must be a Float32Array/,
    });
    assert.throws(() => native!.gemm(false, false, -1, 2, 3, 1, a, 3, a, 2, 0, c, 2), { name: "RangeError", message: /'m'/ });
    assert.throws(() => native!.gemm(false, false, 1.5, 2, 3, 1, a, 3, a, 2, 0, c, 2), { name: "RangeError", message: /'m'/ });
    const d = new Float64Array(4);
    assert.throws(() => native!.gemm(false, false, 2, 2, 2, 1, d, 2, d, 2, 0, d, 1), {
      name: "RangeError",
      message: /dgemm: argument 'ldc'/,
    });
  });

  it("cholesky and choleskySolve match the portable backend", () => {
    const rng = new Rng(3);
    for (const n of [1, 2, 7, 40]) {
      const a = spd(n, rng);
      const l1 = a.slice();
      const l2 = a.slice();
      assert.equal(native!.cholesky!(l1, n), true);
      assert.equal(portable.cholesky(l2, n), true);
      assert.ok(relativeError(l1, l2) < 1e-12, `cholesky n=${n}: ${relativeError(l1, l2)}`);
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) assert.equal(l1[i * n + j], 0);
      for (const nrhs of [1, 3]) {
        const b1 = randomArray(n * nrhs, rng);
        const b2 = b1.slice();
        native!.choleskySolve!(l1, n, b1, nrhs);
        portable.choleskySolve(l2, n, b2, nrhs);
        assert.ok(relativeError(b1, b2) < 1e-10, `choleskySolve n=${n} nrhs=${nrhs}: ${relativeError(b1, b2)}`);
      }
    }
    const notPd = Float64Array.from([1, 2, 2, 1]);
    assert.equal(native!.cholesky!(notPd, 2), false);
  });

  it("solve matches the portable backend and reports singular matrices", () => {
    const rng = new Rng(4);
    for (const n of [1, 3, 8, 33])
      for (const nrhs of [1, 4]) {
        const a = randomArray(n * n, rng);
        const x = randomArray(n * nrhs, rng);
        // B = A X, then both backends must recover X.
        const b = new Float64Array(n * nrhs);
        portable.gemm(false, false, n, nrhs, n, 1, a, n, x, nrhs, 0, b, nrhs);
        const b1 = b.slice();
        const b2 = b.slice();
        assert.equal(native!.solve!(a.slice(), n, b1, nrhs), true);
        assert.equal(portable.solve(a.slice(), n, b2, nrhs), true);
        assert.ok(relativeError(b1, x) < 1e-9, `solve n=${n} nrhs=${nrhs}: ${relativeError(b1, x)}`);
        assert.ok(relativeError(b1, b2) < 1e-9, `solve vs portable n=${n} nrhs=${nrhs}: ${relativeError(b1, b2)}`);
      }
    const singular = Float64Array.from([1, 2, 2, 4]);
    assert.equal(native!.solve!(singular, 2, new Float64Array(2), 1), false);
  });

  it("symmetricEigen matches the portable backend (values ascending, vectors as rows)", () => {
    const rng = new Rng(5);
    for (const n of [1, 2, 6, 25]) {
      const s = randomArray(n * n, rng);
      const a = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = s[i * n + j] + s[j * n + i];
      const v1 = a.slice();
      const v2 = a.slice();
      const w1 = native!.symmetricEigen!(v1, n, true);
      const w2 = portable.symmetricEigen(v2, n, true);
      assert.ok(relativeError(w1, w2) < 1e-10, `eigenvalues n=${n}: ${relativeError(w1, w2)}`);
      for (let r = 0; r < n; r++) {
        // A v = λ v for row r, and rows agree with the portable ones up to sign.
        const row = v1.subarray(r * n, r * n + n);
        const av = new Float64Array(n);
        portable.gemm(false, false, n, 1, n, 1, a, n, row, 1, 0, av, 1);
        for (let i = 0; i < n; i++) assert.ok(Math.abs(av[i] - w1[r] * row[i]) < 1e-9 * Math.max(1, Math.abs(w1[r])), `A v = λ v, n=${n}`);
        let dot = 0;
        for (let i = 0; i < n; i++) dot += row[i] * v2[r * n + i];
        assert.ok(Math.abs(Math.abs(dot) - 1) < 1e-8, `eigenvector ${r} of n=${n}: |⟨v1, v2⟩| = ${Math.abs(dot)}`);
      }
      const w3 = native!.symmetricEigen!(a.slice(), n, false);
      assert.ok(relativeError(w3, w1) < 1e-12);
    }
  });

  it("LAPACK wrappers reject bad arguments", () => {
    assert.throws(() => native!.cholesky!(new Float64Array(3), 2), { name: "RangeError", message: /dpotrf: argument 'a' has 3 elements/ });
    assert.throws(() => native!.choleskySolve!(new Float64Array(4), 2, new Float64Array(3), 2), {
      name: "RangeError",
      message: /dpotrs: argument 'b'/,
    });
    assert.throws(() => native!.solve!(new Float32Array(4) as unknown as Float64Array, 2, new Float64Array(2), 1), {
      name: "TypeError",
      message: /dgesv: argument 'a' must be a Float64Array/,
    });
  });

  describe("derivative checks on the native backend", () => {
    it("dense MLP", () => {
      const spec: ModelSpecInput = {
        input: [7],
        layers: [
          { type: "dense", units: 6 },
          { type: "tanh" },
          { type: "dense", units: 5 },
          { type: "softplus" },
          { type: "dense", units: 3 },
        ],
      };
      assertDerivatives(spec, { batch: 5, backend: native! });
    });

    it("dense MLP with relu and sigmoid, flatten of an image input", () => {
      assertDerivatives(
        {
          input: [2, 3, 3],
          layers: [
            { type: "flatten" },
            { type: "dense", units: 8 },
            { type: "sigmoid" },
            { type: "dense", units: 4, bias: false },
            { type: "tanh" },
          ],
        },
        { batch: 4, backend: native! },
      );
    });
  });

  it("bestBackend returns the native backend and registers nothing: new chains default to the portable one", () => {
    const b = bestBackend({ quiet: true });
    assert.equal(b, native);
    assert.equal(createChain({ input: [3], layers: [{ type: "dense", units: 2 }] }).backend, portableBackend);
    assert.equal(createChain({ input: [3], layers: [{ type: "dense", units: 2 }] }, { backend: b }).backend, native);
  });
});
