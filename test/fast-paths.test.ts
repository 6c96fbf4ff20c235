// The training fast paths (BENCHMARKS.md) against their references: branch-free float32 ReLU and 2×2
// max-pooling against the scalar rules (special values included), the channel-inner and transposed
// convolution paths (float32, native) against float64 portable, the BLAS-1/2 kernels against their
// loops, the derivative checks of convolutions and pooling with the native backend as default, and
// the backward pass that stops at the first parametrized component.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createChain } from "../src/chain/chain.js";
import { convnet } from "../src/chain/presets.js";
import type { LayerSpecInput } from "../src/chain/spec.js";
import type { Backend } from "../src/core/backend.js";
import {
  allFiniteOf,
  axpbyInto,
  axpyInto,
  columnSums,
  dotOf,
  NATIVE_MIN_LENGTH,
  norm2Of,
  rowSums,
  scalInPlace,
} from "../src/core/kernels.js";
import { portableBackend } from "../src/core/portable.js";
import { Rng } from "../src/core/rng.js";
import { loadNativeBackend } from "../src/node/index.js";
import { createObjective } from "../src/objectives/index.js";
import { forward, valueAndGradient, vjp } from "../src/oracles/first-order.js";
import { assertDerivatives, randomArray, relativeError } from "./helpers.js";

const native = loadNativeBackend();

/** float32 values with the special cases: ±0, denormals, ±∞, NaNs of both signs. */
function specialFloats(): Float32Array {
  const a = new Float32Array([0, -0, 1e-45, -1e-45, Infinity, -Infinity, Number.NaN, 0, 3.5, -2, 1, -1, 2 ** 127, -(2 ** 127)]);
  new Int32Array(a.buffer)[7] = 0xffc00000 | 0; // a NaN with the sign bit set (x86's default NaN)
  return a;
}

describe("ReLU float32 fast path", () => {
  it("matches v > 0 ? v : 0 bit for bit, and the derivative 1[x > 0]", () => {
    const x = specialFloats();
    const chain = createChain({ input: [x.length], layers: [{ type: "relu" }] }, { backend: portableBackend });
    const y = forward(chain, chain.initParams(), x, 1);
    for (let i = 0; i < x.length; i++) assert.ok(Object.is(y[i], Math.fround(x[i] > 0 ? x[i] : 0)), `relu(${x[i]}) = ${y[i]}`);
    const v = new Float32Array(x.length).map((_, i) => i + 1);
    const { dx } = vjp(chain, chain.initParams(), x, 1, v, { withInput: true });
    for (let i = 0; i < x.length; i++) assert.equal(dx![i], x[i] > 0 ? v[i] : 0, `relu'(${x[i]})`);
  });
});

describe("max-pool 2×2 float32 fast path", () => {
  it("picks the same values and arg-max as the scalar rule (ties, ±0, NaN, ±∞)", () => {
    const rng = new Rng(3);
    const shape = [3, 6, 8];
    const n = 2;
    const size = shape[0] * shape[1] * shape[2];
    const x32 = new Float32Array(n * size);
    const special = specialFloats();
    // Few distinct values, so that ties are frequent, plus special values here and there.
    for (let i = 0; i < x32.length; i++) x32[i] = rng.uniform() < 0.1 ? special[i % special.length] : Math.floor(rng.uniform() * 4) - 2;
    const spec = { input: shape, layers: [{ type: "maxPool2d", size: 2 } as LayerSpecInput] };
    const c32 = createChain(spec, { backend: portableBackend });
    const c64 = createChain(spec, { backend: portableBackend, dtype: "float64" });
    const x64 = Float64Array.from(x32);
    // The chain's input copy must keep the NaN's sign: set it through the int view.
    const y32 = Float32Array.from(forward(c32, c32.initParams(), x32, n));
    const y64 = forward(c64, c64.initParams(), x64, n);
    for (let i = 0; i < y64.length; i++)
      assert.ok(Object.is(y32[i], Math.fround(y64[i])) || (Number.isNaN(y32[i]) && Number.isNaN(y64[i])), `y[${i}]`);
    // Arg-max: the VJP of distinct slopes routes each to its arg-max.
    const s = Float64Array.from({ length: y64.length }, (_, i) => i + 1);
    const d32 = vjp(c32, c32.initParams(), x32, n, s, { withInput: true }).dx!;
    const d64 = vjp(c64, c64.initParams(), x64, n, s, { withInput: true }).dx!;
    assert.deepEqual(Array.from(d32), Array.from(d64));
  });
});

describe("BLAS-1/2 kernels agree with their loops", { skip: native ? false : "native addon not available" }, () => {
  for (const dtype of ["float32", "float64"] as const) {
    it(dtype, () => {
      const rng = new Rng(9);
      const make = (k: number) => (dtype === "float32" ? Float32Array.from(randomArray(k, rng)) : randomArray(k, rng));
      const tol = dtype === "float32" ? 1e-6 : 1e-14;
      for (const n of [5, NATIVE_MIN_LENGTH + 3]) {
        const x = make(n);
        const y0 = make(n);
        for (const [name, run] of [
          ["axpy", (b: Backend, y: Float32Array | Float64Array) => axpyInto(b, n, 0.7, x, y)],
          ["axpby", (b: Backend, y: Float32Array | Float64Array) => axpbyInto(b, n, -1.5, x, 0.25, y)],
          ["axpby β=0", (b: Backend, y: Float32Array | Float64Array) => axpbyInto(b, n, 2, x, 0, y)],
          ["scal", (b: Backend, y: Float32Array | Float64Array) => scalInPlace(b, n, -0.3, y)],
        ] as const) {
          const a = y0.slice();
          const c = y0.slice();
          run(native!, a);
          run(portableBackend, c);
          assert.ok(relativeError(a, c) < tol, `${name} n=${n}`);
        }
        assert.ok(Math.abs(dotOf(native!, n, x, y0) - dotOf(portableBackend, n, x, y0)) < tol * n, `dot n=${n}`);
      }
      // Large but finite entries (their float32 squares overflow): the dot, the norm and the
      // finiteness check stay finite, as in double arithmetic; a real ∞ is still seen.
      const n = NATIVE_MIN_LENGTH + 3;
      const big = dtype === "float32" ? new Float32Array(n).fill(1e20) : new Float64Array(n).fill(1e150);
      const want = n * big[0] * big[0];
      for (const b of [native!, portableBackend]) {
        assert.ok(Math.abs(dotOf(b, n, big, big) / want - 1) < 1e-12, `dot of large entries on ${b.name}`);
        assert.ok(Number.isFinite(norm2Of(b, n, big)) && allFiniteOf(b, n, big), `norm and finiteness of large entries on ${b.name}`);
        const inf = big.slice();
        inf[n - 1] = Number.POSITIVE_INFINITY;
        assert.equal(allFiniteOf(b, n, inf), false);
        assert.equal(Number.isFinite(norm2Of(b, n, inf)), false);
      }
      for (const [rows, cols] of [
        [3, 4],
        [128, 64],
      ]) {
        const a = make(rows * cols);
        for (const beta of [0, 1]) {
          const o1 = make(cols);
          const o2 = o1.slice();
          columnSums(native!, rows, cols, a, cols, beta, o1);
          columnSums(portableBackend, rows, cols, a, cols, beta, o2);
          assert.ok(relativeError(o1, o2) < tol * 10, `columnSums ${rows}x${cols} β=${beta}`);
          const r1 = make(rows);
          const r2 = r1.slice();
          rowSums(native!, rows, cols, a, cols, beta, r1);
          rowSums(portableBackend, rows, cols, a, cols, beta, r2);
          assert.ok(relativeError(r1, r2) < tol * 10, `rowSums ${rows}x${cols} β=${beta}`);
        }
      }
      // ger through the Backend method.
      const xs = make(3);
      const ys = make(4);
      const m1 = make(12);
      const m2 = Float64Array.from(m1);
      native!.ger!(3, 4, 0.5, xs, ys, m1, 4);
      for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) m2[i * 4 + j] += 0.5 * xs[i] * ys[j];
      assert.ok(relativeError(m1, m2) < tol * 10, "ger");
    });
  }
});

describe("derivative checks of convolutions and pooling on the native backend", {
  skip: native ? false : "native addon not available",
}, () => {
  const cases: { input: number[]; layers: LayerSpecInput[] }[] = [
    { input: [2, 5, 6], layers: [{ type: "conv2d", filters: 3, kernel: 3, padding: 1 }] }, // shifted, channel-inner, transposed dx
    { input: [2, 5, 5], layers: [{ type: "conv2d", filters: 3, kernel: 3 }] },
    { input: [3, 7, 6], layers: [{ type: "conv2d", filters: 2, kernel: [3, 2], stride: 2, padding: [1, 0] }] },
    { input: [2, 5, 4], layers: [{ type: "conv2d", filters: 3, kernel: [2, 3], stride: 1, padding: [1, 1] }] }, // shifted, OH ≠ H
    {
      input: [2, 6, 6],
      layers: [
        { type: "conv2d", filters: 2, kernel: 1 },
        { type: "maxPool2d", size: 2 },
      ],
    },
    {
      input: [2, 7, 5],
      layers: [
        { type: "conv2d", filters: 2, kernel: 1 },
        { type: "maxPool2d", size: 3, stride: 2 },
      ],
    },
    {
      input: [2, 6, 6],
      layers: [
        { type: "conv2d", filters: 2, kernel: 1 },
        { type: "avgPool2d", size: 2 },
      ],
    },
    {
      input: [3, 8, 8],
      layers: [
        { type: "conv2d", filters: 4, kernel: 3, padding: 1 },
        { type: "softplus" },
        { type: "maxPool2d", size: 2 },
        { type: "conv2d", filters: 5, kernel: 3, padding: 1 },
        { type: "tanh" },
        { type: "flatten" },
        { type: "dense", units: 3 },
      ],
    },
  ];
  for (const { input, layers } of cases) {
    it(`${layers.map((l) => l.type).join(", ")} on [${input}]`, () => {
      assertDerivatives({ input, layers }, { seed: 5, batch: 3, backend: native! });
    });
  }
});

describe("float32 fast paths against float64", () => {
  for (const backend of [native, portableBackend].filter((b): b is NonNullable<typeof b> => b !== null)) {
    it(`ConvNet preset on [3, 16, 16], float32 ${backend.name} vs float64 portable: output and gradient`, () => {
      const spec = convnet({ input: [3, 16, 16] });
      const c32 = createChain(spec, { backend });
      const c64 = createChain(spec, { backend: portableBackend, dtype: "float64" });
      const w32 = c32.initParams(1);
      const w64 = Float64Array.from(w32);
      const rng = new Rng(4);
      const n = 5;
      const x = Float32Array.from(randomArray(n * 3 * 16 * 16, rng));
      const labels = Int32Array.from({ length: n }, (_, i) => i % 10);
      const objective = createObjective("logistic");
      const g32 = valueAndGradient(c32, objective, w32, { x, size: n, labels });
      const g64 = valueAndGradient(c64, objective, w64, { x: Float64Array.from(x), size: n, labels });
      assert.ok(relativeError(g32.output, g64.output) < 1e-5, `output ${relativeError(g32.output, g64.output)}`);
      assert.ok(relativeError(g32.grad, g64.grad) < 1e-4, `gradient ${relativeError(g32.grad, g64.grad)}`);
    });
  }
});

describe("backward stops at the first component with parameters", () => {
  it("gives the same parameter gradient as a VJP that also computes dx", () => {
    const chain = createChain(
      {
        input: [2, 3, 3],
        layers: [{ type: "flatten" }, { type: "relu" }, { type: "dense", units: 4 }, { type: "tanh" }, { type: "dense", units: 3 }],
      },
      { dtype: "float64" },
    );
    const w = chain.initParams(2);
    const rng = new Rng(1);
    const n = 4;
    const x = randomArray(n * 18, rng);
    const labels = Int32Array.from([0, 1, 2, 1]);
    const objective = createObjective("logistic");
    const { grad, output } = valueAndGradient(chain, objective, w, { x, size: n, labels });
    const slope = new Float64Array(output.length);
    objective.loss.evaluate(output, { x, size: n, labels }, 3, slope);
    const { dw } = vjp(chain, w, x, n, slope, { withInput: true });
    assert.ok(relativeError(grad, dw) < 1e-15);
  });
});
