// Benchmark anchors of the native backend (docs/performance.md): each chainopt step beside what
// bounds it from below, measured in the same run.
//
//   node dist/bench/anchors.js [--threads 1,2] [--reps 5] [--quick] [--json] [--only steps,epoch,gn] [--no-torch]
//
// Rows, at each thread count:
// - ConvNet preset (conv3x3-32, ReLU, maxpool2, conv3x3-64, ReLU, maxpool2, dense10; 3×32×32,
//   batch 128): the training step with oneDNN, the same step with oneDNN off (im2col + OpenBLAS),
//   and the oneDNN-only reference: its two convolutions alone (forward + backward-data +
//   backward-weights each), the bare primitives called through the addon without the chain; also
//   that reference without conv 1's backward-data (the step computes no input gradient there), and
//   the step with every activation NCHW (without blocked layouts between oneDNN layers); and the
//   ConvNet with batch norm after each convolution, blocked and NCHW.
// - MLP 784-512-512-10 at batch 128 and MLP 784-4000-1000-4000-10 at batch 256 (the smoothing
//   paper's network): the training step beside its GEMM roofline, the time of the step's matrix
//   products alone (each GEMM of forward and backward, with the step's shapes and transposes,
//   timed on its own in this run; the first layer's input gradient is not computed by a step).
// - The Adam update alone on the MLP 784-512-512-10's 669 706 float32 parameters: the native
//   kernel and the portable TypeScript loop.
// - Batch normalization alone (affine, training mode) on 128 × 32 × 32 × 32 float32 activations
//   (the ConvNet's first convolution's output): forward + backward (data, γ, β) on oneDNN, and the
//   TypeScript component on the same backend with oneDNN off.
// - The MNIST epoch (bench/epoch-rows.ts): `chainopt train --model mlp --dataset mnist --epochs 1
//   --validation 0 --optimizer sgd --momentum 0 --batch-size 128` in a child process, its epoch
//   seconds beside 469 × the plain-SGD step time measured here; and PyTorch's epoch on the same
//   work (bench/torch_epoch.py; skipped with --no-torch or without /usr/bin/python3 + torch).
// - A Gauss-Newton step (Gram of order q = N·(k − 1) = 1152) beside a gradient step, MLP 784-512-512-10 at batch 128.
// `--only` picks row groups: steps (the rows above the MNIST epoch), epoch, gn (default: all).
// A step is Trainer.trainStep (forward, softmax cross-entropy, backward, checks, SGD momentum 0.9).
// Medians over `--reps` repetitions of a block of steps, after warm-up.
import { cpus, loadavg } from "node:os";
import { createChain } from "../src/chain/chain.js";
import { convnet, mlp } from "../src/chain/presets.js";
import { BatchNorm, batchNormSpecSchema } from "../src/components/batch-norm.js";
import type { Backend } from "../src/core/backend.js";
import { PortableBackend } from "../src/core/portable.js";
import { Rng } from "../src/core/rng.js";
import { createDataset, fullBatch } from "../src/data/dataset.js";
import { loadNativeBackend, type NativeBackend } from "../src/node/native-backend.js";
import { createObjective } from "../src/objectives/objective.js";
import { scaleByAdam } from "../src/optim/adaptive.js";
import { sgd } from "../src/optim/aliases.js";
import { Trainer } from "../src/train/trainer.js";
import { convnetConvGeometries, convReference } from "./conv-reference.js";
import { gaussNewtonRows, median, mnistEpochRows, paired } from "./epoch-rows.js";

const args = process.argv.slice(2);
const arg = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const quick = args.includes("--quick");
const threadList = arg("threads", "1,2")
  .split(",")
  .map((s) => Number(s));
const reps = Number(arg("reps", quick ? "3" : "5"));
if (threadList.some((t) => !Number.isInteger(t) || t < 1)) throw new Error("--threads must list positive integers, e.g. 1,2");
if (!Number.isInteger(reps) || reps < 1) throw new Error("--reps must be a positive integer");
const groups = new Set(arg("only", "steps,epoch,gn").split(","));
for (const g of groups) if (!["steps", "epoch", "gn"].includes(g)) throw new Error(`--only: unknown group '${g}' (steps, epoch, gn)`);

const loaded = loadNativeBackend();
if (!loaded) throw new Error("the native backend is not built: run `npx chainopt build-native`");
const native: NativeBackend = loaded;

/** {@link paired} with this run's `--reps`. */
const pairedRounds = (a: () => number, b: () => number) => paired(a, b, reps);

/** Median ms per call of `f` over `reps` blocks of `block` calls, after `warmup` calls. */
function time(f: () => void, block: number, warmup = 2): number {
  for (let i = 0; i < warmup; i++) f();
  const ts: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < block; i++) f();
    ts.push(Number(process.hrtime.bigint() - t0) / 1e6 / block);
  }
  return median(ts);
}

/** A training step of `spec` at `batch` on `backend` (Trainer.trainStep on a fixed random batch), as a closure. */
function stepper(spec: ReturnType<typeof mlp>, shape: number[], batch: number, backend: Backend): () => void {
  const chain = createChain(spec, { backend, dtype: "float32" });
  const trainer = new Trainer(
    { chain, objective: createObjective("logistic"), optimizer: sgd({ lr: 0.01, momentum: 0.9 }), batchSize: batch, seed: 0 },
    { params: chain.initParams(0) },
  );
  const d = shape.reduce((a, b) => a * b, 1);
  const rng = new Rng(123);
  const x = new Float32Array(batch * d);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  const labels = new Int32Array(batch);
  for (let i = 0; i < batch; i++) labels[i] = i % 10;
  const b = fullBatch(createDataset({ name: "synthetic", inputShape: shape, x, labels, classes: 10 }), "float32");
  return () => {
    trainer.trainStep(b);
  };
}

/** A training step of `spec` at `batch` on `backend`, ms (median). */
function stepMs(spec: ReturnType<typeof mlp>, shape: number[], batch: number, backend: Backend, block: number): number {
  return time(stepper(spec, shape, batch, backend), block);
}

/** ms per call of `f` over one block of `block` calls. */
function blockMs(f: () => void, block: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < block; i++) f();
  return Number(process.hrtime.bigint() - t0) / 1e6 / block;
}

/**
 * The GEMM roofline of an MLP step: Σ over its dense layers (in → out) of the times of forward
 * Y = X Wᵀ (B×in by out×in transposed), dW = dYᵀ X and dX = dY W (all but the first layer), each
 * with the step's shapes (src/components/dense.ts). `once()` times each GEMM once (one call each,
 * operands allocated here, so nothing is allocated per call) and returns the sum in ms.
 */
function mlpRoofline(widths: number[], batch: number): { gflop: number; once: () => number } {
  const gemms: Array<() => void> = [];
  let flop = 0;
  const fill = (len: number) => Float32Array.from({ length: len }, (_, i) => Math.sin(i) * 0.1);
  // C (m×n) ← op(A) op(B), k inner, row-major as the dense layer calls it.
  const add = (transA: boolean, transB: boolean, m: number, n: number, k: number) => {
    const a = fill(m * k);
    const b = fill(k * n);
    const c = new Float32Array(m * n);
    gemms.push(() => native.gemm(transA, transB, m, n, k, 1, a, transA ? m : k, b, transB ? k : n, 0, c, n));
    flop += 2 * m * n * k;
  };
  for (let l = 0; l + 1 < widths.length; l++) {
    const [i, o] = [widths[l], widths[l + 1]];
    add(false, true, batch, o, i); // Y = X Wᵀ
    add(true, false, o, i, batch); // dW = dYᵀ X
    if (l > 0) add(false, false, batch, i, o); // dX = dY W
  }
  for (const g of gemms) g();
  return {
    gflop: flop / 1e9,
    once: () => {
      let ms = 0;
      for (const g of gemms) {
        const t0 = process.hrtime.bigint();
        g();
        ms += Number(process.hrtime.bigint() - t0) / 1e6;
      }
      return ms;
    },
  };
}

/** The Adam scaling alone on n float32 parameters, ms: on `backend`'s kernels (native) or the portable loop. */
function adamMs(n: number, backend: Backend): number {
  const adam = scaleByAdam();
  const params = new Float32Array(n);
  let state = adam.init(params);
  const g = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 1e-2);
  const u = new Float32Array(n);
  return time(() => {
    u.set(g);
    state = adam.update(u, state, params, { step: 0, backend });
  }, 20);
}

/** Batch-norm (affine, training mode) forward + backward on `batch` × [C, H, W] float32 activations, ms. */
function batchNormMs(backend: Backend, batch: number, shape: [number, number, number]): number {
  const bn = new BatchNorm(batchNormSpecSchema.parse({ type: "batchNorm", affine: true }), shape);
  const n = batch * bn.inputSize;
  const params = new Float32Array(bn.paramSize);
  bn.initParams(params);
  const state = new Float32Array(bn.stateSize);
  bn.initState(state);
  const io = {
    x: Float32Array.from({ length: n }, (_, i) => Math.sin(i)),
    y: new Float32Array(n),
    params,
    state,
    tape: bn.createTape(batch, "float32"),
  };
  const dy = Float32Array.from({ length: n }, (_, i) => Math.cos(i));
  const dx = new Float32Array(n);
  const dparams = new Float32Array(bn.paramSize);
  const ctx = { backend, batch, training: true, updateState: true };
  return time(() => {
    bn.forward(ctx, io);
    bn.backward(ctx, io, dy, dx, dparams);
  }, 3);
}

interface Row {
  threads: number;
  row: string;
  ms: number | null;
  note: string;
}

const rows: Row[] = [];
const portable = new PortableBackend();
const mlpSmall = [784, 512, 512, 10];
const mlpLarge = [784, 4000, 1000, 4000, 10];
const say = (s: string) => process.stderr.write(`${s}\n`);
const load0 = loadavg()[0];
for (const threads of threadList) {
  native.setThreads(threads);
  say(`threads ${threads} ...`);
  if (groups.has("steps")) stepRows(threads);
  if (groups.has("epoch"))
    rows.push(...mnistEpochRows(native, threads, { stepReps: quick ? 5 : 50, torch: !args.includes("--no-torch"), rounds: quick ? 1 : 3 }));
  if (groups.has("gn")) rows.push(...gaussNewtonRows(native, threads, { batch: 128, reps: quick ? 2 : Math.max(3, reps) }));
}

/** The step rows (ConvNet, MLPs, Adam) at `threads`. */
function stepRows(threads: number): void {
  let smallStepMs = Number.NaN;
  const dnnOff = native.withPaths({ dnn: false });
  const dnnOn = native.dnn ? native : null;
  const conv = convnet({ input: [3, 32, 32] });
  // The oneDNN step and its references in alternation (paired), as the MLP rows below. Two
  // references: the issue's (both convolutions' three passes) and the passes the step calls (no
  // input gradient below the first layer with parameters: conv 1 has no backward-data pass).
  const reference = convReference(native.raw, convnetConvGeometries(128), true);
  const stepReference = convReference(native.raw, convnetConvGeometries(128), false);
  const convBlock = quick ? 1 : 3;
  const convStep = dnnOn ? stepper(conv, [3, 32, 32], 128, dnnOn) : null;
  const blocked = dnnOn?.dnn?.activationBlock ?? 0;
  const convPlainStep = dnnOn && blocked ? stepper(conv, [3, 32, 32], 128, dnnOn.withPaths({ layouts: false })) : null;
  const pair = (ref: (() => void) | null) =>
    convStep && ref
      ? pairedRounds(
          () => blockMs(convStep, convBlock),
          () => blockMs(ref, convBlock),
        )
      : null;
  const convPair = pair(reference);
  const convStepPair = pair(stepReference);
  const plainPair = pair(convPlainStep);
  const convOn = convPair?.a ?? null;
  const convOff = stepMs(conv, [3, 32, 32], 128, dnnOff, convBlock);
  const alternating = `median of ${reps} alternating rounds`;
  rows.push({
    threads,
    row: `ConvNet step, oneDNN (batch 128${blocked ? `, activations nChw${blocked}c between oneDNN layers` : ""})`,
    ms: convOn,
    note: convOn === null ? "addon without oneDNN" : "",
  });
  if (plainPair)
    rows.push({
      threads,
      row: "  the same step with every activation NCHW (reorders at each oneDNN call)",
      ms: plainPair.b,
      note: `blocked / NCHW step = ${plainPair.ratio.toFixed(2)} (${alternating})`,
    });
  rows.push({ threads, row: "ConvNet step, im2col + OpenBLAS (batch 128)", ms: convOff, note: "" });
  // The ConvNet with batch norm after each convolution (conv-BN-ReLU-pool ×2): blocked layouts
  // through batch norm against the same step on NCHW, alternating.
  if (dnnOn && blocked) {
    const bnNet = convnet({ input: [3, 32, 32] });
    const layers = [...bnNet.layers];
    layers.splice(4, 0, { type: "batchNorm" });
    layers.splice(1, 0, { type: "batchNorm" });
    const bnSpec = { ...bnNet, layers };
    const bnBlocked = stepper(bnSpec, [3, 32, 32], 128, dnnOn);
    const bnPlain = stepper(bnSpec, [3, 32, 32], 128, dnnOn.withPaths({ layouts: false }));
    const bn = pairedRounds(
      () => blockMs(bnBlocked, convBlock),
      () => blockMs(bnPlain, convBlock),
    );
    rows.push({ threads, row: `ConvNet with batch norm (conv-BN-ReLU-pool ×2), oneDNN, nChw${blocked}c (batch 128)`, ms: bn.a, note: "" });
    rows.push({
      threads,
      row: "  the same step with every activation NCHW",
      ms: bn.b,
      note: `blocked / NCHW step = ${bn.ratio.toFixed(2)} (${alternating})`,
    });
  }
  rows.push({
    threads,
    row: "oneDNN only: the ConvNet's 2 convolutions, fwd + bwd-data + bwd-weights",
    ms: convPair?.b ?? null,
    note: convPair ? `step / reference = ${convPair.ratio.toFixed(2)} (${alternating})` : "",
  });
  rows.push({
    threads,
    row: "oneDNN only: the 5 convolution passes the step calls (no bwd-data of conv 1)",
    ms: convStepPair?.b ?? null,
    note: convStepPair ? `step / reference = ${convStepPair.ratio.toFixed(2)} (${alternating})` : "",
  });
  // Each MLP step and its roofline in alternation (paired): the ratio is the median of per-round ratios.
  for (const [name, widths, batch, block] of [
    ["MLP 784-512-512-10 step (batch 128)", mlpSmall, 128, quick ? 5 : 20],
    ["MLP 784-4000-1000-4000-10 step (batch 256)", mlpLarge, 256, 1],
  ] as const) {
    const step = stepper(mlp({ input: [1, 28, 28], widths: widths.slice(1, -1) }), [1, 28, 28], batch, native);
    step();
    const roof = mlpRoofline([...widths], batch);
    const m = pairedRounds(() => blockMs(step, block), roof.once);
    rows.push({ threads, row: name, ms: m.a, note: "" });
    rows.push({
      threads,
      row: `  its GEMM roofline (${roof.gflop.toFixed(roof.gflop < 1 ? 3 : 2)} GFLOP)`,
      ms: m.b,
      note: `step / roofline = ${m.ratio.toFixed(2)} (median of ${reps} alternating rounds)`,
    });
    if (widths === mlpSmall) smallStepMs = m.a;
  }
  const nParams = createChain(mlp({ input: [1, 28, 28] }), { dtype: "float32" }).paramSize;
  const adamNative = native.kernels ? adamMs(nParams, native) : null;
  rows.push({
    threads,
    row: `Adam update alone, ${nParams} float32 parameters, native kernel`,
    ms: adamNative,
    note:
      adamNative !== null ? `${((100 * adamNative) / smallStepMs).toFixed(1)} % of the MLP 784-512-512-10 step` : "addon without kernels",
  });
  if (threads === threadList[0])
    rows.push({ threads, row: "  the same, portable TypeScript loop (1 thread)", ms: adamMs(nParams, portable), note: "" });
  const bnShape: [number, number, number] = [32, 32, 32];
  const bnOn = native.dnn?.batchNormForward ? batchNormMs(native, 128, bnShape) : null;
  const bnOff = batchNormMs(dnnOff, 128, bnShape);
  rows.push({
    threads,
    row: "Batch-norm fwd + bwd (training, affine), 128×32×32×32 float32, oneDNN",
    ms: bnOn,
    note: bnOn === null ? "addon without oneDNN batch-norm" : `TypeScript / oneDNN = ${(bnOff / bnOn).toFixed(2)}`,
  });
  rows.push({ threads, row: "  the same, TypeScript component (oneDNN off)", ms: bnOff, note: "" });
}
const load1 = loadavg()[0];

if (args.includes("--json")) {
  process.stdout.write(
    `${JSON.stringify({ cpu: cpus()[0]?.model, cores: cpus().length, load: [load0, load1], backend: native.describe(), threading: native.info().policy, rows }, null, 2)}\n`,
  );
} else {
  const lines = [
    `CPU: ${cpus()[0]?.model ?? "unknown"} (${cpus().length} logical cores); load average ${load0.toFixed(1)} before, ${load1.toFixed(1)} after`,
    `backend: ${native.describe()}`,
    `threading: ${native.info().policy}`,
    "",
    "| threads | row | ms (median) | note |",
    "|---:|---|---:|---|",
    ...rows.map((r) => `| ${r.threads} | ${r.row} | ${r.ms === null ? "—" : r.ms.toFixed(2)} | ${r.note} |`),
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}
