import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { loadNativeBackend, nativeLoadError } from "../src/node/index.js";

// The addon's layout benchmark entries (dnnConvLayoutBench, dnnPoolLayoutBench; bench/dnn-layouts.ts):
// shapes of their results on small geometries, argument checks, and the benchmark's behaviour
// without oneDNN.

const native = loadNativeBackend();
const raw = native?.raw;
const skip = raw?.dnnlVersion
  ? raw.dnnConvLayoutBench && raw.dnnPoolLayoutBench
    ? false
    : "native addon built before the layout benchmark (rebuild it: `npx chainopt build-native`)"
  : native
    ? "native addon built without oneDNN"
    : `native addon not available (${nativeLoadError()})`;

/** A layout in oneDNN's notation: outer dimensions (upper case when blocked), then inner blocks. */
const layoutPattern = /^[A-Za-z]{4}(\d+[a-z])*$/;

describe("oneDNN layout benchmark entries", { skip }, () => {
  // [N, C, H, W, F, OH, OW, KH, KW, SH, SW, PH, PW]
  const conv = Int32Array.of(2, 16, 8, 8, 32, 8, 8, 3, 3, 1, 1, 1, 1);
  // [N, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW]
  const pool = Int32Array.of(2, 16, 8, 8, 4, 4, 2, 2, 2, 2, 0, 0);

  it("dnnConvLayoutBench: layouts of the three passes, finite positive times, a reorder exactly where a layout is not plain", () => {
    const r = raw!.dnnConvLayoutBench!(conv, 1);
    const tensors = {
      forward: ["src", "weights", "dst"],
      backwardData: ["diffDst", "weights", "diffSrc"],
      backwardWeights: ["src", "diffDst", "diffWeights"],
    };
    for (const [pass, names] of Object.entries(tensors)) {
      assert.equal(typeof r.impl?.[pass], "string");
      for (const kind of ["blocked", "plain"]) {
        const ms = r.ms[`${kind}.${pass}`];
        assert.ok(Number.isFinite(ms) && ms > 0, `${kind}.${pass}: ${ms}`);
      }
      for (const t of names) {
        const layout = r.layouts[`${pass}.${t}`];
        assert.match(layout, layoutPattern, `${pass}.${t}`);
        const plain = /weights/i.test(t) ? "oihw" : "nchw";
        const reorder = r.ms[`reorder.${pass}.${t}`];
        if (layout === plain) assert.equal(reorder, undefined, `${pass}.${t} is plain: no reorder`);
        else assert.ok(Number.isFinite(reorder) && reorder > 0, `reorder.${pass}.${t}: ${reorder}`);
      }
    }
  });

  it("dnnPoolLayoutBench: nchw against nChw8c and nChw16c, pooling and ReLU passes, reorders both ways", () => {
    for (const block of [8, 16] as const) {
      const r = raw!.dnnPoolLayoutBench!(pool, 1, block);
      assert.deepEqual(r.layouts, { plain: "nchw", blocked: `nChw${block}c` });
      const names = ["poolForward", "poolBackward", "reluForward", "reluBackward"].flatMap((p) => [`plain.${p}`, `blocked.${p}`]);
      names.push("reorder.srcToBlocked", "reorder.srcToPlain", "reorder.dstToBlocked", "reorder.dstToPlain");
      assert.deepEqual(Object.keys(r.ms).sort(), names.sort());
      for (const [k, ms] of Object.entries(r.ms)) assert.ok(Number.isFinite(ms) && ms > 0, `${k}: ${ms}`);
      assert.equal(typeof r.impl?.["blocked.poolForward"], "string");
    }
  });

  it("checks its arguments", () => {
    assert.throws(() => raw!.dnnConvLayoutBench!(conv, 0), /reps/);
    assert.throws(() => raw!.dnnConvLayoutBench!(Int32Array.of(1, 2, 3), 1), /geometry/);
    assert.throws(() => raw!.dnnPoolLayoutBench!(pool, 1, 4 as 8), /block/);
  });
});

describe("bench/dnn-layouts.ts without oneDNN", { skip: native ? false : `native addon not available (${nativeLoadError()})` }, () => {
  it("says there is nothing to measure and exits 0 (CHAINOPT_ONEDNN=0)", () => {
    const script = fileURLToPath(new URL("../bench/dnn-layouts.js", import.meta.url));
    const r = spawnSync(process.execPath, [script], { env: { ...process.env, CHAINOPT_ONEDNN: "0" }, encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /no oneDNN/);
  });
});
