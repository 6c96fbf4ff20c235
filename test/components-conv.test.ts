import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createChain } from "../src/chain/chain.js";
import { getPreset, presetNames } from "../src/chain/presets.js";
import type { LayerSpecInput, LayerSpecOf, ModelSpecInput } from "../src/chain/spec.js";
import { convert } from "../src/core/dtype.js";
import { Rng } from "../src/core/rng.js";
import { dot } from "../src/core/vector.js";
import { forward, jvp, vjp } from "../src/oracles/first-order.js";
import { assertDerivatives, randomArray, relativeError } from "./helpers.js";

describe("conv2d derivatives (float64)", () => {
  const cases: { input: number[]; conv: LayerSpecInput }[] = [
    { input: [2, 5, 5], conv: { type: "conv2d", filters: 3, kernel: 3 } },
    { input: [2, 5, 6], conv: { type: "conv2d", filters: 3, kernel: 3, padding: 1 } },
    { input: [3, 7, 6], conv: { type: "conv2d", filters: 2, kernel: [3, 2], stride: 2, padding: [1, 0] } },
    { input: [1, 8, 7], conv: { type: "conv2d", filters: 4, kernel: [2, 3], stride: [2, 3], padding: [0, 2] } },
    { input: [2, 4, 4], conv: { type: "conv2d", filters: 2, kernel: 1, bias: false } },
    { input: [2, 6, 6], conv: { type: "conv2d", filters: 3, kernel: 5, stride: 3, padding: 2, init: "torch" } },
  ];
  for (const { input, conv } of cases) {
    it(`${JSON.stringify(conv)} on [${input}]`, () => {
      assertDerivatives({ input, layers: [conv] }, { seed: 5 });
    });
  }

  const naiveCases: { spec: LayerSpecOf<"conv2d">; shifted: boolean }[] = [
    { spec: { type: "conv2d", filters: 3, kernel: [3, 2], stride: [2, 1], padding: [1, 1], bias: true, init: "he" }, shifted: false },
    { spec: { type: "conv2d", filters: 3, kernel: [2, 3], stride: 1, padding: [1, 1], bias: true, init: "he" }, shifted: true },
    { spec: { type: "conv2d", filters: 2, kernel: [3, 5], stride: 1, padding: [0, 2], bias: true, init: "he" }, shifted: true },
    { spec: { type: "conv2d", filters: 2, kernel: 3, stride: 1, padding: 1, bias: false, init: "he" }, shifted: true },
  ];
  for (const { spec, shifted } of naiveCases) {
    it(`matches a direct (naive) convolution, chunked and unchunked: ${JSON.stringify(spec)}`, async () => {
      const { Conv2d } = await import("../src/components/conv2d.js");
      const conv = new Conv2d(spec, [2, 5, 4]);
      assert.equal(conv.shifted, shifted);
      const rng = new Rng(2);
      const batch = 3;
      const x = randomArray(batch * conv.inputSize, rng);
      const w = randomArray(conv.paramSize, rng);
      const expected = new Float64Array(batch * conv.outputSize);
      const { inC, inH, inW, outC, outH, outW, kh, kw, sh, sw, ph, pw } = conv;
      for (let n = 0; n < batch; n++)
        for (let f = 0; f < outC; f++)
          for (let oh = 0; oh < outH; oh++)
            for (let ow = 0; ow < outW; ow++) {
              let s = spec.bias ? w[outC * inC * kh * kw + f] : 0;
              for (let c = 0; c < inC; c++)
                for (let i = 0; i < kh; i++)
                  for (let j = 0; j < kw; j++) {
                    const ih = oh * sh - ph + i;
                    const iw = ow * sw - pw + j;
                    if (ih < 0 || ih >= inH || iw < 0 || iw >= inW) continue;
                    s += w[((f * inC + c) * kh + i) * kw + j] * x[((n * inC + c) * inH + ih) * inW + iw];
                  }
              expected[((n * outC + f) * outH + oh) * outW + ow] = s;
            }
      const { portableBackend } = await import("../src/index.js");
      const ctx = { backend: portableBackend, batch, training: false, updateState: false };
      for (const chunk of [batch, 2, 1]) {
        const tape = conv.createTape(batch, "float64");
        const t = chunk === batch ? tape : { ...tape, chunk };
        const y = new Float64Array(batch * conv.outputSize);
        const io = { x, y, params: w, state: new Float64Array(0), tape: t };
        conv.forward(ctx, io);
        assert.ok(relativeError(y, expected) < 1e-14, `forward (chunk ${chunk})`);
        // Chunked backward and JVP satisfy the adjoint identity with the unchunked ones.
        const dy = randomArray(y.length, rng);
        const dx = new Float64Array(x.length);
        const dw = new Float64Array(w.length);
        conv.backward(ctx, io, dy, dx, dw);
        const vx = randomArray(x.length, rng);
        const vw = randomArray(w.length, rng);
        const jv = new Float64Array(y.length);
        conv.jvp(ctx, io, vx, vw, jv);
        const lhs = dot(jv, dy);
        const rhs = dot(vx, dx) + dot(vw, dw);
        assert.ok(Math.abs(lhs - rhs) <= 1e-12 * Math.abs(lhs), `adjoint (chunk ${chunk})`);
      }
    });
  }
});

describe("pooling derivatives (float64)", () => {
  type Pair = number | [number, number];
  const pools: { input: number[]; pool: { size: Pair; stride?: Pair; padding?: Pair } }[] = [
    { input: [2, 6, 6], pool: { size: 2 } },
    { input: [2, 7, 5], pool: { size: 3, stride: 2 } },
    { input: [1, 6, 7], pool: { size: [3, 2], stride: [1, 2], padding: [1, 1] } },
    { input: [2, 5, 5], pool: { size: 3, stride: 1, padding: 1 } },
    { input: [1, 9, 8], pool: { size: [2, 4], stride: [3, 2], padding: [1, 2] } },
  ];
  for (const type of ["maxPool2d", "avgPool2d"] as const) {
    for (const { input, pool } of pools) {
      it(`${type} ${JSON.stringify(pool)} on [${input}]`, () => {
        assertDerivatives({ input, layers: [{ type: "conv2d", filters: 2, kernel: 1 }, { type, ...pool } as LayerSpecInput] }, { seed: 7 });
      });
    }
  }

  it("max-pool picks the window maximum, padding never wins; avg-pool counts padded zeros", () => {
    const x = [-1, -2, -3, -4, -5, -6, -7, -8, -9]; // 1×3×3, all negative
    const max = createChain({ input: [1, 3, 3], layers: [{ type: "maxPool2d", size: 2, stride: 2, padding: 1 }] }, { dtype: "float64" });
    assert.deepEqual(Array.from(forward(max, max.initParams(), x, 1)), [-1, -2, -4, -5]);
    const avg = createChain({ input: [1, 3, 3], layers: [{ type: "avgPool2d", size: 2, stride: 2, padding: 1 }] }, { dtype: "float64" });
    assert.deepEqual(Array.from(forward(avg, avg.initParams(), x, 1)), [-1 / 4, -5 / 4, -11 / 4, -28 / 4]);
  });

  it("rejects padding over half the window, as PyTorch does", () => {
    assert.throws(() => createChain({ input: [1, 4, 4], layers: [{ type: "maxPool2d", size: 2, padding: 2 }] }), /padding/);
  });
});

describe("batch-norm derivatives (float64)", () => {
  for (const affine of [false, true]) {
    for (const input of [[4], [3, 3, 2]]) {
      for (const training of [true, false]) {
        it(`${training ? "training" : "evaluation"} affine=${affine} on [${input}]`, () => {
          const pre: LayerSpecInput[] = input.length === 1 ? [{ type: "dense", units: 4 }] : [{ type: "conv2d", filters: 3, kernel: 1 }];
          assertDerivatives({ input, layers: [...pre, { type: "batchNorm", affine, epsilon: 1e-3 }] }, { seed: 11, batch: 4, training });
        });
      }
    }
  }

  it("evaluation mode with non-trivial running statistics (FD and adjoint)", () => {
    for (const input of [[5], [2, 3, 3]]) {
      const chain = createChain({ input, layers: [{ type: "batchNorm", affine: true }] }, { dtype: "float64" });
      const rng = new Rng(4);
      const batch = 3;
      const state = chain.initState() as Float64Array;
      const C = input[0];
      for (let c = 0; c < C; c++) {
        state[c] = rng.normal();
        state[C + c] = 0.2 + rng.uniform();
      }
      const w = randomArray(chain.paramSize, rng) as Float64Array;
      const x = randomArray(batch * chain.inputSize, rng);
      const s = randomArray(batch * chain.outputSize, rng);
      const phi = (): number => dot(forward(chain, w, x, batch, { state }), s);
      const { dw, dx } = vjp(chain, w, x, batch, s, { withInput: true, state });
      const fd = (v: Float64Array): Float64Array =>
        Float64Array.from(v, (_, i) => {
          const old = v[i];
          v[i] = old + 1e-6;
          const fp = phi();
          v[i] = old - 1e-6;
          const fm = phi();
          v[i] = old;
          return (fp - fm) / 2e-6;
        });
      assert.ok(relativeError(dw, fd(w)) < 1e-8);
      assert.ok(relativeError(dx!, fd(x)) < 1e-8);
      const vw = randomArray(w.length, rng);
      const vx = randomArray(x.length, rng);
      const lhs = dot(jvp(chain, w, x, batch, vw, vx, { state }), s);
      const rhs = dot(vw, dw) + dot(vx, dx!);
      assert.ok(Math.abs(lhs - rhs) <= 1e-12 * Math.abs(lhs));
    }
  });

  it("evaluation mode without state throws, naming the missing state", () => {
    const chain = createChain({ input: [3], layers: [{ type: "batchNorm" }] }, { dtype: "float64" });
    assert.throws(() => forward(chain, chain.initParams(), [1, 2, 3], 1), /state/);
  });

  it("updates running statistics as PyTorch does (momentum, unbiased variance)", () => {
    // Two features, batch of 4: feature 0 = (1, 2, 3, 6), feature 1 = (0, 0, 4, 4).
    const chain = createChain({ input: [2], layers: [{ type: "batchNorm", momentum: 0.25 }] }, { dtype: "float64" });
    const state = chain.initState();
    assert.deepEqual(Array.from(state), [0, 0, 1, 1]);
    const x = [1, 0, 2, 0, 3, 4, 6, 4];
    const w = chain.initParams();
    // Without updateState, nothing changes.
    forward(chain, w, x, 4, { training: true, state });
    assert.deepEqual(Array.from(state), [0, 0, 1, 1]);
    forward(chain, w, x, 4, { training: true, state, updateState: true });
    // Mean (3, 2); unbiased variances: ((4 + 1 + 0 + 9)/3, (4 + 4 + 4 + 4)/3) = (14/3, 16/3).
    const expected = [0.25 * 3, 0.25 * 2, 0.75 + 0.25 * (14 / 3), 0.75 + 0.25 * (16 / 3)];
    assert.ok(relativeError(state, expected) < 1e-15, `${Array.from(state)} vs ${expected}`);
    // A second step: running ← 0.75·running + 0.25·batch.
    forward(chain, w, x, 4, { training: true, state, updateState: true });
    const expected2 = [
      0.75 * expected[0] + 0.75,
      0.75 * expected[1] + 0.5,
      0.75 * expected[2] + 0.25 * (14 / 3),
      0.75 * expected[3] + 0.25 * (16 / 3),
    ];
    assert.ok(relativeError(state, expected2) < 1e-15);
    // The training-mode output uses the biased variance: (1 − 3)/√(14/4 + ε).
    const y = forward(chain, w, x, 4, { training: true, state });
    assert.ok(Math.abs(y[0] - -2 / Math.sqrt(3.5 + 1e-5)) < 1e-14);
  });
});

describe("softmax derivatives (float64)", () => {
  it("flat and image inputs", () => {
    assertDerivatives({ input: [5], layers: [{ type: "dense", units: 6 }, { type: "softmax" }] }, { seed: 2 });
    assertDerivatives({ input: [2, 2, 3], layers: [{ type: "conv2d", filters: 2, kernel: 1 }, { type: "softmax" }] }, { seed: 2 });
  });
  it("is stable for large inputs and sums to 1", () => {
    const chain = createChain({ input: [3], layers: [{ type: "softmax" }] }, { dtype: "float64" });
    const p = forward(chain, chain.initParams(), [1000, 1001, -1000], 1);
    assert.ok(Math.abs(p[0] + p[1] + p[2] - 1) < 1e-15);
    assert.ok(Math.abs(p[1] - 1 / (1 + Math.exp(-1))) < 1e-15);
  });
});

/** A small ConvNet holding every component. */
function everyComponentNet(): ModelSpecInput {
  return {
    input: [2, 8, 8],
    layers: [
      { type: "conv2d", filters: 3, kernel: 3, padding: 1 },
      { type: "batchNorm", affine: true },
      { type: "relu" },
      { type: "maxPool2d", size: 2 },
      { type: "conv2d", filters: 4, kernel: [2, 3], padding: [1, 1] },
      { type: "softplus", beta: 2 },
      { type: "avgPool2d", size: 2, stride: 1 },
      { type: "conv2d", filters: 3, kernel: 2, stride: 2 },
      { type: "smoothRelu", mu: 0.5 },
      { type: "batchNorm" },
      { type: "flatten" },
      { type: "dense", units: 6 },
      { type: "sigmoid" },
      { type: "dense", units: 5 },
      { type: "tanh" },
      { type: "dense", units: 4 },
      { type: "softmax" },
    ],
  };
}

describe("whole chains (float64)", () => {
  it("a ConvNet with every component, training mode", () => {
    const r = assertDerivatives(everyComponentNet(), { seed: 3, batch: 3, training: true, maxCoords: 300 });
    console.log(`every-component ConvNet (training): ${JSON.stringify(r)}`);
  });
  it("a ConvNet with every component, evaluation mode", () => {
    const r = assertDerivatives(everyComponentNet(), { seed: 4, batch: 2, training: false, maxCoords: 300 });
    console.log(`every-component ConvNet (evaluation): ${JSON.stringify(r)}`);
  });
  it("the convnet and mlp presets on small inputs", () => {
    assertDerivatives(getPreset("convnet", { input: [1, 8, 8], classes: 3 }), { seed: 1, batch: 2, maxCoords: 200 });
    assertDerivatives(getPreset("mlp", { input: [2, 3, 3], widths: [5, 4], classes: 3, activation: "tanh" }), { seed: 1 });
  });
});

describe("float32 and float64 forward passes agree", () => {
  it("every-component ConvNet", () => {
    const spec = everyComponentNet();
    const c64 = createChain(spec, { dtype: "float64" });
    const c32 = createChain(spec, { dtype: "float32" });
    const w64 = c64.initParams(9);
    const w32 = convert(w64, "float32");
    const rng = new Rng(9);
    const batch = 4;
    const x = randomArray(batch * c64.inputSize, rng);
    const x32 = convert(x, "float32");
    for (const training of [true, false]) {
      const s64 = c64.initState();
      const s32 = c32.initState();
      const y64 = Float64Array.from(forward(c64, w64, x, batch, { training, state: s64 }));
      const y32 = Float64Array.from(forward(c32, w32, x32, batch, { training, state: s32 }));
      const e = relativeError(y32, y64);
      assert.ok(e < 1e-5, `float32/float64 relative difference ${e}`);
    }
  });
});

describe("presets", () => {
  it("build with the documented shapes", () => {
    assert.deepEqual(createChain(getPreset("convnet")).outputShape, [10]);
    assert.deepEqual(createChain(getPreset("convnet", { input: [1, 28, 28] })).outputShape, [10]);
    assert.equal(createChain(getPreset("mlp")).paramSize, 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10);
    for (const name of ["vgg16", "vgg16-smooth", "vgg16-bn", "vgg16-smooth-bn"]) {
      const chain = createChain(getPreset(name));
      assert.deepEqual(chain.outputShape, [1000]);
      assert.equal(chain.layers.length, 16, name);
    }
    const vgg = createChain(getPreset("vgg16"));
    assert.equal(vgg.paramSize, 138357544); // torchvision's vgg16 parameter count
    const cifar = createChain(getPreset("vgg16-bn", { input: [3, 32, 32], classes: 10, epsilon: 1e-2 }));
    assert.ok(cifar.spec.layers.some((l) => l.type === "batchNorm" && l.epsilon === 1e-2));
    assert.deepEqual(presetNames().slice().sort(), ["convnet", "mlp", "vgg16", "vgg16-bn", "vgg16-smooth", "vgg16-smooth-bn"]);
  });
  it("unknown names list the known ones", () => {
    assert.throws(() => getPreset("resnet50"), /unknown preset "resnet50".*convnet/);
  });
});
