import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { createChain } from "../src/chain/chain.js";
import type { ModelSpecInput } from "../src/chain/spec.js";
import { type Batch, createObjective, type LossType } from "../src/objectives/index.js";
import { valueAndGradient, vjp } from "../src/oracles/first-order.js";
import { relativeError } from "./helpers.js";

// Cross-check against PyTorch's autograd (float64, training mode): losses, parameter and input
// gradients, outputs and batch-norm running statistics of two small chains. The fixture is written
// by `python3 scripts/torch-fixtures/chain_fixture.py` (see that script for the networks).

interface LossRecord {
  loss: number;
  output: number[];
  grad: number[];
  inputGrad: number[];
  runningStats: number[];
}
interface FixtureCase {
  spec: ModelSpecInput;
  batch: number;
  x: number[];
  labels: number[];
  targets: number[];
  paramShapes: number[][];
  params: number[];
  losses: Record<LossType, LossRecord>;
}

const fixture = JSON.parse(readFileSync(new URL("../../test/fixtures/torch-chain.json", import.meta.url), "utf8")) as {
  cases: Record<string, FixtureCase>;
};

// The same networks, written independently of the fixture (the script's nn.Sequential models).
const specs: Record<string, ModelSpecInput> = {
  mlp: {
    input: [6],
    layers: [
      { type: "dense", units: 8 },
      { type: "batchNorm", epsilon: 1e-5, momentum: 0.1, affine: true },
      { type: "softplus", beta: 2 },
      { type: "dense", units: 5 },
      { type: "tanh" },
      { type: "dense", units: 4 },
      { type: "sigmoid" },
      { type: "dense", units: 3 },
    ],
  },
  convnet: {
    input: [2, 9, 8],
    layers: [
      { type: "conv2d", filters: 3, kernel: 3, padding: 1 },
      { type: "batchNorm", epsilon: 1e-3, momentum: 0.2 },
      { type: "relu" },
      { type: "maxPool2d", size: 2, stride: 2, padding: 1 },
      { type: "conv2d", filters: 4, kernel: [3, 2], stride: [2, 1], padding: [1, 1] },
      { type: "softplus" },
      { type: "avgPool2d", size: 2, stride: 1, padding: 1 },
      { type: "conv2d", filters: 3, kernel: 2, stride: 2 },
      { type: "batchNorm", epsilon: 1e-5, momentum: 0.1, affine: true },
      { type: "tanh" },
      { type: "flatten" },
      { type: "dense", units: 6 },
      { type: "sigmoid" },
      { type: "dense", units: 4 },
    ],
  },
};

const TOL = 1e-8;

describe("PyTorch cross-check (float64, training mode)", () => {
  for (const [name, spec] of Object.entries(specs)) {
    const fx = fixture.cases[name];
    it(`${name}: the fixture describes the same chain`, () => {
      assert.deepEqual(fx.spec, spec);
      const chain = createChain(spec, { dtype: "float64" });
      const sizes = chain.components.flatMap((c) => c.params.map((p) => [...p.shape]));
      assert.deepEqual(sizes, fx.paramShapes);
      assert.equal(chain.paramSize, fx.params.length);
    });
    for (const lossType of ["logistic", "squared"] as const) {
      it(`${name}, ${lossType} loss: loss, gradients, outputs and running statistics match PyTorch`, () => {
        const expected = fx.losses[lossType];
        const chain = createChain(spec, { dtype: "float64" });
        const w = Float64Array.from(fx.params);
        const batch: Batch = {
          x: Float64Array.from(fx.x),
          size: fx.batch,
          ...(lossType === "logistic" ? { labels: Int32Array.from(fx.labels) } : { targets: Float64Array.from(fx.targets) }),
        };
        const objective = createObjective(lossType);
        const state = chain.initState();
        const r = valueAndGradient(chain, objective, w, batch, { training: true, state, updateState: true });
        const errors = {
          loss: Math.abs(r.loss - expected.loss) / Math.abs(expected.loss),
          output: relativeError(r.output, expected.output),
          grad: relativeError(r.grad, expected.grad),
          runningStats: relativeError(state, expected.runningStats),
          inputGrad: 0,
        };
        // Input gradient: the loss slope back-propagated to the input.
        const slope = new Float64Array(r.output.length);
        objective.loss.evaluate(r.output, batch, chain.outputSize, slope);
        const { dx } = vjp(chain, w, batch.x, batch.size, slope, { training: true, state, withInput: true });
        errors.inputGrad = relativeError(dx!, expected.inputGrad);
        console.log(`${name} ${lossType}: ${JSON.stringify(errors)}`);
        for (const [what, e] of Object.entries(errors)) assert.ok(e <= TOL, `${what}: relative error ${e} > ${TOL}`);
      });
    }
  }
});
