import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { assertDerivatives } from "./helpers.js";

describe("component derivatives (float64, central differences and adjoint identity)", () => {
  it("dense with and without bias", () => {
    assertDerivatives({ input: [5], layers: [{ type: "dense", units: 4 }] });
    assertDerivatives({ input: [5], layers: [{ type: "dense", units: 3, bias: false }] });
  });
  for (const act of [
    { type: "relu" },
    { type: "softplus" },
    { type: "softplus", beta: 3 },
    { type: "sigmoid" },
    { type: "tanh" },
    { type: "smoothRelu", mu: 0.3 },
  ] as const) {
    it(`${act.type} ${JSON.stringify(act)}`, () => {
      assertDerivatives({ input: [6], layers: [{ type: "dense", units: 7 }, act] }, { seed: 3 });
    });
  }
  it("flatten", () => {
    assertDerivatives({ input: [2, 3, 3], layers: [{ type: "flatten" }, { type: "dense", units: 2 }] });
  });
});

describe("smoothRelu", () => {
  it("is within μ of ReLU and continuous at the breakpoints", async () => {
    const { SmoothRelu } = await import("../src/components/smooth-relu.js");
    const mu = 0.25;
    const f = new SmoothRelu({ type: "smoothRelu", mu }, [1]);
    for (let x = -2; x <= 2; x += 0.001) {
      const gap = Math.max(x, 0) - f.value(x);
      assert.ok(gap >= -1e-15 && gap <= mu + 1e-15, `gap ${gap} at ${x}`);
    }
    assert.ok(Math.abs(f.value(2 * mu) - mu) < 1e-15);
    assert.ok(Math.abs(f.derivative(2 * mu - 1e-12) - 1) < 1e-9);
  });
});
