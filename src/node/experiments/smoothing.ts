import { writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { layerNorms } from "../../certify/certificate.js";
import { Chain } from "../../chain/chain.js";
import { type ModelSpec, type ModelSpecInput, parseModelSpec } from "../../chain/spec.js";
import type { FloatArray } from "../../core/dtype.js";
import { Rng } from "../../core/rng.js";
import { BatchLoader, type Dataset, subsetDataset } from "../../data/dataset.js";
import { createObjective, type Objective } from "../../objectives/objective.js";
import { valueAndGradient } from "../../oracles/first-order.js";
import { type Row, toCsv } from "../../report/plots.js";
import { type SmoothResult, smooth } from "../../smoothing/smooth.js";
import { evaluateDataset } from "../../train/evaluate.js";
import { loadDataset } from "../datasets.js";
import { bestBackend } from "../index.js";
import { plotLines } from "../report.js";
import { RunDirectory } from "../run-dir.js";
import { type ExperimentDefinition, type ExperimentIO, type ExperimentOption, resolveOptions, silentIO } from "./experiment.js";

// Section V of Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021) (docs/smoothing.md): SGD on a non-smooth network and on its
// smoothings ψ_ε, same seeds, same step, same data order.
//
// Protocol (paper, Sec. V-A), and what `scale` changes:
// - MLP on MNIST, hidden widths (4000, 1000, 4000), ReLU; ConvNet on CIFAR-10:
//   Conv[16×32×32]→ReLU→Pool[16×16×16]→Conv[20×16×16]→ReLU→Pool[20×8×8]→Conv[20×8×8]→ReLU→
//   Pool[20×4×4]→FC, "Pool" an AVERAGE pooling (the paper's text), 2×2 stride 2; the kernel size is
//   not given: we use 3×3 with padding 1 (keeps D×D as printed). Pixels normalized per channel.
// - Logistic loss, λ = 1e-6 (r = (λ/2)‖u‖²), SGD with mini-batches of 256 and a constant step
//   tuned during a 10-iteration burn-in of the non-smooth network (grid recorded: the objective on
//   1024 training samples after the burn-in, the lowest wins), reused for the smoothed networks.
// - R_t = the largest ‖u_t‖ along the non-smooth runs (all seeds); ψ_ε smoothed on B_R so that the
//   OBJECTIVE is ε-accurate (Lemma 8, ν = ε/√2 for the logistic loss), ε ∈ {1e-6, …, 10}.
// - The non-smooth run of each seed is run twice: once to record R (pass 1), then in lockstep with
//   the smoothed runs of that seed (pass 2, same initialization and batches), to measure
//   ‖w_ε(k) − w(k)‖/‖w(k)‖ at every iteration k (Fig. 4); pass 2 reproduces pass 1 bit for bit
//   (checked).
// - Paper: 200 epochs on the full sets, 10 seeds. Here `scale` s keeps the first ⌊s·N⌉ training
//   images (N = 60 000 MNIST, 50 000 CIFAR-10) and runs max(1, ⌊200 s⌉) epochs; `width` multiplies
//   the MLP's widths (the full MLP takes ≈ 0.52 s per SGD step of 256 on 2 cores with OpenBLAS,
//   measured, which would make 200 full epochs ≈ 6.8 h per run).

/** The paper's ε grid, 1e-6 … 10. */
export const DEFAULT_EPSILONS: readonly number[] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10];

/** Options of {@link runSmoothingExperiment}. */
export interface SmoothingExperimentOptions {
  /** Fraction of the data and of the 200 epochs (default 0.06). */
  scale?: number;
  /** Which networks (default both): "mlp" (MNIST) and/or "convnet" (CIFAR-10). */
  models?: string[];
  epsilons?: number[];
  /** Number of seeds 0..seeds−1, shared by the smooth and non-smooth runs (default 2). */
  seeds?: number;
  /** Multiplier of the MLP's widths (4000, 1000, 4000) (default 0.25). */
  width?: number;
  /** Step sizes tried during the burn-in (default 0.003 … 1). */
  stepGrid?: number[];
  /** Burn-in iterations of the step tuning (default 10). */
  burnIn?: number;
  batchSize?: number;
  l2?: number;
  /** Override the scale: training samples and epochs. */
  trainSamples?: number;
  epochs?: number;
  /** Also run the non-smooth network from a rounding-level perturbed start in lockstep (default true). */
  control?: boolean;
  /** Test samples (default 5000). */
  testSamples?: number;
  threads?: number;
  png?: boolean;
  out?: string;
  root?: string;
}

interface ModelSetup {
  name: "mlp" | "convnet";
  dataset: "mnist" | "cifar10";
  spec: ModelSpec;
  describe: string;
}

function modelSetup(name: string, width: number): ModelSetup {
  if (name === "mlp") {
    const widths = [4000, 1000, 4000].map((w) => Math.max(1, Math.round(w * width)));
    const layers: ModelSpecInput["layers"] = [{ type: "flatten" }];
    for (const units of widths) layers.push({ type: "dense", units }, { type: "relu" });
    layers.push({ type: "dense", units: 10 });
    return {
      name,
      dataset: "mnist",
      spec: parseModelSpec({ input: [1, 28, 28], layers }),
      describe: `MLP 784-${widths.join("-")}-10 (ReLU) on MNIST`,
    };
  }
  if (name === "convnet") {
    const layers: ModelSpecInput["layers"] = [];
    for (const filters of [16, 20, 20]) {
      layers.push({ type: "conv2d", filters, kernel: 3, padding: 1 }, { type: "relu" }, { type: "avgPool2d", size: 2 });
    }
    layers.push({ type: "flatten" }, { type: "dense", units: 10 });
    return {
      name,
      dataset: "cifar10",
      spec: parseModelSpec({ input: [3, 32, 32], layers }),
      describe: "ConvNet conv3x3-16→ReLU→avgpool→conv3x3-20→ReLU→avgpool→conv3x3-20→ReLU→avgpool→FC (CIFAR-10)",
    };
  }
  throw new Error(`models: unknown model "${name}"; expected mlp or convnet`);
}

/** Mean and sample standard deviation. */
function meanStd(xs: number[]): { mean: number; std: number } {
  const v = xs.filter((x) => Number.isFinite(x));
  if (v.length === 0) return { mean: Number.NaN, std: Number.NaN };
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : 0;
  return { mean, std };
}

function relDistance(a: FloatArray, b: FloatArray): number {
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] - b[i];
    d += x * x;
    n += b[i] * b[i];
  }
  return Math.sqrt(d / n);
}

function sgdStep(
  chain: Chain,
  objective: Objective,
  w: FloatArray,
  grad: FloatArray,
  batch: ReturnType<BatchLoader["batch"]>,
  step: number,
): number {
  const r = valueAndGradient(chain, objective, w, batch, { grad, training: true });
  if (!Number.isFinite(r.value)) return Number.NaN;
  for (let i = 0; i < w.length; i++) w[i] -= step * grad[i];
  return r.loss;
}

/** Evaluation of one final network. */
export interface SmoothingRunResult {
  model: string;
  /** 0 for the non-smooth network. */
  epsilon: number;
  seed: number;
  trainLoss: number;
  trainAccuracy: number;
  testLoss: number;
  testAccuracy: number;
  /** ‖w_ε − w‖/‖w‖ at the last iteration (0 for the non-smooth run). */
  finalDistance: number;
  diverged: boolean;
}

/** Per-model outcome. */
export interface SmoothingModelResult {
  model: string;
  describe: string;
  params: number;
  trainSize: number;
  testSize: number;
  epochs: number;
  iterations: number;
  step: number;
  stepGrid: { step: number; objective: number }[];
  radii: number[];
  normsFirst50: { mean: number; std: number }[];
  smoothings: { epsilon: number; result: SmoothResult }[];
  runs: SmoothingRunResult[];
  /** Figure 4: per ε and iteration, mean and std over seeds of the relative distance (ε = 0: the control run). */
  distances: { epsilon: number; iteration: number; mean: number; std: number }[];
  reproducible: boolean;
  seconds: number;
  secondsPerStep: number;
}

/** Result of {@link runSmoothingExperiment}. */
export interface SmoothingExperimentResult {
  runDir: string;
  models: SmoothingModelResult[];
  seconds: number;
  backend: string;
}

const fe = (x: number, d = 2): string => (Number.isFinite(x) ? (x === 0 ? "0" : x.toExponential(d)) : "n/a");
const pct = (x: number): string => (Number.isFinite(x) ? (100 * x).toFixed(2) : "n/a");

/** Runs the experiment (see the module comment) and writes its run directory. */
export async function runSmoothingExperiment(
  options: SmoothingExperimentOptions = {},
  io: ExperimentIO = silentIO,
): Promise<SmoothingExperimentResult> {
  const started = performance.now();
  const scale = options.scale ?? 0.06;
  if (!(scale > 0 && scale <= 1)) throw new Error(`scale: expected a number in (0, 1], got ${scale}`);
  const models = options.models ?? ["mlp", "convnet"];
  const epsilons = [...(options.epsilons ?? DEFAULT_EPSILONS)].sort((a, b) => a - b);
  if (epsilons.some((e) => !(e > 0))) throw new Error("epsilons: expected positive numbers");
  const seeds = options.seeds ?? 2;
  const width = options.width ?? 0.25;
  const stepGrid = options.stepGrid ?? [0.003, 0.01, 0.03, 0.1, 0.3, 1];
  const burnIn = options.burnIn ?? 10;
  const batchSize = options.batchSize ?? 256;
  const l2 = options.l2 ?? 1e-6;
  const epochs = options.epochs ?? Math.max(1, Math.round(200 * scale));
  for (const [k, v] of Object.entries({ seeds, burnIn, batchSize, epochs })) {
    if (!(Number.isInteger(v) && v > 0)) throw new Error(`${k}: expected a positive integer, got ${v}`);
  }
  const backend = bestBackend({ threads: options.threads, quiet: true });
  const objective = createObjective("logistic", l2);
  const run = RunDirectory.create({ out: options.out, root: options.root, name: "smoothing" });
  run.writeConfig({
    name: "smoothing",
    experiment: "smoothing",
    protocol: {
      scale,
      models,
      epsilons,
      seeds,
      width,
      stepGrid,
      burnIn,
      batchSize,
      l2,
      epochs,
      loss: "logistic",
      target: "objective (Lemma 8)",
    },
    backend: { name: backend.name, threads: backend.threads, description: backend.describe() },
    machine: { cpu: cpus()[0]?.model ?? "unknown", cores: availableParallelism() },
  });
  const results: SmoothingModelResult[] = [];
  const md: string[] = [
    `# Smoothing experiment (Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), Sec. V) — scale ${scale}, ${seeds} seed(s), ε ∈ {${epsilons.join(", ")}}`,
    "",
  ];

  for (const name of models) {
    const t0 = performance.now();
    const setup = modelSetup(name, width);
    const fullN = setup.dataset === "mnist" ? 60000 : 50000;
    const trainSamples = options.trainSamples ?? Math.max(batchSize, Math.round(fullN * scale));
    const testSamples = options.testSamples ?? 5000;
    // `limit` keeps the first samples of each split only (decoding/normalizing the full sets costs seconds).
    const loaded = await loadDataset(setup.dataset, { normalize: true, limit: Math.max(trainSamples, testSamples) });
    const train: Dataset = subsetDataset(loaded.train, trainSamples, `${setup.dataset}/train`);
    const test: Dataset = subsetDataset(loaded.test!, testSamples, `${setup.dataset}/test`);
    let maxSampleNorm = 0;
    for (const ds of [train, test]) {
      const d = ds.x.length / ds.size;
      for (let i = 0; i < ds.size; i++) {
        let s = 0;
        for (let j = i * d; j < (i + 1) * d; j++) s += ds.x[j] * ds.x[j];
        maxSampleNorm = Math.max(maxSampleNorm, Math.sqrt(s));
      }
    }
    const chain = new Chain(setup.spec, { dtype: "float32", backend });
    const loader = new BatchLoader(train, { batchSize, dtype: "float32" });
    const probe = subsetDataset(train, 1024);
    const itersPerEpoch = loader.batchCount();
    const iterations = epochs * itersPerEpoch;
    io.log(
      `${setup.describe}: ${chain.paramSize} parameters, ${train.size} train / ${test.size} test, ${epochs} epoch(s) = ${iterations} iterations of ${batchSize}`,
    );

    // 1. Step tuning on the non-smooth network (burn-in from seed 0).
    const grad = new Float32Array(chain.paramSize);
    const tuning: { step: number; objective: number }[] = [];
    for (const step of stepGrid) {
      const w = chain.initParams(0);
      const rng = new Rng(0);
      let order = rng.permutation(train.size);
      let ok = true;
      for (let k = 0; k < burnIn && ok; k++) {
        const b = k % itersPerEpoch;
        if (b === 0 && k > 0) order = rng.permutation(train.size);
        ok = Number.isFinite(sgdStep(chain, objective, w, grad, loader.batch(b, order), step));
      }
      const ev = ok ? evaluateDataset(chain, objective, w, probe, { batchSize: 256 }) : { loss: Number.NaN };
      const value = Number.isFinite(ev.loss) ? ev.loss + 0.5 * l2 * sumSquares(w) : Number.POSITIVE_INFINITY;
      tuning.push({ step, objective: value });
      io.log(`  step ${step}: objective after ${burnIn} iterations ${fe(value, 4)}`);
    }
    const best = tuning.reduce((a, b) => (b.objective < a.objective ? b : a));
    const step = best.step;
    io.log(`  chosen step ${step}${step === stepGrid[0] || step === stepGrid[stepGrid.length - 1] ? " (grid edge)" : ""}`);

    // Training loop shared by both passes: nets[0] is the non-smooth network.
    // `perturb`: index of a net whose initialization is multiplied by (1 + 1e-7·N(0, 1)) entry-wise
    // (the control run: a rounding-level perturbation of the non-smooth run, about one float32 ulp).
    const trainSeed = (
      nets: Chain[],
      seed: number,
      onIteration: (k: number, ws: FloatArray[], losses: number[]) => void,
      perturb = -1,
    ): FloatArray[] => {
      const ws = nets.map((n) => n.initParams(seed));
      if (perturb >= 0) {
        const pr = new Rng(5000 + seed);
        const w = ws[perturb];
        for (let i = 0; i < w.length; i++) w[i] *= 1 + 1e-7 * pr.normal();
      }
      const grads = nets.map((n) => new Float32Array(n.paramSize));
      const alive = nets.map(() => true);
      const rng = new Rng(1000 + seed);
      let k = 0;
      for (let e = 0; e < epochs; e++) {
        const order = rng.permutation(train.size);
        for (let b = 0; b < itersPerEpoch; b++) {
          const batch = loader.batch(b, order);
          const losses = nets.map((n, i) => {
            if (!alive[i]) return Number.NaN;
            const l = sgdStep(n, objective, ws[i], grads[i], batch, step);
            if (!Number.isFinite(l)) alive[i] = false;
            return l;
          });
          k++;
          onIteration(k, ws, losses);
        }
      }
      return ws;
    };

    // 2. Pass 1: non-smooth runs, parameter norms along the iterations.
    const norms: number[][] = []; // per iteration (first 50, all seeds) per layer
    const tau = chain.layers.filter((l) => l.biaffine >= 0).length;
    const radii = new Array<number>(tau).fill(0);
    const pass1: FloatArray[] = [];
    const tStep = performance.now();
    for (let seed = 0; seed < seeds; seed++) {
      const init = chain.initParams(seed);
      layerNorms(chain, init).forEach((v, t) => {
        radii[t] = Math.max(radii[t], v);
      });
      const [w] = trainSeed([chain], seed, (k, ws) => {
        const n = layerNorms(chain, ws[0]);
        n.forEach((v, t) => {
          radii[t] = Math.max(radii[t], v);
        });
        if (k <= 50) norms.push(n);
      });
      pass1.push(w.slice());
    }
    const secondsPerStep = (performance.now() - tStep) / 1000 / (seeds * iterations);
    const normsFirst50 = radii.map((_, t) => meanStd(norms.map((n) => n[t])));
    io.log(`  pass 1: R = [${radii.map((r) => r.toFixed(2)).join(", ")}], ${(secondsPerStep * 1000).toFixed(0)} ms/step`);

    // 3. Smoothing per ε (Algorithm 2), objective-level accuracy ε.
    const smoothings = epsilons.map((epsilon) => ({
      epsilon,
      result: smooth(chain, { epsilon, radii, target: "objective", loss: "logistic", l2, batch: batchSize, maxSampleNorm }),
    }));
    for (const s of smoothings) {
      io.log(
        `  ε = ${s.epsilon}: μ per layer [${s.result.layers
          .filter((l) => l.layer > 0)
          .map((l) => (l.parameters.length ? fe(l.parameters[0]) : "0"))
          .join(", ")}], L_F = ${fe(s.result.certificate.smoothness)}`,
      );
    }

    // 4. Pass 2: lockstep, relative distances.
    // With `control`, a last net: the non-smooth network from a rounding-level perturbed start.
    const control = options.control ?? true;
    const nets = [chain, ...smoothings.map((s) => s.result.chain), ...(control ? [chain] : [])];
    const dist: number[][][] = [...epsilons, ...(control ? [0] : [])].map(() => []); // [ε (then control)][iteration][seed]
    const runs: SmoothingRunResult[] = [];
    let reproducible = true;
    for (let seed = 0; seed < seeds; seed++) {
      const ws = trainSeed(
        nets,
        seed,
        (k, wk) => {
          for (let e = 0; e < dist.length; e++) {
            if (!dist[e][k - 1]) dist[e][k - 1] = [];
            dist[e][k - 1][seed] = relDistance(wk[e + 1], wk[0]);
          }
        },
        control ? nets.length - 1 : -1,
      );
      if (relDistance(ws[0], pass1[seed]) !== 0) reproducible = false;
      nets.forEach((n, i) => {
        if (i > epsilons.length) return; // the control run is not evaluated
        const tr = evaluateDataset(n, objective, ws[i], train, { batchSize: 500 });
        const te = evaluateDataset(n, objective, ws[i], test, { batchSize: 500 });
        const epsilon = i === 0 ? 0 : epsilons[i - 1];
        runs.push({
          model: name,
          epsilon,
          seed,
          trainLoss: tr.loss,
          trainAccuracy: tr.accuracy ?? Number.NaN,
          testLoss: te.loss,
          testAccuracy: te.accuracy ?? Number.NaN,
          finalDistance: i === 0 ? 0 : relDistance(ws[i], ws[0]),
          diverged: !Number.isFinite(tr.loss),
        });
      });
      io.log(`  pass 2 seed ${seed}: non-smooth test acc ${pct(runs[runs.length - 1 - epsilons.length].testAccuracy)}%`);
    }
    const distances: SmoothingModelResult["distances"] = [];
    [...epsilons, ...(control ? [0] : [])].forEach((epsilon, e) => {
      dist[e].forEach((perSeed, k) => {
        const s = meanStd(perSeed);
        distances.push({ epsilon, iteration: k + 1, mean: s.mean, std: s.std });
      });
    });
    const seconds = (performance.now() - t0) / 1000;
    const result: SmoothingModelResult = {
      model: name,
      describe: setup.describe,
      params: chain.paramSize,
      trainSize: train.size,
      testSize: test.size,
      epochs,
      iterations,
      step,
      stepGrid: tuning,
      radii,
      normsFirst50,
      smoothings,
      runs,
      distances,
      reproducible,
      seconds,
      secondsPerStep,
    };
    results.push(result);
    await writeModelOutputs(run, result, epsilons, options.png ?? false, md);
    io.log(`  ${name}: ${seconds.toFixed(1)} s (pass 2 reproduces pass 1: ${reproducible})`);
  }
  writeFileSync(run.path("results.md"), `${md.join("\n")}\n`);
  const seconds = (performance.now() - started) / 1000;
  const summary = {
    seconds,
    backend: backend.describe(),
    models: results.map((r) => ({
      model: r.model,
      describe: r.describe,
      params: r.params,
      trainSize: r.trainSize,
      testSize: r.testSize,
      epochs: r.epochs,
      iterations: r.iterations,
      step: r.step,
      radii: r.radii,
      seconds: r.seconds,
      secondsPerStep: r.secondsPerStep,
      reproducible: r.reproducible,
      table3: table3Rows(r),
    })),
  };
  run.writeSummary(summary);
  io.log(`total ${seconds.toFixed(1)} s; run directory: ${run.dir}`);
  return { runDir: run.dir, models: results, seconds, backend: backend.describe() };
}

function sumSquares(w: FloatArray): number {
  let s = 0;
  for (let i = 0; i < w.length; i++) s += w[i] * w[i];
  return s;
}

/** Table III rows: non-smooth, each ε, and all smoothed networks together (the paper's row). */
function table3Rows(r: SmoothingModelResult): Row[] {
  const groups: { label: string; runs: SmoothingRunResult[] }[] = [
    { label: "non-smooth", runs: r.runs.filter((x) => x.epsilon === 0) },
    ...[...new Set(r.runs.filter((x) => x.epsilon > 0).map((x) => x.epsilon))].map((e) => ({
      label: `ε = ${e}`,
      runs: r.runs.filter((x) => x.epsilon === e),
    })),
    { label: "smoothed (all ε)", runs: r.runs.filter((x) => x.epsilon > 0) },
  ];
  return groups.map((g) => {
    const tl = meanStd(g.runs.map((x) => x.trainLoss));
    const sl = meanStd(g.runs.map((x) => x.testLoss));
    const ta = meanStd(g.runs.map((x) => x.trainAccuracy));
    const sa = meanStd(g.runs.map((x) => x.testAccuracy));
    const fd = meanStd(g.runs.map((x) => x.finalDistance));
    return {
      network: g.label,
      runs: g.runs.length,
      train_loss: tl.mean,
      train_loss_std: tl.std,
      test_loss: sl.mean,
      test_loss_std: sl.std,
      train_accuracy: ta.mean,
      train_accuracy_std: ta.std,
      test_accuracy: sa.mean,
      test_accuracy_std: sa.std,
      final_relative_distance: fd.mean,
      final_relative_distance_std: fd.std,
    };
  });
}

async function writeModelOutputs(
  run: RunDirectory,
  r: SmoothingModelResult,
  epsilons: number[],
  png: boolean,
  md: string[],
): Promise<void> {
  const m = r.model;
  writeFileSync(
    run.path(`${m}-step-grid.csv`),
    toCsv(r.stepGrid.map((g) => ({ step: g.step, objective: g.objective, chosen: String(g.step === r.step) }))),
  );
  writeFileSync(
    run.path(`${m}-runs.csv`),
    toCsv(
      r.runs.map((x) => ({
        epsilon: x.epsilon,
        seed: x.seed,
        train_loss: x.trainLoss,
        train_accuracy: x.trainAccuracy,
        test_loss: x.testLoss,
        test_accuracy: x.testAccuracy,
        final_relative_distance: x.finalDistance,
        diverged: String(x.diverged),
      })),
    ),
  );
  const t3 = table3Rows(r);
  writeFileSync(run.path(`${m}-table3.csv`), toCsv(t3));
  // Tables I–II: norms over the first 50 iterations, R_t, smoothing per layer for each ε.
  const tau = r.radii.length;
  const t12: Row[] = [];
  for (let t = 0; t < tau; t++) {
    const row: Row = {
      layer: t + 1,
      norm_first50_mean: r.normsFirst50[t].mean,
      norm_first50_std: r.normsFirst50[t].std,
      radius: r.radii[t],
    };
    for (const s of r.smoothings) {
      const l = s.result.layers.find((x) => x.layer === t + 1);
      row[`mu_eps_${s.epsilon}`] = l && l.parameters.length > 0 ? l.parameters[0] : 0;
      row[`accuracy_eps_${s.epsilon}`] = l && l.accuracies.length > 0 ? l.accuracies[0] : 0;
    }
    t12.push(row);
  }
  writeFileSync(run.path(`${m}-table12.csv`), toCsv(t12));
  writeFileSync(
    run.path(`${m}-certificates.csv`),
    toCsv(
      r.smoothings.map((s) => ({
        epsilon: s.epsilon,
        output_accuracy: s.result.outputAccuracy,
        objective_accuracy: s.result.objective.accuracy,
        chain_bound: s.result.certificate.chain.bound,
        chain_lipschitz: s.result.certificate.chain.lipschitz,
        chain_smoothness: s.result.certificate.chain.smoothness,
        objective_smoothness: s.result.certificate.smoothness,
        certified_step: s.result.certificate.stepSize,
      })),
    ),
  );
  const eps1 = r.smoothings.find((s) => s.epsilon === 1) ?? r.smoothings[r.smoothings.length - 1];
  // Per-layer file of the report (src/report/schema.ts): smoothing.json for the first model, and
  // <model>-smoothing.json for each.
  const perLayer = {
    title: `Smoothing per layer (ε = ${eps1.epsilon}, ${m})`,
    layers: r.radii.map((_, t) => String(t + 1)),
    quantities: {
      radius: r.radii,
      mu: r.radii.map((_, t) => {
        const l = eps1.result.layers.find((x) => x.layer === t + 1);
        return l?.parameters.length ? l.parameters[0] : 0;
      }),
    },
    log: true,
  };
  run.writeJson(`${m}-smoothing.json`, perLayer);
  if (md.length <= 2) run.writeJson("smoothing.json", perLayer);
  const fig: Row[] = r.distances.map((d) => ({
    epsilon: d.epsilon === 0 ? "control: non-smooth, init ×(1 + 1e-7·N(0,1))" : `log10 ε = ${Math.round(Math.log10(d.epsilon))}`,
    iteration: d.iteration,
    relative_distance: d.mean,
    std: d.std,
  }));
  writeFileSync(run.path(`${m}-figure4.csv`), toCsv(fig));
  await plotLines(fig, {
    dir: run.plotsDir,
    name: `${m}-figure4`,
    x: "iteration",
    y: "relative_distance",
    color: "epsilon",
    title: `${m}: ‖w_ε(k) − w(k)‖/‖w(k)‖ (mean over seeds)`,
    yTitle: "relative distance",
    logY: true,
    png,
  });

  const pm = (mean: number, std: number, f: (x: number) => string) => `${f(mean)} ± ${f(std)}`;
  md.push(
    `## ${r.describe}`,
    "",
    `${r.params} parameters; ${r.trainSize} training / ${r.testSize} test samples; ${r.epochs} epoch(s) = ${r.iterations} iterations of SGD; step ${r.step} (burn-in grid: ${r.stepGrid.map((g) => `${g.step} → ${fe(g.objective, 3)}`).join(", ")}); ${(r.secondsPerStep * 1000).toFixed(0)} ms per step; ${r.seconds.toFixed(0)} s in all. Pass 2 reproduces pass 1: ${r.reproducible}.`,
    "",
    "Table III analogue (mean ± std over seeds; loss = mean logistic loss without the L2 term; accuracy in %):",
    "",
    "| network | runs | train loss | test loss | train acc. | test acc. | final ‖w_ε − w‖/‖w‖ |",
    "|---|---|---|---|---|---|---|",
    ...t3.map(
      (x) =>
        `| ${x.network} | ${x.runs} | ${pm(x.train_loss as number, x.train_loss_std as number, (v) => fe(v))} | ${pm(x.test_loss as number, x.test_loss_std as number, (v) => fe(v))} | ${pm(x.train_accuracy as number, x.train_accuracy_std as number, pct)} | ${pm(x.test_accuracy as number, x.test_accuracy_std as number, pct)} | ${pm(x.final_relative_distance as number, x.final_relative_distance_std as number, (v) => fe(v))} |`,
    ),
    "",
    `Tables I–II analogue: ‖u_t‖ over the first 50 iterations (mean ± std, all seeds), R_t = max along the runs, and the smoothing chosen (per-coordinate μ of SmoothReLU) for ε = ${eps1.epsilon}:`,
    "",
    `| layer | ${r.radii.map((_, t) => t + 1).join(" | ")} |`,
    `|---|${r.radii.map(() => "---").join("|")}|`,
    `| param. norm | ${r.normsFirst50.map((s) => `${s.mean.toFixed(2)} ± ${s.std.toFixed(2)}`).join(" | ")} |`,
    `| R_t | ${r.radii.map((x) => x.toFixed(2)).join(" | ")} |`,
    `| smoothing μ | ${t12.map((x) => fe(x[`mu_eps_${eps1.epsilon}`] as number, 1)).join(" | ")} |`,
    "",
    "Figure 4 analogue: relative distance ‖w_ε(k) − w(k)‖/‖w(k)‖ (mean over seeds) at a few iterations:",
    "",
  );
  const marks = [1, 10, 20, 50, 100, 200, 500, 1000, r.iterations].filter((k, i, a) => k <= r.iterations && a.indexOf(k) === i);
  md.push(`| ε | ${marks.map((k) => `k = ${k}`).join(" | ")} |`, `|---|${marks.map(() => "---").join("|")}|`);
  for (const e of [...epsilons, 0]) {
    if (!r.distances.some((d) => d.epsilon === e)) continue;
    const cells = marks.map((k) => fe(r.distances.find((d) => d.epsilon === e && d.iteration === k)?.mean ?? Number.NaN));
    md.push(`| ${e === 0 ? "control (non-smooth, init perturbed by 1e-7 relative)" : e} | ${cells.join(" | ")} |`);
  }
  md.push("");
}

const OPTIONS: readonly ExperimentOption[] = [
  { key: "scale", type: "number", description: "fraction of the training data and of the paper's 200 epochs", default: 0.06 },
  { key: "models", type: "strings", description: "networks: mlp (MNIST), convnet (CIFAR-10)", default: ["mlp", "convnet"] },
  { key: "epsilons", type: "numbers", description: "objective accuracies ε", default: DEFAULT_EPSILONS },
  { key: "seeds", type: "int", description: "seeds shared by the smooth and non-smooth runs", default: 2 },
  { key: "width", type: "number", description: "multiplier of the MLP widths (4000, 1000, 4000)", default: 0.25 },
  { key: "stepGrid", type: "numbers", description: "step sizes tried in the burn-in", default: [0.003, 0.01, 0.03, 0.1, 0.3, 1] },
  { key: "burnIn", type: "int", description: "burn-in iterations of the step tuning", default: 10 },
  { key: "batchSize", type: "int", description: "SGD mini-batch size", default: 256 },
  { key: "l2", type: "number", description: "λ of (λ/2)‖u‖²", default: 1e-6 },
  { key: "trainSamples", type: "int", description: "training samples (overrides --scale)" },
  { key: "epochs", type: "int", description: "epochs (overrides --scale)" },
  { key: "testSamples", type: "int", description: "test samples", default: 5000 },
  {
    key: "control",
    type: "boolean",
    description: "also run the non-smooth network from a 1e-7-perturbed start (Fig. 4 control)",
    default: true,
  },
  { key: "png", type: "boolean", description: "also write PNG plots", default: false },
];

/** `chainopt experiment smoothing`. */
export const smoothingExperiment: ExperimentDefinition = {
  name: "smoothing",
  description:
    "SGD on non-smooth networks vs their certified smoothings (Roulet & Harchaoui, On the Smoothing of Deep Networks, CISS 2021, Sec. V: MLP/MNIST, ConvNet/CIFAR-10)",
  options: OPTIONS,
  async run(given, io) {
    const opts = resolveOptions(OPTIONS, given) as SmoothingExperimentOptions;
    const r = await runSmoothingExperiment(opts, io);
    return {
      runDir: r.runDir,
      summary: {
        seconds: r.seconds,
        backend: r.backend,
        models: r.models.map((m) => ({ model: m.model, step: m.step, radii: m.radii, table3: table3Rows(m) })),
      },
    };
  },
};
