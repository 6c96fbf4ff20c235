import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { SingleProcessCollective } from "../src/core/collective.js";
import { distributedGgnDirection } from "../src/second-order/distributed.js";
import { prepareGgn } from "../src/second-order/ggn.js";
import { createChain, createObjective, portableBackend, Rng } from "./flat.js";
import { MPI_ENV, MPI_SKIP, MPIRUN } from "./mpi-helpers.js";

// Gram-Gauss-Newton with the Gram matrix split by rows across ranks (src/second-order/distributed.ts)
// against the one-process step (ggn.ts), float64.

const BENCH = fileURLToPath(new URL("../bench/distributed.js", import.meta.url));

function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return d / s;
}

describe("distributed GGN", () => {
  it("one rank: the direction and Gram matrix of the one-process step (random instances)", () => {
    const rng = new Rng(5);
    for (let trial = 0; trial < 4; trial++) {
      const width = 4 + Math.floor(rng.uniform() * 8);
      const k = 1 + Math.floor(rng.uniform() * 2);
      const B = 3 + Math.floor(rng.uniform() * 6);
      const chain = createChain(
        { input: [5], layers: [{ type: "dense", units: width }, { type: "tanh" }, { type: "dense", units: k }] },
        { dtype: "float64", backend: portableBackend },
      );
      const w = chain.initParams(trial);
      const x = new Float64Array(B * 5).map(() => rng.normal());
      const targets = new Float64Array(B * k).map(() => rng.normal());
      const batch = { x, size: B, targets };
      const objective = createObjective("squared", 1e-3);
      const ref = prepareGgn(chain, objective, w, batch);
      for (const path of ["auto", "generic"] as const) {
        const r = distributedGgnDirection(new SingleProcessCollective(), chain, objective, w, batch, { damping: 0.1, stepSize: 0.5, path });
        assert.ok(maxRel(r.direction, ref.direction(0.1, 0.5)) <= 1e-10, `direction, trial ${trial}, ${path}`);
        assert.ok(maxRel(r.ntk, ref.ntk) <= 1e-10, `ntk, trial ${trial}, ${path}`);
        assert.ok(Math.abs(r.value - ref.value) <= 1e-12 * Math.abs(ref.value), `value, trial ${trial}, ${path}`);
      }
    }
  });

  it("rejects a loss other than the squared loss, naming it", () => {
    const chain = createChain({ input: [2], layers: [{ type: "dense", units: 3 }] }, { dtype: "float64", backend: portableBackend });
    const batch = { x: new Float64Array(4), size: 2, labels: new Int32Array([0, 1]) };
    assert.throws(
      () =>
        distributedGgnDirection(new SingleProcessCollective(), chain, createObjective("logistic", 0), chain.initParams(0), batch, {
          damping: 1,
        }),
      /squared loss, got the logistic loss/,
    );
  });

  for (const [np, B, path] of [
    [2, 37, "auto"],
    [3, 20, "auto"],
    [2, 21, "generic"],
  ] as const) {
    it(`${np} ranks (uneven shares, batch ${B}, ${path} path): the one-process direction to ≤ 1e-10 (float64)`, {
      skip: MPI_SKIP,
    }, async () => {
      const child = spawn(
        MPIRUN as string,
        [
          "--oversubscribe",
          "-np",
          String(np),
          process.execPath,
          BENCH,
          "--part",
          "ggn",
          "--batch",
          String(B),
          "--reps",
          "1",
          "--check",
          "--path",
          path,
        ],
        { env: { ...process.env, ...MPI_ENV }, stdio: ["ignore", "pipe", "pipe"] },
      );
      let out = "";
      let err = "";
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
      });
      child.stderr.on("data", (d: Buffer) => {
        err += d.toString();
      });
      const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
      assert.equal(code, 0, err);
      const line = out.split("\n").find((l) => l.startsWith("{"));
      assert.ok(line, `no JSON line in:\n${out}\n${err}`);
      const r = JSON.parse(line) as { ranks: number; maxRelativeDifference: number; valueDifference: number };
      assert.equal(r.ranks, np);
      assert.ok(r.maxRelativeDifference <= 1e-10, `relative difference ${r.maxRelativeDifference}`);
      assert.ok(r.valueDifference <= 1e-12, `value difference ${r.valueDifference}`);
    });
  }
});
