import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { loadNativeBackend, type NativeBackend, nativeLoadError } from "../src/node/index.js";
import { assertKillResumeBitIdentical, runCli } from "./cli-helpers.js";
import {
  type Backend,
  type Batch,
  convert,
  createChain,
  createObjective,
  type DnnPrimitives,
  type DType,
  dot,
  forward,
  hessianVectorProduct,
  jvp,
  type ModelSpecInput,
  PortableBackend,
  Rng,
  vjp,
} from "./flat.js";
import { randomArray, relativeError } from "./helpers.js";

// Batch normalization on oneDNN (float32) against the TypeScript component (float32 and the
// float64 reference): outputs, gradients, JVP, second order, running statistics, resume.

const native = loadNativeBackend();
// oneDNN forced on (whatever CHAINOPT_ONEDNN says), when the addon has it.
const forced = native?.dnnlVersion ? native.withPaths({ dnn: true }) : null;
const withDnn = forced?.dnn?.batchNormForward ? forced : null;
const skipDnn = withDnn
  ? false
  : forced
    ? "native addon built before oneDNN batch-norm (rebuild it: `npx chainopt build-native`)"
    : native
      ? "native addon built without oneDNN (install libdnnl-dev, then `npx chainopt build-native`)"
      : `native addon not available (${nativeLoadError()})`;

/** `backend` with its oneDNN primitives replaced by ones counting their calls (every other kernel delegated). */
function spied(backend: NativeBackend): { backend: Backend; calls: Record<string, number> } {
  const dnn = backend.dnn!;
  const calls: Record<string, number> = {};
  const wrapped = { ...dnn } as Record<string, unknown>;
  for (const [k, f] of Object.entries(dnn)) {
    if (typeof f !== "function" || k.startsWith("supports") || k === "poolWorkspaceBytes") continue;
    wrapped[k] = (...args: unknown[]) => {
      calls[k] = (calls[k] ?? 0) + 1;
      return (f as (...a: unknown[]) => unknown)(...args);
    };
  }
  const b = Object.create(backend, { dnn: { value: wrapped as unknown as DnnPrimitives } }) as Backend;
  return { backend: b, calls };
}

interface Results {
  y: Float64Array;
  dw: Float64Array;
  dx: Float64Array;
  jv: Float64Array;
  /** Running statistics after one training step with updateState (training mode only). */
  state: Float64Array;
}

interface Case {
  spec: ModelSpecInput;
  training: boolean;
}

/**
 * Forward, VJP, JVP of a chain on one backend and precision (the same float64 draws, rounded), as
 * float64; in evaluation mode with running statistics away from (0, 1); in training mode also the
 * running statistics after a forward with updateState.
 */
function evaluate(c: Case, dtype: DType, backend: Backend, batch: number, seed: number): Results {
  const chain = createChain(c.spec, { dtype, backend });
  const ref = createChain(c.spec, { dtype: "float64" });
  const rng = new Rng(seed);
  const w64 = ref.initParams(seed) as Float64Array;
  // γ, β away from (1, 0), so that every term of the derivatives is exercised.
  for (let i = 0; i < w64.length; i++) w64[i] += 0.2 * rng.normal();
  const w = convert(w64, dtype);
  const x = randomArray(batch * chain.inputSize, rng, 2);
  const s = randomArray(batch * chain.outputSize, rng);
  const vw = convert(randomArray(chain.paramSize, rng), dtype);
  const vx = randomArray(batch * chain.inputSize, rng);
  const state64 = ref.initState() as Float64Array;
  for (let i = 0; i < state64.length; i++) state64[i] = 0.3 + Math.abs(rng.normal());
  const state = convert(state64, dtype);
  const opts = { training: c.training, state };
  const y = Float64Array.from(forward(chain, w, x, batch, opts));
  const { dw, dx } = vjp(chain, w, x, batch, s, { withInput: true, ...opts });
  const jv = jvp(chain, w, x, batch, chain.paramSize > 0 ? vw : null, vx, opts);
  if (c.training) forward(chain, w, x, batch, { ...opts, updateState: true });
  return {
    y,
    dw: Float64Array.from(dw),
    dx: Float64Array.from(dx!),
    jv: Float64Array.from(jv),
    state: Float64Array.from(state),
  };
}

function assertClose(got: Results, want: Results, tol: number, what: string): void {
  for (const k of ["y", "dw", "dx", "jv", "state"] as const) {
    if (want[k].length === 0) continue;
    const e = relativeError(got[k], want[k]);
    assert.ok(e <= tol, `${what}: ${k} relative error ${e} > ${tol}`);
  }
}

const portable = new PortableBackend();

/** Batch-norm after a dense layer (N×C) and after a convolution (N×C×H×W), with and without γ, β. */
function cases(): { name: string; c: Case }[] {
  const out: { name: string; c: Case }[] = [];
  for (const training of [true, false]) {
    for (const affine of [true, false]) {
      const bn = { type: "batchNorm" as const, affine, epsilon: 1e-3, momentum: 0.3 };
      out.push({
        name: `dense → batchNorm (N×C), ${training ? "training" : "evaluation"}, affine ${affine}`,
        c: { spec: { input: [6], layers: [{ type: "dense", units: 5 }, bn] }, training },
      });
      out.push({
        name: `conv → batchNorm (N×C×H×W), ${training ? "training" : "evaluation"}, affine ${affine}`,
        c: { spec: { input: [2, 5, 4], layers: [{ type: "conv2d", filters: 3, kernel: 3, padding: 1 }, bn] }, training },
      });
    }
  }
  return out;
}

describe("oneDNN batch normalization against the TypeScript component and the float64 reference", { skip: skipDnn }, () => {
  for (const { name, c } of cases()) {
    it(`${name}: forward, backward (data, γ, β), JVP, running statistics`, () => {
      const want = evaluate(c, "float64", portable, 7, 3);
      const { backend, calls } = spied(withDnn!);
      const got = evaluate(c, "float32", backend, 7, 3);
      const ts = evaluate(c, "float32", native!.withPaths({ dnn: false }), 7, 3);
      assertClose(got, want, 2e-5, "oneDNN float32 vs float64");
      assertClose(ts, want, 2e-5, "TypeScript float32 vs float64");
      // forward, vjp's forward, jvp's forward (+ the updateState forward in training mode); one backward.
      assert.equal(calls.batchNormForward, c.training ? 4 : 3, JSON.stringify(calls));
      assert.equal(calls.batchNormBackward, 1, JSON.stringify(calls));
    });
  }

  it("updates the running statistics as PyTorch does (momentum, unbiased variance), on oneDNN's batch mean and variance", () => {
    // The example of test/components-conv.test.ts: features (1, 2, 3, 6) and (0, 0, 4, 4).
    const chain = createChain({ input: [2], layers: [{ type: "batchNorm", momentum: 0.25 }] }, { dtype: "float32", backend: withDnn! });
    const { backend, calls } = spied(withDnn!);
    const spiedChain = createChain({ input: [2], layers: [{ type: "batchNorm", momentum: 0.25 }] }, { dtype: "float32", backend });
    for (const ch of [chain, spiedChain]) {
      const state = ch.initState();
      const x = Float32Array.of(1, 0, 2, 0, 3, 4, 6, 4);
      const w = ch.initParams();
      forward(ch, w, x, 4, { training: true, state });
      assert.deepEqual(Array.from(state), [0, 0, 1, 1], "no update without updateState");
      forward(ch, w, x, 4, { training: true, state, updateState: true });
      const expected = [0.25 * 3, 0.25 * 2, 0.75 + 0.25 * (14 / 3), 0.75 + 0.25 * (16 / 3)];
      assert.ok(relativeError(state, expected) < 1e-6, `${Array.from(state)} vs ${expected}`);
      // Training mode normalizes with the biased variance: (1 − 3)/√(14/4 + ε).
      const y = forward(ch, w, x, 4, { training: true, state });
      assert.ok(Math.abs(y[0] - -2 / Math.sqrt(3.5 + 1e-5)) < 1e-6);
    }
    assert.equal(calls.batchNormForward, 3);
  });

  it("batch statistics stay accurate for inputs far from zero (mean 1000, spread 1: no one-pass E[x²] − E[x]²)", () => {
    const g = { batch: 16, channels: 3, spatial: 25 };
    const rng = new Rng(2);
    const x = Float32Array.from({ length: 16 * 3 * 25 }, () => 1000 + rng.normal());
    const mean = new Float32Array(3);
    const variance = new Float32Array(3);
    withDnn!.dnn!.batchNormForward!(g, true, 1e-5, x, null, null, mean, variance, new Float32Array(x.length));
    for (let c = 0; c < 3; c++) {
      const v: number[] = [];
      for (let n = 0; n < 16; n++) for (let p = 0; p < 25; p++) v.push(x[(n * 3 + c) * 25 + p]);
      const mu = v.reduce((a, b) => a + b, 0) / v.length;
      const s2 = v.reduce((a, b) => a + (b - mu) ** 2, 0) / v.length;
      assert.ok(Math.abs(mean[c] - mu) <= 1e-6 * mu, `channel ${c}: mean ${mean[c]} vs ${mu}`);
      assert.ok(Math.abs(variance[c] - s2) <= 1e-4 * s2, `channel ${c}: variance ${variance[c]} vs ${s2}`);
    }
  });

  it("training needs more than one value per channel on oneDNN too; evaluation without state names the state", () => {
    const chain = createChain({ input: [3], layers: [{ type: "batchNorm" }] }, { dtype: "float32", backend: withDnn! });
    assert.throws(() => forward(chain, chain.initParams(), Float32Array.of(1, 2, 3), 1, { training: true }), /more than one value/);
    assert.throws(() => forward(chain, chain.initParams(), Float32Array.of(1, 2, 3), 1), /state/);
  });

  it("the adjoint identity ⟨J v, s⟩ = ⟨v, Jᵀ s⟩ holds between the TypeScript JVP and oneDNN's backward (float32)", () => {
    for (const training of [true, false]) {
      const spec: ModelSpecInput = {
        input: [3, 4, 4],
        layers: [{ type: "conv2d", filters: 4, kernel: 3, padding: 1 }, { type: "batchNorm", affine: true }, { type: "tanh" }],
      };
      const chain = createChain(spec, { dtype: "float32", backend: withDnn! });
      const rng = new Rng(9);
      const batch = 5;
      const w = chain.initParams(9) as Float32Array;
      for (let i = 0; i < w.length; i++) w[i] += 0.2 * rng.normal();
      const state = chain.initState();
      const x = convert(randomArray(batch * chain.inputSize, rng), "float32");
      const s = randomArray(batch * chain.outputSize, rng);
      const vw = convert(randomArray(chain.paramSize, rng), "float32");
      const vx = randomArray(batch * chain.inputSize, rng);
      const { dw, dx } = vjp(chain, w, x, batch, s, { withInput: true, training, state });
      const lhs = dot(Float64Array.from(jvp(chain, w, x, batch, vw, vx, { training, state })), s);
      const rhs = dot(Float64Array.from(vw), Float64Array.from(dw)) + dot(vx, Float64Array.from(dx!));
      assert.ok(Math.abs(lhs - rhs) <= 1e-4 * Math.max(Math.abs(lhs), Math.abs(rhs)), `training ${training}: ${lhs} vs ${rhs}`);
    }
  });

  it("second order (Hessian-vector product, x̂ recomputed after the oneDNN forward) agrees with float64", () => {
    const spec: ModelSpecInput = {
      input: [2, 5, 5],
      layers: [
        { type: "conv2d", filters: 3, kernel: 3, padding: 1 },
        { type: "batchNorm", affine: true, epsilon: 1e-3 },
        { type: "tanh" },
        { type: "flatten" },
        { type: "dense", units: 3 },
      ],
    };
    for (const training of [true, false]) {
      const rng = new Rng(5);
      const n = 4;
      const ref = createChain(spec, { dtype: "float64" });
      const w64 = ref.initParams(5) as Float64Array;
      for (let i = 0; i < w64.length; i++) w64[i] += 0.1 * rng.normal();
      const x = randomArray(n * ref.inputSize, rng);
      const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
      const v = randomArray(ref.paramSize, rng);
      const state64 = ref.initState() as Float64Array;
      for (let i = 0; i < state64.length; i++) state64[i] = 0.5 + Math.abs(rng.normal());
      const objective = createObjective("logistic", 0.01);
      const hv = (dtype: DType, backend: Backend): Float64Array => {
        const chain = createChain(spec, { dtype, backend });
        const batch: Batch = { x: convert(x, dtype), size: n, labels };
        const state = convert(state64, dtype);
        return Float64Array.from(hessianVectorProduct(chain, objective, convert(w64, dtype), batch, v, { training, state }));
      };
      const want = hv("float64", portable);
      const { backend, calls } = spied(withDnn!);
      const got = hv("float32", backend);
      const e = relativeError(got, want);
      assert.ok(e < 1e-4, `training ${training}: relative error ${e}`);
      assert.ok((calls.batchNormForward ?? 0) > 0, JSON.stringify(calls));
    }
  });

  it("each path is taken exactly when chosen: oneDNN (float32), TypeScript (oneDNN off, float64, portable)", () => {
    const c: Case = { spec: { input: [2, 3, 3], layers: [{ type: "batchNorm", affine: true }] }, training: true };
    const on = spied(withDnn!);
    evaluate(c, "float32", on.backend, 3, 1);
    assert.ok(on.calls.batchNormForward && on.calls.batchNormBackward);
    const f64 = spied(withDnn!);
    evaluate(c, "float64", f64.backend, 3, 1);
    assert.deepEqual(f64.calls, {});
    assert.equal(native!.withPaths({ dnn: false }).dnn, undefined);
    // The binding checks its arguments, naming the one at fault.
    const dnn = withDnn!.dnn!;
    const g = { batch: 2, channels: 3, spatial: 4 };
    const f = (n: number) => new Float32Array(n);
    assert.throws(() => dnn.batchNormForward!(g, true, 1e-5, f(23), null, null, f(3), f(3), f(24)), /argument 'x' has 23 elements/);
    assert.throws(() => dnn.batchNormForward!(g, true, 1e-5, f(24), null, null, f(2), f(3), f(24)), /argument 'mean' has 2 elements/);
    assert.throws(
      () => dnn.batchNormBackward!(g, true, 1e-5, f(24), f(24), f(3), f(3), f(2), f(3), f(24), null, null),
      /argument 'scale' has 2 elements/,
    );
  });

  it("is deterministic: the same calls twice give the same bits (what resuming a run relies on)", () => {
    const c: Case = {
      spec: {
        input: [3, 6, 6],
        layers: [
          { type: "conv2d", filters: 8, kernel: 3, padding: 1 },
          { type: "batchNorm", affine: true },
        ],
      },
      training: true,
    };
    assert.deepEqual(evaluate(c, "float32", withDnn!, 16, 4), evaluate(c, "float32", withDnn!, 16, 4));
  });
});

describe("resume with oneDNN batch-norm on", { skip: skipDnn }, () => {
  it("a ConvNet with batch-norm killed (SIGKILL) after epoch 2 and resumed ends bit-identical (parameters and running statistics)", async () => {
    // 16 filters: a multiple of the channel block, so conv → batch norm → ReLU → pool run on
    // blocked activations where the addon has them (src/chain/layouts.ts).
    const spec: ModelSpecInput = {
      input: [1, 28, 28],
      layers: [
        { type: "conv2d", filters: 16, kernel: 3, padding: 1 },
        { type: "batchNorm", affine: true },
        { type: "relu" },
        { type: "maxPool2d", size: 2 },
        { type: "flatten" },
        { type: "dense", units: 16 },
        { type: "batchNorm" },
        { type: "relu" },
        { type: "dense", units: 10 },
      ],
    };
    const args = ["train", "--dataset", "mnist", "--limit", "768", "--validation", "64", "--epochs", "4"];
    args.push("--batch-size", "32", "--seed", "5", "--optimizer", "adam", "--lr", "1e-3", "--json");
    await assertKillResumeBitIdentical(args, {
      setup: (root) => {
        const model = join(root, "bn-convnet.json");
        writeFileSync(model, JSON.stringify(spec));
        return ["--model", model];
      },
    });
  });
});

describe("chainopt doctor reports oneDNN batch-norm", { skip: skipDnn }, () => {
  it("onednn.batchNorm is true with oneDNN on, false with CHAINOPT_ONEDNN=0", async () => {
    const on = await runCli(["doctor", "--json", "--no-bench"]);
    assert.equal(on.code, 0, on.stderr);
    assert.equal((JSON.parse(on.stdout) as { onednn: { batchNorm: boolean } }).onednn.batchNorm, true);
    const off = await runCli(["doctor", "--json", "--no-bench"], { CHAINOPT_ONEDNN: "0" });
    assert.equal(off.code, 0, off.stderr);
    assert.equal((JSON.parse(off.stdout) as { onednn: { batchNorm: boolean } }).onednn.batchNorm, false);
  });

  it("onednn.activationBlock is the addon's block (8 or 16) with layouts on, 0 with CHAINOPT_DNN_LAYOUTS=0", async () => {
    const on = await runCli(["doctor", "--json", "--no-bench"]);
    const block = (JSON.parse(on.stdout) as { onednn: { activationBlock: number } }).onednn.activationBlock;
    assert.equal(block, loadNativeBackend()?.raw.dnnActivationBlock?.() ?? 0);
    const off = await runCli(["doctor", "--json", "--no-bench"], { CHAINOPT_DNN_LAYOUTS: "0" });
    assert.equal((JSON.parse(off.stdout) as { onednn: { activationBlock: number } }).onednn.activationBlock, 0);
  });
});
