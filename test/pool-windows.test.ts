// The clipped pooling windows computed once per shape (src/components/pool2d.ts), against the
// definition: window o along an axis of n inputs covers {i ∈ [0, n) : o·s − p ≤ i < o·s − p + k}.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { poolGeometry, poolWindows } from "../src/components/pool2d.js";
import { Rng } from "../src/core/rng.js";

/** The positions of window o along one axis, by the definition (no clipping arithmetic). */
function windowPositions(o: number, n: number, k: number, s: number, p: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) if (o * s - p <= i && i < o * s - p + k) out.push(i);
  return out;
}

function range(lo: number, hi: number): number[] {
  return Array.from({ length: Math.max(0, hi - lo) }, (_, j) => lo + j);
}

describe("pooling windows", () => {
  it("are the definition's windows clipped to the input, non-empty, on random geometries", () => {
    const rng = new Rng(11);
    for (let trial = 0; trial < 200; trial++) {
      const kh = 1 + rng.int(4);
      const kw = 1 + rng.int(4);
      const ph = rng.int(Math.floor(kh / 2) + 1);
      const pw = rng.int(Math.floor(kw / 2) + 1);
      const h = kh + rng.int(7);
      const w = kw + rng.int(7);
      const spec = {
        size: [kh, kw] as [number, number],
        stride: [1 + rng.int(3), 1 + rng.int(3)] as [number, number],
        padding: [ph, pw] as [number, number],
      };
      const g = poolGeometry(spec, [1 + rng.int(2), h, w], "layers[0]", "maxPool2d");
      const win = poolWindows(g);
      assert.equal(win.hLo.length, g.oh);
      assert.equal(win.wLo.length, g.ow);
      const where = JSON.stringify({ spec, h, w });
      for (let o = 0; o < g.oh; o++) {
        assert.deepEqual(range(win.hLo[o], win.hHi[o]), windowPositions(o, h, kh, g.sh, ph), `rows of window ${o}, ${where}`);
        assert.ok(win.hHi[o] > win.hLo[o], `window row ${o} is empty, ${where}`);
      }
      for (let o = 0; o < g.ow; o++) {
        assert.deepEqual(range(win.wLo[o], win.wHi[o]), windowPositions(o, w, kw, g.sw, pw), `columns of window ${o}, ${where}`);
        assert.ok(win.wHi[o] > win.wLo[o], `window column ${o} is empty, ${where}`);
      }
    }
  });
});
