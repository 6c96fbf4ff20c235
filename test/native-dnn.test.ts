import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadNativeBackend, type NativeBackend, nativeLoadError } from "../src/node/index.js";
import { assertKillResumeBitIdentical, runCli } from "./cli-helpers.js";
import {
  type Backend,
  type ConvGeometry,
  convert,
  createChain,
  type DnnPrimitives,
  dot,
  forward,
  jvp,
  type ModelSpecInput,
  PortableBackend,
  Rng,
  vjp,
} from "./flat.js";
import { randomArray, relativeError } from "./helpers.js";

const native = loadNativeBackend();
const withDnn = native?.dnnlVersion ? native.withPaths({ dnn: true }) : null;
const skipDnn = withDnn
  ? false
  : native
    ? "native addon built without oneDNN (install libdnnl-dev, then `npx chainopt build-native`)"
    : `native addon not available (${nativeLoadError()})`;

/** The primitives of `dnn`, counting the calls of each. */
function counting(dnn: DnnPrimitives): { dnn: DnnPrimitives; calls: Record<string, number> } {
  const calls: Record<string, number> = {};
  const wrapped = { ...dnn } as Record<string, unknown>;
  for (const [k, f] of Object.entries(dnn)) {
    if (typeof f !== "function" || k.startsWith("supports") || k === "poolWorkspaceBytes") continue;
    wrapped[k] = (...args: unknown[]) => {
      calls[k] = (calls[k] ?? 0) + 1;
      return (f as (...a: unknown[]) => unknown)(...args);
    };
  }
  return { dnn: wrapped as unknown as DnnPrimitives, calls };
}

/** `backend` with its oneDNN primitives replaced by counting ones (every other kernel delegated). */
function spied(backend: NativeBackend): { backend: Backend; calls: Record<string, number> } {
  const c = counting(backend.dnn!);
  const b = Object.create(backend, { dnn: { value: c.dnn } }) as Backend;
  return { backend: b, calls: c.calls };
}

interface Results {
  y: Float64Array;
  dw: Float64Array;
  dx: Float64Array;
  jv: Float64Array;
}

/** Forward, VJP (parameters and input) and JVP of a chain on one backend and precision, as float64. */
function evaluate(spec: ModelSpecInput, dtype: "float32" | "float64", backend: Backend, batch: number, seed: number): Results {
  const chain = createChain(spec, { dtype, backend });
  const ref = createChain(spec, { dtype: "float64" });
  const rng = new Rng(seed);
  const w64 = ref.initParams(seed) as Float64Array;
  const w = convert(w64, dtype);
  const x = randomArray(batch * chain.inputSize, rng);
  const s = randomArray(batch * chain.outputSize, rng);
  const vw = convert(randomArray(chain.paramSize, rng), dtype);
  const vx = randomArray(batch * chain.inputSize, rng);
  const y = Float64Array.from(forward(chain, w, x, batch));
  const { dw, dx } = vjp(chain, w, x, batch, s, { withInput: true });
  const jv = jvp(chain, w, x, batch, chain.paramSize > 0 ? vw : null, vx);
  return { y, dw: Float64Array.from(dw), dx: Float64Array.from(dx!), jv: Float64Array.from(jv) };
}

function assertClose(got: Results, want: Results, tol: number, what: string): void {
  for (const k of ["y", "dw", "dx", "jv"] as const) {
    if (want[k].length === 0) continue;
    const e = relativeError(got[k], want[k]);
    assert.ok(e <= tol, `${what}: ${k} relative error ${e} > ${tol}`);
  }
}

const portable = new PortableBackend();

// Random geometries: strides, paddings, rectangular kernels, with and without bias, 1×1.
function randomConvSpecs(count: number, seed: number): { input: number[]; spec: ModelSpecInput }[] {
  const rng = new Rng(seed);
  const pick = (lo: number, hi: number): number => lo + Math.floor(rng.uniform() * (hi - lo + 1));
  const out: { input: number[]; spec: ModelSpecInput }[] = [];
  while (out.length < count) {
    const c = pick(1, 4);
    const h = pick(4, 11);
    const w = pick(4, 11);
    const kh = pick(1, 4);
    const kw = pick(1, 4);
    const sh = pick(1, 3);
    const sw = pick(1, 3);
    const ph = pick(0, kh - 1);
    const pw = pick(0, kw - 1);
    if (h + 2 * ph < kh || w + 2 * pw < kw) continue;
    const input = [c, h, w];
    out.push({
      input,
      spec: {
        input,
        layers: [{ type: "conv2d", filters: pick(1, 5), kernel: [kh, kw], stride: [sh, sw], padding: [ph, pw], bias: rng.uniform() < 0.7 }],
      },
    });
  }
  return out;
}

describe("oneDNN convolution and pooling against im2col and the float64 reference", { skip: skipDnn }, () => {
  for (const { input, spec } of randomConvSpecs(12, 3)) {
    const layer = JSON.stringify((spec as { layers: unknown[] }).layers[0]);
    it(`conv2d ${layer} on [${input}]: forward, backward-data, backward-weights, JVP`, () => {
      const want = evaluate(spec, "float64", portable, 3, 7);
      const { backend, calls } = spied(withDnn!);
      const got = evaluate(spec, "float32", backend, 3, 7);
      const im2col = evaluate(spec, "float32", native!.withPaths({ dnn: false }), 3, 7);
      assertClose(got, want, 2e-5, "oneDNN float32 vs float64");
      assertClose(im2col, want, 2e-5, "im2col float32 vs float64");
      // The path was taken whenever oneDNN supports the geometry (floor mode may crop: then im2col).
      const supported = withDnn!.dnn!.supportsConv(convGeometryOf(spec, 3));
      assert.equal(calls.convForward !== undefined, supported);
      assert.equal(calls.convBackwardWeights !== undefined, supported);
      assert.equal(calls.convBackwardData !== undefined, supported);
    });
  }

  const pools: { input: number[]; layer: Record<string, unknown> }[] = [
    { input: [3, 8, 8], layer: { type: "maxPool2d", size: 2 } },
    { input: [2, 9, 7], layer: { type: "maxPool2d", size: 3, stride: 2, padding: 1 } },
    { input: [2, 6, 6], layer: { type: "maxPool2d", size: [3, 2], stride: 1 } },
    { input: [3, 8, 8], layer: { type: "avgPool2d", size: 2 } },
    { input: [2, 9, 7], layer: { type: "avgPool2d", size: 3, stride: 2, padding: 1 } },
    { input: [2, 5, 7], layer: { type: "avgPool2d", size: [2, 3], stride: [1, 2] } },
  ];
  for (const { input, layer } of pools) {
    it(`${JSON.stringify(layer)} on [${input}]: forward, backward, JVP`, () => {
      const spec = { input, layers: [layer] } as ModelSpecInput;
      const want = evaluate(spec, "float64", portable, 4, 11);
      const { backend, calls } = spied(withDnn!);
      const got = evaluate(spec, "float32", backend, 4, 11);
      assertClose(got, want, 1e-6, "oneDNN float32 vs float64");
      assert.ok((calls.poolForward ?? 0) > 0 && (calls.poolBackward ?? 0) > 0, `oneDNN pooling not used: ${JSON.stringify(calls)}`);
    });
  }

  it("a ConvNet (conv, relu, max-pool, conv, relu, avg-pool, dense): oneDNN, im2col and portable agree with float64", () => {
    const spec: ModelSpecInput = {
      input: [3, 12, 12],
      layers: [
        { type: "conv2d", filters: 6, kernel: 3, padding: 1 },
        { type: "relu" },
        { type: "maxPool2d", size: 2 },
        { type: "conv2d", filters: 5, kernel: 3, stride: 2, padding: 1 },
        { type: "relu" },
        { type: "avgPool2d", size: 3 },
        { type: "flatten" },
        { type: "dense", units: 4 },
      ],
    };
    const want = evaluate(spec, "float64", portable, 5, 2);
    for (const [name, b] of [
      ["oneDNN", withDnn!],
      ["im2col + OpenBLAS", native!.withPaths({ dnn: false })],
      ["portable", portable],
    ] as const) {
      assertClose(evaluate(spec, "float32", b, 5, 2), want, 3e-5, name);
    }
  });

  it("is deterministic: the same call twice gives the same bits (what resuming a run relies on)", () => {
    const spec: ModelSpecInput = {
      input: [3, 10, 10],
      layers: [
        { type: "conv2d", filters: 8, kernel: 3, padding: 1 },
        { type: "relu" },
        { type: "maxPool2d", size: 2 },
        { type: "conv2d", filters: 4, kernel: 3, padding: 1 },
        { type: "avgPool2d", size: 5 },
      ],
    };
    const a = evaluate(spec, "float32", withDnn!, 16, 8);
    const b = evaluate(spec, "float32", withDnn!, 16, 8);
    assert.deepEqual(b, a);
  });

  it("max pooling routes ties (all-zero windows after ReLU) like the portable first-maximum rule", () => {
    const spec: ModelSpecInput = { input: [2, 6, 6], layers: [{ type: "relu" }, { type: "maxPool2d", size: 2 }] };
    const a = evaluate(spec, "float32", withDnn!, 4, 5);
    const b = evaluate(spec, "float32", native!.withPaths({ dnn: false }), 4, 5);
    assert.deepEqual(a.dx, b.dx);
    assert.deepEqual(a.jv, b.jv);
  });

  it("gradients by central differences and the adjoint identity hold with oneDNN forced on (float32)", () => {
    // A linear chain (convolutions and average pooling), so that float32 central differences with a
    // large step have no curvature error: what remains is rounding, ~1e-7·|φ|/h.
    const spec: ModelSpecInput = {
      input: [2, 7, 7],
      layers: [
        { type: "conv2d", filters: 3, kernel: 3, padding: 1 },
        { type: "avgPool2d", size: 2, stride: 1 },
        { type: "conv2d", filters: 2, kernel: 2, stride: 2 },
      ],
    };
    const { backend, calls } = spied(withDnn!);
    const chain = createChain(spec, { dtype: "float32", backend });
    const batch = 2;
    const rng = new Rng(4);
    const w = chain.initParams(4) as Float32Array;
    const x = convert(randomArray(batch * chain.inputSize, rng), "float32") as Float32Array;
    const s = randomArray(batch * chain.outputSize, rng);
    const { dw, dx } = vjp(chain, w, x, batch, s, { withInput: true });
    const phi = (): number => dot(Float64Array.from(forward(chain, w, x, batch)), s);
    const h = 1e-2;
    const fd = (v: Float32Array, grad: ArrayLike<number>): number => {
      const g: number[] = [];
      const d: number[] = [];
      for (let i = 0; i < v.length; i += Math.max(1, Math.floor(v.length / 60))) {
        const old = v[i];
        v[i] = old + h;
        const fp = phi();
        v[i] = old - h;
        const fm = phi();
        v[i] = old;
        d.push((fp - fm) / (2 * h));
        g.push(grad[i]);
      }
      return relativeError(g, d);
    };
    assert.ok(fd(w, dw) < 1e-3, `parameter gradient error ${fd(w, dw)}`);
    assert.ok(fd(x, dx!) < 1e-3, `input gradient error ${fd(x, dx!)}`);
    const vw = convert(randomArray(chain.paramSize, rng), "float32");
    const vx = randomArray(batch * chain.inputSize, rng);
    const lhs = dot(Float64Array.from(jvp(chain, w, x, batch, vw, vx)), s);
    const rhs = dot(Float64Array.from(vw), Float64Array.from(dw)) + dot(vx, Float64Array.from(dx!));
    assert.ok(Math.abs(lhs - rhs) <= 1e-4 * Math.max(Math.abs(lhs), Math.abs(rhs)), `adjoint identity: ${lhs} vs ${rhs}`);
    assert.ok((calls.convForward ?? 0) > 0 && (calls.convBackwardData ?? 0) > 0 && (calls.convBackwardWeights ?? 0) > 0);
    assert.ok((calls.poolForward ?? 0) > 0 && (calls.poolBackward ?? 0) > 0);
  });

  it("each path is taken exactly when chosen: oneDNN (float32), im2col (oneDNN off), float64 (never oneDNN)", () => {
    const spec: ModelSpecInput = {
      input: [2, 6, 6],
      layers: [
        { type: "conv2d", filters: 2, kernel: 3, padding: 1 },
        { type: "maxPool2d", size: 2 },
        { type: "avgPool2d", size: 3 },
      ],
    };
    const on = spied(withDnn!);
    evaluate(spec, "float32", on.backend, 2, 1);
    assert.ok(on.calls.convForward && on.calls.poolForward && on.calls.poolBackward && on.calls.convBackwardData);
    const f64 = spied(withDnn!);
    evaluate(spec, "float64", f64.backend, 2, 1);
    assert.deepEqual(f64.calls, {});
    const off = native!.withPaths({ dnn: false });
    assert.equal(off.dnn, undefined);
    assert.throws(
      () =>
        createChain(spec, { backend: native!.withPaths({ dnn: true }) }).backend.dnn!.convForward(
          convGeometryOf(spec, 1),
          new Float32Array(1),
          new Float32Array(1),
          null,
          new Float32Array(1),
        ),
      /argument 'x' has 1 elements/,
    );
  });

  it("a geometry oneDNN does not support (floor mode cropping the input) falls back to im2col", () => {
    const spec: ModelSpecInput = { input: [1, 5, 5], layers: [{ type: "conv2d", filters: 2, kernel: 2, stride: 2 }] };
    assert.equal(withDnn!.dnn!.supportsConv(convGeometryOf(spec, 2)), false);
    const { backend, calls } = spied(withDnn!);
    assertClose(evaluate(spec, "float32", backend, 2, 3), evaluate(spec, "float64", portable, 2, 3), 2e-6, "fallback");
    assert.deepEqual(calls, {});
  });
});

describe("resume with oneDNN on", { skip: skipDnn }, () => {
  it("a ConvNet run killed (SIGKILL) after epoch 2 and resumed ends bit-identical to the uninterrupted run", async () => {
    const args = ["train", "--model", "convnet", "--dataset", "mnist", "--limit", "1024", "--validation", "64", "--epochs", "4"];
    await assertKillResumeBitIdentical([...args, "--batch-size", "32", "--seed", "5", "--optimizer", "adam", "--lr", "1e-3", "--json"]);
  });
});

describe("chainopt doctor reports oneDNN", { skip: skipDnn }, () => {
  it("used, with its version; CHAINOPT_ONEDNN=0 turns it off and says so", async () => {
    const on = await runCli(["doctor", "--json", "--no-bench"]);
    assert.equal(on.code, 0, on.stderr);
    const r = JSON.parse(on.stdout) as { onednn: { used: boolean; version: string; reason: string | null }; advice: string | null };
    assert.equal(r.onednn.used, true);
    assert.equal(r.onednn.version, native!.dnnlVersion);
    assert.match(r.onednn.version, /^2\.\d+\.\d+$/);
    const off = await runCli(["doctor", "--json", "--no-bench"], { CHAINOPT_ONEDNN: "0" });
    const r0 = JSON.parse(off.stdout) as typeof r;
    assert.equal(r0.onednn.used, false);
    assert.match(r0.onednn.reason ?? "", /CHAINOPT_ONEDNN=0/);
  });
});

/** The geometry of the first (conv2d) layer of a spec. */
function convGeometryOf(spec: ModelSpecInput, batch: number): ConvGeometry {
  const chain = createChain(spec, { dtype: "float32" });
  const conv = chain.components[0] as unknown as { geometry(batch: number): ConvGeometry };
  return conv.geometry(batch);
}
