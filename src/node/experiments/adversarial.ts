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
import { type Row, toCsv } from "../../report/plots.js";
import { Trainer } from "../../train/trainer.js";
import { inputDomainFor } from "../adversarial-train.js";
import { writeFileAtomic } from "../atomic.js";
import { loadDataset } from "../datasets.js";
import { bestBackend } from "../index.js";
import { plotLines } from "../report.js";
import { RunDirectory } from "../run-dir.js";
import { type ExperimentDefinition, type ExperimentIO, type ExperimentOption, resolveOptions, silentIO } from "./experiment.js";

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

/** Runs the experiment and writes its run directory (config, curves.csv, results.md, plots, summary). */
export async function runAdversarialExperiment(
  options: AdversarialExperimentOptions = {},
  io: ExperimentIO = silentIO,
): Promise<AdversarialExperimentResult> {
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
  if (!(cfg.eps >= 0)) throw new Error(`eps: expected a radius ≥ 0, got ${cfg.eps}`);
  if (cfg.norm !== "linf" && cfg.norm !== "l2") throw new Error(`norm: unknown norm ${JSON.stringify(cfg.norm)}; expected linf or l2`);
  if (!(cfg.lr > 0)) throw new Error(`lr: expected a positive number, got ${cfg.lr}`);
  const backend = bestBackend({ threads: options.threads, quiet: true });
  const data = await loadDataset("mnist", { normalize: true });
  const train = subsetDataset(data.train, cfg.trainSamples);
  const test = subsetDataset(data.test ?? data.train, cfg.testSamples);
  const domain = inputDomainFor("mnist", true);
  if (!domain) throw new Error("mnist: no input box");
  const attack: TrainingAttack = { kind: "pgd", norm: cfg.norm, eps: cfg.eps, steps: cfg.steps, domain };
  const evalAttack: TrainingAttack = { ...attack, steps: cfg.evalSteps };
  const run = RunDirectory.create({ out: options.out, root: options.root, name: "adversarial" });
  run.writeConfig({
    name: "adversarial",
    experiment: "adversarial",
    data: { name: "mnist", train: train.size, test: test.size, normalize: true },
    seed: cfg.seed,
    backend: { name: backend.name, threads: backend.threads, description: backend.describe() },
    machine: { cpu: cpus()[0]?.model ?? "unknown", cores: availableParallelism() },
    protocol: { ...cfg, model: "mlp 784-h-10 relu", optimizer: "momentum 0.9, constant lr", attack: "pgd, random start, step 2.5 ε/steps" },
  });
  const objective = createObjective("logistic");
  const started = performance.now();
  const results: AdversarialWidthResult[] = [];
  const rows: Row[] = [];
  for (const width of cfg.widths) {
    const spec = parseModelSpec(getPreset("mlp", { input: [...train.inputShape], classes: 10, widths: [width], activation: "relu" }));
    const chain = new Chain(spec, { dtype: "float32", backend });
    const w0 = chain.initParams(cfg.seed);
    const trainer = new Trainer(
      {
        chain,
        objective,
        optimizer: createOptimizer("momentum", { lr: cfg.lr, momentum: 0.9 }),
        learningRate: cfg.lr,
        batchSize: cfg.batchSize,
        seed: cfg.seed,
        batchTransform: new AdversarialTransform({ loss: objective.loss, attack, mix: 1, seed: cfg.seed + 1 }),
      },
      { params: w0.slice() },
    );
    const t0 = performance.now();
    const curve: AdversarialWidthResult["curve"] = [];
    const measure = (epoch: number) => {
      const r = datasetRobustness(chain, objective.loss, trainer.w, train, evalAttack, { seed: 1000 + epoch });
      const point = {
        epoch,
        robustTrainLoss: r.robustLoss,
        robustTrainAccuracy: r.robustAccuracy,
        cleanTrainLoss: r.cleanLoss,
        movement: relativeMovement(trainer.w, w0),
        seconds: (performance.now() - t0) / 1000,
      };
      curve.push(point);
      rows.push({ width: String(width), ...point });
      io.log(
        `width ${width}, epoch ${epoch}: robust training loss ${r.robustLoss.toFixed(4)} (robust acc ${(100 * r.robustAccuracy).toFixed(1)}%), clean ${r.cleanLoss.toFixed(4)}, ‖w−w₀‖/‖w₀‖ ${point.movement.toFixed(4)}, ${point.seconds.toFixed(0)} s`,
      );
    };
    measure(0);
    for (let e = 1; e <= cfg.epochs; e++) {
      trainer.runEpoch({ train });
      measure(e);
    }
    const rt = datasetRobustness(chain, objective.loss, trainer.w, test, evalAttack, { seed: 2000 });
    const lip = inputLipschitz(chain, trainer.w);
    const scale = inputScale(domain);
    const tb = fullBatch(test, chain.dtype);
    const out = Float64Array.from(forward(chain, trainer.w, tb.x, tb.size));
    const radii = certifiedRadii(chain, trainer.w, out, tb.labels as Int32Array, tb.size, lip, scale);
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
      `width ${width}: clean test accuracy ${(100 * rt.cleanAccuracy).toFixed(2)}%, robust ${(100 * rt.robustAccuracy).toFixed(2)}%, certified Lipschitz ${res.certifiedLipschitz.toPrecision(4)}, certified ℓ2 accuracy ${res.certifiedAccuracy.map((c) => `${(100 * c.accuracy).toFixed(1)}% at ${c.eps}`).join(", ")}`,
    );
  }
  writeFileAtomic(run.path("curves.csv"), toCsv(rows));
  writeFileAtomic(run.path("results.md"), markdown(cfg, results));
  const base = { dir: run.plotsDir, png: options.png ?? false, color: "width", x: "epoch", xTitle: "epoch" };
  await plotLines(rows, {
    ...base,
    y: "robustTrainLoss",
    name: "robust-training-loss",
    title: "PGD robust training loss against epochs, per width",
    yTitle: "robust training loss",
    logY: true,
  });
  await plotLines(rows, {
    ...base,
    y: "movement",
    name: "weight-movement",
    title: "‖w_t − w₀‖ / ‖w₀‖ against epochs, per width",
    yTitle: "relative movement",
  });
  const seconds = (performance.now() - started) / 1000;
  run.writeSummary({ seconds, widths: results.map(({ curve, ...r }) => ({ ...r, final: curve.at(-1) })) });
  io.log(`total ${seconds.toFixed(1)} s; run directory: ${run.dir}`);
  return { runDir: run.dir, widths: results, seconds };
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
