// oneDNN layouts: what keeping the ConvNet's activations in oneDNN's blocked layout between its
// layers (conv → ReLU → max-pool → conv → ReLU → max-pool, reordering only at the chain's edges)
// would save against today's plain NCHW tensors with reorders at each convolution call's edges
// (native/src/chainopt_dnn.cc, struct Staged). docs/performance.md, BENCHMARKS.md.
//
//   node dist/bench/dnn-layouts.js [--threads 1,2] [--rounds 7] [--inner 5] [--json]
//
// Each round, at each thread count, measures in turn (so a drift of the machine's speed moves all
// alike; the results are medians over the rounds):
// - per convolution of the ConvNet preset (batch 128: conv3x3 3→32 on 32×32, conv3x3 32→64 on
//   16×16), with the addon's benchmark entry dnnConvLayoutBench (`--inner` alternating rounds in
//   C++): forward, backward-data and backward-weights (with bias) on tensors already in the
//   primitives' layouts ("blocked", no reorder), the same through the plain entries' path
//   ("plain"), and each reorder that path pays;
// - per max-pooling of the preset (128×32×32×32 → 16×16, 128×64×16×16 → 8×8), with
//   dnnPoolLayoutBench: forward + backward on nchw and on the convolutions' blocked layout, oneDNN's
//   ReLU on both, and the reorders between them;
// - the ConvNet training step (Trainer.trainStep, oneDNN on) with every activation NCHW and with
//   the chain's blocked layouts (the measured gain beside the estimate), and two oneDNN-only references through
//   the addon (plain tensors): bench/anchors.ts's (both convolutions, forward + backward-data +
//   backward-weights each) and the passes the step calls (the chain computes no input gradient
//   below its first layer with parameters, so not the first convolution's backward-data).
// The estimate of a blocked pipeline's gain: the activation reorders of the step's convolution
// passes (weights stay OIHW: their reorders remain) plus the pooling's plain − blocked time, less
// the reorders at the new edge (the second pooling's output to NCHW for flatten → dense, and its
// gradient back). ReLU is chainopt's own element-wise kernel, indifferent to the layout (C is a
// multiple of the block: no padding), so it changes nothing; oneDNN's ReLU on both layouts is shown
// for reference.
import { cpus, loadavg } from "node:os";
import { createChain } from "../src/chain/chain.js";
import { convnet } from "../src/chain/presets.js";
import { Rng } from "../src/core/rng.js";
import { createDataset, fullBatch } from "../src/data/dataset.js";
import { type DnnLayoutBenchResult, loadNativeBackend } from "../src/node/native-backend.js";
import { createObjective } from "../src/objectives/objective.js";
import { sgd } from "../src/optim/aliases.js";
import { Trainer } from "../src/train/trainer.js";
import { convReference } from "./conv-reference.js";

const args = process.argv.slice(2);
const arg = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const threadList = arg("threads", "1,2")
  .split(",")
  .map((s) => Number(s));
const rounds = Number(arg("rounds", "7"));
const inner = Number(arg("inner", "5"));
if (threadList.some((t) => !Number.isInteger(t) || t < 1)) throw new Error("--threads must list positive integers, e.g. 1,2");
if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(inner) || inner < 1)
  throw new Error("--rounds and --inner must be positive integers");

const native = loadNativeBackend();
const convBench = native?.raw.dnnConvLayoutBench;
const poolBench = native?.raw.dnnPoolLayoutBench;
if (!native?.dnn || !convBench || !poolBench) {
  process.stdout.write("dnn-layouts: the native addon has no oneDNN (or predates its layout benchmark): nothing to measure\n");
  process.exit(0);
}
const raw = native.raw;

const batch = 128;
// [N, C, H, W, F, OH, OW, KH, KW, SH, SW, PH, PW]
const convs = [
  { name: "conv1 3→32, 32×32", g: Int32Array.of(batch, 3, 32, 32, 32, 32, 32, 3, 3, 1, 1, 1, 1) },
  { name: "conv2 32→64, 16×16", g: Int32Array.of(batch, 32, 16, 16, 64, 16, 16, 3, 3, 1, 1, 1, 1) },
];
// [N, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW]
const pools = [
  { name: "pool1 128×32×32×32 → 16×16", g: Int32Array.of(batch, 32, 32, 32, 16, 16, 2, 2, 2, 2, 0, 0) },
  { name: "pool2 128×64×16×16 → 8×8", g: Int32Array.of(batch, 64, 16, 16, 8, 8, 2, 2, 2, 2, 0, 0) },
];

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
};

/** ms per call of `f` over one block of `block` calls. */
function blockMs(f: () => void, block: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < block; i++) f();
  return Number(process.hrtime.bigint() - t0) / 1e6 / block;
}

/**
 * The ConvNet preset's training step at `batch` on the native backend (oneDNN on), as a closure:
 * with every activation NCHW (the base of the estimate below), or with the chain's blocked
 * layouts between oneDNN layers (src/chain/layouts.ts: the pipeline the estimate is about).
 */
function convnetStep(blocked: boolean): () => void {
  const spec = convnet({ input: [3, 32, 32] });
  const backend = blocked ? native! : native!.withPaths({ layouts: false });
  const chain = createChain(spec, { backend, dtype: "float32" });
  const trainer = new Trainer(
    { chain, objective: createObjective("logistic"), optimizer: sgd({ lr: 0.01, momentum: 0.9 }), batchSize: batch, seed: 0 },
    { params: chain.initParams(0) },
  );
  const rng = new Rng(123);
  const x = Float32Array.from({ length: batch * 3 * 32 * 32 }, () => rng.normal());
  const labels = Int32Array.from({ length: batch }, (_, i) => i % 10);
  const b = fullBatch(createDataset({ name: "synthetic", inputShape: [3, 32, 32], x, labels, classes: 10 }), "float32");
  return () => {
    trainer.trainStep(b);
  };
}

/** Sum of `ms` entries whose names pass `keep`. */
const sum = (ms: Readonly<Record<string, number>>, keep: (name: string) => boolean): number =>
  Object.entries(ms).reduce((s, [k, v]) => (keep(k) ? s + v : s), 0);

/** One round's numbers at one thread count (ms). */
interface Round {
  conv: DnnLayoutBenchResult[];
  pool: DnnLayoutBenchResult[];
  step: number;
  stepBlocked: number;
  refAnchors: number;
  refStep: number;
}

/** The derived quantities of a round (ms), as named rows. */
function derive(r: Round): Record<string, number> {
  const out: Record<string, number> = {};
  // The passes the step calls: every pass but the first convolution's backward-data.
  const called = (layer: number, name: string) => layer > 0 || !name.includes("backwardData");
  r.conv.forEach((c, i) => {
    for (const pass of ["forward", "backwardData", "backwardWeights"]) {
      out[`${convs[i].name} ${pass}: blocked`] = c.ms[`blocked.${pass}`];
      out[`${convs[i].name} ${pass}: plain`] = c.ms[`plain.${pass}`];
      out[`${convs[i].name} ${pass}: reorders`] = sum(c.ms, (k) => k.startsWith(`reorder.${pass}.`));
    }
  });
  const over = (prefix: string) => r.conv.reduce((s, c, i) => s + sum(c.ms, (k) => k.startsWith(prefix) && called(i, k)), 0);
  out["step's conv passes: blocked"] = over("blocked.");
  out["step's conv passes: plain (C++)"] = over("plain.");
  out["step's conv passes: all reorders"] = over("reorder.");
  // Reorders a blocked pipeline removes: activations (not the weights), except the chain's input
  // into the first convolution (an edge: it stays).
  const isWeights = (k: string) => /\.(weights|diffWeights)$/.test(k);
  out["removed: activation reorders"] = r.conv.reduce(
    (s, c, i) => s + sum(c.ms, (k) => k.startsWith("reorder.") && called(i, k) && !isWeights(k) && !(i === 0 && k.endsWith(".src"))),
    0,
  );
  out["kept: weight reorders"] = r.conv.reduce(
    (s, c, i) => s + sum(c.ms, (k) => k.startsWith("reorder.") && called(i, k) && isWeights(k)),
    0,
  );
  r.pool.forEach((p, i) => {
    out[`${pools[i].name} fwd + bwd: plain`] = p.ms["plain.poolForward"] + p.ms["plain.poolBackward"];
    out[`${pools[i].name} fwd + bwd: blocked`] = p.ms["blocked.poolForward"] + p.ms["blocked.poolBackward"];
    out[`${pools[i].name} oneDNN ReLU fwd + bwd: plain`] = p.ms["plain.reluForward"] + p.ms["plain.reluBackward"];
    out[`${pools[i].name} oneDNN ReLU fwd + bwd: blocked`] = p.ms["blocked.reluForward"] + p.ms["blocked.reluBackward"];
  });
  out["pooling: plain − blocked"] = r.pool.reduce(
    (s, p) => s + sum(p.ms, (k) => k.startsWith("plain.pool")) - sum(p.ms, (k) => k.startsWith("blocked.pool")),
    0,
  );
  const last = r.pool[r.pool.length - 1].ms;
  out["added: edge reorders (pool2 out → NCHW, its gradient back)"] = last["reorder.dstToPlain"] + last["reorder.dstToBlocked"];
  out["estimated gain of a blocked pipeline"] =
    out["removed: activation reorders"] +
    out["pooling: plain − blocked"] -
    out["added: edge reorders (pool2 out → NCHW, its gradient back)"];
  out["ConvNet step, oneDNN, activations NCHW"] = r.step;
  out["ConvNet step, oneDNN, blocked between oneDNN layers (measured)"] = r.stepBlocked;
  out["measured gain (NCHW step − blocked step)"] = r.step - r.stepBlocked;
  out["reference of bench/anchors.ts (6 passes, plain edges)"] = r.refAnchors;
  out["reference of the step's 5 passes (plain edges)"] = r.refStep;
  out["ratio: step / anchors' reference"] = r.step / r.refAnchors;
  out["ratio: step / step's-passes reference"] = r.step / r.refStep;
  out["ratio: gain / step (%)"] = (100 * out["estimated gain of a blocked pipeline"]) / r.step;
  out["ratio: (step − gain) / step's conv passes blocked"] =
    (r.step - out["estimated gain of a blocked pipeline"]) / out["step's conv passes: blocked"];
  return out;
}

const say = (s: string) => process.stderr.write(`${s}\n`);
const load0 = loadavg()[0];
const results: Array<{ threads: number; layouts: Record<string, string>; impl: Record<string, string>; rows: Record<string, number> }> = [];
for (const threads of threadList) {
  native.setThreads(threads);
  say(`threads ${threads} ...`);
  const step = convnetStep(false);
  const stepBlocked = native!.dnn?.activationBlock ? convnetStep(true) : null;
  const geometries = convs.map((c) => c.g);
  const refAnchors = convReference(raw, geometries, true)!;
  const refStep = convReference(raw, geometries, false)!;
  const block = 3;
  // Warm-up: primitives created, JIT kernels generated, buffers touched.
  step();
  refAnchors();
  refStep();
  const derived: Array<Record<string, number>> = [];
  let first: Round | null = null;
  for (let r = 0; r < rounds + 1; r++) {
    const conv = convs.map(({ g }) => convBench(g, inner));
    const blk = /(\d+)c$/.exec(conv[0].layouts["forward.dst"] ?? "")?.[1] === "8" ? 8 : 16;
    const pool = pools.map(({ g }) => poolBench(g, inner, blk));
    const round: Round = {
      conv,
      pool,
      step: blockMs(step, block),
      stepBlocked: stepBlocked ? blockMs(stepBlocked, block) : Number.NaN,
      refAnchors: blockMs(refAnchors, block),
      refStep: blockMs(refStep, block),
    };
    if (r === 0)
      first = round; // warm-up round, dropped
    else derived.push(derive(round));
  }
  const rows: Record<string, number> = {};
  for (const k of Object.keys(derived[0])) rows[k] = median(derived.map((d) => d[k]));
  const layouts: Record<string, string> = {};
  const impl: Record<string, string> = {};
  first!.conv.forEach((c, i) => {
    for (const [k, v] of Object.entries(c.layouts)) layouts[`${convs[i].name} ${k}`] = v;
    for (const [k, v] of Object.entries(c.impl ?? {})) impl[`${convs[i].name} ${k}`] = v;
  });
  layouts["pooling (blocked side)"] = first!.pool[0].layouts.blocked;
  for (const [k, v] of Object.entries(first!.pool[0].impl ?? {})) impl[`pool1 ${k}`] = v;
  results.push({ threads, layouts, impl, rows });
}
const load1 = loadavg()[0];

if (args.includes("--json")) {
  process.stdout.write(
    `${JSON.stringify({ cpu: cpus()[0]?.model, cores: cpus().length, load: [load0, load1], dnnl: native.dnnlVersion, results }, null, 2)}\n`,
  );
} else {
  const lines = [
    `CPU: ${cpus()[0]?.model ?? "unknown"} (${cpus().length} logical cores); load average ${load0.toFixed(1)} before, ${load1.toFixed(1)} after`,
    `oneDNN ${native.dnnlVersion}; medians over ${rounds} rounds (each: ${inner} alternating C++ rounds per entry, blocks of 3 steps)`,
    "",
    "Layouts oneDNN chose (threads 1):",
    ...Object.entries(results[0].layouts).map(([k, v]) => `  ${k}: ${v}`),
    ...Object.entries(results[0].impl).map(([k, v]) => `  ${k} implementation: ${v}`),
    "",
    `| row | ${results.map((r) => `${r.threads} thread${r.threads > 1 ? "s" : ""}`).join(" | ")} |`,
    `|---|${results.map(() => "---:").join("|")}|`,
    ...Object.keys(results[0].rows).map(
      (k) => `| ${k} | ${results.map((r) => (k.startsWith("ratio") ? r.rows[k].toFixed(2) : `${r.rows[k].toFixed(2)} ms`)).join(" | ")} |`,
    ),
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}
