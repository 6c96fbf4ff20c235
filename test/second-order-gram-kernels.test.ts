import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createChain } from "../src/chain/chain.js";
import type { ModelSpecInput } from "../src/chain/spec.js";
import type { Backend } from "../src/core/backend.js";
import { portableBackend } from "../src/core/portable.js";
import { Rng } from "../src/core/rng.js";
import { loadNativeBackend } from "../src/node/index.js";
import { type Batch, createObjective } from "../src/objectives/index.js";
import { empiricalNtk, prepareGaussNewton } from "../src/second-order/index.js";
import { solveSpdShiftedInPlace, transposeUpperToLower } from "../src/second-order/linalg.js";
import { randomArray, relativeError } from "./helpers.js";

// The kernels of the Gauss-Newton "gram" step (SYRK, the Gram Hadamard update, the SPD solve on a
// lower triangle) on every backend at hand, against plain float64 references, and the step itself
// on the native backend against the portable one and the dual reference.

const native = loadNativeBackend();
const backends: [string, Backend][] = [["portable", portableBackend]];
if (native) backends.push(["native", native]);

function arrayOf(dtype: "float32" | "float64", values: ArrayLike<number>): Float32Array | Float64Array {
  return dtype === "float32" ? Float32Array.from(values) : Float64Array.from(values);
}

describe("Gram kernels", () => {
  for (const [name, backend] of backends) {
    for (const dtype of ["float32", "float64"] as const) {
      it(`${name} ${dtype}: syrk fills one triangle with α·op(A)op(A)ᵀ + β·C and leaves the other`, () => {
        const rng = new Rng(3);
        const n = 37;
        const k = 23;
        const a = arrayOf(dtype, randomArray(n * k, rng));
        const at = arrayOf(
          dtype,
          Array.from({ length: n * k }, (_, i) => a[(i % n) * k + Math.floor(i / n)]),
        );
        for (const upper of [true, false]) {
          for (const [trans, src] of [
            [false, a],
            [true, at],
          ] as const) {
            const c0 = arrayOf(dtype, randomArray(n * n, rng));
            const c = c0.slice();
            backend.syrk?.(upper, trans, n, k, 0.5, src, trans ? n : k, 2, c, n);
            assert.ok(backend.syrk, `${name} has syrk`);
            for (let i = 0; i < n; i++)
              for (let j = 0; j < n; j++) {
                let s = 0;
                for (let p = 0; p < k; p++) s += a[i * k + p] * a[j * k + p];
                const inside = upper ? j >= i : j <= i;
                const want = inside ? 0.5 * s + 2 * c0[i * n + j] : c0[i * n + j];
                const tol = dtype === "float32" ? 1e-4 * (1 + Math.abs(want)) : 1e-12 * (1 + Math.abs(want));
                assert.ok(Math.abs(c[i * n + j] - want) <= tol, `(${i}, ${j}) upper ${upper} trans ${trans}: ${c[i * n + j]} vs ${want}`);
              }
          }
        }
      });

      it(`${name} ${dtype}: gramHadamard adds (or writes) t ⊙ (p + bias) expanded over cols on the upper triangle`, () => {
        const rng = new Rng(5);
        const batch = 7;
        const cols = 3;
        const q = batch * cols;
        const t = arrayOf(dtype, randomArray(q * q, rng));
        const p = arrayOf(dtype, randomArray(batch * batch, rng));
        const g0 = randomArray(q * q, rng);
        assert.ok(backend.gramHadamard, `${name} has gramHadamard`);
        for (const accumulate of [true, false]) {
          const g = g0.slice();
          backend.gramHadamard(q, cols, batch, 1, t, p, g, accumulate);
          for (let r = 0; r < q; r++)
            for (let c = 0; c < q; c++) {
              const term = t[r * q + c] * (p[Math.floor(r / cols) * batch + Math.floor(c / cols)] + 1);
              const want = c >= r ? (accumulate ? g0[r * q + c] : 0) + term : g0[r * q + c];
              assert.ok(Math.abs(g[r * q + c] - want) <= 1e-12 * (1 + Math.abs(want)), `(${r}, ${c}) accumulate ${accumulate}`);
            }
        }
      });

      it(`${name}: the shifted SPD solve from the upper triangle matches a float64 Cholesky and keeps the upper triangle`, () => {
        const rng = new Rng(7);
        const n = 60;
        // A = B Bᵀ + κ I with B of rank n/2: eigenvalues from κ to ~n, as a damped Gram matrix.
        const b = randomArray((n * n) / 2, rng);
        for (const kappa of [1, 1e-4]) {
          const g = new Float64Array(n * n); // B Bᵀ
          const a = new Float64Array(n * n); // B Bᵀ + κ I
          for (let i = 0; i < n; i++)
            for (let j = 0; j < n; j++) {
              let s = 0;
              for (let p = 0; p < n / 2; p++) s += b[i * (n / 2) + p] * b[j * (n / 2) + p];
              g[i * n + j] = s;
              a[i * n + j] = s + (i === j ? kappa : 0);
            }
          const rhs = randomArray(n, rng);
          const ref = rhs.slice();
          const l = a.slice();
          assert.ok(portableBackend.cholesky?.(l, n));
          portableBackend.choleskySolve?.(l, n, ref, 1);
          // Upper triangle from B Bᵀ (the shift κ is the argument), strictly lower triangle garbage.
          const m = new Float64Array(n * n);
          for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m[i * n + j] = j >= i ? g[i * n + j] : Number.NaN;
          const upper = m.slice();
          const x = rhs.slice();
          assert.ok(solveSpdShiftedInPlace(backend, m, n, kappa, x));
          for (let i = 0; i < n; i++) for (let j = i; j < n; j++) assert.equal(m[i * n + j], upper[i * n + j]);
          assert.ok(relativeError(x, ref) < 1e-8, `κ = ${kappa}: ${relativeError(x, ref)}`);
        }
        // Positive definite in float64 but singular once rounded to float32 (1 − 1e-9 → 1): the
        // native mixed-precision solve must fall back to double precision and still solve it.
        const e = 1e-9;
        const nearSingular = new Float64Array([0.5, 1 - e, 99, 0.5]); // upper [[0.5, 1 − e], [·, 0.5]] + 0.5 I
        const x2 = new Float64Array([1, 0]);
        assert.ok(solveSpdShiftedInPlace(backend, nearSingular, 2, 0.5, x2));
        const det = 1 - (1 - e) ** 2;
        assert.ok(relativeError(x2, [1 / det, -(1 - e) / det]) < 1e-6, `${x2}`);
        assert.deepEqual([nearSingular[0], nearSingular[1], nearSingular[3]], [0.5, 1 - e, 0.5]);
        const notPd = new Float64Array([1, 2, 0, 1]); // upper triangle [[1, 2], [·, 1]]: eigenvalues 3 and −1
        assert.equal(solveSpdShiftedInPlace(backend, notPd, 2, 0, new Float64Array(2)), false);
        assert.deepEqual([notPd[0], notPd[1], notPd[3]], [1, 2, 1]);
      });
    }
  }

  if (native?.raw.spdSolveMixed) {
    const mixed = native.raw.spdSolveMixed.bind(native.raw);
    // n = 200 factors with spotrf; n = 500 at 2 threads with the blocked Cholesky (blocks of 192).
    for (const [n, threads] of [
      [200, 1],
      [500, 2],
    ] as const)
      it(`native spdSolveMixed (n = ${n}, ${threads} threads): a well-conditioned system is solved by float32 Cholesky and float64 refinement, the matrix untouched`, () => {
        const before = native.threads;
        native.setThreads(threads);
        const rng = new Rng(13);
        const b = randomArray(n * n, rng);
        const a = new Float64Array(n * n);
        for (let i = 0; i < n; i++)
          for (let j = i; j < n; j++) {
            let s = 0;
            for (let p = 0; p < n; p++) s += b[i * n + p] * b[j * n + p];
            a[i * n + j] = s / n;
          }
        const rhs = randomArray(n, rng);
        const x = rhs.slice();
        const copy = a.slice();
        const { info, iter } = mixed(n, a, 0.5, x);
        native.setThreads(before);
        assert.equal(info, 0);
        assert.ok(iter >= 0, `refinement path (iter ${iter})`);
        assert.deepEqual(a, copy);
        // Backward error at double-precision level: ‖b − (A + 0.5 I) x‖∞ ≤ ‖x‖∞ ‖A + 0.5 I‖∞ 2⁻⁵³ √n.
        let rn = 0;
        let xn = 0;
        let an = 0;
        for (let i = 0; i < n; i++) {
          let r = rhs[i];
          let row = 0;
          for (let j = 0; j < n; j++) {
            const v = (j >= i ? a[i * n + j] : a[j * n + i]) + (i === j ? 0.5 : 0);
            r -= v * x[j];
            row += Math.abs(v);
          }
          rn = Math.max(rn, Math.abs(r));
          xn = Math.max(xn, Math.abs(x[i]));
          an = Math.max(an, row);
        }
        assert.ok(rn <= xn * an * 2 ** -53 * Math.sqrt(n), `residual ${rn}`);
      });
  }

  it("transposeUpperToLower makes a symmetric matrix from its upper triangle (sizes around the block edge)", () => {
    for (const n of [1, 5, 64, 65, 130]) {
      const a = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = j >= i ? i * 1000 + j : Number.NaN;
      transposeUpperToLower(a, n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) assert.equal(a[i * n + j], Math.min(i, j) * 1000 + Math.max(i, j));
    }
  });
});

describe("Gauss-Newton gram step on the native kernels", () => {
  const spec: ModelSpecInput = {
    input: [6],
    layers: [{ type: "dense", units: 8 }, { type: "relu" }, { type: "dense", units: 5 }, { type: "tanh" }, { type: "dense", units: 4 }],
  };
  const objective = createObjective("logistic", 1e-3);
  const rng = new Rng(11);
  const n = 9;
  const x = Float64Array.from(randomArray(n * 6, rng));
  const batch: Batch = { x, size: n, labels: Int32Array.from({ length: n }, (_, i) => i % 4) };

  for (const [name, backend] of backends) {
    it(`${name} float64: the gram direction equals the dual reference, and release() recycles buffers without changing results`, () => {
      const chain = createChain(spec, { dtype: "float64", backend });
      const w = chain.initParams(2);
      const dual = prepareGaussNewton(chain, objective, w, batch, { implementation: "dual" }).direction(0.1);
      const sub = prepareGaussNewton(chain, objective, w, batch);
      const d1 = sub.direction(0.1);
      assert.ok(relativeError(d1, dual) < 1e-8, `${relativeError(d1, dual)}`);
      // A second damping reuses the Gram matrix (its lower triangle now holds a factor).
      const d2 = sub.direction(10);
      const ref2 = prepareGaussNewton(chain, objective, w, batch, { implementation: "dual" }).direction(10);
      assert.ok(relativeError(d2, ref2) < 1e-8);
      sub.release();
      assert.throws(() => sub.direction(1), /after release/);
      // The next subproblem takes the released buffers (dirty lower triangle, old gradient).
      const again = prepareGaussNewton(chain, objective, w, batch);
      const out = new Float64Array(chain.paramSize);
      assert.equal(again.direction(0.1, out), out);
      assert.ok(relativeError(out, d1) < 1e-12);
      // Two live subproblems never share pooled buffers, and each works on its own copy of w.
      const w2 = chain.initParams(5);
      const ref = prepareGaussNewton(chain, objective, w2, batch, { implementation: "dual" }).direction(0.1);
      const other = prepareGaussNewton(chain, objective, w2, batch);
      w2.fill(0);
      assert.ok(relativeError(other.direction(0.1), ref) < 1e-8);
      assert.ok(relativeError(again.direction(0.1), d1) < 1e-12);
      again.release();
      other.release();
    });
  }

  for (const [name, backend] of backends) {
    it(`${name} float32 chain, logistic loss: the Gram matrix has N·(k − 1) rows (the singular loss-Hessian blocks stay singular)`, () => {
      const chain = createChain(spec, { dtype: "float32", backend });
      const w = chain.initParams(4);
      const b32: Batch = { ...batch, x: Float32Array.from(x) };
      const sub = prepareGaussNewton(chain, objective, w, b32);
      assert.equal(sub.gramInfo?.rows, n * 3);
      const sq = prepareGaussNewton(chain, createObjective("squared", 0), w, { ...b32, targets: new Float32Array(n * 4).fill(0.5) });
      assert.equal(sq.gramInfo?.rows, n * 4);
    });
  }

  if (native) {
    it("native float32 chain: the gram direction and NTK match the portable backend's", () => {
      const cn = createChain(spec, { dtype: "float32", backend: native });
      const cp = createChain(spec, { dtype: "float32", backend: portableBackend });
      const w = cn.initParams(3);
      const x32 = Float32Array.from(x);
      const b32: Batch = { ...batch, x: x32 };
      const dn = prepareGaussNewton(cn, objective, w, b32).direction(0.5);
      const dp = prepareGaussNewton(cp, objective, w, b32).direction(0.5);
      assert.ok(relativeError(dn, dp) < 1e-4, `${relativeError(dn, dp)}`);
      const kn = empiricalNtk(cn, w, x32, n);
      const kp = empiricalNtk(cp, w, x32, n);
      assert.ok(relativeError(kn, kp) < 1e-5);
      const q = n * 4;
      for (let i = 0; i < q; i++) for (let j = 0; j < q; j++) assert.equal(kn[i * q + j], kn[j * q + i]);
    });
  }
});
