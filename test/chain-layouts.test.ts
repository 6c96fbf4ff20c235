import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createChain } from "../src/chain/chain.js";
import { planLayouts } from "../src/chain/layouts.js";
import { convnet } from "../src/chain/presets.js";
import type { ModelSpecInput } from "../src/chain/spec.js";
import type { Backend, DnnPrimitives } from "../src/core/backend.js";
import { portableBackend } from "../src/core/portable.js";
import { Rng } from "../src/core/rng.js";
import { createDataset, fullBatch } from "../src/data/dataset.js";
import { loadNativeBackend, nativeLoadError } from "../src/node/index.js";
import { createObjective } from "../src/objectives/objective.js";
import { sgd } from "../src/optim/aliases.js";
import { forward, jvp, valueAndGradient } from "../src/oracles/first-order.js";
import { Linearization } from "../src/second-order/index.js";
import { Trainer } from "../src/train/trainer.js";

// Blocked activation layouts between oneDNN layers (src/chain/layouts.ts): the plan on any
// backend (a stand-in with a block size), and on the native one the gradient pass with blocked
// activations against the same pass on NCHW, bit for bit.

/** The portable backend with a oneDNN stand-in that takes every geometry and blocks of `block` channels. */
function withBlock(block: 8 | 16): Backend {
  const dnn = { activationBlock: block, supportsConv: () => true, supportsPool: () => true } as unknown as DnnPrimitives;
  return Object.create(portableBackend, { dnn: { value: dnn } }) as Backend;
}

const conv = (filters: number, extra: { stride?: number; padding?: number } = {}) => ({
  type: "conv2d" as const,
  filters,
  kernel: 3,
  padding: 1,
  ...extra,
});

describe("layout plan", () => {
  const layoutsOf = (spec: ModelSpecInput, backend: Backend, batch = 4, dtype: "float32" | "float64" = "float32") => {
    const chain = createChain(spec, { backend, dtype });
    return planLayouts(chain.components, backend, batch, dtype);
  };

  it("blocks every activation between the ConvNet's convolutions and poolings, none at the edges or before flatten", () => {
    const plan = layoutsOf(convnet({ input: [3, 32, 32] }), withBlock(16));
    // conv, relu, maxpool, conv, relu, maxpool, flatten, dense: inputs 1–5 blocked.
    assert.deepEqual(plan, [0, 16, 16, 16, 16, 16, 0, 0, 0]);
    assert.deepEqual(layoutsOf(convnet({ input: [3, 32, 32] }), withBlock(8)), [0, 8, 8, 8, 8, 8, 0, 0, 0]);
  });

  it("keeps NCHW where a channel count is not a multiple of the block, around batch norm, for float64 and without oneDNN layouts", () => {
    const spec: ModelSpecInput = {
      input: [3, 8, 8],
      layers: [
        conv(16),
        { type: "tanh" },
        conv(12),
        { type: "relu" },
        { type: "avgPool2d", size: 2 },
        conv(16),
        { type: "batchNorm" },
        { type: "relu" },
        { type: "flatten" },
        { type: "dense", units: 3 },
      ],
    };
    // 16 channels blocked through tanh into the second convolution; its 12 channels stay NCHW
    // (relu and the pooling with them); batch norm reads NCHW.
    assert.deepEqual(layoutsOf(spec, withBlock(16)), [0, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(layoutsOf(spec, withBlock(8)), [0, 8, 8, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(layoutsOf(spec, withBlock(16), 4, "float64"), null);
    assert.equal(layoutsOf(spec, portableBackend), null);
    // With oneDNN batch norm: blocked through it when what follows can take or convert the layout
    // (pooling writes NCHW for flatten), NCHW when its output must be (a tied ReLU before flatten).
    const bnBackend = (() => {
      const dnn = {
        activationBlock: 16,
        supportsConv: () => true,
        supportsPool: () => true,
        batchNormForward: () => {},
        batchNormBackward: () => {},
      };
      return Object.create(portableBackend, { dnn: { value: dnn } }) as Backend;
    })();
    const bnPool: ModelSpecInput = {
      input: [3, 8, 8],
      layers: [
        conv(16),
        { type: "batchNorm" },
        { type: "relu" },
        { type: "maxPool2d", size: 2 },
        { type: "flatten" },
        { type: "dense", units: 2 },
      ],
    };
    assert.deepEqual(layoutsOf(bnPool, bnBackend), [0, 16, 16, 16, 0, 0, 0]);
    assert.deepEqual(layoutsOf(spec, bnBackend), [0, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0]);
    // Element-wise layers alone (no oneDNN layer on either side) stay NCHW.
    assert.equal(layoutsOf({ input: [16, 4, 4], layers: [{ type: "relu" }, { type: "tanh" }, { type: "flatten" }] }, withBlock(16)), null);
  });
});

const native = loadNativeBackend();
const skip = !native
  ? `native addon not available (${nativeLoadError()})`
  : native.dnn?.activationBlock
    ? false
    : "oneDNN without blocked layouts (addon built without oneDNN, or before layouts)";

describe("blocked layouts on oneDNN: the same gradients as NCHW", { skip }, () => {
  const plainBackend = native?.withPaths({ layouts: false });
  const specs: [string, ModelSpecInput][] = [
    ["ConvNet preset", convnet({ input: [3, 16, 16] })],
    [
      "average pooling, tanh and softplus, stride 2, conv after conv, odd sizes, overlapping max pooling",
      {
        input: [3, 11, 11],
        layers: [
          conv(16, { stride: 2 }),
          { type: "tanh" },
          conv(32),
          { type: "softplus" },
          { type: "avgPool2d", size: 2 },
          conv(16),
          { type: "relu" },
          { type: "maxPool2d", size: 2, stride: 1 },
          { type: "flatten" },
          { type: "dense", units: 4 },
        ],
      },
    ],
  ];
  for (const [name, spec] of specs) {
    for (const batch of [5, 16]) {
      it(`${name}, batch ${batch}: value and gradient bit for bit, with and without blocked layouts`, () => {
        const blocked = createChain(spec, { backend: native!, dtype: "float32" });
        const plain = createChain(spec, { backend: plainBackend!, dtype: "float32" });
        assert.ok(
          blocked.workspace(batch).layoutPlan?.some((l) => l !== 0),
          "some activation is blocked",
        );
        assert.equal(plain.workspace(batch).layoutPlan, null);
        const rng = new Rng(batch);
        const x = Float32Array.from({ length: batch * blocked.inputSize }, () => rng.uniform() - 0.5);
        const k = blocked.outputSize;
        const b = { x, size: batch, labels: Int32Array.from({ length: batch }, (_, i) => i % k) };
        const w = blocked.initParams(2);
        const objective = createObjective("logistic", 1e-3);
        const a = valueAndGradient(blocked, objective, w, b);
        const ref = valueAndGradient(plain, objective, w, b);
        assert.ok(Object.is(a.value, ref.value), `value ${a.value} vs ${ref.value}`);
        for (let i = 0; i < w.length; i++)
          if (!Object.is(a.grad[i], ref.grad[i])) assert.fail(`gradient entry ${i}: ${a.grad[i]} vs ${ref.grad[i]}`);
        // Forward passes (evaluation) too.
        for (const training of [false, true]) {
          const fa = Array.from(forward(blocked, w, x, batch, { training }));
          assert.deepEqual(fa, Array.from(forward(plain, w, x, batch, { training })), `forward, training ${training}`);
          assert.equal(blocked.workspace(batch).blockedLayouts, true);
        }
        // The same chain without layouts on request gives them too.
        const again = valueAndGradient(blocked, objective, w, b, { blockedLayouts: false });
        assert.deepEqual(Array.from(again.grad), Array.from(ref.grad));
      });
    }
  }

  it("batch norm on blocked activations: the gradient and running statistics agree with NCHW to float32 rounding, deterministically", () => {
    const spec: ModelSpecInput = {
      input: [3, 16, 16],
      layers: [
        conv(32),
        { type: "batchNorm" },
        { type: "relu" },
        { type: "maxPool2d", size: 2 },
        conv(16),
        { type: "batchNorm", affine: false },
        { type: "relu" },
        { type: "maxPool2d", size: 2 },
        { type: "flatten" },
        { type: "dense", units: 10 },
      ],
    };
    const batch = 12;
    const blocked = createChain(spec, { backend: native!, dtype: "float32" });
    const plan = blocked.workspace(batch).layoutPlan;
    assert.ok(plan && plan[1] !== 0 && plan[2] !== 0, `blocked through batch norm: ${plan}`);
    const rng = new Rng(5);
    const x = Float32Array.from({ length: batch * blocked.inputSize }, () => rng.uniform() - 0.5);
    const b = { x, size: batch, labels: Int32Array.from({ length: batch }, (_, i) => i % 10) };
    const w = blocked.initParams(4);
    const objective = createObjective("logistic", 1e-3);
    const run = (backend: Backend) => {
      const chain = createChain(spec, { backend, dtype: "float32" });
      const state = chain.initState();
      const r = valueAndGradient(chain, objective, w, b, { state, updateState: true });
      return {
        value: r.value,
        grad: Float64Array.from(r.grad),
        state: Float64Array.from(state),
        eval: Float64Array.from(forward(chain, w, x, batch, { state })),
      };
    };
    const a = run(native!);
    const ref = run(plainBackend!);
    const rel = (u: Float64Array, v: Float64Array) => {
      let num = 0;
      let den = 0;
      for (let i = 0; i < u.length; i++) {
        num += (u[i] - v[i]) ** 2;
        den += v[i] ** 2;
      }
      return Math.sqrt(num / den);
    };
    // oneDNN's blocked batch norm sums its statistics in another order than its NCHW kernel.
    assert.ok(Math.abs(a.value - ref.value) < 1e-5 * Math.abs(ref.value));
    assert.ok(rel(a.grad, ref.grad) < 1e-4, `gradient: ${rel(a.grad, ref.grad)}`);
    assert.ok(rel(a.state, ref.state) < 1e-5, `running statistics: ${rel(a.state, ref.state)}`);
    assert.ok(rel(a.eval, ref.eval) < 1e-5, `evaluation: ${rel(a.eval, ref.eval)}`);
    // The same bits on a second run (resume stays bit-identical).
    const again = run(native!);
    assert.deepEqual(Array.from(again.grad), Array.from(a.grad));
    assert.deepEqual(Array.from(again.state), Array.from(a.state));
  });

  it("oracles that read the activations after a blocked gradient pass see NCHW (Linearization re-runs its forward pass)", () => {
    const spec = convnet({ input: [3, 16, 16] });
    const chain = createChain(spec, { backend: native!, dtype: "float32" });
    const batch = 4;
    const rng = new Rng(7);
    const x = Float32Array.from({ length: batch * chain.inputSize }, () => rng.uniform());
    const b = { x, size: batch, labels: Int32Array.of(0, 1, 2, 3) };
    const w = chain.initParams(3);
    const dw = Float32Array.from({ length: chain.paramSize }, () => rng.uniform() - 0.5);
    const lin = new Linearization(chain, w, b, true, undefined);
    const want = Array.from(lin.jvp(dw));
    // Same w and batch: the output is unchanged, but the inner activations are blocked now.
    valueAndGradient(chain, createObjective("logistic"), w, b);
    assert.ok(chain.workspace(batch).blockedLayouts);
    assert.deepEqual(Array.from(lin.jvp(dw)), want);
    assert.deepEqual(Array.from(jvp(chain, w, x, batch, dw, null, { training: true })), want);
    assert.equal(chain.workspace(batch).blockedLayouts, false);
  });

  it("the trainer trains the same parameters with and without blocked layouts", () => {
    const spec = convnet({ input: [3, 16, 16] });
    const rng = new Rng(11);
    const n = 40;
    const x = Float32Array.from({ length: n * 3 * 256 }, () => rng.uniform());
    const labels = Int32Array.from({ length: n }, (_, i) => (i * 7) % 10);
    const data = fullBatch(createDataset({ name: "synthetic", inputShape: [3, 16, 16], x, labels, classes: 10 }), "float32");
    const train = (backend: Backend): Float32Array => {
      const chain = createChain(spec, { backend, dtype: "float32" });
      const trainer = new Trainer(
        { chain, objective: createObjective("logistic", 1e-4), optimizer: sgd({ lr: 0.05, momentum: 0.9 }), batchSize: 16, seed: 0 },
        { params: chain.initParams(0) },
      );
      for (let s = 0; s < 4; s++) trainer.trainStep(data);
      return trainer.w as Float32Array;
    };
    assert.deepEqual(Array.from(train(native!)), Array.from(train(plainBackend!)));
  });

  it("the addon rejects a layout that is not 0, 8 or 16, naming the argument", () => {
    const g = { batch: 1, inC: 16, inH: 4, inW: 4, outC: 16, outH: 4, outW: 4, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1 };
    const x = new Float32Array(256);
    const w = new Float32Array(16 * 16 * 9);
    const y = new Float32Array(256);
    assert.throws(() => native!.dnn!.convForward(g, x, w, null, y, 4 as 8, 0), /xLayout/);
    assert.throws(() => native!.dnn!.convBackwardData(g, y, w, x, 0, 3 as 8), /yLayout/);
  });
});
