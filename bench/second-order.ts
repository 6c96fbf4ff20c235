// Cost of second-order steps relative to a gradient step (docs/second-order.md).
//
//   node dist/bench/second-order.js [--batches 32,128] [--dtype float32|float64] [--reps 5]
//                                   [--dual-budget 60] [--depths 1,2,4,8,16,32] [--width 16] [--skip-newton]
//                                   [--profile]
//   CHAINOPT_BACKEND=portable forces the portable TypeScript backend; CHAINOPT_THREADS=n sets the threads.
//
// --profile: after the table, the (b) "gram" step per phase (medians over the interleaved rounds,
// through GaussNewtonOptions.onPhase), each beside its FLOP count and the time that count takes at
// the GEMM (float32 phases) or Cholesky (float64) speed measured in the same run.
//
// Part 1: the MNIST MLP 784-512-512-10 (ReLU, logistic loss over 10 classes, random data) at each
// batch size: one gradient step (forward + backward + update) against one Gauss-Newton step
//   (b) "gram": structured Gram matrix S J Jᵀ S, Cholesky, Woodbury (gauss-newton.ts),
//   (a) "dual": the papers' reference with 2q + 1 autodiff-oracle calls (q = batch × 10).
// (a) is run in full when its estimate fits --dual-budget seconds; otherwise a few of its VJP+JVP
// column pairs are timed and the step is extrapolated: t ≈ t(value+gradient) + q·t(pair) + t(VJP)
// + t(q × q LU solve), and the table says "extrapolated".
//
// Part 2: Newton step by dynamic programming (newton-dp.ts), time per step against depth at a fixed
// width (tanh MLP, batch 4, float64): linear growth expected.
import { performance } from "node:perf_hooks";
import { createChain } from "../src/chain/chain.js";
import type { ModelSpecInput } from "../src/chain/spec.js";
import type { Backend } from "../src/core/backend.js";
import { axpyInto, combineInto } from "../src/core/kernels.js";
import { portableBackend } from "../src/core/portable.js";
import { Rng } from "../src/core/rng.js";
import { type Batch, createObjective } from "../src/objectives/index.js";
import { jvp, valueAndGradient, vjp } from "../src/oracles/first-order.js";
import { NewtonNotPositiveDefiniteError, prepareGaussNewton, prepareNewton } from "../src/second-order/index.js";
import { choleskyInPlace, solveInPlace } from "../src/second-order/linalg.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

/** 2·m·n·k: the flops of a GEMM. */
const gemmFlops = (m: number, n: number, k: number): number => 2 * m * n * k;

/**
 * The per-phase table of the Gauss-Newton "gram" step on the MLP 784-512-512-10 at batch n
 * (logistic loss, r columns of the loss-Hessian factor per sample, r = 9 = k − 1; q = r·n rows):
 * medians of each phase, its flops, and the time those flops take at the speeds measured here:
 * float32 GEMM at the Δ Δᵀ shape
 * (q × q × 512) and float64 Cholesky (dpotrf, or the backend's) of a q × q SPD matrix.
 */
function profileTable(backend: Backend, n: number, r: number, runs: Map<string, number>[], gradMs: number): string {
  const widths = [784, 512, 512, 10];
  const q = n * r;
  // Reference speeds of this run.
  const dA = new Float32Array(q * 512).map((_, i) => Math.sin(i));
  const dC = new Float32Array(q * q);
  const tGemm = time(() => backend.gemm(false, true, q, q, 512, 1, dA, 512, dA, 512, 0, dC, q), 3);
  const gemmRate = gemmFlops(q, q, 512) / tGemm; // flops per ms
  const spd = new Float64Array(q * q);
  for (let i = 0; i < q; i++) for (let j = 0; j <= i; j++) spd[i * q + j] = spd[j * q + i] = dC[i * q + j];
  for (let i = 0; i < q; i++) spd[i * q + i] += 1e3;
  const work = new Float64Array(q * q);
  const tChol = time(() => {
    work.set(spd);
    if (!choleskyInPlace(backend, work, q)) throw new Error("profile: test matrix not SPD");
  }, 3);
  const cholFlops = q ** 3 / 3;
  const cholRate = cholFlops / tChol;
  // Flops per phase (forward: 2 N Σ n_t m_t; backward: parameter gradients of every layer plus
  // input slopes of the upper two; JVP: dW x for every layer plus W dx for the upper two; Gram
  // products: the SYRK count q(q+1)·m per dense layer, half a GEMM; Cholesky n³/3).
  let fwd = 0;
  for (let t = 0; t + 1 < widths.length; t++) fwd += gemmFlops(n, widths[t + 1], widths[t]);
  const bwd = 2 * fwd - gemmFlops(n, widths[1], widths[0]);
  let xxt = 0;
  let ddt = 0;
  for (let t = 0; t + 1 < widths.length; t++) {
    xxt += n * (n + 1) * widths[t];
    ddt += q * (q + 1) * widths[t + 1];
  }
  const bDelta = gemmFlops(q, 512, 10) + gemmFlops(q, 512, 512);
  const flops: Record<string, [number, "gemm" | "chol"]> = {
    forward: [fwd, "gemm"],
    "gradient (backward)": [bwd, "gemm"],
    "gram: X Xᵀ": [xxt, "gemm"],
    "gram: Δ Δᵀ": [ddt, "gemm"],
    "gram: backward Δ (dense)": [bDelta, "gemm"],
    "M b (JVP)": [2 * fwd - gemmFlops(n, widths[1], widths[0]), "gemm"],
    "solve: Cholesky + solves": [cholFlops + 2 * q * q, "chol"],
    "Mᵀ c (VJP)": [bwd, "gemm"],
  };
  const names: string[] = [];
  for (const run of runs) for (const k of run.keys()) if (!names.includes(k)) names.push(k);
  const lines = [
    `\n## Gauss-Newton (b) step per phase, batch ${n} (q = ${q}; medians of ${runs.length} steps)\n`,
    `reference speeds in this run: float32 GEMM ${q}×${q}×512 ${(gemmRate / 1e6).toFixed(1)} GFLOP/s, float64 Cholesky n = ${q} ${(cholRate / 1e6).toFixed(1)} GFLOP/s\n`,
    "| phase | ms (median) | GFLOP | ms at reference speed |",
    "|---|---:|---:|---:|",
  ];
  let total = 0;
  let bound = 0;
  for (const name of names) {
    const ms = median(runs.map((m) => m.get(name) ?? 0));
    const f = flops[name];
    const at = f ? f[0] / (f[1] === "gemm" ? gemmRate : cholRate) : 0;
    if (!name.endsWith(": total")) {
      total += ms;
      bound += at;
    }
    lines.push(`| ${name} | ${ms.toFixed(2)} | ${f ? (f[0] / 1e9).toFixed(3) : ""} | ${f ? at.toFixed(2) : ""} |`);
  }
  lines.push(`| sum of phases (not "total") | ${total.toFixed(2)} | | ${bound.toFixed(2)} |`);
  lines.push(
    `\ngradient step (median) ${gradMs.toFixed(2)} ms: sum of phases / gradient = ${(total / gradMs).toFixed(1)}, flop bound / gradient = ${(bound / gradMs).toFixed(1)}`,
  );
  return lines.join("\n");
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median wall time (ms) of `fn` over `reps` runs after one warm-up. */
function time(fn: () => void, reps: number): number {
  fn();
  const ts: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

async function main(): Promise<void> {
  const batches = arg("batches", "32,128").split(",").map(Number);
  const dtype = arg("dtype", "float32") as "float32" | "float64";
  const reps = Number(arg("reps", "5"));
  const dualBudget = Number(arg("dual-budget", "60"));
  let backend: Backend = portableBackend;
  let backendName = "portable";
  try {
    const node = await import("../src/node/index.js");
    backend = node.bestBackend({ quiet: true });
    backendName = backend.describe();
  } catch (e) {
    backendName = `portable (native loader failed: ${(e as Error).message})`;
  }
  console.log(`# Second-order step cost (chainopt bench/second-order)\n\nbackend: ${backendName}\ndtype: ${dtype}\n`);

  const spec: ModelSpecInput = {
    input: [784],
    layers: [
      { type: "dense", units: 512 },
      { type: "relu" },
      { type: "dense", units: 512 },
      { type: "relu" },
      { type: "dense", units: 10 },
    ],
  };
  const chain = createChain(spec, { dtype, backend });
  const objective = createObjective("logistic", 1e-4);
  const rows: string[] = [];
  const profiles: string[] = [];
  const profile = process.argv.includes("--profile");
  for (const n of batches) {
    const rng = new Rng(n);
    const w = chain.initParams(1);
    const x = new (dtype === "float32" ? Float32Array : Float64Array)(n * 784);
    for (let i = 0; i < x.length; i++) x[i] = rng.uniform();
    const batch: Batch = { x, size: n, labels: Int32Array.from({ length: n }, (_, i) => i % 10) };
    const q = n * 10;
    const grad = chain.dtype === "float32" ? new Float32Array(chain.paramSize) : new Float64Array(chain.paramSize);
    const wStep = w.slice();
    const gradStep = (): void => {
      valueAndGradient(chain, objective, wStep, batch, { grad });
      axpyInto(chain.backend, wStep.length, -1e-3, grad, wStep); // as the trainer's update: the backend's kernel
    };
    // (b): prepare (forward, gradient, loss-Hessian factor, Gram, M b) + direction (Cholesky, VJP) + update.
    let gramPath = "";
    let gramRows = 0;
    let tPrepare = 0;
    let tDirection = 0;
    // Per-phase times of the current step (--profile), summed over the phases' occurrences.
    let phases = new Map<string, number>();
    const onPhase = profile ? (phase: string, ms: number) => phases.set(phase, (phases.get(phase) ?? 0) + ms) : undefined;
    const phaseRuns: Map<string, number>[] = [];
    const dOut = new Float64Array(chain.paramSize); // the step's direction, reused as a training loop would
    const gnStep = (): void => {
      phases = new Map();
      const t0 = performance.now();
      const sub = prepareGaussNewton(chain, objective, wStep, batch, { implementation: "gram", onPhase });
      const t1 = performance.now();
      const d = sub.direction(1, dOut);
      const t2 = performance.now();
      combineInto(chain.backend, wStep.length, 1, wStep, 1e-3, d, wStep);
      sub.release(); // as the second-order stepper does (src/second-order/stepper.ts)
      onPhase?.("update", performance.now() - t2);
      tPrepare = t1 - t0;
      tDirection = performance.now() - t1;
      gramPath = sub.gramInfo?.path ?? "";
      gramRows = sub.gramInfo?.rows ?? n * 10;
    };
    // Interleaved rounds (a gradient step, then a Gauss-Newton step), so that both see the same
    // machine load; the table reports the best round of each (medians in parentheses).
    gradStep();
    gnStep();
    const grads: number[] = [];
    const gns: { total: number; prepare: number; direction: number }[] = [];
    for (let r = 0; r < reps; r++) {
      let t0 = performance.now();
      gradStep();
      grads.push(performance.now() - t0);
      t0 = performance.now();
      gnStep();
      gns.push({ total: performance.now() - t0, prepare: tPrepare, direction: tDirection });
      phaseRuns.push(phases);
    }
    if (profile) profiles.push(profileTable(chain.backend, n, gramRows / n, phaseRuns, median(grads)));
    const tGrad = Math.min(...grads);
    const best = gns.reduce((a, b) => (b.total < a.total ? b : a));
    const tB = best.total;
    const medGrad = median(grads);
    const medB = median(gns.map((g) => g.total));
    // The ratio per round (a gradient step and the Gauss-Newton step right after it), median over
    // the rounds: robust to this VM's speed drifting between rounds, which moves "best" and
    // "median" of the two columns apart (BENCHMARKS.md).
    const medRatio = median(gns.map((g, r) => g.total / grads[r]));
    // (a): time the pieces, run in full only if affordable.
    const e = new Float64Array(q);
    let pairIndex = 0;
    const tPair = time(
      () => {
        e.fill(0);
        e[pairIndex++ % q] = 1;
        const { dw } = vjp(chain, w, x, n, e, { training: true });
        jvp(chain, w, x, n, dw, null, { training: true });
      },
      Math.max(3, reps),
    );
    const tCall = time(
      () => {
        vjp(chain, w, x, n, e, { training: true });
      },
      Math.max(3, reps),
    );
    const tSolve = time(() => {
      const a = new Float64Array(q * q);
      for (let i = 0; i < q; i++) a[i * q + i] = 2 + (i % 7);
      for (let i = 0; i + 1 < q; i++) a[i * q + i + 1] = 0.5;
      const b = new Float64Array(q).fill(1);
      solveInPlace(chain.backend, a, q, b, 1);
    }, 2);
    const tAEstimate = tGrad + q * tPair + 2 * tCall + tSolve;
    let tA = tAEstimate;
    let how = "extrapolated";
    let calls = 2 * q + 3;
    if (tAEstimate / 1000 <= dualBudget) {
      const t0 = performance.now();
      const sub = prepareGaussNewton(chain, objective, w, batch, { implementation: "dual" });
      sub.direction(1);
      tA = performance.now() - t0;
      how = "measured";
      calls = sub.oracleCalls;
    }
    rows.push(
      `| ${n} | ${q} | ${tGrad.toFixed(1)} (${medGrad.toFixed(1)}) | ${tB.toFixed(1)} = ${best.prepare.toFixed(1)} + ${best.direction.toFixed(1)} (${medB.toFixed(1)}) | ${medRatio.toFixed(2)}× (${(tB / tGrad).toFixed(1)}×, ${(medB / medGrad).toFixed(1)}×) | ${(tA / 1000).toFixed(2)} s | ${(tA / tGrad).toFixed(0)}× | ${calls} calls, ${how} (VJP+JVP pair ${tPair.toFixed(1)} ms) |`,
    );
    console.error(`batch ${n}: done (gram path: ${gramPath})`);
  }
  console.log("## Gauss-Newton step vs gradient step, MNIST MLP 784-512-512-10, 10 classes\n");
  console.log(
    "| batch | q | gradient step ms, best (median) | GN (b) gram ms, best = prepare + solve (median) | (b)/grad: median of per-round ratios (best/best, median/median) | GN (a) dual | (a)/grad | (a) |",
  );
  console.log("|---:|---:|---:|---:|---:|---:|---:|---|");
  for (const r of rows) console.log(r);
  for (const p of profiles) console.log(p);

  if (!process.argv.includes("--skip-newton")) {
    const depths = arg("depths", "1,2,4,8,16,32").split(",").map(Number);
    const width = Number(arg("width", "16"));
    const n = 4;
    console.log(`\n## Newton step by dynamic programming: time vs depth (tanh MLP, width ${width}, batch ${n}, float64)\n`);
    console.log("| hidden layers | parameters | time per step (ms, best of 5) | ms per hidden layer | damping μ |");
    console.log("|---:|---:|---:|---:|---:|");
    // Warm-up (JIT) on a mid-size chain so that the first row is not compile time.
    const chainAt = (depth: number) => {
      const layers: ModelSpecInput["layers"] = [];
      for (let l = 0; l < depth; l++) layers.push({ type: "dense", units: width, init: "lecun" }, { type: "tanh" });
      layers.push({ type: "dense", units: 3, init: "lecun" });
      return createChain({ input: [width], layers }, { dtype: "float64" });
    };
    for (const [i, depth] of [4, ...depths].entries()) {
      const c = chainAt(depth);
      const rng = new Rng(depth);
      const w = c.initParams(depth);
      const x = new Float64Array(n * width).map(() => rng.normal());
      const batch: Batch = { x, size: n, labels: Int32Array.from({ length: n }, (_, i) => i % 3) };
      const obj = createObjective("logistic", 1e-3);
      // A damping that makes ∇²F + μI positive definite (×10 until the Riccati recursion succeeds).
      let mu = 1;
      for (;;) {
        try {
          prepareNewton(c, obj, w, batch).direction(mu);
          break;
        } catch (e) {
          if (!(e instanceof NewtonNotPositiveDefiniteError)) throw e;
          mu *= 10;
        }
      }
      const ts: number[] = [];
      for (let r = 0; r < 5; r++) {
        const t0 = performance.now();
        prepareNewton(c, obj, w, batch).direction(mu);
        ts.push(performance.now() - t0);
      }
      const t = Math.min(...ts);
      if (i > 0) console.log(`| ${depth} | ${c.paramSize} | ${t.toFixed(1)} | ${(t / depth).toFixed(2)} | ${mu} |`);
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
