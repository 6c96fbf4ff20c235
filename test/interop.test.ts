import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { createChain } from "../src/chain/chain.js";
import type { FloatArray } from "../src/core/dtype.js";
import { createDataset } from "../src/data/dataset.js";
import { chainTensorLayout } from "../src/node/checkpoint.js";
import { readSafetensors, tensorToInt32, tensorToNumbers } from "../src/node/safetensors.js";
import { exportTorchSafetensors, importTorchSafetensors, torchNameMap } from "../src/node/torch-interop.js";
import { createObjective } from "../src/objectives/objective.js";
import { createOptimizer } from "../src/optim/aliases.js";
import { forward } from "../src/oracles/first-order.js";
import { Trainer } from "../src/train/trainer.js";

// Fixtures written by scripts/torch-fixtures/interop_fixture.py (Debian python3-torch 1.13).
const FIXTURES = fileURLToPath(new URL("../../test/fixtures/torch/", import.meta.url));
const manifest = JSON.parse(readFileSync(join(FIXTURES, "manifest.json"), "utf8")) as {
  models: Record<string, { spec: unknown; accuracy: number }>;
  steps: {
    steps: number;
    batch: number;
    sgd: { lr: number; momentum: number };
    adam: { lr: number; betas: [number, number]; eps: number };
  };
};

function evalBatch(name: string) {
  const file = join(FIXTURES, `${name}_eval.safetensors`);
  const { tensors, metadata } = readSafetensors(file);
  const x = tensors.get("x");
  const labels = tensors.get("labels");
  const logits = tensors.get("logits");
  assert.ok(x && labels && logits);
  return {
    x: tensorToNumbers(x, "float32", file, "x") as Float32Array,
    size: x.shape[0],
    labels: tensorToInt32(labels, file, "labels"),
    logits: logits.data as Float32Array,
    accuracy: Number(metadata.accuracy),
  };
}

function accuracyOf(out: FloatArray, labels: Int32Array, k: number): number {
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (out[i * k + j] > out[i * k + best]) best = j;
    if (best === labels[i]) correct++;
  }
  return correct / labels.length;
}

function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  return e;
}

describe("PyTorch interop", () => {
  for (const model of ["mlp", "convnet"]) {
    for (const dtype of ["float32", "float64"] as const) {
      it(`${model} (${dtype}): reproduces PyTorch's logits and accuracy`, () => {
        const chain = createChain(manifest.models[model].spec as never, { dtype });
        const { params } = importTorchSafetensors(chain, join(FIXTURES, `${model}.safetensors`));
        const batch = evalBatch(model);
        const out = forward(chain, params, batch.x, batch.size);
        // float32 tolerance: PyTorch sums in another order (and float64 is more accurate).
        const err = maxRelErr(out, batch.logits);
        assert.ok(err < 2e-5, `max relative logit error ${err}`);
        assert.equal(accuracyOf(out, batch.labels, chain.outputSize), batch.accuracy);
        assert.equal(batch.accuracy, manifest.models[model].accuracy);
      });
    }
  }

  it("name mapping: spec layer i ↔ torch module i", () => {
    const chain = createChain(manifest.models.convnet.spec as never);
    const map = torchNameMap(chain);
    assert.deepEqual(Object.fromEntries(map), {
      "0.conv2d.weight": "0.weight",
      "0.conv2d.bias": "0.bias",
      "4.dense.weight": "4.weight",
      "4.dense.bias": "4.bias",
    });
    const prefixed = torchNameMap(chain, { prefix: "net.", moduleIndex: (i) => i + 1 });
    assert.equal(prefixed.get("4.dense.bias"), "net.5.bias");
  });

  it("batch norm: running statistics map to running_mean/running_var; num_batches_tracked ignored", () => {
    const chain = createChain({
      input: [3],
      layers: [{ type: "dense", units: 4 }, { type: "batchNorm", affine: true }, { type: "relu" }, { type: "dense", units: 2 }],
    });
    assert.deepEqual(
      chainTensorLayout(chain).map((t) => t.name),
      [
        "0.dense.weight",
        "0.dense.bias",
        "1.batchNorm.weight",
        "1.batchNorm.bias",
        "3.dense.weight",
        "3.dense.bias",
        "1.batchNorm.running_mean",
        "1.batchNorm.running_var",
      ],
    );
    const dir = mkdtempSync(join(tmpdir(), "chainopt-interop-"));
    try {
      const w = chain.initParams(1);
      const state = chain.initState();
      for (let i = 0; i < state.length; i++) state[i] = 0.25 * i;
      const file = join(dir, "bn.safetensors");
      exportTorchSafetensors(chain, w, state, file, { numBatchesTracked: 7 });
      const { tensors, metadata } = readSafetensors(file);
      assert.equal(metadata.format, "pt");
      assert.deepEqual([...tensors.keys()].sort(), [
        "0.bias",
        "0.weight",
        "1.bias",
        "1.num_batches_tracked",
        "1.running_mean",
        "1.running_var",
        "1.weight",
        "3.bias",
        "3.weight",
      ]);
      assert.equal(tensors.get("1.num_batches_tracked")?.dtype, "I64");
      const back = importTorchSafetensors(chain, file);
      assert.deepEqual(new Uint8Array(back.params.buffer), new Uint8Array(w.buffer));
      assert.deepEqual([...back.state], [...state]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("export writes PyTorch's names and shapes, bit for bit; import checks shapes and extra tensors", () => {
    const dir = mkdtempSync(join(tmpdir(), "chainopt-interop-"));
    try {
      const chain = createChain(manifest.models.convnet.spec as never);
      const source = join(FIXTURES, "convnet.safetensors");
      const { params } = importTorchSafetensors(chain, source);
      const file = join(dir, "convnet.safetensors");
      exportTorchSafetensors(chain, params, null, file);
      const original = readSafetensors(source).tensors;
      const exported = readSafetensors(file).tensors;
      assert.deepEqual([...exported.keys()].sort(), [...original.keys()].sort());
      for (const [k, t] of original) {
        assert.deepEqual(exported.get(k)?.shape, t.shape, k);
        assert.deepEqual(
          new Uint8Array((exported.get(k) as { data: Float32Array }).data.buffer),
          new Uint8Array((t.data as Float32Array).buffer),
          k,
        );
      }
      // The MLP's file does not fit the ConvNet: the error names the tensor and both shapes.
      assert.throws(
        () => importTorchSafetensors(chain, join(FIXTURES, "mlp.safetensors")),
        /tensor "0\.weight": shape \[16, 10\] does not match chainopt 0\.conv2d\.weight \[4, 1, 3, 3\]/,
      );
      const small = createChain({ input: [10], layers: [{ type: "dense", units: 16 }] });
      assert.throws(() => importTorchSafetensors(small, join(FIXTURES, "mlp.safetensors")), /not used by the chain: .*2\.weight/);
      assert.doesNotThrow(() => importTorchSafetensors(small, join(FIXTURES, "mlp.safetensors"), { allowExtra: true }));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Optimizer replay against PyTorch: chainopt's own optimizers (createOptimizer),
  // driven by the Trainer as `chainopt train --init mlp_init.safetensors --no-shuffle` drives it
  // (PyTorch weights imported, fixed data order, one epoch of `steps` batches), take the same SGD
  // (torch.optim.SGD, momentum 0.9) and Adam (torch.optim.Adam) steps as PyTorch from the same
  // weights on the same batches, and end at PyTorch's parameters to float32 rounding.
  const replays = [
    {
      name: "sgd",
      optimizer: "sgd",
      fixture: "sgd",
      options: () => ({ lr: manifest.steps.sgd.lr, momentum: manifest.steps.sgd.momentum }),
    },
    {
      name: "momentum",
      optimizer: "momentum",
      fixture: "sgd",
      options: () => ({ lr: manifest.steps.sgd.lr, momentum: manifest.steps.sgd.momentum }),
    },
    {
      name: "adam",
      optimizer: "adam",
      fixture: "adam",
      options: () => ({
        lr: manifest.steps.adam.lr,
        b1: manifest.steps.adam.betas[0],
        b2: manifest.steps.adam.betas[1],
        eps: manifest.steps.adam.eps,
      }),
    },
  ] as const;
  for (const replay of replays) {
    it(`${replay.name}: ${manifest.steps.steps} Trainer steps from PyTorch's weights match torch.optim.${replay.fixture === "sgd" ? "SGD" : "Adam"}`, (t) => {
      const chain = createChain(manifest.models.mlp.spec as never);
      const init = importTorchSafetensors(chain, join(FIXTURES, "mlp_init.safetensors"));
      const start = init.params.slice(); // the trainer updates init.params in place
      const file = join(FIXTURES, "mlp_steps.safetensors");
      const { tensors } = readSafetensors(file);
      const { steps, batch } = manifest.steps;
      // The fixture's batches, in order, as one training set read without shuffling.
      const x = new Float32Array(steps * batch * 10);
      const labels = new Int32Array(steps * batch);
      for (let k = 0; k < steps; k++) {
        const xt = tensors.get(`batch.${k}.x`);
        const yt = tensors.get(`batch.${k}.labels`);
        assert.ok(xt && yt);
        assert.deepEqual(xt.shape, [batch, 10]);
        x.set(xt.data as Float32Array, k * batch * 10);
        labels.set(tensorToInt32(yt, file, `batch.${k}.labels`), k * batch);
      }
      const train = createDataset({ name: "torch-steps", inputShape: [10], x, labels, classes: 3 });
      const trainer = new Trainer(
        {
          chain,
          objective: createObjective("logistic"),
          optimizer: createOptimizer(replay.optimizer, replay.options()),
          batchSize: batch,
          seed: 0,
          shuffle: false,
        },
        { params: init.params, state: init.state },
      );
      const record = trainer.runEpoch({ train });
      assert.equal(record.steps, steps);
      assert.equal(trainer.step, steps);
      const expected = new Float32Array(chain.paramSize);
      const names = torchNameMap(chain);
      for (const t of chainTensorLayout(chain)) {
        const ref = tensors.get(`${replay.fixture}.${names.get(t.name)}`);
        assert.ok(ref, t.name);
        expected.set(ref.data as Float32Array, t.offset);
      }
      // Relative to the parameters' scale: float32 rounding of PyTorch's and chainopt's different
      // summation orders, amplified a little by the steps (Adam divides by √v, small early on).
      const err = maxRelErr(trainer.w, expected);
      let maxAbs = 0;
      for (let i = 0; i < expected.length; i++) maxAbs = Math.max(maxAbs, Math.abs(trainer.w[i] - expected[i]));
      t.diagnostic(`${replay.name}: max |Δθ| ${maxAbs.toExponential(2)}, max |Δθ|/(1+|θ|) ${err.toExponential(2)}`);
      // Measured ≈ 3e-8 (the unit roundoff of float32 is 2^-24 ≈ 6e-8); allow 4 ulps of 1.
      assert.ok(err < 4 * 2 ** -23, `max relative parameter error ${err}`);
      // The steps moved the parameters far more than that.
      assert.ok(maxRelErr(start, expected) > 1e-3);
    });
  }
});
