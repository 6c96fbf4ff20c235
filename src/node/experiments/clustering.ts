import { createChain } from "../../chain/chain.js";
import type { ModelSpecInput } from "../../chain/spec.js";
import type { FloatArray } from "../../core/dtype.js";
import { portableBackend } from "../../core/portable.js";
import { subsetDataset } from "../../data/dataset.js";
import { AutoencoderLoss } from "../../objectives/autoencoder.js";
import type { Batch } from "../../objectives/batch.js";
import { ConvexClusteringLoss, knnGaussianWeights } from "../../objectives/clustering.js";
import { createObjective, type Objective } from "../../objectives/objective.js";
import { createOptimizer } from "../../optim/aliases.js";
import { applyUpdates } from "../../optim/transform.js";
import { forward, valueAndGradient } from "../../oracles/first-order.js";
import { adjustedRandIndex, convexClusteringWithCount, kMeans } from "../../train/cluster-metrics.js";
import { writeFileAtomic } from "../atomic.js";
import { loadDataset } from "../datasets.js";
import { RunDirectory } from "../run-dir.js";
import { type ExperimentDefinition, type ExperimentIO, type ExperimentOption, resolveOptions, silentIO } from "./experiment.js";

// Deep convex clustering (Roulet & Harchaoui, "An Elementary Approach…" (Allerton 2019), Sec. 2.2; docs/unsupervised.md): adjusted Rand
// index (ARI) against the true classes of
//   (1) k-means on the raw (standardized) inputs, k = number of classes (10 k-means++ restarts);
//   (2) convex clustering of the raw inputs, γ searched for k clusters;
//   (3) deep convex clustering: an MLP d-h-p (tanh) followed by batch-norm without affine part
//       (which keeps the outputs from collapsing: f ≥ 0 vanishes on fully fused outputs), trained
//       full-batch with Adam on the clustering objective with γ fixed at the value that gives k
//       clusters at initialization, then its outputs clustered by convex clustering (γ searched
//       for k clusters) and by k-means;
//   (4) k-means on the p-dimensional code of an auto-encoder d-h-p-h-d (tanh) trained with Adam.
// All convex clusterings use the same k-NN Gaussian weight graph, computed on the raw inputs.
// MNIST (the first n training images): pixels in [0, 1], average-pooled by `pool` × `pool`
// (28 → 28/pool per side; docs/unsupervised.md) and not standardized; the pooled images are the
// "raw inputs" of every method above. The inner solver costs O(E·q) per iteration (E = |k-NN
// edges| = O(n·k), q = the dimension clustered), so pooling bounds the raw convex clustering's q.

/** Options of {@link runClusteringExperiment}. */
export interface ClusteringExperimentOptions {
  datasets?: string[];
  /** Samples per data set (the first ones; digits has 1 797; mnist: the first training images). */
  samples?: number;
  hidden?: number;
  /** Output (code) dimension p (default: the number of classes). */
  code?: number;
  epochs?: number;
  lr?: number;
  neighbors?: number;
  /** MNIST: average pooling factor (a divisor of 28; default 4: 7 × 7 = 49 inputs; 1 = raw pixels). */
  pool?: number;
  seed?: number;
  out?: string;
  root?: string;
}

/** One data set's numbers. */
export interface ClusteringRow {
  dataset: string;
  samples: number;
  inputs: number;
  classes: number;
  kmeansRaw: number;
  convexRaw: { ari: number; clusters: number; lambda: number };
  deep: {
    ari: number;
    clusters: number;
    lambda: number;
    trainLambda: number;
    kmeansAri: number;
    loss0: number;
    loss: number;
    /** √(2 gap) of the last inner solve, and its iterations. */
    innerAccuracy: number;
    innerIterations: number;
  };
  autoencoder: { kmeansAri: number; loss0: number; loss: number };
  /** Wall-clock seconds of each method (k-means raw, convex raw path, deep training + its clusterings, auto-encoder). */
  seconds: { kmeansRaw: number; convexRaw: number; deep: number; autoencoder: number };
}

/** Data sets of the experiment. */
export const CLUSTERING_DATASETS = ["iris", "wine", "digits", "breast-cancer", "mnist"] as const;

/**
 * Average pooling of n square single-channel images (side × side, row-major) by f × f blocks
 * (f divides side): x'_{r,c} = (1/f²) Σ_{a,b < f} x_{fr+a, fc+b}.
 */
export function averagePool(x: ArrayLike<number>, n: number, side: number, f: number): Float64Array {
  if (!(Number.isInteger(f) && f >= 1 && side % f === 0)) throw new Error(`pool: expected a divisor of ${side}, got ${f}`);
  const s = side / f;
  const out = new Float64Array(n * s * s);
  for (let i = 0; i < n; i++)
    for (let r = 0; r < side; r++)
      for (let c = 0; c < side; c++)
        out[i * s * s + Math.floor(r / f) * s + Math.floor(c / f)] += x[i * side * side + r * side + c] / (f * f);
  return out;
}

/** The experiment's inputs for one data set: x (n × d, float64), labels, classes. */
async function loadClusteringData(name: string, samples: number, pool: number) {
  if (name === "mnist") {
    const ds = (await loadDataset("mnist", { limit: samples })).train;
    const n = ds.size;
    const x = averagePool(ds.x, n, 28, pool);
    return { x, n, d: x.length / n, k: ds.classes ?? 10, truth: ds.labels as Int32Array };
  }
  const loaded = await loadDataset(name, { standardize: true });
  const ds = subsetDataset(loaded.train, Math.min(samples, loaded.train.size));
  const n = ds.size;
  return { x: Float64Array.from(ds.x), n, d: ds.x.length / n, k: ds.classes ?? 2, truth: ds.labels as Int32Array };
}

/** The γ search for k clusters: 16 bisection steps, inner accuracy 1e-4·‖Ψ‖ (assignment tolerance 2e-4·‖Ψ‖). */
const PATH = { steps: 16, tolerance: 1e-4, maxIterations: 5000 } as const;

function train(spec: ModelSpecInput, objective: Objective, batch: Batch, epochs: number, lr: number, seed: number) {
  const chain = createChain(spec, { dtype: "float64", backend: portableBackend });
  const w = chain.initParams(seed) as Float64Array;
  const opt = createOptimizer("adam", { lr });
  let state = opt.init(w);
  let loss0 = Number.NaN;
  let loss = Number.NaN;
  for (let e = 0; e < epochs; e++) {
    const r = valueAndGradient(chain, objective, w, batch, { training: true });
    if (e === 0) loss0 = r.loss;
    loss = r.loss;
    const g = Float64Array.from(r.grad);
    state = opt.update(g, state, w, { step: e, backend: chain.backend });
    applyUpdates(w, g, chain.backend);
  }
  loss = valueAndGradient(chain, objective, w, batch, { training: true }).loss;
  return { chain, w, loss0, loss };
}

/** Runs the experiment and writes results.md and summary.json. */
export async function runClusteringExperiment(options: ClusteringExperimentOptions = {}, io: ExperimentIO = silentIO) {
  const names = options.datasets ?? ["iris", "wine", "digits"];
  const samples = options.samples ?? 300;
  const hidden = options.hidden ?? 32;
  const epochs = options.epochs ?? 150;
  const lr = options.lr ?? 0.01;
  const neighbors = options.neighbors ?? 10;
  const seed = options.seed ?? 0;
  const pool = options.pool ?? 4;
  for (const name of names)
    if (!(CLUSTERING_DATASETS as readonly string[]).includes(name))
      throw new Error(`datasets: expected one of ${CLUSTERING_DATASETS.join(", ")}, got "${name}"`);
  if (names.includes("mnist") && !(Number.isInteger(pool) && pool >= 1 && 28 % pool === 0))
    throw new Error(`pool: expected a divisor of 28 (1, 2, 4, 7, 14, 28), got ${pool}`);
  const run = RunDirectory.create({ out: options.out, root: options.root, name: "deep-clustering" });
  const rows: ClusteringRow[] = [];
  for (const name of names) {
    const { x, n, d, k, truth } = await loadClusteringData(name, samples, pool);
    const p = options.code ?? k;
    const clock = performance.now();
    const lap = () => (performance.now() - clock) / 1000;
    const edges = knnGaussianWeights(x, n, d, neighbors);
    const kmeansRaw = adjustedRandIndex(kMeans(x, n, d, k, { seed }).labels, truth);
    const tKmeans = lap();
    const raw = convexClusteringWithCount(x, n, d, edges, k, PATH);
    const tConvex = lap() - tKmeans;
    const convexRaw = { ari: adjustedRandIndex(raw.labels, truth), clusters: raw.clusters, lambda: raw.lambda };
    io.log(
      `${name}: n ${n}, d ${d}, k ${k}; k-means raw ARI ${kmeansRaw.toFixed(3)}; convex raw ARI ${convexRaw.ari.toFixed(3)} (${raw.clusters} clusters, γ ${raw.lambda.toPrecision(3)})`,
    );
    const batch: Batch = { x, size: n };
    // (3) Deep convex clustering.
    const spec: ModelSpecInput = {
      input: [d],
      layers: [{ type: "dense", units: hidden }, { type: "tanh" }, { type: "dense", units: p }, { type: "batchNorm", affine: false }],
    };
    const init = createChain(spec, { dtype: "float64", backend: portableBackend });
    const out0 = Float64Array.from(forward(init, init.initParams(seed), x, n, { training: true }));
    const trainLambda = convexClusteringWithCount(out0, n, p, edges, k, PATH).lambda;
    // Inner accuracy during training: √(2 gap) ≤ 1e-4·‖Ψ‖ or 3 000 fast-AMA iterations (warm-started
    // from the previous epoch's dual); the reached accuracy of the last solve is reported.
    const loss = new ConvexClusteringLoss({ lambda: trainLambda, neighbors, tolerance: 1e-4, maxIterations: 3000 });
    const deepRun = train(spec, createObjective(loss), batch, epochs, lr, seed);
    const out = Float64Array.from(forward(deepRun.chain, deepRun.w, x, n, { training: true }));
    const deepPath = convexClusteringWithCount(out, n, p, edges, k, PATH);
    const tDeep = lap() - tKmeans - tConvex;
    const deep = {
      ari: adjustedRandIndex(deepPath.labels, truth),
      clusters: deepPath.clusters,
      lambda: deepPath.lambda,
      trainLambda,
      kmeansAri: adjustedRandIndex(kMeans(out, n, p, k, { seed }).labels, truth),
      loss0: deepRun.loss0,
      loss: deepRun.loss,
      innerAccuracy: loss.last?.solution.accuracy ?? Number.NaN,
      innerIterations: loss.last?.solution.iterations ?? 0,
    };
    io.log(
      `  deep convex clustering (γ_train ${trainLambda.toPrecision(3)}, loss ${deep.loss0.toPrecision(3)} → ${deep.loss.toPrecision(3)}): ARI ${deep.ari.toFixed(3)} (${deep.clusters} clusters); k-means on its outputs ${deep.kmeansAri.toFixed(3)}`,
    );
    // (4) Auto-encoder features.
    const aeSpec: ModelSpecInput = {
      input: [d],
      layers: [
        { type: "dense", units: hidden },
        { type: "tanh" },
        { type: "dense", units: p },
        { type: "tanh" },
        { type: "dense", units: hidden },
        { type: "tanh" },
        { type: "dense", units: d },
      ],
    };
    const ae = train(aeSpec, createObjective(new AutoencoderLoss()), batch, epochs * 4, lr, seed);
    const encoderSpec: ModelSpecInput = { input: [d], layers: aeSpec.layers.slice(0, 4) };
    const encoder = createChain(encoderSpec, { dtype: "float64", backend: portableBackend });
    const codes = Float64Array.from(forward(encoder, ae.w.subarray(0, encoder.paramSize) as FloatArray, x, n));
    const autoencoder = { kmeansAri: adjustedRandIndex(kMeans(codes, n, p, k, { seed }).labels, truth), loss0: ae.loss0, loss: ae.loss };
    const seconds = { kmeansRaw: tKmeans, convexRaw: tConvex, deep: tDeep, autoencoder: lap() - tKmeans - tConvex - tDeep };
    io.log(
      `  auto-encoder (loss ${ae.loss0.toPrecision(3)} → ${ae.loss.toPrecision(3)}): k-means on codes ARI ${autoencoder.kmeansAri.toFixed(3)}`,
    );
    rows.push({ dataset: name, samples: n, inputs: d, classes: k, kmeansRaw, convexRaw, deep, autoencoder, seconds });
  }
  const f = (v: number) => v.toFixed(3);
  const sec = (v: number) => v.toFixed(1);
  const mnistNote = names.includes("mnist")
    ? ` mnist: the first n training images, pixels in [0, 1] average-pooled ${pool}×${pool} (${28 / pool}×${28 / pool} = ${(28 / pool) ** 2} inputs), not standardized.`
    : "";
  const md = [
    `Adjusted Rand index against the classes (n samples, first ones; k-NN graph k = ${neighbors}; MLP hidden ${hidden}, code p = ${options.code ?? "classes"}; Adam lr ${lr}, ${epochs} full-batch epochs (auto-encoder ${4 * epochs}); seed ${seed}).${mnistNote} Times: wall-clock seconds of k-means raw / convex raw (γ path) / deep convex (training and both clusterings) / auto-encoder (training and k-means).`,
    "",
    "| data set | n | d | k | k-means raw | convex raw (clusters) | deep convex (clusters) | k-means on deep outputs | k-means on AE codes | deep loss (start → end) | last inner √(2gap) (iterations) | time (s) |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ...rows.map(
      (r) =>
        `| ${r.dataset} | ${r.samples} | ${r.inputs} | ${r.classes} | ${f(r.kmeansRaw)} | ${f(r.convexRaw.ari)} (${r.convexRaw.clusters}) | ${f(r.deep.ari)} (${r.deep.clusters}) | ${f(r.deep.kmeansAri)} | ${f(r.autoencoder.kmeansAri)} | ${r.deep.loss0.toPrecision(3)} → ${r.deep.loss.toPrecision(3)} | ${r.deep.innerAccuracy.toPrecision(2)} (${r.deep.innerIterations}) | ${sec(r.seconds.kmeansRaw)} / ${sec(r.seconds.convexRaw)} / ${sec(r.seconds.deep)} / ${sec(r.seconds.autoencoder)} |`,
    ),
  ].join("\n");
  writeFileAtomic(run.path("results.md"), `${md}\n`);
  run.writeJson("summary.json", { rows });
  return { runDir: run.dir, rows };
}

const OPTIONS: readonly ExperimentOption[] = [
  {
    key: "datasets",
    type: "strings",
    description: "data sets: iris, wine, digits, breast-cancer, mnist",
    default: ["iris", "wine", "digits"],
  },
  { key: "samples", type: "int", description: "samples per data set (the first ones)", default: 300 },
  { key: "hidden", type: "int", description: "hidden width of the MLPs", default: 32 },
  { key: "code", type: "int", description: "output (code) dimension p (default: number of classes)" },
  { key: "epochs", type: "int", description: "full-batch Adam epochs (auto-encoder: 4×)", default: 150 },
  { key: "lr", type: "number", description: "Adam learning rate", default: 0.01 },
  { key: "neighbors", type: "int", description: "k of the k-NN Gaussian weights", default: 10 },
  { key: "pool", type: "int", description: "mnist: average pooling factor, a divisor of 28 (4: 7×7 inputs; 1: raw pixels)", default: 4 },
  { key: "seed", type: "int", description: "seed of initializations and k-means", default: 0 },
];

/** `chainopt experiment deep-clustering`. */
export const clusteringExperiment: ExperimentDefinition = {
  name: "deep-clustering",
  description:
    "deep convex clustering and auto-encoder features against k-means on raw inputs (adjusted Rand index; iris, wine, digits, mnist)",
  options: OPTIONS,
  async run(given, io) {
    const r = await runClusteringExperiment(resolveOptions(OPTIONS, given) as ClusteringExperimentOptions, io);
    return { runDir: r.runDir, summary: { rows: r.rows } };
  },
};
