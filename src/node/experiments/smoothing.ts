import { availableParallelism, cpus } from "node:os";
import { layerNorms } from "../../certify/certificate.js";
import { Chain } from "../../chain/chain.js";
import { type ModelSpec, type ModelSpecInput, parseModelSpec } from "../../chain/spec.js";
import type { FloatArray } from "../../core/dtype.js";
import { Rng } from "../../core/rng.js";
import { type Dataset, subsetDataset } from "../../data/dataset.js";
import { createObjective } from "../../objectives/objective.js";
import { createOptimizer } from "../../optim/aliases.js";
import type { Row } from "../../report/plots.js";
import { type SmoothResult, smooth } from "../../smoothing/smooth.js";
import { evaluateDataset } from "../../train/evaluate.js";
import type { Trainer } from "../../train/trainer.js";
import { jsonSafe } from "../atomic.js";
import { loadDataset } from "../datasets.js";
import { bestBackend } from "../index.js";
import { type ExperimentDefinition, type ExperimentIO, type ExperimentOption, resolveOptions, silentIO } from "./experiment.js";
import { ExperimentProtocol, type ProtocolRun } from "./protocol.js";

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
//   Here the burn-in is one epoch over the first 10 × 256 training samples (from seed 0).
// - R_t = the largest ‖u_t‖ along the non-smooth runs (all seeds); ψ_ε smoothed on B_R so that the
//   OBJECTIVE is ε-accurate (Lemma 8, ν = ε/√2 for the logistic loss), ε ∈ {1e-6, …, 10}.
// - The non-smooth run of each seed is run twice: once to record R (pass 1: R_t is the largest
//   ‖u_t‖ over its iterations, recorded per epoch), then in lockstep with the smoothed runs of that
//   seed (pass 2, same initialization and batches, one epoch at a time), to measure
//   ‖w_ε(k) − w(k)‖/‖w(k)‖ at the end of every epoch (Fig. 4, whose x axis is the iteration k);
//   pass 2 reproduces pass 1 bit for bit (checked).
// - Every SGD run (burn-in, pass 1, pass 2) is one training run through the public training API:
//   `fitToRunDir` in `runs/<name>/` of the experiment folder (src/node/experiments/protocol.ts),
//   its per-epoch measurements (norms, distances) in its metrics.jsonl. An interrupted experiment
//   continues with `resume` (`--resume <folder>`): the tables equal an uninterrupted run's. A run
//   that diverges (a non-finite loss, gradient or parameter) is recorded as diverged.
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
  /** Continue the experiment in this folder (same options). */
  resume?: string;
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
  /**
   * Figure 4: per ε and epoch, mean and std over seeds of the relative distance at the end of the
   * epoch (`iteration` = epoch × iterations per epoch; ε = 0: the control run).
   */
  distances: { epsilon: number; epoch: number; iteration: number; mean: number; std: number }[];
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

/** The options with their defaults, validated (each error names its option); nothing is read or written. */
function resolveConfig(options: SmoothingExperimentOptions) {
  const scale = options.scale ?? 0.06;
  if (!(scale > 0 && scale <= 1)) throw new Error(`scale: expected a number in (0, 1], got ${scale}`);
  const cfg = {
    scale,
    models: options.models ?? ["mlp", "convnet"],
    epsilons: [...(options.epsilons ?? DEFAULT_EPSILONS)].sort((a, b) => a - b),
    seeds: options.seeds ?? 2,
    width: options.width ?? 0.25,
    stepGrid: options.stepGrid ?? [0.003, 0.01, 0.03, 0.1, 0.3, 1],
    burnIn: options.burnIn ?? 10,
    batchSize: options.batchSize ?? 256,
    l2: options.l2 ?? 1e-6,
    epochs: options.epochs ?? Math.max(1, Math.round(200 * scale)),
    trainSamples: options.trainSamples,
    testSamples: options.testSamples ?? 5000,
    control: options.control ?? true,
  };
  if (cfg.epsilons.length === 0 || cfg.epsilons.some((e) => !(e > 0 && Number.isFinite(e))))
    throw new Error(`epsilons: expected positive numbers, got ${cfg.epsilons}`);
  if (new Set(cfg.epsilons).size !== cfg.epsilons.length) throw new Error(`epsilons: expected distinct values, got ${cfg.epsilons}`);
  for (const [k, v] of Object.entries({
    seeds: cfg.seeds,
    burnIn: cfg.burnIn,
    batchSize: cfg.batchSize,
    epochs: cfg.epochs,
    testSamples: cfg.testSamples,
  })) {
    if (!(Number.isInteger(v) && v > 0)) throw new Error(`${k}: expected a positive integer, got ${v}`);
  }
  if (cfg.trainSamples !== undefined && !(Number.isInteger(cfg.trainSamples) && cfg.trainSamples > 0))
    throw new Error(`trainSamples: expected a positive integer, got ${cfg.trainSamples}`);
  if (!(cfg.width > 0 && Number.isFinite(cfg.width))) throw new Error(`width: expected a positive number, got ${cfg.width}`);
  if (cfg.stepGrid.length === 0 || cfg.stepGrid.some((x) => !(x > 0 && Number.isFinite(x))))
    throw new Error(`stepGrid: expected positive step sizes, got ${cfg.stepGrid}`);
  if (new Set(cfg.stepGrid).size !== cfg.stepGrid.length) throw new Error(`stepGrid: expected distinct step sizes, got ${cfg.stepGrid}`);
  if (!(cfg.l2 >= 0 && Number.isFinite(cfg.l2))) throw new Error(`l2: expected a number ≥ 0, got ${cfg.l2}`);
  if (cfg.models.length === 0 || new Set(cfg.models).size !== cfg.models.length)
    throw new Error(`models: expected distinct models among mlp, convnet, got ${cfg.models}`);
  for (const m of cfg.models) modelSetup(m, cfg.width);
  return cfg;
}

/**
 * Per-iteration parameter norms of a run, reported per epoch (its `epochMetrics`, stored in
 * metrics.jsonl): the largest ‖u_t‖ over the epoch's iterations (`radius<t>`), and the count, sum
 * and sum of squares of ‖u_t‖ over its iterations k ≤ 50 (Tables I–II). The trainer is the one
 * `onEpochStart` reports; the sums restart with each epoch, so that a resumed epoch counts once.
 */
function normTracker(chain: Chain) {
  const tau = chain.layers.filter((l) => l.biaffine >= 0).length;
  let trainer: Trainer | null = null;
  let max: number[] = [];
  let count = 0;
  let sum: number[] = [];
  let sumSq: number[] = [];
  const reset = () => {
    max = new Array<number>(tau).fill(0);
    sum = new Array<number>(tau).fill(0);
    sumSq = new Array<number>(tau).fill(0);
    count = 0;
  };
  reset();
  return {
    callbacks: {
      onEpochStart: (_epoch: number, t: Trainer) => {
        trainer = t;
        reset();
      },
      onStep: () => {
        if (!trainer) return;
        const n = layerNorms(chain, trainer.w);
        for (let t = 0; t < tau; t++) max[t] = Math.max(max[t], n[t]);
        if (trainer.step <= 50) {
          count++;
          for (let t = 0; t < tau; t++) {
            sum[t] += n[t];
            sumSq[t] += n[t] * n[t];
          }
        }
      },
    },
    epochMetrics: (): Record<string, number> => {
      const out: Record<string, number> = { first50Count: count };
      for (let t = 0; t < tau; t++) {
        out[`radius${t + 1}`] = max[t];
        out[`first50Sum${t + 1}`] = sum[t];
        out[`first50SumSq${t + 1}`] = sumSq[t];
      }
      return out;
    },
  };
}

const numberOf = (m: Record<string, unknown>, key: string): number => (typeof m[key] === "number" ? (m[key] as number) : Number(m[key]));

/**
 * Runs the experiment (see the module comment) as a protocol (src/node/experiments/protocol.ts):
 * every SGD run is `fitToRunDir` in `runs/<name>/` of the experiment folder, the tables are built
 * from what the runs recorded, and `resume` continues an interrupted experiment.
 */
export async function runSmoothingExperiment(
  options: SmoothingExperimentOptions = {},
  io: ExperimentIO = silentIO,
): Promise<SmoothingExperimentResult> {
  const started = performance.now();
  const cfg = resolveConfig(options);
  const { epsilons, seeds, batchSize, l2, epochs, control } = cfg;
  const backend = bestBackend({ threads: options.threads, quiet: true });
  const objective = createObjective("logistic", l2);
  const protocol = ExperimentProtocol.begin(
    "smoothing",
    { out: options.out, root: options.root, resume: options.resume },
    { ...cfg, loss: "logistic", target: "objective (Lemma 8)" },
    io.signal,
  );
  try {
    const results: SmoothingModelResult[] = [];
    const md: string[] = [
      `# Smoothing experiment (Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), Sec. V) — scale ${cfg.scale}, ${seeds} seed(s), ε ∈ {${epsilons.join(", ")}}`,
      "",
    ];
    // SGD with a constant step, as in Sec. V-A; the options every run of the experiment shares.
    const sgd = (step: number) => ({
      objective,
      optimizer: createOptimizer("sgd", { lr: step }),
      optimizerName: "sgd",
      learningRate: step,
      batchSize,
      divergence: "record" as const,
    });

    for (const name of cfg.models) {
      const t0 = performance.now();
      const setup = modelSetup(name, cfg.width);
      const fullN = setup.dataset === "mnist" ? 60000 : 50000;
      const trainSamples = cfg.trainSamples ?? Math.max(batchSize, Math.round(fullN * cfg.scale));
      const testSamples = cfg.testSamples;
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
      const probe = subsetDataset(train, 1024);
      const itersPerEpoch = Math.ceil(train.size / batchSize);
      const iterations = epochs * itersPerEpoch;
      io.log(
        `${setup.describe}: ${chain.paramSize} parameters, ${train.size} train / ${test.size} test, ${epochs} epoch(s) = ${iterations} iterations of ${batchSize}`,
      );

      // 1. Step tuning on the non-smooth network: a burn-in of `burnIn` iterations from seed 0,
      // i.e. one epoch over the first burnIn × batchSize training samples (the whole training set
      // for ⌈burnIn / iterations per epoch⌉ epochs when it is smaller).
      const burnInData =
        cfg.burnIn * batchSize <= train.size ? subsetDataset(train, cfg.burnIn * batchSize, `${setup.dataset}/burn-in`) : train;
      const burnInEpochs = burnInData === train ? Math.ceil(cfg.burnIn / itersPerEpoch) : 1;
      const tuning: { step: number; objective: number }[] = [];
      for (const step of cfg.stepGrid) {
        const run = await protocol.train(
          `${name}-burn-in-step-${step}`,
          chain,
          { train: burnInData },
          { ...sgd(step), seed: 0, epochs: burnInEpochs },
        );
        const ev =
          run.source === "diverged" ? { loss: Number.NaN } : evaluateDataset(chain, objective, run.params, probe, { batchSize: 256 });
        const value = Number.isFinite(ev.loss) ? ev.loss + 0.5 * l2 * sumSquares(run.params) : Number.POSITIVE_INFINITY;
        tuning.push({ step, objective: value });
        io.log(`  step ${step}: objective after ${cfg.burnIn} iterations ${fe(value, 4)}`);
      }
      const best = tuning.reduce((a, b) => (b.objective < a.objective ? b : a));
      const step = best.step;
      io.log(`  chosen step ${step}${step === Math.min(...cfg.stepGrid) || step === Math.max(...cfg.stepGrid) ? " (grid edge)" : ""}`);
      // Seed s: initialization chain.initParams(s), data order from seed 1000 + s (each run of the seed).
      const seedOptions = (seed: number) => ({ ...sgd(step), seed: 1000 + seed, initSeed: seed, epochs });

      // 2. Pass 1: the non-smooth runs; R_t = the largest ‖u_t‖ along them (initializations included).
      const tau = chain.layers.filter((l) => l.biaffine >= 0).length;
      const radii = new Array<number>(tau).fill(0);
      const first50 = { count: 0, sum: new Array<number>(tau).fill(0), sumSq: new Array<number>(tau).fill(0) };
      const pass1: FloatArray[] = [];
      let pass1Seconds = 0;
      for (let seed = 0; seed < seeds; seed++) {
        layerNorms(chain, chain.initParams(seed)).forEach((v, t) => {
          radii[t] = Math.max(radii[t], v);
        });
        const tracker = normTracker(chain);
        const run = await protocol.train(`${name}-seed-${seed}-non-smooth`, chain, { train }, { ...seedOptions(seed), ...tracker });
        for (const m of run.epochs) {
          first50.count += numberOf(m, "first50_count");
          for (let t = 0; t < tau; t++) {
            radii[t] = Math.max(radii[t], numberOf(m, `radius${t + 1}`));
            first50.sum[t] += numberOf(m, `first50_sum${t + 1}`);
            first50.sumSq[t] += numberOf(m, `first50_sum_sq${t + 1}`);
          }
        }
        pass1.push(run.params);
        pass1Seconds += run.seconds;
      }
      const secondsPerStep = pass1Seconds / (seeds * iterations);
      // Mean and sample standard deviation from the sums: var = (Σx² − (Σx)²/n)/(n − 1).
      const normsFirst50 = radii.map((_, t) => {
        const n = first50.count;
        const mean = n > 0 ? first50.sum[t] / n : Number.NaN;
        const variance = n > 1 ? Math.max(0, first50.sumSq[t] - first50.sum[t] * mean) / (n - 1) : 0;
        return { mean, std: Math.sqrt(variance) };
      });
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

      // 4. Pass 2, per seed: the non-smooth network again (the reference), each smoothed network
      // and, with `control`, the non-smooth network from a rounding-level perturbed start
      // (initialization × (1 + 1e-7·N(0, 1)) entry-wise, about one float32 ulp), trained in lockstep
      // one epoch at a time; after each epoch every run records ‖w_ε − w‖/‖w‖ against the
      // reference (Fig. 4, at the end of each epoch).
      const others = [
        ...smoothings.map((s) => ({ epsilon: s.epsilon, label: `eps-${s.epsilon}`, chain: s.result.chain })),
        ...(control ? [{ epsilon: 0, label: "control", chain }] : []),
      ];
      const dist: number[][][] = others.map(() => []); // [ε (then control)][epoch][seed]
      const runs: SmoothingRunResult[] = [];
      let reproducible = true;
      for (let seed = 0; seed < seeds; seed++) {
        const perturbed = chain.initParams(seed);
        const pr = new Rng(5000 + seed);
        for (let i = 0; i < perturbed.length; i++) perturbed[i] *= 1 + 1e-7 * pr.normal();
        let reference: ProtocolRun | null = null;
        const last: (ProtocolRun | null)[] = others.map(() => null);
        for (let e = 1; e <= epochs; e++) {
          const ref: ProtocolRun = await protocol.train(
            `${name}-seed-${seed}-reference`,
            chain,
            { train },
            { ...seedOptions(seed), epochs: e },
          );
          reference = ref;
          for (const [i, o] of others.entries()) {
            last[i] = await protocol.train(
              `${name}-seed-${seed}-${o.label}`,
              o.chain,
              { train },
              {
                ...seedOptions(seed),
                epochs: e,
                ...(o.label === "control" ? { params: perturbed.slice() } : {}),
                epochMetrics: (_record, trainer) => ({
                  distance: ref.source === "diverged" ? Number.NaN : relDistance(trainer.w, ref.params),
                }),
              },
            );
          }
          io.log(
            `  pass 2 seed ${seed}, epoch ${e}: ‖w_ε − w‖/‖w‖ ${others.map((o, i) => `${o.label} ${fe(numberOf(last[i]?.epochs[e - 1] ?? {}, "distance"))}`).join(", ")}`,
          );
        }
        if (!reference) throw new Error("epochs: expected at least one epoch");
        others.forEach((_, i) => {
          const byEpoch = new Map((last[i]?.epochs ?? []).map((m) => [m.epoch, numberOf(m, "distance")]));
          for (let e = 1; e <= epochs; e++) {
            if (!dist[i][e - 1]) dist[i][e - 1] = [];
            dist[i][e - 1][seed] = byEpoch.get(e) ?? Number.NaN;
          }
        });
        if (reference.source === "diverged" || relDistance(reference.params, pass1[seed]) !== 0) reproducible = false;
        const finals = [reference, ...last.slice(0, epsilons.length)];
        finals.forEach((r, i) => {
          const net = i === 0 ? chain : smoothings[i - 1].result.chain;
          const diverged = !r || r.source === "diverged";
          const nan = { loss: Number.NaN, accuracy: Number.NaN };
          const tr = r && !diverged ? evaluateDataset(net, objective, r.params, train, { batchSize: 500 }) : nan;
          const te = r && !diverged ? evaluateDataset(net, objective, r.params, test, { batchSize: 500 }) : nan;
          runs.push({
            model: name,
            epsilon: i === 0 ? 0 : epsilons[i - 1],
            seed,
            trainLoss: tr.loss,
            trainAccuracy: tr.accuracy ?? Number.NaN,
            testLoss: te.loss,
            testAccuracy: te.accuracy ?? Number.NaN,
            finalDistance: i === 0 ? 0 : r && !diverged ? relDistance(r.params, reference.params) : Number.NaN,
            diverged: diverged || !Number.isFinite(tr.loss),
          });
        });
        io.log(`  pass 2 seed ${seed}: non-smooth test acc ${pct(runs[runs.length - 1 - epsilons.length].testAccuracy)}%`);
      }
      const distances: SmoothingModelResult["distances"] = [];
      others.forEach((o, i) => {
        dist[i].forEach((perSeed, k) => {
          const s = meanStd(perSeed);
          distances.push({ epsilon: o.epsilon, epoch: k + 1, iteration: (k + 1) * itersPerEpoch, mean: s.mean, std: s.std });
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
      await writeModelOutputs(protocol, result, epsilons, options.png ?? false, md);
      io.log(`  ${name}: ${seconds.toFixed(1)} s (the reference repeats the non-smooth run: ${reproducible})`);
    }
    protocol.text("results.md", `${md.join("\n")}\n`);
    const seconds = (performance.now() - started) / 1000;
    protocol.finish({
      seconds,
      backend: backend.describe(),
      machine: { cpu: cpus()[0]?.model ?? "unknown", cores: availableParallelism() },
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
    });
    io.log(`total ${seconds.toFixed(1)} s; folder: ${protocol.dir}`);
    return { runDir: protocol.dir, models: results, seconds, backend: backend.describe() };
  } catch (error) {
    protocol.release();
    throw error;
  }
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
  protocol: ExperimentProtocol,
  r: SmoothingModelResult,
  epsilons: number[],
  png: boolean,
  md: string[],
): Promise<void> {
  const m = r.model;
  protocol.table(
    `${m}-step-grid`,
    r.stepGrid.map((g) => ({ step: g.step, objective: g.objective, chosen: String(g.step === r.step) })),
  );
  protocol.table(
    `${m}-runs`,
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
  );
  const t3 = table3Rows(r);
  protocol.table(`${m}-table3`, t3);
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
  protocol.table(`${m}-table12`, t12);
  protocol.table(
    `${m}-certificates`,
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
  protocol.text(`${m}-smoothing.json`, `${JSON.stringify(jsonSafe(perLayer), null, 2)}\n`);
  if (md.length <= 2) protocol.text("smoothing.json", `${JSON.stringify(jsonSafe(perLayer), null, 2)}\n`);
  const fig: Row[] = r.distances.map((d) => ({
    epsilon: d.epsilon === 0 ? "control: non-smooth, init ×(1 + 1e-7·N(0,1))" : `log10 ε = ${Math.round(Math.log10(d.epsilon))}`,
    epoch: d.epoch,
    iteration: d.iteration,
    relative_distance: d.mean,
    std: d.std,
  }));
  protocol.table(`${m}-figure4`, fig);
  await protocol.plot(fig, {
    name: `${m}-figure4`,
    x: "iteration",
    y: "relative_distance",
    color: "epsilon",
    title: `${m}: ‖w_ε(k) − w(k)‖/‖w(k)‖ at the end of each epoch (mean over seeds)`,
    yTitle: "relative distance",
    logY: true,
    png,
  });

  const pm = (mean: number, std: number, f: (x: number) => string) => `${f(mean)} ± ${f(std)}`;
  md.push(
    `## ${r.describe}`,
    "",
    `${r.params} parameters; ${r.trainSize} training / ${r.testSize} test samples; ${r.epochs} epoch(s) = ${r.iterations} iterations of SGD; step ${r.step} (burn-in grid: ${r.stepGrid.map((g) => `${g.step} → ${fe(g.objective, 3)}`).join(", ")}); ${(r.secondsPerStep * 1000).toFixed(0)} ms per step; ${r.seconds.toFixed(0)} s in all. The reference run of pass 2 reproduces pass 1: ${r.reproducible}.`,
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
    "Figure 4 analogue: relative distance ‖w_ε(k) − w(k)‖/‖w(k)‖ (mean over seeds) at the end of a few epochs (k = iterations):",
    "",
  );
  const marks = [1, 2, 5, 10, 20, 50, 100, 200, r.epochs].filter((e, i, a) => e <= r.epochs && a.indexOf(e) === i);
  const perEpoch = r.iterations / r.epochs;
  md.push(`| ε | ${marks.map((e) => `k = ${e * perEpoch}`).join(" | ")} |`, `|---|${marks.map(() => "---").join("|")}|`);
  for (const e of [...epsilons, 0]) {
    if (!r.distances.some((d) => d.epsilon === e)) continue;
    const cells = marks.map((k) => fe(r.distances.find((d) => d.epsilon === e && d.epoch === k)?.mean ?? Number.NaN));
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
