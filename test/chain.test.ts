import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createChain } from "../src/chain/chain.js";
import { ModelSpecError, type ModelSpecInput } from "../src/chain/spec.js";
import { Rng } from "../src/core/rng.js";
import { createObjective } from "../src/objectives/index.js";
import { valueAndGradient } from "../src/oracles/first-order.js";
import { assertDerivatives, randomArray, relativeError } from "./helpers.js";

describe("chain", () => {
  it("groups components into layers x_t = a_t(b_t(x_{t-1}, u_t))", () => {
    const chain = createChain({
      input: [1, 4, 4],
      layers: [
        { type: "flatten" },
        { type: "dense", units: 5 },
        { type: "relu" },
        { type: "dense", units: 3 },
        { type: "tanh" },
        { type: "sigmoid" },
      ],
    });
    assert.deepEqual(
      chain.layers.map((l) => [l.biaffine, [...l.nonlinear]]),
      [
        [-1, [0]],
        [1, [2]],
        [3, [4, 5]],
      ],
    );
    assert.equal(chain.paramSize, 16 * 5 + 5 + 5 * 3 + 3);
  });

  it("MLP gradient of the regularized logistic objective matches finite differences", () => {
    const spec: ModelSpecInput = {
      input: [6],
      layers: [
        { type: "dense", units: 5 },
        { type: "tanh" },
        { type: "dense", units: 4 },
        { type: "softplus" },
        { type: "dense", units: 3 },
      ],
    };
    assertDerivatives(spec, { batch: 4 });
    const chain = createChain(spec, { dtype: "float64" });
    const rng = new Rng(5);
    const w = chain.initParams(2);
    const batch = { x: randomArray(4 * 6, rng), size: 4, labels: Int32Array.from([0, 2, 1, 2]) };
    const objective = createObjective("logistic", 0.1);
    const { value, grad } = valueAndGradient(chain, objective, w, batch);
    const h = 1e-6;
    const fd = new Float64Array(w.length);
    for (let i = 0; i < w.length; i++) {
      const old = w[i];
      w[i] = old + h;
      const fp = valueAndGradient(chain, objective, w, batch).value;
      w[i] = old - h;
      const fm = valueAndGradient(chain, objective, w, batch).value;
      w[i] = old;
      fd[i] = (fp - fm) / (2 * h);
    }
    assert.ok(Number.isFinite(value));
    assert.ok(relativeError(grad, fd) < 1e-7, `error ${relativeError(grad, fd)}`);
  });

  it("rejects malformed specs naming the field", () => {
    assert.throws(
      () => createChain({ input: [4], layers: [{ type: "dense", units: -1 }] }),
      (e: Error) => e instanceof ModelSpecError && /layers\[0\]\.units/.test(e.message),
    );
    assert.throws(
      () => createChain({ input: [4], layers: [{ type: "dropout" }] } as never),
      (e: Error) => /layers\[0\]\.type: unknown layer type "dropout"/.test(e.message),
    );
    assert.throws(() => createChain({ input: [2, 4, 4], layers: [{ type: "dense", units: 3 }] }), /layers\[0\].*flatten/);
  });

  it("same seed, same parameters", () => {
    const spec: ModelSpecInput = { input: [8], layers: [{ type: "dense", units: 4 }] };
    assert.deepEqual(createChain(spec).initParams(7), createChain(spec).initParams(7));
    assert.notDeepEqual(createChain(spec).initParams(7), createChain(spec).initParams(8));
  });
});
