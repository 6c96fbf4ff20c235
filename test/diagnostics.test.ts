import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ggnOrders } from "../src/experiments/ggn.js";
import {
  type Batch,
  createChain,
  createObjective,
  curvatureDiagnostics,
  empiricalNtk,
  forward,
  gaussNewtonVectorProduct,
  hessianVectorProduct,
  ntkSpectrum,
  powerIteration,
  Rng,
  valueAndGradient,
} from "../src/index.js";
import { convergenceOrders } from "../src/train/convergence-order.js";
import { jsonLines, runCli } from "./cli-helpers.js";
import { randomArray } from "./helpers.js";

// Diagnostics: curvature on a probe batch, NTK spectrum, observed orders of convergence, and the
// commands train --diagnostics, analyze --witness, ntk.

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), "chainopt-diagnostics-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

function dense(apply: (v: Float64Array) => ArrayLike<number>, n: number): Float64Array {
  const m = new Float64Array(n * n);
  const e = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    e.fill(0);
    e[j] = 1;
    const col = apply(e);
    for (let i = 0; i < n; i++) m[i * n + j] = col[i];
  }
  return m;
}

describe("curvature diagnostics", () => {
  it("power iteration finds the eigenvalue of largest magnitude, signed", () => {
    const d = [0.5, -3, 1, 2];
    const lam = powerIteration((v) => v.map((x, i) => d[i] * x), 4, 200, new Rng(1));
    assert.ok(Math.abs(lam + 3) < 1e-9, String(lam));
  });

  it("top Hessian and Gauss-Newton eigenvalues and the ratio (η/2)‖g‖²_H/‖g‖² match dense matrices", () => {
    const rng = new Rng(3);
    const chain = createChain(
      { input: [3], layers: [{ type: "dense", units: 4 }, { type: "tanh" }, { type: "dense", units: 2 }] },
      { dtype: "float64" },
    );
    const w = chain.initParams(3) as Float64Array;
    const batch: Batch = { x: randomArray(5 * 3, rng), size: 5, labels: Int32Array.from([0, 1, 1, 0, 1]) };
    const objective = createObjective("logistic", 0.01);
    const n = chain.paramSize;
    const lr = 0.7;
    const d = curvatureDiagnostics(chain, objective, w, batch, lr, { iterations: 2000 });
    const h = dense((v) => hessianVectorProduct(chain, objective, w, batch, v), n);
    const gn = dense((v) => gaussNewtonVectorProduct(chain, objective, w, batch, v), n);
    const eh = chain.backend.symmetricEigen?.(Float64Array.from(h), n, false) as Float64Array;
    const eg = chain.backend.symmetricEigen?.(Float64Array.from(gn), n, false) as Float64Array;
    const hTop = Math.abs(eh[0]) > Math.abs(eh[n - 1]) ? eh[0] : eh[n - 1];
    assert.ok(Math.abs(d.hessianTop - hTop) < 1e-6 * Math.abs(hTop), `${d.hessianTop} vs ${hTop}`);
    assert.ok(Math.abs(d.gaussNewtonTop - eg[n - 1]) < 1e-6 * eg[n - 1], `${d.gaussNewtonTop} vs ${eg[n - 1]}`);
    const g = Float64Array.from(valueAndGradient(chain, objective, w, batch).grad);
    let gHg = 0;
    let gg = 0;
    for (let i = 0; i < n; i++) {
      gg += g[i] * g[i];
      for (let j = 0; j < n; j++) gHg += g[i] * h[i * n + j] * g[j];
    }
    assert.ok(Math.abs(d.gradNorm - Math.sqrt(gg)) < 1e-12);
    assert.ok(Math.abs(d.ratio - ((lr / 2) * gHg) / gg) < 1e-10 * Math.abs(d.ratio), `${d.ratio}`);
    // Gauss-Newton is positive semi-definite.
    assert.ok(d.gaussNewtonTop > 0);
  });
});

describe("empirical NTK spectrum", () => {
  it("matches the eigenvalues of J Jᵀ; on a linear model one step of η = N/λ_max contracts the residual by at most 1 − λ_min/λ_max", () => {
    const rng = new Rng(5);
    const chain = createChain({ input: [6], layers: [{ type: "dense", units: 2 }] }, { dtype: "float64" });
    const w = chain.initParams(5) as Float64Array;
    const n = 4;
    const x = randomArray(n * 6, rng);
    const s = ntkSpectrum(chain, w, x, n);
    const q = n * 2;
    const ref = chain.backend.symmetricEigen?.(empiricalNtk(chain, w, x, n), q, false) as Float64Array;
    for (let i = 0; i < q; i++) assert.ok(Math.abs(s.eigenvalues[i] - ref[i]) < 1e-10 * s.lambdaMax);
    assert.ok(s.lambdaMin > 0);
    assert.equal(s.step, n / s.lambdaMax);
    assert.ok(Math.abs(s.rate - (1 - s.lambdaMin / s.lambdaMax)) < 1e-15);
    // One gradient step on F = ‖ψ − y‖²/(2N) with η = step: r⁺ = (I − ηΘ/N) r exactly (ψ is linear in w).
    const targets = randomArray(q, rng);
    const batch: Batch = { x, size: n, targets };
    const objective = createObjective("squared", 0);
    const r0 = Float64Array.from(forward(chain, w, x, n)).map((v, i) => v - targets[i]);
    const g = valueAndGradient(chain, objective, w, batch).grad;
    const w1 = w.map((v, i) => v - s.step * g[i]);
    const r1 = Float64Array.from(forward(chain, w1, x, n)).map((v, i) => v - targets[i]);
    const norm = (a: Float64Array) => Math.sqrt(a.reduce((t, v) => t + v * v, 0));
    assert.ok(norm(r1) <= s.rate * norm(r0) * (1 + 1e-12), `${norm(r1)} > ${s.rate} · ${norm(r0)}`);
  });
});

describe("observed order of convergence", () => {
  it("quadratic, linear and rounding-floored sequences", () => {
    const quad = [0.5];
    for (let k = 0; k < 4; k++) quad.push(quad[k] ** 2);
    const o = convergenceOrders(quad);
    for (const x of o.logRatio) assert.ok(Math.abs(x.order - 2) < 1e-12);
    for (const x of o.scaleFree) assert.ok(Math.abs(x.order - 2) < 1e-12);
    const lin = convergenceOrders([1, 0.5, 0.25, 0.125, 0.0625]);
    for (const x of lin.scaleFree) assert.ok(Math.abs(x.order - 1) < 1e-12);
    // The final strictly decreasing run up to the minimum: an early increase and a rounding floor are skipped, 0 ends it.
    assert.deepEqual(
      convergenceOrders([0.1, 0.01, 0.01, 1e-9]).logRatio.map((x) => x.k),
      [2],
    );
    assert.deepEqual(
      convergenceOrders([0.5, 0.9, 0.1, 0.01, 0.02]).logRatio.map((x) => x.k),
      [1, 2],
    );
    assert.equal(convergenceOrders([0.1, 0, 1e-9]).logRatio.length, 0);
    // GGN curves: e_k = √(L_k/L_0).
    const orders = ggnOrders({ curve: [1, 1e-2, 1e-6, 1e-14].map((loss, epoch) => ({ epoch, seconds: 0, loss })) });
    assert.deepEqual(
      orders.logRatio.map((x) => Number(x.order.toFixed(12))),
      [3, 2.333333333333],
    );
  });
});

describe("diagnostic commands", () => {
  it("train --diagnostics adds finite curvature numbers per epoch; the ratio is (η/2)·curvature", async () => {
    const r = await runCli([
      "train",
      ...[
        "--dataset",
        "iris",
        "--validation",
        "30",
        "--epochs",
        "2",
        "--widths",
        "8",
        "--activation",
        "tanh",
        "--optimizer",
        "sgd",
        "--lr",
        "0.1",
      ],
      ...["--schedule", "constant", "--diagnostics", "--json", "--out", join(root, "diag")],
    ]);
    assert.equal(r.code, 0, r.stderr);
    const epochs = jsonLines(r.stdout).filter((l) => l.final === undefined);
    assert.equal(epochs.length, 2);
    for (const e of epochs) {
      for (const k of ["hessianTop", "gaussNewtonTop", "curvatureRatio", "probeGradNorm", "gradientCurvature"]) {
        assert.ok(Number.isFinite(e[k] as number), `${k}: ${e[k]}`);
      }
      assert.ok((e.gaussNewtonTop as number) > 0);
      assert.ok(
        Math.abs((e.curvatureRatio as number) - 0.05 * (e.gradientCurvature as number)) < 1e-9 * Math.abs(e.curvatureRatio as number),
      );
    }
  });

  it("analyze --witness prints certificate, witness and ratio per layer; every ratio ≥ 1", async () => {
    const spec = join(root, "spec.json");
    writeFileSync(
      spec,
      JSON.stringify({ input: [4], layers: [{ type: "dense", units: 5 }, { type: "softplus" }, { type: "dense", units: 3 }] }),
    );
    const r = await runCli(["analyze", "--model", spec, "--batch", "3", "--witness", "--witness-budget", "3", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      witness: {
        layers: { bound: { ratio: number; witness: number }; lipschitz: { ratio: number }; smoothness: { ratio: number } }[];
        objective: { smoothness: { ratio: number } };
      };
    };
    assert.equal(out.witness.layers.length, 2);
    for (const l of out.witness.layers) {
      assert.ok(l.bound.witness > 0);
      for (const c of [l.bound, l.lipschitz, l.smoothness]) assert.ok(c.ratio >= 1 - 1e-9, JSON.stringify(l));
    }
    assert.ok(out.witness.objective.smoothness.ratio >= 1 - 1e-9);
    const text = await runCli(["analyze", "--model", spec, "--batch", "3", "--witness", "--witness-budget", "2"]);
    assert.match(text.stdout, /tightness: certificate \/ witness/);
    assert.match(text.stdout, /\n1 +dense→softplus/);
  });

  it("ntk prints the Gram spectrum and the implied step and rate", async () => {
    const r = await runCli(["ntk", "--model", "mlp", "--widths", "16", "--dataset", "iris", "--samples", "6", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const o = JSON.parse(r.stdout) as Record<string, number | number[]>;
    const ev = o.eigenvalues as number[];
    assert.equal(ev.length, 6 * 3);
    assert.equal(o.lambdaMin, ev[0]);
    assert.equal(o.lambdaMax, ev[ev.length - 1]);
    assert.ok(Math.abs((o.step as number) - 6 / (o.lambdaMax as number)) < 1e-12 * (o.step as number));
    const bad = await runCli(["ntk", "--model", "mlp", "--dataset", "nope"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--dataset: unknown data set "nope"/);
  });
});
