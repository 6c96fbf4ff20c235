// Side-by-side training benchmarks (`npm run bench`, `npx chainopt bench`): the same models, batch,
// optimizer and thread counts on chainopt's native and portable backends, PyTorch (a child python
// with torch, running bench/torch_step.py) and TensorFlow.js on its wasm backend (a child node,
// MLP only: the wasm backend has no Conv2DBackpropFilter), plus the GEMM comparison with numpy
// (bench/gemm.ts) and one MNIST epoch of the default MLP.
//
// Method, the same for every side: a training step is forward, loss, backward and the SGD update
// (momentum 0.9, lr 0.01) on a fixed synthetic batch of 128; after warm-up steps, each repetition
// times a block of steps, and the table shows the median repetition (≥ 5) per step. Shared cores:
// rounds alternate PyTorch and chainopt native at each thread count, and each side keeps its faster
// round, so that a neighbour's burst of load does not decide a ratio.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createChain } from "../src/chain/chain.js";
import { convnet, mlp } from "../src/chain/presets.js";
import type { Backend } from "../src/core/backend.js";
import { portableBackend } from "../src/core/portable.js";
import { Rng } from "../src/core/rng.js";
import { createDataset, fullBatch, splitDataset } from "../src/data/dataset.js";
import { loadMnist } from "../src/node/datasets.js";
import { loadNativeBackend, packageRoot, peerEnvironment, peerWaitPolicy } from "../src/node/native-backend.js";
import { createObjective } from "../src/objectives/objective.js";
import { sgd } from "../src/optim/aliases.js";
import { Trainer } from "../src/train/trainer.js";

export type BenchModel = "mlp" | "convnet";

/** Options of {@link runBenchmarks}. */
export interface BenchOptions {
  /** Thread counts (default 1, 2). */
  threads?: number[];
  models?: BenchModel[];
  batch?: number;
  /** Rounds of (PyTorch, chainopt native) per thread count; each side keeps its faster round (default 2). */
  rounds?: number;
  /** Python with torch (default: CHAINOPT_PYTHON, else /usr/bin/python3 when it exists, else python3). */
  python?: string;
  /** Skip sides: "portable", "torch", "tfjs", "gemm", "mnist". */
  skip?: string[];
  /** Fewer repetitions (for a quick look; the tables then say so). */
  quick?: boolean;
  /** Progress lines on stderr. */
  log?: (line: string) => void;
}

/** Timing of one side on one model at one thread count. */
export interface StepTiming {
  side: "chainopt-native" | "chainopt-portable" | "pytorch" | "tfjs-wasm";
  model: BenchModel;
  threads: number;
  /** Median over repetitions of the mean step time of each repetition, ms. */
  medianMs: number;
  /** Fastest repetition, ms per step. */
  bestMs: number;
  reps: number;
  stepsPerRep: number;
}

export interface BenchResult {
  machine: { cpu: string; logicalCores: number; node: string; loadBefore: number[]; loadAfter: number[] };
  environment: Record<string, string>;
  chainopt: { backend: string; description: string; coreName: string | null };
  pytorch: { available: boolean; detail: string };
  tfjs: { available: boolean; detail: string };
  batch: number;
  quick: boolean;
  timings: StepTiming[];
  gemm: { available: boolean; detail: string; table: string; rows: GemmRow[] };
  mnist: { threads: number; seconds: number; samplesPerSecond: number; steps: number; valAccuracy?: number }[];
  mnistDetail: string;
}

export interface GemmRow {
  threads: number;
  m: number;
  k: number;
  n: number;
  nativeGflops: number | null;
  numpyGflops: number | null;
  nativeOverNumpy: number | null;
}

/** Warm-up steps, repetitions and steps per repetition of each side and model. */
function plan(side: StepTiming["side"], model: BenchModel, quick: boolean): { warmup: number; reps: number; steps: number } {
  const reps = quick ? 5 : 7;
  if (side === "chainopt-portable") return { warmup: 1, reps: 5, steps: 1 };
  if (side === "tfjs-wasm") return { warmup: 3, reps: 5, steps: 2 };
  return model === "mlp" ? { warmup: 10, reps, steps: 20 } : { warmup: 3, reps, steps: 3 };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
};

function modelSpec(model: BenchModel) {
  return model === "mlp" ? mlp({ input: [1, 28, 28] }) : convnet({ input: [3, 32, 32] });
}

function inputShape(model: BenchModel): number[] {
  return model === "mlp" ? [1, 28, 28] : [3, 32, 32];
}

/** A fixed synthetic batch (standard normal inputs, labels i mod 10), float32. */
function syntheticBatch(model: BenchModel, batch: number) {
  const shape = inputShape(model);
  const d = shape.reduce((a, b) => a * b, 1);
  const rng = new Rng(123);
  const x = new Float32Array(batch * d);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  const labels = new Int32Array(batch);
  for (let i = 0; i < batch; i++) labels[i] = i % 10;
  return fullBatch(createDataset({ name: "synthetic", inputShape: shape, x, labels, classes: 10 }), "float32");
}

/** Times chainopt's training step (Trainer.trainStep: gradient, checks, SGD momentum update) on `backend`. */
function timeChainopt(backend: Backend, model: BenchModel, batch: number, threads: number, quick: boolean): StepTiming {
  const side = backend === portableBackend ? "chainopt-portable" : "chainopt-native";
  backend.setThreads?.(threads);
  {
    const chain = createChain(modelSpec(model), { backend, dtype: "float32" });
    const trainer = new Trainer(
      { chain, objective: createObjective("logistic"), optimizer: sgd({ lr: 0.01, momentum: 0.9 }), batchSize: batch, seed: 0 },
      { params: chain.initParams(0) },
    );
    const b = syntheticBatch(model, batch);
    const { warmup, reps, steps } = plan(side, model, quick);
    for (let i = 0; i < warmup; i++) trainer.trainStep(b);
    const times: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < steps; i++) trainer.trainStep(b);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6 / steps);
    }
    return { side, model, threads, medianMs: median(times), bestMs: Math.min(...times), reps, stepsPerRep: steps };
  }
}

/**
 * The PyTorch side, bench/torch_step.py (models identical to chainopt's presets; PyTorch's default
 * layouts and init do not change the timing), found under the package root so that an installed
 * package (`npx chainopt bench`) runs it as a source checkout does.
 */
export function torchScriptPath(): string {
  return join(packageRoot(), "bench", "torch_step.py");
}

interface TorchOutput {
  torch: string;
  python: string;
  threads: number;
  mkldnn: boolean;
  blasConfig: string | null;
  coreName: string | null;
  blasThreads?: number;
  timings: { model: BenchModel; medianMs: number; bestMs: number; reps: number; stepsPerRep: number }[];
}

function defaultPython(): string {
  if (process.env.CHAINOPT_PYTHON) return process.env.CHAINOPT_PYTHON;
  // The python3 first on PATH may be a pyenv one without torch; Debian's python3-torch lives under /usr/bin.
  return existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

/** A peer's child process at `threads` threads, under chainopt's wait policy unless the user chose one (peerEnvironment). */
function threadEnv(threads: number): NodeJS.ProcessEnv {
  return peerEnvironment(threads);
}

function runTorch(python: string, models: BenchModel[], batch: number, threads: number, quick: boolean): TorchOutput | string {
  const jobs = models.map((model) => ({ model, ...plan("pytorch", model, quick) }));
  const script = torchScriptPath();
  if (!existsSync(script)) return `${script} not found`;
  const r = spawnSync(python, [script, JSON.stringify({ threads, batch, jobs })], {
    env: threadEnv(threads),
    encoding: "utf8",
    maxBuffer: 1 << 24,
  });
  if (r.error) return `${python}: ${r.error.message}`;
  if (r.status !== 0) return `${python} failed: ${(r.stderr ?? "").trim().split("\n").slice(-1)[0]}`;
  return JSON.parse(r.stdout) as TorchOutput;
}

/** The TensorFlow.js side runs in a child node (its wasm module and kernels stay out of this process). */
function runTfjs(batch: number, quick: boolean): { ok: true; detail: string; timing: StepTiming } | { ok: false; detail: string } {
  const script = join(packageRoot(), "dist", "bench", "tfjs-step.js");
  const here = fileURLToPath(new URL("./tfjs-step.js", import.meta.url));
  const path = existsSync(here) ? here : script;
  const p = plan("tfjs-wasm", "mlp", quick);
  const r = spawnSync(process.execPath, [path, JSON.stringify({ batch, ...p })], {
    env: threadEnv(1),
    encoding: "utf8",
    maxBuffer: 1 << 24,
  });
  if (r.error) return { ok: false, detail: r.error.message };
  const line = (r.stdout ?? "").trim().split("\n").pop() ?? "";
  let parsed: { error?: string; version?: string; backend?: string; threads?: string; medianMs?: number; bestMs?: number } = {};
  try {
    parsed = JSON.parse(line);
  } catch {
    return { ok: false, detail: `child failed: ${(r.stderr ?? "").trim().split("\n").slice(-1)[0]}` };
  }
  if (parsed.error) return { ok: false, detail: parsed.error };
  return {
    ok: true,
    detail: `@tensorflow/tfjs-core ${parsed.version} on ${parsed.backend} (${parsed.threads})`,
    timing: {
      side: "tfjs-wasm",
      model: "mlp",
      threads: 1,
      medianMs: parsed.medianMs!,
      bestMs: parsed.bestMs!,
      reps: p.reps,
      stepsPerRep: p.steps,
    },
  };
}

/** The GEMM comparison of bench/gemm.ts (a child node, JSON output). */
function runGemm(threads: number[], python: string, log: (s: string) => void): BenchResult["gemm"] {
  const script = join(packageRoot(), "dist", "bench", "gemm.js");
  if (!existsSync(script)) return { available: false, detail: `${script} not found (a source checkout has it)`, table: "", rows: [] };
  log("GEMM: chainopt native vs numpy (bench/gemm.ts) ...");
  const args = [script, "--threads", threads.join(","), "--python", python];
  const table = spawnSync(process.execPath, args, { encoding: "utf8", maxBuffer: 1 << 24 });
  const json = spawnSync(process.execPath, [...args, "--json"], { encoding: "utf8", maxBuffer: 1 << 24 });
  if (table.status !== 0 || json.status !== 0)
    return { available: false, detail: `gemm.js failed: ${(table.stderr || json.stderr || "").trim()}`, table: "", rows: [] };
  const parsed = JSON.parse(json.stdout) as { rows: GemmRow[] };
  return { available: true, detail: "two runs of bench/gemm.ts (table, then JSON)", table: table.stdout.trim(), rows: parsed.rows };
}

/** One epoch of MNIST with the default MLP (55 000 training samples, 5 000 validation; momentum, batch 128). */
async function timeMnistEpoch(backend: Backend, threads: number): Promise<BenchResult["mnist"][number]> {
  backend.setThreads?.(threads);
  {
    const loaded = await loadMnist({});
    const { train, validation } = splitDataset(loaded.train, { validation: 5000, seed: 0 });
    const chain = createChain(mlp({ input: [1, 28, 28] }), { backend, dtype: "float32" });
    const trainer = new Trainer(
      { chain, objective: createObjective("logistic"), optimizer: sgd({ lr: 0.02, momentum: 0.9 }), batchSize: 128, seed: 0 },
      { params: chain.initParams(0) },
    );
    const record = trainer.runEpoch({ train, validation });
    return {
      threads,
      seconds: record.seconds,
      samplesPerSecond: record.samplesPerSecond,
      steps: record.steps,
      ...(record.valAccuracy !== undefined ? { valAccuracy: record.valAccuracy } : {}),
    };
  }
}

/** Runs every side; see the module comment. */
export async function runBenchmarks(options: BenchOptions = {}): Promise<BenchResult> {
  const threads = options.threads ?? [1, 2];
  const models = options.models ?? ["mlp", "convnet"];
  const batch = options.batch ?? 128;
  const rounds = options.rounds ?? 2;
  const quick = options.quick ?? false;
  const skip = new Set(options.skip ?? []);
  const python = options.python ?? defaultPython();
  const log = options.log ?? (() => {});
  const loadBefore = loadavg();
  const native = loadNativeBackend();
  const environment: Record<string, string> = {};
  for (const k of ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "CHAINOPT_THREADS"])
    environment[k] = process.env[k] ?? "(unset)";
  const timings: StepTiming[] = [];
  const keepFaster = (t: StepTiming) => {
    const i = timings.findIndex((x) => x.side === t.side && x.model === t.model && x.threads === t.threads);
    if (i < 0) timings.push(t);
    else if (t.medianMs < timings[i].medianMs) timings[i] = t;
  };
  let torchDetail = skip.has("torch") ? "skipped" : "not run";
  let torchOk = false;
  for (let round = 0; round < rounds; round++) {
    for (const t of threads) {
      if (!skip.has("torch")) {
        log(`round ${round + 1}/${rounds}, ${t} thread(s): PyTorch ...`);
        const r = runTorch(python, models, batch, t, quick);
        if (typeof r === "string") torchDetail = `not available (${r})`;
        else {
          torchOk = true;
          torchDetail =
            `PyTorch ${r.torch} (${r.python}); MKL-DNN ${r.mkldnn ? "available" : "absent"}; ` +
            `BLAS ${r.blasConfig ?? "unknown"}; OpenBLAS core ${r.coreName ?? "?"}; ${peerWaitPolicy()}`;
          for (const x of r.timings) keepFaster({ side: "pytorch", threads: t, ...x });
        }
      }
      if (native) {
        for (const model of models) {
          log(`round ${round + 1}/${rounds}, ${t} thread(s): chainopt native ${model} ...`);
          keepFaster(timeChainopt(native, model, batch, t, quick));
        }
      }
    }
  }
  if (!skip.has("portable")) {
    for (const model of models) {
      log(`chainopt portable ${model} (1 thread; slow) ...`);
      keepFaster(timeChainopt(portableBackend, model, batch, 1, quick));
    }
  }
  let tfjsDetail = skip.has("tfjs") ? "skipped" : "not run";
  let tfjsOk = false;
  if (!skip.has("tfjs") && models.includes("mlp")) {
    log("TensorFlow.js wasm MLP ...");
    const r = runTfjs(batch, quick);
    tfjsDetail = r.detail;
    if (r.ok) {
      tfjsOk = true;
      timings.push(r.timing);
    }
  }
  const gemm =
    skip.has("gemm") || !native
      ? { available: false, detail: native ? "skipped" : "native backend not available", table: "", rows: [] }
      : runGemm(threads, python, log);
  const mnist: BenchResult["mnist"] = [];
  let mnistDetail = "skipped";
  if (!skip.has("mnist") && native) {
    try {
      for (const t of threads) {
        log(`MNIST epoch, default MLP, ${t} thread(s) ...`);
        mnist.push(await timeMnistEpoch(native, t));
      }
      mnistDetail =
        "55 000 training + 5 000 validation samples, batch 128, momentum 0.9, float32, native backend; seconds include the validation pass";
    } catch (error) {
      mnistDetail = `not run: ${error instanceof Error ? error.message : String(error)}`;
    }
  }
  return {
    machine: { cpu: cpuModel(), logicalCores: cpus().length, node: process.version, loadBefore, loadAfter: loadavg() },
    environment,
    chainopt: {
      backend: native ? native.name : "portable",
      description: native ? native.describe() : portableBackend.describe(),
      coreName: native ? native.info().coreName : null,
    },
    pytorch: { available: torchOk, detail: torchDetail },
    tfjs: { available: tfjsOk, detail: tfjsDetail },
    batch,
    quick,
    timings,
    gemm,
    mnist,
    mnistDetail,
  };
}

/** `lscpu`'s model name when /proc/cpuinfo has none better, else Node's. */
function cpuModel(): string {
  try {
    const info = readFileSync("/proc/cpuinfo", "utf8");
    const m = /^model name\s*:\s*(.+)$/m.exec(info);
    if (m) return m[1].trim();
  } catch {
    // not Linux
  }
  return cpus()[0]?.model ?? "unknown";
}

const SIDE_NAMES: Record<StepTiming["side"], string> = {
  "chainopt-native": "chainopt native (OpenBLAS)",
  "chainopt-portable": "chainopt portable (TypeScript)",
  pytorch: "PyTorch",
  "tfjs-wasm": "TensorFlow.js wasm",
};

/** The result as Markdown tables (what BENCHMARKS.md shows). */
export function formatBenchMarkdown(r: BenchResult): string {
  const lines: string[] = [];
  const f = (x: number | undefined | null, d = 2) => (x === undefined || x === null || !Number.isFinite(x) ? "—" : x.toFixed(d));
  lines.push(`Machine: ${r.machine.cpu}, ${r.machine.logicalCores} logical cores; Node ${r.machine.node}.`);
  lines.push(
    `Load average (1/5/15 min) before: ${r.machine.loadBefore.map((x) => x.toFixed(2)).join(" / ")}; after: ${r.machine.loadAfter.map((x) => x.toFixed(2)).join(" / ")}.`,
  );
  lines.push(
    `Environment: ${Object.entries(r.environment)
      .map(([k, v]) => `${k}=${v}`)
      .join(", ")}.`,
  );
  lines.push(`chainopt: ${r.chainopt.description}.`);
  lines.push(`PyTorch: ${r.pytorch.detail}.`);
  lines.push(`TensorFlow.js: ${r.tfjs.detail}.`);
  lines.push("");
  lines.push(
    `Training step (forward, loss, backward, SGD momentum update), batch ${r.batch}, float32; ms/step = median of the repetitions (fastest in parentheses)${r.quick ? " (quick run: fewer repetitions)" : ""}.`,
  );
  const models = [...new Set(r.timings.map((t) => t.model))];
  const threads = [...new Set(r.timings.map((t) => t.threads))].sort((a, b) => a - b);
  for (const model of models) {
    const torch = r.timings.filter((t) => t.side === "pytorch" && t.model === model);
    const torchBest = torch.length ? Math.min(...torch.map((t) => t.medianMs)) : undefined;
    lines.push("");
    lines.push(
      `### ${model === "mlp" ? "MLP 784-512-512-10" : "ConvNet (conv3x3-32, ReLU, maxpool2, conv3x3-64, ReLU, maxpool2, dense10) on 3x32x32"}`,
    );
    lines.push("");
    lines.push("| threads | side | ms/step | samples/s | × PyTorch (same threads) | × PyTorch (fastest) |");
    lines.push("|---:|---|---:|---:|---:|---:|");
    for (const t of threads) {
      const same = torch.find((x) => x.threads === t)?.medianMs;
      for (const side of ["chainopt-native", "chainopt-portable", "pytorch", "tfjs-wasm"] as const) {
        const x = r.timings.find((y) => y.side === side && y.model === model && y.threads === t);
        if (!x) continue;
        lines.push(
          `| ${t} | ${SIDE_NAMES[side]} | ${f(x.medianMs)} (${f(x.bestMs)}) | ${f((r.batch / x.medianMs) * 1000, 0)} | ${same ? f(x.medianMs / same) : "—"} | ${torchBest ? f(x.medianMs / torchBest) : "—"} |`,
        );
      }
    }
  }
  if (r.gemm.available) {
    lines.push("");
    lines.push("### GEMM (float32, C = A·B), chainopt native vs numpy on OpenBLAS (bench/gemm.ts)");
    lines.push("");
    lines.push("```");
    lines.push(r.gemm.table);
    lines.push("```");
  } else lines.push("", `GEMM: ${r.gemm.detail}.`);
  if (r.mnist.length) {
    lines.push("");
    lines.push(`### One MNIST epoch, default MLP (${r.mnistDetail})`);
    lines.push("");
    lines.push("| threads | seconds | samples/s | steps | validation accuracy |");
    lines.push("|---:|---:|---:|---:|---:|");
    for (const m of r.mnist)
      lines.push(
        `| ${m.threads} | ${f(m.seconds)} | ${f(m.samplesPerSecond, 0)} | ${m.steps} | ${m.valAccuracy === undefined ? "—" : f(m.valAccuracy * 100, 1)}% |`,
      );
  } else lines.push("", `MNIST epoch: ${r.mnistDetail}.`);
  return `${lines.join("\n")}\n`;
}
