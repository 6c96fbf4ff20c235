import { createChain } from "../../chain/chain.js";
import type { ModelSpecInput } from "../../chain/spec.js";
import type { FloatArray } from "../../core/dtype.js";
import { portableBackend } from "../../core/portable.js";
import { createDataset, subsetDataset } from "../../data/dataset.js";
import { AutoencoderLoss } from "../../objectives/autoencoder.js";
import type { Batch } from "../../objectives/batch.js";
import { ConvexClusteringLoss, knnGaussianWeights } from "../../objectives/clustering.js";
import type { Loss } from "../../objectives/loss.js";
import { createObjective } from "../../objectives/objective.js";
import { createOptimizer } from "../../optim/aliases.js";
import { forward, valueAndGradient } from "../../oracles/first-order.js";
import { adjustedRandIndex, convexClusteringWithCount, kMeans } from "../../train/cluster-metrics.js";
import { loadDataset } from "../datasets.js";
import { type ExperimentDefinition, type ExperimentIO, type ExperimentOption, resolveOptions, silentIO } from "./experiment.js";
import { ExperimentProtocol } from "./protocol.js";

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
  /** Continue the experiment in this folder (same options): finished runs are read back, an interrupted one resumes. */
  resume?: string;
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

function checkPositive(name: string, v: number, integer: boolean): void {
  if (!(Number.isFinite(v) && v > 0) || (integer && !Number.isInteger(v)))
    throw new Error(`${name}: expected a positive ${integer ? "integer" : "number"}, got ${v}`);
}

/**
 * Runs the experiment as a protocol (src/node/experiments/protocol.ts): per data set, the deep
 * clustering network and the auto-encoder are trained full-batch (one Adam step per epoch) as runs
 * `<data set>-deep` and `<data set>-autoencoder` under `runs/`; the loss of the final parameters
 * and the last inner solve's accuracy are recorded with the last epoch (metrics.jsonl). Writes
 * results.md, results.csv and summary.json. With `resume` set to an interrupted experiment's
 * folder, it continues there (finished runs are read back, an interrupted one resumes).
 */
export async function runClusteringExperiment(options: ClusteringExperimentOptions = {}, io: ExperimentIO = silentIO) {
  const names = options.datasets ?? ["iris", "wine", "digits"];
  const samples = options.samples ?? 300;
  const hidden = options.hidden ?? 32;
  const epochs = options.epochs ?? 150;
  const lr = options.lr ?? 0.01;
  const neighbors = options.neighbors ?? 10;
  const seed = options.seed ?? 0;
  const pool = options.pool ?? 4;
  // Every option, and every data set, is checked before anything is written.
  for (const name of names)
    if (!(CLUSTERING_DATASETS as readonly string[]).includes(name))
      throw new Error(`datasets: expected one of ${CLUSTERING_DATASETS.join(", ")}, got "${name}"`);
  if (names.length === 0) throw new Error("datasets: expected at least one data set");
  if (names.includes("mnist") && !(Number.isInteger(pool) && pool >= 1 && 28 % pool === 0))
    throw new Error(`pool: expected a divisor of 28 (1, 2, 4, 7, 14, 28), got ${pool}`);
  for (const [k, v] of [
    ["samples", samples],
    ["hidden", hidden],
    ["epochs", epochs],
    ["neighbors", neighbors],
    ...(options.code === undefined ? [] : [["code", options.code] as const]),
  ] as const)
    checkPositive(k, v, true);
  checkPositive("lr", lr, false);
  const sets = [];
  for (const name of names) sets.push({ name, ...(await loadClusteringData(name, samples, pool)) });
  const config = { datasets: names, samples, hidden, code: options.code ?? null, epochs, lr, neighbors, pool, seed };
  const protocol = ExperimentProtocol.begin(
    "deep-clustering",
    { out: options.out, root: options.root, resume: options.resume },
    config,
    io.signal,
  );
  const rows: ClusteringRow[] = [];
  try {
    for (const set of sets) rows.push(await clusterDataset(protocol, set, { hidden, code: options.code, epochs, lr, neighbors, seed }, io));
  } catch (error) {
    // Interrupted (or failed): free the folder for `resume`, also from this process.
    protocol.release();
    throw error;
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
  protocol.text("results.md", `${md}\n`);
  protocol.table(
    "results",
    rows.map((r) => ({
      dataset: r.dataset,
      samples: r.samples,
      inputs: r.inputs,
      classes: r.classes,
      kmeans_raw_ari: r.kmeansRaw,
      convex_raw_ari: r.convexRaw.ari,
      convex_raw_clusters: r.convexRaw.clusters,
      convex_raw_lambda: r.convexRaw.lambda,
      deep_ari: r.deep.ari,
      deep_clusters: r.deep.clusters,
      deep_lambda: r.deep.lambda,
      deep_train_lambda: r.deep.trainLambda,
      deep_kmeans_ari: r.deep.kmeansAri,
      deep_loss0: r.deep.loss0,
      deep_loss: r.deep.loss,
      deep_inner_accuracy: r.deep.innerAccuracy,
      deep_inner_iterations: r.deep.innerIterations,
      autoencoder_kmeans_ari: r.autoencoder.kmeansAri,
      autoencoder_loss0: r.autoencoder.loss0,
      autoencoder_loss: r.autoencoder.loss,
      seconds_kmeans_raw: r.seconds.kmeansRaw,
      seconds_convex_raw: r.seconds.convexRaw,
      seconds_deep: r.seconds.deep,
      seconds_autoencoder: r.seconds.autoencoder,
    })),
  );
  protocol.finish({ rows });
  return { runDir: protocol.dir, rows };
}

/** One data set of the experiment: the four methods of the module comment. */
async function clusterDataset(
  protocol: ExperimentProtocol,
  set: Awaited<ReturnType<typeof loadClusteringData>> & { name: string },
  o: { hidden: number; code?: number; epochs: number; lr: number; neighbors: number; seed: number },
  io: ExperimentIO,
): Promise<ClusteringRow> {
  const { name, x, n, d, k, truth } = set;
  const { hidden, epochs, lr, neighbors, seed } = o;
  const p = o.code ?? k;
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
  // The inputs in float64 (a float64 data set: the float64 chains see them unrounded), all in one batch.
  const data = { train: createDataset({ name, inputShape: [d], x, labels: truth, classes: k }) };
  const batch: Batch = { x, size: n };
  // Full-batch Adam through the training API: one step per epoch, in sample order. With the last
  // epoch, the objective at the final parameters (training mode, the inner solve warm-started
  // from the last step's) and that solve's accuracy are recorded in metrics.jsonl.
  const train = async (run: string, spec: ModelSpecInput, loss: Loss, runEpochs: number) => {
    const chain = createChain(spec, { dtype: "float64", backend: portableBackend });
    const objective = createObjective(loss);
    const started = performance.now();
    const result = await protocol.train(run, chain, data, {
      objective,
      optimizer: createOptimizer("adam", { lr }),
      optimizerName: "adam",
      learningRate: lr,
      batchSize: n,
      shuffle: false,
      seed,
      epochs: runEpochs,
      // Hundreds of tiny epochs: about 20 checkpoints per run (and one on Ctrl-C), not one per step.
      checkpointEvery: Math.max(1, Math.ceil(runEpochs / 20)),
      epochMetrics: (_record, trainer) => {
        if (trainer.epoch < runEpochs) return undefined;
        const value = valueAndGradient(chain, objective, trainer.w, batch, { training: true }).loss;
        const inner = loss instanceof ConvexClusteringLoss ? loss.last?.solution : undefined;
        return { final_loss: value, ...(inner ? { inner_accuracy: inner.accuracy, inner_iterations: inner.iterations } : {}) };
      },
    });
    const last = result.epochs[result.epochs.length - 1] ?? {};
    const number = (key: string) => (typeof last[key] === "number" ? (last[key] as number) : Number.NaN);
    return {
      chain,
      w: result.params,
      loss0: result.history[0]?.trainLoss ?? Number.NaN,
      loss: number("final_loss"),
      innerAccuracy: number("inner_accuracy"),
      innerIterations: number("inner_iterations"),
      // Wall-clock seconds of the training (all sessions) rather than of this call.
      extraSeconds: result.seconds - (performance.now() - started) / 1000,
    };
  };
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
  const clusteringLoss = new ConvexClusteringLoss({ lambda: trainLambda, neighbors, tolerance: 1e-4, maxIterations: 3000 });
  const deepRun = await train(`${name}-deep`, spec, clusteringLoss, epochs);
  const out = Float64Array.from(forward(deepRun.chain, deepRun.w, x, n, { training: true }));
  const deepPath = convexClusteringWithCount(out, n, p, edges, k, PATH);
  const tDeep = lap() - tKmeans - tConvex + deepRun.extraSeconds;
  const deep = {
    ari: adjustedRandIndex(deepPath.labels, truth),
    clusters: deepPath.clusters,
    lambda: deepPath.lambda,
    trainLambda,
    kmeansAri: adjustedRandIndex(kMeans(out, n, p, k, { seed }).labels, truth),
    loss0: deepRun.loss0,
    loss: deepRun.loss,
    innerAccuracy: deepRun.innerAccuracy,
    innerIterations: deepRun.innerIterations,
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
  const aeStart = lap();
  const ae = await train(`${name}-autoencoder`, aeSpec, new AutoencoderLoss(), epochs * 4);
  const encoderSpec: ModelSpecInput = { input: [d], layers: aeSpec.layers.slice(0, 4) };
  const encoder = createChain(encoderSpec, { dtype: "float64", backend: portableBackend });
  const codes = Float64Array.from(forward(encoder, ae.w.subarray(0, encoder.paramSize) as FloatArray, x, n));
  const autoencoder = { kmeansAri: adjustedRandIndex(kMeans(codes, n, p, k, { seed }).labels, truth), loss0: ae.loss0, loss: ae.loss };
  const seconds = { kmeansRaw: tKmeans, convexRaw: tConvex, deep: tDeep, autoencoder: lap() - aeStart + ae.extraSeconds };
  io.log(
    `  auto-encoder (loss ${ae.loss0.toPrecision(3)} → ${ae.loss.toPrecision(3)}): k-means on codes ARI ${autoencoder.kmeansAri.toFixed(3)}`,
  );
  return { dataset: name, samples: n, inputs: d, classes: k, kmeansRaw, convexRaw, deep, autoencoder, seconds };
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
