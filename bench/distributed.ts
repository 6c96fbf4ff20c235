// Data-parallel scaling over MPI (docs/distributed.md). Run under mpirun with 1, 2, 4 ranks:
//
//   mpirun -np N node dist/bench/distributed.js --part train [--steps 12] [--widths 4000,1000,4000] [--batch 256] [--dtype float32]
//   mpirun -np N node dist/bench/distributed.js --part ggn   [--batch 256] [--reps 3] [--dtype float64] [--check] [--path auto|generic]
//
// train: the MLP 784-W-…-10 (ReLU, logistic loss, random MNIST-sized data) trained with SGD on a
//   global batch split across the ranks (src/train/data-parallel.ts); median time per step and the
//   share of it spent in the all-reduce, and the epoch time at 60 000 samples (MNIST's training set).
// ggn: one Gram-Gauss-Newton step of a tanh MLP 32-256-256-1 (squared loss, random regression data)
//   with the Gram matrix split by rows (src/second-order/distributed.ts): time per phase.
//   --check also computes the one-process GGN direction (ggn.ts) on every rank and prints the
//   largest relative difference (test/distributed-ggn.test.ts asserts it).
// Rank 0 prints one JSON line. Outside mpirun it runs on one process.
import { performance } from "node:perf_hooks";
import { type Collective, SingleProcessCollective } from "../src/core/collective.js";
import { initMpi, launcherWorldSize } from "../src/node/distributed/mpi.js";
import { bestBackend } from "../src/node/index.js";
import { distributedGgnDirection } from "../src/second-order/distributed.js";
import { prepareGgn } from "../src/second-order/ggn.js";
import { DataParallel } from "../src/train/data-parallel.js";
import { createChain, createObjective, type ModelSpecInput, mlp, Rng } from "../test/flat.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const collective: Collective = (launcherWorldSize() ?? 1) > 1 || process.argv.includes("--mpi") ? initMpi() : new SingleProcessCollective();
const dtype = arg("dtype", arg("part", "train") === "ggn" ? "float64" : "float32") as "float32" | "float64";
const backend = bestBackend({ threads: Number(process.env.CHAINOPT_THREADS ?? 1), quiet: true });

function randomArray(n: number, seed: number, scale = 1): Float64Array {
  const rng = new Rng(seed);
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = scale * rng.normal();
  return a;
}

function train(): Record<string, unknown> {
  const widths = arg("widths", "4000,1000,4000").split(",").map(Number);
  const B = Number(arg("batch", "256"));
  const steps = Number(arg("steps", "12"));
  const chain = createChain(mlp({ widths, input: [784] }), { dtype, backend });
  const objective = createObjective("logistic", 1e-6);
  const w = chain.initParams(0);
  const xs = dtype === "float32" ? Float32Array.from(randomArray(B * 784, 1)) : randomArray(B * 784, 1);
  const labels = new Int32Array(B).map((_, i) => i % 10);
  const dp = new DataParallel(collective, { deterministic: process.argv.includes("--deterministic") });
  dp.broadcast(w);
  const grad = new (dtype === "float32" ? Float32Array : Float64Array)(chain.paramSize);
  const times: number[] = [];
  const comms: number[] = [];
  for (let s = 0; s < steps + 2; s++) {
    collective.barrier();
    const c0 = dp.commSeconds;
    const t0 = performance.now();
    dp.valueAndGradient(chain, objective, w, { x: xs, size: B, labels }, { grad });
    for (let i = 0; i < w.length; i++) w[i] -= 0.01 * grad[i];
    const t = (performance.now() - t0) / 1000;
    if (s >= 2) {
      times.push(t);
      comms.push(dp.commSeconds - c0);
    }
  }
  const step = median(times);
  return {
    part: "train",
    ranks: collective.size,
    model: `mlp 784-${widths.join("-")}-10`,
    params: chain.paramSize,
    dtype,
    batch: B,
    stepSeconds: step,
    communicationSeconds: median(comms),
    communicationShare: median(comms) / step,
    epochSeconds: (60000 / B) * step,
  };
}

function ggn(): Record<string, unknown> {
  const B = Number(arg("batch", "256"));
  const reps = Number(arg("reps", "3"));
  const spec: ModelSpecInput = {
    input: [32],
    layers: [{ type: "dense", units: 256 }, { type: "tanh" }, { type: "dense", units: 256 }, { type: "tanh" }, { type: "dense", units: 1 }],
  };
  const chain = createChain(spec, { dtype, backend });
  const objective = createObjective("squared", 0);
  const w = chain.initParams(0);
  const conv = (a: Float64Array) => (dtype === "float32" ? Float32Array.from(a) : a);
  const batch = { x: conv(randomArray(B * 32, 2)), size: B, targets: conv(randomArray(B, 3)) };
  const damping = 1e-3;
  const runs: ReturnType<typeof distributedGgnDirection>[] = [];
  const walls: number[] = [];
  for (let r = 0; r < reps + 1; r++) {
    collective.barrier();
    const t0 = performance.now();
    const res = distributedGgnDirection(collective, chain, objective, w, batch, {
      damping,
      path: arg("path", "auto") as "auto" | "generic",
    });
    const wall = (performance.now() - t0) / 1000;
    if (r > 0) {
      runs.push(res);
      walls.push(wall);
    }
  }
  const step = median(walls);
  const pick = (k: "jacobian" | "gram" | "solve" | "communication") => median(runs.map((x) => x.timings[k]));
  const out: Record<string, unknown> = {
    part: "ggn",
    ranks: collective.size,
    model: "tanh mlp 32-256-256-1",
    path: arg("path", "auto"),
    params: chain.paramSize,
    dtype,
    batch: B,
    stepSeconds: step,
    jacobianSeconds: pick("jacobian"),
    gramSeconds: pick("gram"),
    solveSeconds: pick("solve"),
    communicationSeconds: pick("communication"),
    communicationShare: pick("communication") / step,
  };
  if (process.argv.includes("--check")) {
    const ref = prepareGgn(chain, objective, w, batch).direction(damping, 1);
    const d = runs[0].direction;
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < d.length; i++) {
      diff = Math.max(diff, Math.abs(d[i] - ref[i]));
      scale = Math.max(scale, Math.abs(ref[i]));
    }
    out.maxRelativeDifference = diff / scale;
    out.valueDifference = Math.abs(runs[0].value - prepareGgn(chain, objective, w, batch).value);
  }
  return out;
}

const result = arg("part", "train") === "ggn" ? ggn() : train();
if (collective.rank === 0) process.stdout.write(`${JSON.stringify(result)}\n`);
