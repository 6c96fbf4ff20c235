import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadNativeBackend, nativeLoadError } from "../src/node/index.js";
import {
  type Backend,
  type Batch,
  convert,
  createChain,
  createObjective,
  type DType,
  type ElementwiseKernels,
  LogisticLoss,
  PortableBackend,
  Rng,
  valueAndGradient,
} from "./flat.js";
import { randomArray, relativeError } from "./helpers.js";

// The native softmax cross-entropy kernel (Backend.kernels.logistic) against the TypeScript loop of
// LogisticLoss.evaluate: equal up to the last bit of exp/log, independent of the thread count.

const native = loadNativeBackend();
const kernels = native?.kernels?.logistic ? native.withPaths({ kernels: true, dnn: false }) : null;
const skip = kernels ? false : native ? "native addon without the logistic kernel (rebuild it)" : `no native addon (${nativeLoadError()})`;
const portable = new PortableBackend();
const loss = new LogisticLoss();

/** n rows of k outputs spread over ±scale, labels in [0, k). */
function problem(n: number, k: number, dtype: DType, seed: number, scale = 10): { output: Float32Array | Float64Array; batch: Batch } {
  const rng = new Rng(seed);
  const output = convert(randomArray(n * k, rng, scale), dtype) as Float32Array | Float64Array;
  const labels = Int32Array.from({ length: n }, () => Math.floor(rng.uniform() * k));
  return { output, batch: { x: new Float64Array(0), size: n, labels } };
}

function evaluate(output: Float32Array | Float64Array, batch: Batch, k: number, backend?: Backend): { value: number; grad: number[] } {
  const grad = output instanceof Float32Array ? new Float32Array(output.length) : new Float64Array(output.length);
  const value = loss.evaluate(output, batch, k, grad, backend);
  return { value, grad: Array.from(grad) };
}

describe("native logistic loss kernel", { skip }, () => {
  // Below and above the size from which the rows are split across threads (2^15 entries).
  for (const [n, k] of [
    [37, 10],
    [4000, 10],
  ]) {
    for (const dtype of ["float32", "float64"] as const) {
      it(`${dtype}, ${n} × ${k}: loss and gradient equal the TypeScript loop up to exp/log rounding, the same bits at 1 and 2 threads`, () => {
        const { output, batch } = problem(n, k, dtype, n + k);
        const want = evaluate(output, batch, k);
        const threads = native!.threads;
        const runs: { value: number; grad: number[] }[] = [];
        try {
          for (const t of [1, 2]) {
            native!.setThreads(t);
            runs.push(evaluate(output, batch, k, kernels!));
          }
        } finally {
          native!.setThreads(threads);
        }
        assert.deepEqual(runs[1], runs[0], "1 vs 2 threads");
        const got = runs[0];
        assert.ok(Math.abs(got.value - want.value) <= 1e-14 * Math.abs(want.value), `loss ${got.value} vs ${want.value}`);
        // Entries p/n agree to the last bit of exp (one float32 ulp after rounding); the label's entry
        // p/n − 1/n cancels when p ≈ 1, so its error is relative to 1/n.
        const tol = dtype === "float32" ? 1.2e-7 : 1e-14;
        for (let i = 0; i < want.grad.length; i++) {
          const d = Math.abs(got.grad[i] - want.grad[i]);
          if (d > tol * Math.max(Math.abs(want.grad[i]), 1 / n)) assert.fail(`grad entry ${i}: ${got.grad[i]} vs ${want.grad[i]}`);
        }
      });
    }
  }

  it("non-finite outputs give what the TypeScript loop gives (NaN rows, +∞ outputs)", () => {
    for (const dtype of ["float32", "float64"] as const) {
      const { output, batch } = problem(4, 3, dtype, 1);
      output[1] = Number.NaN;
      output[3] = Number.POSITIVE_INFINITY;
      output[7] = Number.NEGATIVE_INFINITY;
      const want = evaluate(output, batch, 3);
      const got = evaluate(output, batch, 3, kernels!);
      assert.ok(Object.is(got.value, want.value), `${got.value} vs ${want.value}`);
      for (let i = 0; i < want.grad.length; i++) {
        const a = got.grad[i];
        const b = want.grad[i];
        assert.ok(Object.is(a, b) || Math.abs(a - b) <= 1e-7 * Math.abs(b), `entry ${i}: ${a} vs ${b}`);
      }
    }
  });

  it("checks its arguments, naming the one at fault; the objective reports bad labels before calling it", () => {
    const k = kernels!.kernels!.logistic!;
    const f = (n: number) => new Float64Array(n);
    assert.throws(() => k(2, 3, f(6), Int32Array.of(0, 3), null), /label 3 of sample 1 is outside \[0, k\)/);
    assert.throws(() => k(2, 3, f(5), Int32Array.of(0, 1), null), /argument 'output' has 5 elements/);
    assert.throws(() => k(2, 3, f(6), Int32Array.of(0), null), /argument 'labels' has fewer than n entries/);
    assert.throws(() => k(2, 3, f(6), Float64Array.of(0, 1) as unknown as Int32Array, null), /'labels' must be an Int32Array/);
    assert.throws(() => k(2, 3, f(6), Int32Array.of(0, 1), new Float32Array(6)), /argument 'grad' must have the precision/);
    const { output, batch } = problem(3, 4, "float64", 2);
    (batch.labels as Int32Array)[2] = 4;
    assert.throws(
      () => loss.evaluate(output, batch, 4, null, kernels!),
      /label 4 of sample 2 is outside \[0, 4\) \(the model has 4 outputs\)/,
    );
  });

  it("the logistic objective uses the kernel of the chain's backend (value and gradient agree with the portable backend)", () => {
    const spec = {
      input: [6],
      layers: [{ type: "dense" as const, units: 8 }, { type: "tanh" as const }, { type: "dense" as const, units: 5 }],
    };
    const calls: number[] = [];
    const logistic = kernels!.kernels!.logistic!;
    const counted: ElementwiseKernels = {
      ...kernels!.kernels!,
      logistic: (...a) => {
        calls.push(a[0]);
        return logistic(...a);
      },
    };
    const spied = Object.create(kernels!, { kernels: { value: counted } }) as Backend;
    const objective = createObjective("logistic", 0.01);
    for (const dtype of ["float32", "float64"] as const) {
      calls.length = 0;
      const rng = new Rng(6);
      const x = randomArray(7 * 6, rng);
      const batch: Batch = { x: convert(x, dtype), size: 7, labels: Int32Array.from({ length: 7 }, (_, i) => i % 5) };
      const results = [portable, spied].map((backend) => {
        const chain = createChain(spec, { dtype, backend });
        const w = chain.initParams(3);
        const r = valueAndGradient(chain, objective, w, batch);
        return { value: r.value, grad: Float64Array.from(r.grad) };
      });
      assert.deepEqual(calls, [7], `${dtype}: the kernel was called once, on the batch`);
      assert.ok(Math.abs(results[1].value - results[0].value) <= 1e-6 * Math.abs(results[0].value));
      assert.ok(relativeError(results[1].grad, results[0].grad) < (dtype === "float32" ? 1e-5 : 1e-12));
    }
  });
});
