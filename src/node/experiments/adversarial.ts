import { availableParallelism, cpus } from "node:os";
import type { AttackNorm } from "../../adversarial/attack.js";
import { certifiedAccuracy, certifiedRadii, inputLipschitz, inputScale } from "../../adversarial/lipschitz.js";
import { AdversarialTransform, datasetRobustness, type TrainingAttack } from "../../adversarial/training.js";
import { Chain } from "../../chain/chain.js";
import { getPreset } from "../../chain/presets.js";
import { parseModelSpec } from "../../chain/spec.js";
import type { FloatArray } from "../../core/dtype.js";
import { fullBatch, subsetDataset } from "../../data/dataset.js";
import { createObjective } from "../../objectives/objective.js";
import { createOptimizer } from "../../optim/aliases.js";
import { forward } from "../../oracles/first-order.js";
import type { Row } from "../../report/plots.js";
import { inputDomainFor } from "../adversarial-train.js";
import { loadDataset } from "../datasets.js";
import { bestBackend } from "../index.js";
import { type ExperimentDefinition, type ExperimentIO, type ExperimentOption, resolveOptions, silentIO } from "./experiment.js";
import { ExperimentProtocol } from "./protocol.js";

// PGD adversarial training against width (Gao, Cai et al., "Convergence of Adversarial Training in Overparametrized Neural Networks", NeurIPS 2019, arXiv:1906.07916; docs/adversarial.md): the claim is
// that over-parameterized networks reach near-zero *robust* training loss min_w Σ_i max_{δ ∈ B}
// ℓ(f(w, x_i + δ), y_i) (Madry et al. 2018, arXiv:1706.06083, Eq. (2.1)) close to their
// initialization.
//
// Protocol. MNIST, the first `trainSamples` training and `testSamples` test images, pixels in
// [0, 1] normalized with MNIST's mean/std (the attack works in pixel units). One-hidden-layer ReLU
// MLPs 784-h-10 for h in `widths` (He initialization, the same seed), logistic loss, heavy-ball
// momentum 0.9 with a constant learning rate `lr`, batch `batchSize`, `epochs` epochs; every
// training batch is replaced by its PGD adversarial examples (ℓ∞ ball of radius `eps` by default,
// `steps` steps of 2.5 ε/steps, random start: Madry's min-max training). After every epoch: the
// robust training loss on the training subset (PGD with `evalSteps` steps, a fresh seeded
// generator), the clean training loss, and the relative weight movement ‖w_t − w₀‖/‖w₀‖. At the
// end: clean and robust test accuracy (PGD, `evalSteps` steps), the certified input Lipschitz
// constant, and certified ℓ2 accuracy at `certifyRadii` (src/adversarial/lipschitz.ts).
//
// Each width is one training run through the public training API (`fitToRunDir`, in
// `runs/width-<h>/` of the experiment folder, src/node/experiments/protocol.ts): the per-epoch
// numbers are written to its metrics.jsonl, so that an interrupted experiment resumes
// (`--resume <folder>`) and its tables equal those of an uninterrupted one.

/** Options of {@link runAdversarialExperiment}. */
export interface AdversarialExperimentOptions {
  widths?: number[];
  trainSamples?: number;
  testSamples?: number;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  eps?: number;
  norm?: AttackNorm;
  steps?: number;
  evalSteps?: number;
  certifyRadii?: number[];
  seed?: number;
  threads?: number;
  png?: boolean;
  out?: string;
  root?: string;
  /** Continue the experiment in this folder (same options). */
  resume?: string;
}

/** Per width: the curves and the final numbers. */
export interface AdversarialWidthResult {
  width: number;
  parameters: number;
  curve: {
    epoch: number;
    robustTrainLoss: number;
    robustTrainAccuracy: number;
    cleanTrainLoss: number;
    movement: number;
    seconds: number;
  }[];
  cleanTestAccuracy: number;
  robustTestAccuracy: number;
  certifiedLipschitz: number;
  medianCertifiedRadius: number;
  certifiedAccuracy: { eps: number; accuracy: number }[];
}

/** Result of {@link runAdversarialExperiment}. */
export interface AdversarialExperimentResult {
  runDir: string;
  widths: AdversarialWidthResult[];
  seconds: number;
}

function relativeMovement(w: FloatArray, w0: FloatArray): number {
  let d = 0;
  let n = 0;
  for (let i = 0; i < w.length; i++) {
    d += (w[i] - w0[i]) ** 2;
    n += w0[i] * w0[i];
  }
  return Math.sqrt(d / n);
}

/** The options with their defaults, validated (each error names its option); nothing is read or written. */
function resolveConfig(options: AdversarialExperimentOptions) {
  const cfg = {
    widths: options.widths ?? [32, 128, 512, 2048],
    trainSamples: options.trainSamples ?? 1000,
    testSamples: options.testSamples ?? 1000,
    epochs: options.epochs ?? 10,
    batchSize: options.batchSize ?? 64,
    lr: options.lr ?? 0.02,
    eps: options.eps ?? 0.1,
    norm: options.norm ?? "linf",
    steps: options.steps ?? 5,
    evalSteps: options.evalSteps ?? 10,
    certifyRadii: options.certifyRadii ?? [0.1, 0.25, 0.5],
    seed: options.seed ?? 0,
  };
  for (const k of ["trainSamples", "testSamples", "epochs", "batchSize", "steps", "evalSteps"] as const) {
    if (!(Number.isInteger(cfg[k]) && cfg[k] > 0)) throw new Error(`${k}: expected a positive integer, got ${cfg[k]}`);
  }
  if (cfg.widths.length === 0 || cfg.widths.some((w) => !(Number.isInteger(w) && w > 0)))
    throw new Error(`widths: expected positive integers, got ${cfg.widths}`);
  if (new Set(cfg.widths).size !== cfg.widths.length) throw new Error(`widths: expected distinct widths, got ${cfg.widths}`);
  if (!(cfg.eps >= 0)) throw new Error(`eps: expected a radius ≥ 0, got ${cfg.eps}`);
  if (cfg.norm !== "linf" && cfg.norm !== "l2") throw new Error(`norm: unknown norm ${JSON.stringify(cfg.norm)}; expected linf or l2`);
  if (!(cfg.lr > 0)) throw new Error(`lr: expected a positive number, got ${cfg.lr}`);
  if (cfg.certifyRadii.some((r) => !(r >= 0))) throw new Error(`certifyRadii: expected radii ≥ 0, got ${cfg.certifyRadii}`);
  if (!(Number.isInteger(cfg.seed) && cfg.seed >= 0)) throw new Error(`seed: expected an integer ≥ 0, got ${cfg.seed}`);
  return cfg;
}

/**
 * Runs the experiment as a protocol (src/node/experiments/protocol.ts): one training run per width
 * in `runs/width-<h>/` (`fitToRunDir`; the per-epoch robust loss and weight movement are stored in
 * its metrics.jsonl), then curves.csv, results.md, plots and summary.json. With `resume` set to the
 * folder of an interrupted experiment, finished runs are read back and the interrupted one resumes.
 */
export async function runAdversarialExperiment(
  options: AdversarialExperimentOptions = {},
  io: ExperimentIO = silentIO,
): Promise<AdversarialExperimentResult> {
  const cfg = resolveConfig(options);
  const backend = bestBackend({ threads: options.threads, quiet: true });
  const data = await loadDataset("mnist", { normalize: true });
  const train = subsetDataset(data.train, cfg.trainSamples);
  const test = subsetDataset(data.test ?? data.train, cfg.testSamples);
  const domain = inputDomainFor("mnist", true);
  if (!domain) throw new Error("mnist: no input box");
  const attack: TrainingAttack = { kind: "pgd", norm: cfg.norm, eps: cfg.eps, steps: cfg.steps, domain };
  const evalAttack: TrainingAttack = { ...attack, steps: cfg.evalSteps };
  const protocol = ExperimentProtocol.begin(
    "adversarial",
    { out: options.out, root: options.root, resume: options.resume },
    cfg,
    io.signal,
  );
  try {
    const objective = createObjective("logistic");
    const started = performance.now();
    const results: AdversarialWidthResult[] = [];
    const rows: Row[] = [];
    for (const width of cfg.widths) {
      const spec = parseModelSpec(getPreset("mlp", { input: [...train.inputShape], classes: 10, widths: [width], activation: "relu" }));
      const chain = new Chain(spec, { dtype: "float32", backend });
      // The initialization fitToRunDir uses (chain.initParams(seed)).
      const w0 = chain.initParams(cfg.seed);
      const measure = (w: FloatArray, epoch: number) => {
        const r = datasetRobustness(chain, objective.loss, w, train, evalAttack, { seed: 1000 + epoch });
        return {
          robustTrainLoss: r.robustLoss,
          robustTrainAccuracy: r.robustAccuracy,
          cleanTrainLoss: r.cleanLoss,
          movement: relativeMovement(w, w0),
        };
      };
      const say = (epoch: number, p: ReturnType<typeof measure>) =>
        io.log(
          `width ${width}, epoch ${epoch}: robust training loss ${p.robustTrainLoss.toFixed(4)} (robust acc ${(100 * p.robustTrainAccuracy).toFixed(1)}%), clean ${p.cleanTrainLoss.toFixed(4)}, ‖w−w₀‖/‖w₀‖ ${p.movement.toFixed(4)}`,
        );
      const start = measure(w0, 0);
      say(0, start);
      const run = await protocol.train(
        `width-${width}`,
        chain,
        { train },
        {
          objective,
          optimizer: createOptimizer("momentum", { lr: cfg.lr, momentum: 0.9 }),
          optimizerName: "momentum",
          learningRate: cfg.lr,
          batchSize: cfg.batchSize,
          seed: cfg.seed,
          epochs: cfg.epochs,
          // Madry's min-max training: every batch replaced by its PGD examples.
          batchTransform: new AdversarialTransform({ loss: objective.loss, attack, mix: 1, seed: cfg.seed + 1 }),
          epochMetrics: (record, trainer) => {
            const p = measure(trainer.w, record.epoch);
            say(record.epoch, p);
            return p;
          },
        },
      );
      // The curve from metrics.jsonl (the epoch-0 point is recomputed: it depends only on w₀).
      const num = (m: Record<string, unknown>, k: string) => (typeof m[k] === "number" ? (m[k] as number) : Number(m[k]));
      const curve: AdversarialWidthResult["curve"] = [
        { epoch: 0, ...start, seconds: 0 },
        ...run.epochs.map((m) => ({
          epoch: m.epoch,
          robustTrainLoss: num(m, "robust_train_loss"),
          robustTrainAccuracy: num(m, "robust_train_accuracy"),
          cleanTrainLoss: num(m, "clean_train_loss"),
          movement: num(m, "movement"),
          seconds: num(m, "wall"),
        })),
      ];
      for (const point of curve) rows.push({ width: String(width), ...point });
      const w = run.params;
      const rt = datasetRobustness(chain, objective.loss, w, test, evalAttack, { seed: 2000 });
      const lip = inputLipschitz(chain, w);
      const scale = inputScale(domain);
      const tb = fullBatch(test, chain.dtype);
      const out = Float64Array.from(forward(chain, w, tb.x, tb.size));
      const radii = certifiedRadii(chain, w, out, tb.labels as Int32Array, tb.size, lip, scale);
      const correct = [...radii.radius].filter((_, i) => radii.correct[i]).sort((a, b) => a - b);
      const res: AdversarialWidthResult = {
        width,
        parameters: chain.paramSize,
        curve,
        cleanTestAccuracy: rt.cleanAccuracy,
        robustTestAccuracy: rt.robustAccuracy,
        certifiedLipschitz: lip.lipschitz * scale,
        medianCertifiedRadius: correct.length > 0 ? correct[Math.floor(correct.length / 2)] : 0,
        certifiedAccuracy: cfg.certifyRadii.map((eps) => ({ eps, accuracy: certifiedAccuracy(radii, eps) })),
      };
      results.push(res);
      io.log(
        `width ${width} (${run.source}): clean test accuracy ${(100 * rt.cleanAccuracy).toFixed(2)}%, robust ${(100 * rt.robustAccuracy).toFixed(2)}%, certified Lipschitz ${res.certifiedLipschitz.toPrecision(4)}, certified ℓ2 accuracy ${res.certifiedAccuracy.map((c) => `${(100 * c.accuracy).toFixed(1)}% at ${c.eps}`).join(", ")}`,
      );
    }
    protocol.table("curves", rows);
    protocol.text("results.md", markdown(cfg, results));
    const base = { png: options.png ?? false, color: "width", x: "epoch", xTitle: "epoch" };
    await protocol.plot(rows, {
      ...base,
      y: "robustTrainLoss",
      name: "robust-training-loss",
      title: "PGD robust training loss against epochs, per width",
      yTitle: "robust training loss",
      logY: true,
    });
    await protocol.plot(rows, {
      ...base,
      y: "movement",
      name: "weight-movement",
      title: "‖w_t − w₀‖ / ‖w₀‖ against epochs, per width",
      yTitle: "relative movement",
    });
    const seconds = (performance.now() - started) / 1000;
    protocol.finish({
      seconds,
      backend: backend.describe(),
      machine: { cpu: cpus()[0]?.model ?? "unknown", cores: availableParallelism() },
      widths: results.map(({ curve, ...r }) => ({ ...r, final: curve.at(-1) })),
    });
    io.log(`total ${seconds.toFixed(1)} s; folder: ${protocol.dir}`);
    return { runDir: protocol.dir, widths: results, seconds };
  } catch (error) {
    protocol.release();
    throw error;
  }
}

function markdown(
  cfg: {
    eps: number;
    norm: string;
    steps: number;
    evalSteps: number;
    epochs: number;
    trainSamples: number;
    testSamples: number;
    lr: number;
    batchSize: number;
  },
  results: AdversarialWidthResult[],
): string {
  const f = (x: number, d = 4) => (Number.isFinite(x) ? x.toFixed(d) : String(x));
  const radii = results[0]?.certifiedAccuracy.map((c) => c.eps) ?? [];
  const lines = [
    `MNIST (${cfg.trainSamples} train / ${cfg.testSamples} test), MLP 784-h-10 ReLU, PGD ${cfg.norm} ε = ${cfg.eps} (${cfg.steps} steps in training, ${cfg.evalSteps} in evaluation), momentum 0.9, lr ${cfg.lr}, batch ${cfg.batchSize}, ${cfg.epochs} epochs.`,
    "",
    `| width | parameters | robust train loss (epoch 0 → ${cfg.epochs}) | robust train acc | ‖w−w₀‖/‖w₀‖ | clean test acc | robust test acc | certified L (ℓ2) | median certified radius | ${radii.map((r) => `certified acc @ ${r}`).join(" | ")} |`,
    `|---|---|---|---|---|---|---|---|---|${radii.map(() => "---").join("|")}|`,
  ];
  for (const r of results) {
    const a = r.curve[0];
    const z = r.curve.at(-1) ?? a;
    lines.push(
      `| ${r.width} | ${r.parameters} | ${f(a.robustTrainLoss)} → ${f(z.robustTrainLoss)} | ${(100 * z.robustTrainAccuracy).toFixed(1)}% | ${f(z.movement)} | ${(100 * r.cleanTestAccuracy).toFixed(1)}% | ${(100 * r.robustTestAccuracy).toFixed(1)}% | ${r.certifiedLipschitz.toPrecision(4)} | ${f(r.medianCertifiedRadius)} | ${r.certifiedAccuracy.map((c) => `${(100 * c.accuracy).toFixed(1)}%`).join(" | ")} |`,
    );
  }
  return `${lines.join("\n")}\n`;
}

const OPTIONS: readonly ExperimentOption[] = [
  { key: "widths", type: "numbers", description: "hidden widths of the 784-h-10 MLPs", default: [32, 128, 512, 2048] },
  { key: "trainSamples", type: "int", description: "MNIST training images (the first ones)", default: 1000 },
  { key: "testSamples", type: "int", description: "MNIST test images", default: 1000 },
  { key: "epochs", type: "int", description: "epochs of adversarial training", default: 10 },
  { key: "batchSize", type: "int", description: "mini-batch size", default: 64 },
  { key: "lr", type: "number", description: "learning rate (momentum 0.9, constant)", default: 0.02 },
  { key: "eps", type: "number", description: "radius ε of the attack, in pixels", default: 0.1 },
  { key: "norm", type: "string", description: "ball of the attack", default: "linf", choices: ["linf", "l2"] },
  { key: "steps", type: "int", description: "PGD steps in training", default: 5 },
  { key: "evalSteps", type: "int", description: "PGD steps when evaluating robust loss/accuracy", default: 10 },
  { key: "certifyRadii", type: "numbers", description: "ℓ2 radii (pixels) of the certified accuracies", default: [0.1, 0.25, 0.5] },
  { key: "seed", type: "int", description: "seed of initialization, data order and attacks", default: 0 },
  { key: "png", type: "boolean", description: "also write PNG plots", default: false },
];

/** `chainopt experiment adversarial`. */
export const adversarialExperiment: ExperimentDefinition = {
  name: "adversarial",
  description:
    "PGD adversarial training on MNIST across widths: robust training loss vs epochs, weight movement, clean/robust/certified accuracy",
  options: OPTIONS,
  async run(given, io) {
    const opts = resolveOptions(OPTIONS, given) as AdversarialExperimentOptions;
    const r = await runAdversarialExperiment(opts, io);
    return {
      runDir: r.runDir,
      summary: { seconds: r.seconds, widths: r.widths.map(({ curve, ...x }) => ({ ...x, final: curve.at(-1) })) },
    };
  },
};
