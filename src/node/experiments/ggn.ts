import { availableParallelism, cpus } from "node:os";
import { Chain } from "../../chain/chain.js";
import { getPreset } from "../../chain/presets.js";
import { parseModelSpec } from "../../chain/spec.js";
import type { Dataset } from "../../data/dataset.js";
import { createObjective } from "../../objectives/objective.js";
import { createOptimizer } from "../../optim/aliases.js";
import type { Row } from "../../report/plots.js";
import { convergenceOrders } from "../../train/convergence-order.js";
import { evaluateDataset } from "../../train/evaluate.js";
import { secondOrderTrainingStepper } from "../../train/second-order.js";
import { loadDataset } from "../datasets.js";
import { bestBackend } from "../index.js";
import { type ExperimentDefinition, type ExperimentIO, type ExperimentOption, resolveOptions, silentIO } from "./experiment.js";
import { ExperimentProtocol } from "./protocol.js";

// Gram-Gauss-Newton against SGD and Adam on over-parameterized regression (docs/second-order.md;
// Cai et al., "Gram-Gauss-Newton Method" (arXiv:1905.11675): GGN converges fast, quadratically in the over-parameterized regime, where
// the empirical NTK J Jᵀ stays well conditioned).
//
// Protocol. Data sets: diabetes (442 × 10) and Boston housing (506 × 13) from Debian
// python3-sklearn, inputs and targets standardized with the training statistics; and a synthetic
// teacher–student set (src/data/synthetic.ts: x ~ N(0, I_10), y = a random tanh MLP 10-32-1 of x, no
// noise) with `teacherSamples` samples. Model: one hidden layer of `width` tanh units (the `mlp`
// preset, default 512 → 6 145 parameters for 10 inputs, more than the samples of every set: all
// three problems are over-parameterized), squared loss (1/(2N))Σ‖ŷ − y‖², float64, the same
// initialization (seed) for every method. Methods:
// - GGN (Cai et al., "Gram-Gauss-Newton Method" (arXiv:1905.11675)): w ← w − η Jᵀ(J Jᵀ + λI)⁻¹(f(w) − y) with η = 1, full batch by default
//   (`ggnBatch`), λ tuned on `dampingGrid`, `ggnEpochs` steps;
// - SGD and Adam, mini-batches of `batchSize` (reshuffled every epoch), learning rate tuned on
//   `sgdGrid` / `adamGrid`, `epochs` epochs.
// After every epoch the full training loss is evaluated (not timed): training loss against
// wall-clock time (training steps only) and against epochs. A run whose loss becomes non-finite is
// marked diverged. Choice per method and data set: among runs that reach the target loss
// (`target` × the initial loss), the fastest in wall-clock time; if none does, the lowest final loss.
// Runs stop early once the loss is below 1e-12 × the initial loss (float64 round-off territory).
//
// Runs. Every training run is one `ExperimentProtocol.train` (src/node/experiments/protocol.ts:
// `fitToRunDir` in `runs/<data set>-<method>-<value>/`, GGN as the trainer's `stepper`); the full
// training loss of each epoch is stored in its metrics.jsonl (`full_loss`), so that an interrupted
// experiment continues with `resume` (finished runs read back, the interrupted one resumed from its
// last checkpoint) and rebuilds the same tables. A run ended by a numerical fault is recorded by the
// protocol (`divergence: "record"`: the fault line of its metrics.jsonl) and read back as diverged.
//
// Scale: `scale` ∈ (0, 1] multiplies the epoch budgets (first-order: round(400·scale), GGN:
// max(2, round(20·scale))). Default scale 1: about 5 minutes on 2 shared cores.

/** Options of {@link runGgnExperiment}. */
export interface GgnExperimentOptions {
  scale?: number;
  /** Data sets among "diabetes", "boston", "teacher" (default all three). */
  datasets?: string[];
  /** Hidden width of the one-hidden-layer MLP (default 512). */
  width?: number;
  activation?: "tanh" | "softplus";
  /** Mini-batch size of SGD and Adam (default 32). */
  batchSize?: number;
  /** Batch size of GGN (0: full batch, the default). */
  ggnBatch?: number;
  /** Epochs of SGD and Adam (default round(400·scale)). */
  epochs?: number;
  /** Epochs (steps when full batch) of GGN (default max(2, round(20·scale))). */
  ggnEpochs?: number;
  sgdGrid?: number[];
  adamGrid?: number[];
  /** λ of GGN (default 1e-3, 1e-1, 1). */
  dampingGrid?: number[];
  /** Training samples of the teacher set (default 256). */
  teacherSamples?: number;
  /** Target: loss ≤ target × initial loss (default 1e-3). */
  target?: number;
  dtype?: "float32" | "float64";
  seed?: number;
  threads?: number;
  png?: boolean;
  out?: string;
  root?: string;
  /** Continue the experiment in this folder (same options; see {@link ExperimentProtocol}). */
  resume?: string;
}

/** One training run of the grid. */
export interface GgnRun {
  dataset: string;
  method: "ggn" | "sgd" | "adam";
  /** Learning rate (SGD, Adam) or damping λ (GGN). */
  hyper: number;
  /** Per evaluated epoch (0 = initialization): epoch, training seconds so far, full training loss. */
  curve: { epoch: number; seconds: number; loss: number }[];
  diverged: boolean;
  finalLoss: number;
  /** Seconds / epochs to reach the target (null: not reached). */
  secondsToTarget: number | null;
  epochsToTarget: number | null;
  chosen: boolean;
}

/** Result of {@link runGgnExperiment}. */
export interface GgnExperimentResult {
  runDir: string;
  runs: GgnRun[];
  datasets: { name: string; samples: number; inputs: number; parameters: number; initialLoss: number; targetLoss: number }[];
  seconds: number;
  backend: string;
}

export const GGN_DEFAULTS = {
  sgdGrid: [0.003, 0.01, 0.03],
  adamGrid: [3e-4, 1e-3, 3e-3],
  dampingGrid: [1e-3, 1e-1, 1],
} as const;

const label = (r: Pick<GgnRun, "method" | "hyper">) => `${r.method} (${r.method === "ggn" ? "λ" : "lr"} ${r.hyper})`;
const fmt = (x: number | null, digits = 3) => (x === null || !Number.isFinite(x) ? "—" : Number(x.toPrecision(digits)).toString());

async function loadRegression(name: string, o: { teacherSamples: number; seed: number }): Promise<Dataset> {
  if (name === "teacher") {
    const d = await loadDataset("synthetic-teacher", { teacher: { trainSize: o.teacherSamples, testSize: 0, widths: [32], seed: o.seed } });
    return { ...d.train, name: "teacher" };
  }
  const d = await loadDataset(name, { standardize: true });
  return { ...d.train, name };
}

/** Data sets of the experiment. */
export const GGN_DATASETS: readonly string[] = ["diabetes", "boston", "teacher"];

/** A run stops once its full training loss is at most this fraction of the initial loss (float64 round-off). */
const ROUND_OFF = 1e-12;

/** The options with defaults filled in, validated (each error names its option). */
function resolveGgnConfig(options: GgnExperimentOptions) {
  const scale = options.scale ?? 1;
  if (!(scale > 0 && scale <= 1)) throw new Error(`scale: expected a number in (0, 1], got ${scale}`);
  const cfg = {
    scale,
    datasets: options.datasets ?? [...GGN_DATASETS],
    width: options.width ?? 512,
    activation: options.activation ?? "tanh",
    batchSize: options.batchSize ?? 32,
    ggnBatch: options.ggnBatch ?? 0,
    epochs: options.epochs ?? Math.max(1, Math.round(400 * scale)),
    ggnEpochs: options.ggnEpochs ?? Math.max(2, Math.round(20 * scale)),
    sgdGrid: options.sgdGrid ?? [...GGN_DEFAULTS.sgdGrid],
    adamGrid: options.adamGrid ?? [...GGN_DEFAULTS.adamGrid],
    dampingGrid: options.dampingGrid ?? [...GGN_DEFAULTS.dampingGrid],
    teacherSamples: options.teacherSamples ?? 256,
    target: options.target ?? 1e-3,
    dtype: options.dtype ?? "float64",
    seed: options.seed ?? 0,
  };
  for (const k of ["width", "batchSize", "epochs", "ggnEpochs", "teacherSamples"] as const) {
    if (!(Number.isInteger(cfg[k]) && cfg[k] > 0)) throw new Error(`${k}: expected a positive integer, got ${cfg[k]}`);
  }
  if (!(Number.isInteger(cfg.ggnBatch) && cfg.ggnBatch >= 0)) throw new Error(`ggnBatch: expected an integer ≥ 0, got ${cfg.ggnBatch}`);
  if (!(Number.isInteger(cfg.seed) && cfg.seed >= 0)) throw new Error(`seed: expected an integer ≥ 0, got ${cfg.seed}`);
  if (!(cfg.target > 0 && cfg.target < 1)) throw new Error(`target: expected a number in (0, 1), got ${cfg.target}`);
  if (cfg.datasets.length === 0) throw new Error(`datasets: expected one or more of ${GGN_DATASETS.join(", ")}`);
  for (const d of cfg.datasets) {
    if (!GGN_DATASETS.includes(d)) throw new Error(`datasets: expected ${GGN_DATASETS.join(", ")}, got "${d}"`);
  }
  for (const k of ["sgdGrid", "adamGrid", "dampingGrid"] as const) {
    const g = cfg[k];
    if (g.length === 0 || g.some((x) => !(Number.isFinite(x) && x > 0)))
      throw new Error(`${k}: expected positive numbers, got ${JSON.stringify(g)}`);
  }
  if (cfg.activation !== "tanh" && cfg.activation !== "softplus")
    throw new Error(`activation: expected tanh or softplus, got "${cfg.activation}"`);
  if (cfg.dtype !== "float32" && cfg.dtype !== "float64") throw new Error(`dtype: expected float32 or float64, got "${cfg.dtype}"`);
  return cfg;
}

/**
 * Runs the experiment (see the module comment) as an {@link ExperimentProtocol}: one run directory
 * per training run under `runs/<data set>-<method>-<value>/`, then `grid.csv`, `curves.csv`,
 * `results.md`, `summary.json` and `plots/`. With `resume` set to such a folder, continues it.
 */
export async function runGgnExperiment(options: GgnExperimentOptions = {}, io: ExperimentIO = silentIO): Promise<GgnExperimentResult> {
  const started = performance.now();
  const cfg = resolveGgnConfig(options);
  const backend = bestBackend({ threads: options.threads, quiet: true });
  const sets: Dataset[] = [];
  for (const name of cfg.datasets) sets.push(await loadRegression(name, cfg));
  const objective = createObjective("squared");
  const protocol = ExperimentProtocol.begin(
    "ggn",
    { out: options.out, root: options.root, resume: options.resume },
    {
      ...cfg,
      ggnStepSize: 1,
      loss: "squared",
      standardize: true,
      selection: "fastest to the target loss, else lowest final training loss",
    },
    io.signal,
  );
  try {
    const runs: GgnRun[] = [];
    const datasets: GgnExperimentResult["datasets"] = [];
    for (const train of sets) {
      const name = train.name;
      const inputs = train.inputShape[0];
      const spec = parseModelSpec(getPreset("mlp", { input: [inputs], classes: 1, widths: [cfg.width], activation: cfg.activation }));
      const chain = new Chain(spec, { dtype: cfg.dtype, backend });
      // Every run starts from chain.initParams(seed).
      const initialLoss = evaluateDataset(chain, objective, chain.initParams(cfg.seed), train, {
        state: chain.initState(),
        batchSize: 4096,
      }).loss;
      const targetLoss = cfg.target * initialLoss;
      datasets.push({ name, samples: train.size, inputs, parameters: chain.paramSize, initialLoss, targetLoss });
      io.log(
        `${name}: ${train.size} samples × ${inputs} inputs, MLP ${inputs}-${cfg.width}-1 ${cfg.activation} (${chain.paramSize} parameters), initial loss ${fmt(initialLoss, 4)}, target ${fmt(targetLoss, 3)}`,
      );

      const trainOne = async (method: GgnRun["method"], hyper: number): Promise<GgnRun> => {
        const ggn = method === "ggn";
        let fullLoss = Number.NaN;
        const run = await protocol.train(
          `${name}-${method}-${hyper}`,
          chain,
          { train },
          {
            divergence: "record",
            objective,
            optimizer: createOptimizer(ggn ? "sgd" : method, { lr: ggn ? 1 : hyper }),
            optimizerName: method,
            learningRate: ggn ? 1 : hyper,
            stepper: ggn ? secondOrderTrainingStepper({ method: "ggn", damping: hyper, stepSize: 1, gradNorm: false }) : undefined,
            batchSize: ggn ? cfg.ggnBatch || train.size : cfg.batchSize,
            seed: cfg.seed,
            evalBatchSize: 4096,
            epochs: ggn ? cfg.ggnEpochs : cfg.epochs,
            // The full training loss after each epoch (outside the epoch's timed seconds), kept in
            // metrics.jsonl as `full_loss`.
            epochMetrics: (_r, t) => {
              fullLoss = t.evaluate(train).loss;
              return { fullLoss };
            },
            // Finished once the loss is non-finite (diverged) or at round-off level.
            callbacks: {
              onEpochEnd: (_r, t) => {
                if (!(Number.isFinite(fullLoss) && fullLoss > ROUND_OFF * initialLoss)) t.stopped = true;
                return undefined;
              },
            },
            config: { method, [ggn ? "damping" : "lr"]: hyper, data: name },
          },
        );
        // The curve from what the run recorded: epoch 0 is the initialization; seconds are the
        // cumulative training seconds of the epochs (EpochRecord.seconds, no validation here).
        const curve: GgnRun["curve"] = [{ epoch: 0, seconds: 0, loss: initialLoss }];
        let seconds = 0;
        let diverged = run.source === "diverged";
        for (const [i, record] of run.history.entries()) {
          const loss = Number(run.epochs[i]?.full_loss);
          if (!Number.isFinite(loss)) {
            diverged = true;
            break;
          }
          seconds += record.seconds;
          curve.push({ epoch: record.epoch, seconds, loss });
          if (loss <= ROUND_OFF * initialLoss) break;
        }
        const reached = curve.find((c) => c.loss <= targetLoss);
        const r: GgnRun = {
          dataset: name,
          method,
          hyper,
          curve,
          diverged,
          finalLoss: diverged ? Number.NaN : (curve.at(-1)?.loss ?? Number.NaN),
          secondsToTarget: reached ? reached.seconds : null,
          epochsToTarget: reached ? reached.epoch : null,
          chosen: false,
        };
        io.log(
          `  ${label(r).padEnd(20)} final loss ${fmt(r.finalLoss).padStart(9)} after ${curve.at(-1)?.epoch} epoch(s), ${fmt(seconds)} s; target ${reached ? `reached at epoch ${reached.epoch}, ${fmt(reached.seconds)} s` : "not reached"}${diverged ? " (diverged)" : ""}${run.source === "finished" ? " (read back)" : ""}`,
        );
        return r;
      };

      const grids: [GgnRun["method"], number[]][] = [
        ["ggn", cfg.dampingGrid],
        ["sgd", cfg.sgdGrid],
        ["adam", cfg.adamGrid],
      ];
      for (const [method, grid] of grids) {
        const mine: GgnRun[] = [];
        for (const h of grid) mine.push(await trainOne(method, h));
        const score = (r: GgnRun): [number, number] =>
          r.secondsToTarget !== null ? [0, r.secondsToTarget] : [1, Number.isFinite(r.finalLoss) ? r.finalLoss : Infinity];
        let best = mine[0];
        for (const r of mine) {
          const [a, b] = score(r);
          const [c, d] = score(best);
          if (a < c || (a === c && b < d)) best = r;
        }
        best.chosen = true;
        runs.push(...mine);
      }
    }

    // Tables.
    protocol.table(
      "grid",
      runs.map((r) => ({
        dataset: r.dataset,
        method: r.method,
        hyperparameter: r.method === "ggn" ? "damping" : "lr",
        value: r.hyper,
        epochs: r.curve.at(-1)?.epoch ?? 0,
        seconds: Number((r.curve.at(-1)?.seconds ?? 0).toFixed(3)),
        final_loss: r.finalLoss,
        seconds_to_target: r.secondsToTarget,
        epochs_to_target: r.epochsToTarget,
        diverged: String(r.diverged),
        chosen: String(r.chosen),
      })),
    );
    const curveRows: Row[] = [];
    for (const r of runs) {
      for (const c of r.curve) {
        curveRows.push({
          dataset: r.dataset,
          method: label(r),
          chosen: String(r.chosen),
          epoch: c.epoch,
          seconds: c.seconds,
          train_loss: c.loss,
        });
      }
    }
    protocol.table("curves", curveRows);
    protocol.text("results.md", markdown(cfg, datasets, runs));

    // Plots: the chosen run of each method, per data set.
    for (const d of datasets) {
      const rows = curveRows.filter((r) => r.dataset === d.name && r.chosen === "true");
      const base = { png: options.png ?? false, color: "method", y: "train_loss", logY: true, yTitle: "training loss" };
      await protocol.plot(rows, {
        ...base,
        x: "seconds",
        name: `${d.name}-loss-vs-time`,
        title: `${d.name}: training loss against wall-clock time (training steps only)`,
        xTitle: "seconds",
      });
      await protocol.plot(
        rows.filter((r) => (r.epoch as number) > 0),
        {
          ...base,
          x: "epoch",
          name: `${d.name}-loss-vs-epoch`,
          title: `${d.name}: training loss against epochs`,
          xTitle: "epoch",
          logX: true,
        },
      );
    }

    const seconds = (performance.now() - started) / 1000;
    const result: GgnExperimentResult = { runDir: protocol.dir, runs, datasets, seconds, backend: backend.describe() };
    protocol.finish({
      seconds,
      datasets,
      backend: { name: backend.name, threads: backend.threads, description: backend.describe() },
      machine: { cpu: cpus()[0]?.model ?? "unknown", cores: availableParallelism() },
      chosen: runs
        .filter((r) => r.chosen)
        .map((r) => ({
          dataset: r.dataset,
          method: r.method,
          hyper: r.hyper,
          finalLoss: r.finalLoss,
          secondsToTarget: r.secondsToTarget,
          epochsToTarget: r.epochsToTarget,
          // Observed order of convergence of GGN (train/convergence-order.ts).
          ...(r.method === "ggn" ? { orders: ggnOrders(r) } : {}),
        })),
    });
    for (const r of runs.filter((x) => x.method === "ggn" && x.chosen)) {
      const o = ggnOrders(r);
      io.log(
        `${r.dataset}: GGN observed order log e_{k+1}/log e_k = ${o.logRatio.map((x) => fmt(x.order)).join(", ") || "—"} (quadratic: → 2)`,
      );
    }
    io.log(`total ${seconds.toFixed(1)} s; run directory: ${protocol.dir}`);
    return result;
  } finally {
    protocol.release();
  }
}

/**
 * Observed orders of convergence of a GGN run, with the error e_k = √(L_k/L_0) (the relative
 * residual norm ‖ψ(w_k) − y‖/‖ψ(w_0) − y‖: the over-parameterized problems interpolate, L* = 0).
 */
export function ggnOrders(r: Pick<GgnRun, "curve">): ReturnType<typeof convergenceOrders> {
  const l0 = r.curve[0]?.loss ?? Number.NaN;
  return convergenceOrders(r.curve.map((c) => Math.sqrt(c.loss / l0)));
}

function markdown(
  cfg: { target: number; width: number; activation: string; batchSize: number; ggnBatch: number; epochs: number; ggnEpochs: number },
  datasets: GgnExperimentResult["datasets"],
  runs: GgnRun[],
): string {
  const lines = [
    `MLP d-${cfg.width}-1 (${cfg.activation}), squared loss, float64; GGN η = 1, ${cfg.ggnBatch || "full"} batch, ${cfg.ggnEpochs} epochs; SGD/Adam batch ${cfg.batchSize}, ${cfg.epochs} epochs. Target: loss ≤ ${cfg.target} × initial loss.`,
    "",
    "| data set | n | p | method (chosen) | time to target (s) | epochs to target | final loss | epochs run | time (s) |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  for (const d of datasets) {
    for (const r of runs.filter((x) => x.dataset === d.name && x.chosen)) {
      lines.push(
        `| ${d.name} | ${d.samples} | ${d.parameters} | ${label(r)} | ${fmt(r.secondsToTarget)} | ${r.epochsToTarget ?? "—"} | ${fmt(r.finalLoss)} | ${r.curve.at(-1)?.epoch} | ${fmt(r.curve.at(-1)?.seconds ?? 0)} |`,
      );
    }
  }
  lines.push(
    "",
    "Observed order of convergence of the chosen GGN runs (Cai et al., arXiv:1905.11675, claim quadratic, 2), e_k = √(L_k/L_0): log e_{k+1}/log e_k, then log(e_{k+1}/e_k)/log(e_k/e_{k−1}):",
    "",
  );
  for (const r of runs.filter((x) => x.method === "ggn" && x.chosen)) {
    const o = ggnOrders(r);
    const list = (xs: { k: number; order: number }[]) => xs.map((x) => `${x.k}: ${fmt(x.order)}`).join(", ") || "—";
    lines.push(`- ${r.dataset}: ${list(o.logRatio)}; scale-free ${list(o.scaleFree)}`);
  }
  lines.push("", "Grid (final loss; time to target in s; **bold** = chosen):", "", "| data set | method | values |", "|---|---|---|");
  for (const d of datasets) {
    for (const m of ["ggn", "sgd", "adam"]) {
      const cells = runs
        .filter((r) => r.dataset === d.name && r.method === m)
        .map((r) => {
          const v = `${r.hyper} → ${r.diverged ? "diverged" : `${fmt(r.finalLoss)}; ${fmt(r.secondsToTarget)}`}`;
          return r.chosen ? `**${v}**` : v;
        });
      lines.push(`| ${d.name} | ${m} | ${cells.join(" · ")} |`);
    }
  }
  return `${lines.join("\n")}\n`;
}

const OPTIONS: readonly ExperimentOption[] = [
  { key: "scale", type: "number", description: "fraction of the default epoch budgets (400 first-order epochs, 20 GGN steps)", default: 1 },
  { key: "datasets", type: "strings", description: "data sets: diabetes, boston, teacher", default: ["diabetes", "boston", "teacher"] },
  { key: "width", type: "int", description: "hidden width of the MLP", default: 512 },
  { key: "activation", type: "string", description: "activation of the hidden layer", default: "tanh", choices: ["tanh", "softplus"] },
  { key: "batchSize", type: "int", description: "mini-batch size of SGD and Adam", default: 32 },
  { key: "ggnBatch", type: "int", description: "batch size of GGN (0: full batch)", default: 0 },
  { key: "epochs", type: "int", description: "epochs of SGD and Adam (overrides --scale)" },
  { key: "ggnEpochs", type: "int", description: "epochs of GGN (overrides --scale)" },
  { key: "sgdGrid", type: "numbers", description: "learning rates of SGD", default: GGN_DEFAULTS.sgdGrid },
  { key: "adamGrid", type: "numbers", description: "learning rates of Adam", default: GGN_DEFAULTS.adamGrid },
  { key: "dampingGrid", type: "numbers", description: "damping λ of GGN", default: GGN_DEFAULTS.dampingGrid },
  { key: "teacherSamples", type: "int", description: "training samples of the synthetic teacher set", default: 256 },
  { key: "target", type: "number", description: "target loss, relative to the initial loss", default: 1e-3 },
  { key: "dtype", type: "string", description: "precision", default: "float64", choices: ["float32", "float64"] },
  { key: "seed", type: "int", description: "seed of the initialization, data order and teacher", default: 0 },
  { key: "png", type: "boolean", description: "also write PNG plots", default: false },
];

/** `chainopt experiment ggn`. */
export const ggnExperiment: ExperimentDefinition = {
  name: "ggn",
  description: "Gram-Gauss-Newton against SGD and Adam (tuned) on diabetes, Boston housing and an over-parameterized teacher problem",
  options: OPTIONS,
  async run(given, io) {
    const opts = resolveOptions(OPTIONS, given) as GgnExperimentOptions;
    const r = await runGgnExperiment(opts, io);
    return {
      runDir: r.runDir,
      summary: {
        seconds: r.seconds,
        datasets: r.datasets,
        chosen: r.runs.filter((x) => x.chosen).map(({ curve: _c, chosen: _ch, ...x }) => x),
      },
    };
  },
};
