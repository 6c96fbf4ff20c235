import { readFileSync } from "node:fs";
import { type Command, Option } from "commander";
import { type CertificateVariant, certifyObjective, convergenceGuarantee, type ObjectiveCertificate } from "../../certify/certificate.js";
import { layerWitnessReport } from "../../certify/witness-report.js";
import { createChain } from "../../chain/chain.js";
import { getPreset, presetNames } from "../../chain/presets.js";
import type { ModelSpecInput } from "../../chain/spec.js";
import { ConvexClusteringLoss } from "../../objectives/clustering.js";
import { createObjective, type LossType } from "../../objectives/objective.js";
import { formatWitnessReport } from "./witness-format.js";

/** Options of `chainopt analyze`. */
interface AnalyzeOptions {
  model: string;
  input?: string;
  batch: string;
  radius: string;
  inputNorm?: string;
  maxSampleNorm?: string;
  bnEpsilon?: string;
  epsilonBn?: string;
  classes?: string;
  loss: string;
  l2: string;
  variant: string;
  epsilon: string;
  json?: boolean;
  // --- input space (docs/adversarial.md) ---
  inputSpace?: boolean;
  weights?: string;
  run?: string;
  dataset?: string;
  normalize?: boolean;
  samples?: string;
  epsList?: string;
  searchSamples?: string;
  // --- end input space ---
  witness?: boolean;
  clusteringLambda?: string;
  witnessBudget: string;
  witnessStarts: string;
}

function positive(name: string, value: string, integer = false): number {
  const v = Number(value);
  if (!(v > 0) || (integer && !Number.isInteger(v)))
    throw new Error(`--${name}: expected a positive ${integer ? "integer" : "number"}, got "${value}"`);
  return v;
}

/** "3x224x224" → [3, 224, 224]; "784" → [784]. */
export function parseShape(text: string): number[] {
  const dims = text
    .toLowerCase()
    .split(/[x×,]/)
    .map((d) => Number(d.trim()));
  if (dims.length < 1 || dims.length > 3 || dims.some((d) => !(Number.isInteger(d) && d > 0))) {
    throw new Error(`--input: expected a shape like 3x224x224 or 784, got "${text}"`);
  }
  return dims;
}

/** The model spec of --model: a preset name or a JSON spec file; --input and --epsilon-bn applied. */
export function resolveModel(
  model: string,
  input: number[] | undefined,
  epsilonBn: number | undefined,
  classes: number | undefined,
): ModelSpecInput {
  let spec: ModelSpecInput;
  if (presetNames().includes(model)) {
    spec = getPreset(model, {
      ...(input ? { input } : {}),
      ...(epsilonBn !== undefined ? { epsilon: epsilonBn } : {}),
      ...(classes !== undefined ? { classes } : {}),
    });
  } else {
    let text: string;
    try {
      text = readFileSync(model, "utf8");
    } catch {
      throw new Error(`--model: "${model}" is neither a preset (${presetNames().join(", ")}) nor a readable spec file`);
    }
    spec = JSON.parse(text) as ModelSpecInput;
    if (input) spec = { ...spec, input };
  }
  if (epsilonBn !== undefined) {
    spec = { ...spec, layers: spec.layers.map((l) => (l.type === "batchNorm" ? { ...l, epsilon: epsilonBn } : l)) };
  }
  return spec;
}

function fmt(v: number): string {
  if (v === Infinity) return "∞";
  if (v === 0) return "0";
  return v.toExponential(3);
}

/** The certificate as a printable table (per layer m_t, ℓ_t, L_t, then the objective). */
export function formatCertificate(cert: ObjectiveCertificate, lossType: string, l2: number, epsilon: number): string {
  const c = cert.chain;
  const rows: string[][] = [["t", "layer", "R_t", "m_t", "ℓ_t", "L_t"]];
  for (const l of c.layers) {
    rows.push([String(l.layer), l.types.join("→"), l.layer === 0 ? "-" : fmt(l.radius), fmt(l.bound), fmt(l.lipschitz), fmt(l.smoothness)]);
  }
  const widths = rows[0].map((_, j) => Math.max(...rows.map((r) => r[j].length)));
  const line = (r: string[]): string => r.map((cell, j) => (j === 1 ? cell.padEnd(widths[j]) : cell.padStart(widths[j]))).join("  ");
  const out = [
    `chain certificate (${c.variant}) on B_R, batch ${c.batch}, ‖X₀‖ ≤ ${fmt(c.inputNorm)}:`,
    line(rows[0]),
    ...rows.slice(1).map(line),
    "",
    `objective: ${lossType} loss${l2 > 0 ? ` + (${l2}/2)‖u‖²` : ""}`,
    `  loss on ‖ŷ‖ ≤ m_τ:   ℓ_f = ${fmt(cert.loss.lipschitz)}, L_f = ${fmt(cert.loss.smoothness)}`,
    `  F on B_R:            sup F ≤ ${fmt(cert.bound)}, ℓ_F = ${fmt(cert.lipschitz)}, L_F = ${fmt(cert.smoothness)}`,
  ];
  if (cert.stepSize > 0) {
    const g = convergenceGuarantee(cert, { epsilon });
    out.push(`  certified step size: 1/L_F = ${fmt(cert.stepSize)}`);
    out.push(
      `  projected GD reaches ‖G‖ ≤ ${epsilon} within ${fmt(g.gdIterations)} iterations; projected SGD E‖G‖² ≤ ${epsilon}² + 6σ² within ${fmt(g.sgdIterations)}`,
    );
  } else out.push("  certified step size: none (L_F = ∞: non-smooth components such as relu or maxPool2d)");
  return out.join("\n");
}

/**
 * `chainopt analyze`: certified smoothness constants of a model (issue 5, item 5), from the
 * architecture alone.
 */
export function register(program: Command): void {
  program
    .command("analyze")
    .description("certified smoothness of a model and its training objective on B_R = {‖u_t‖ ≤ R_t} (no weights needed)")
    .option("--model <preset|spec.json>", `a preset (${presetNames().join(", ")}) or a model spec file`)
    .option("--input <shape>", "input shape of one sample, e.g. 3x224x224 or 784 (default: the model's)")
    .option("--batch <n>", "batch size N", "128")
    .option("--radius <r>", "R_t: one radius for all layers or a comma-separated list", "1")
    .option("--input-norm <x>", "bound on the Frobenius norm of the whole input batch (default 1)")
    .option("--max-sample-norm <x>", "largest input sample norm of the data (then ‖X₀‖ ≤ √N·x)")
    .option("--epsilon-bn <eps>", "ε of every batch-norm (vgg16-bn presets and spec files); alias --bn-epsilon")
    .addOption(new Option("--bn-epsilon <eps>").hideHelp())
    .option("--classes <k>", "number of outputs of presets")
    .option("--loss <type>", "logistic, squared, or the unsupervised clustering or autoencoder (docs/unsupervised.md)", "logistic")
    .option("--clustering-lambda <gamma>", "--loss clustering: fusion strength γ (default 1)")
    .option("--l2 <lambda>", "L2 regularization weight λ", "0")
    .option("--variant <v>", "tight (default), corrected (Algorithm 1 with its slips fixed) or printed", "tight")
    .option("--epsilon <eps>", "target of the stationarity guarantee", "1e-2")
    .option("--json", "print the certificate as JSON")
    .option("--witness", "search witnesses (lower bounds) per layer and print certificate, witness and their ratio")
    .option("--witness-budget <steps>", "witness search: ascent steps per start (power iterations: the same, at least 4)", "4")
    .option("--witness-starts <n>", "witness search: random starting points", "2")
    // --- input space: Lipschitz bounds in the input and certified radii of trained weights ---
    .option("--input-space", "input Lipschitz bounds and certified ℓ2 radii of trained weights (--weights W --dataset D, or --run DIR)")
    .option("--weights <file>", "--input-space: a chainopt model file")
    .option("--run <dir>", "--input-space: a run directory of chainopt train")
    .option("--dataset <name>", "--input-space: the data set of the test samples (mnist, fashion-mnist, cifar10)")
    .option("--no-normalize", "--input-space with --weights: the model reads pixels in [0,1]")
    .option("--samples <n>", "--input-space: test samples (default 1000)")
    .option("--eps-list <list>", "--input-space: radii of the certified accuracies (default 0.1,0.25,0.5,1)")
    .option("--search-samples <n>", "--input-space: samples searched for their smallest adversarial perturbation (default 100)")
    // --- end input space ---
    .action(async (options: AnalyzeOptions) => {
      if (options.inputSpace) {
        const { analyzeInputSpace } = await import("./input-space.js");
        const normalize = options.weights !== undefined ? options.normalize !== false : options.normalize === false ? false : undefined;
        return analyzeInputSpace({ ...options, normalize });
      }
      if (options.model === undefined) throw new Error("--model: required (or --input-space with --weights/--run)");
      const input = options.input ? parseShape(options.input) : undefined;
      if (options.epsilonBn !== undefined && options.bnEpsilon !== undefined)
        throw new Error("--epsilon-bn, --bn-epsilon: give one of them");
      const bn = options.epsilonBn ?? options.bnEpsilon;
      const epsilonBn = bn !== undefined ? positive(options.epsilonBn !== undefined ? "epsilon-bn" : "bn-epsilon", bn) : undefined;
      const classes = options.classes !== undefined ? positive("classes", options.classes, true) : undefined;
      const batch = positive("batch", options.batch, true);
      const radii = options.radius.split(",").map((r) => {
        const v = Number(r);
        if (!(v >= 0)) throw new Error(`--radius: expected non-negative numbers, got "${options.radius}"`);
        return v;
      });
      if (!["tight", "corrected", "printed"].includes(options.variant))
        throw new Error(`--variant: expected tight, corrected or printed, got "${options.variant}"`);
      if (!["logistic", "squared", "clustering", "autoencoder"].includes(options.loss))
        throw new Error(`--loss: expected logistic, squared, clustering or autoencoder, got "${options.loss}"`);
      if (options.clusteringLambda !== undefined && options.loss !== "clustering")
        throw new Error("--clustering-lambda: an option of --loss clustering");
      const lambda = options.clusteringLambda !== undefined ? Number(options.clusteringLambda) : undefined;
      if (lambda !== undefined && !(lambda >= 0))
        throw new Error(`--clustering-lambda: expected a number ≥ 0, got "${options.clusteringLambda}"`);
      const makeObjective = () =>
        options.loss === "clustering"
          ? createObjective(new ConvexClusteringLoss({ lambda }), l2)
          : createObjective(options.loss as LossType, l2);
      const l2 = Number(options.l2);
      if (!(l2 >= 0)) throw new Error(`--l2: expected a non-negative number, got "${options.l2}"`);
      const epsilon = positive("epsilon", options.epsilon);
      const spec = resolveModel(options.model, input, epsilonBn, classes);
      const chain = createChain(spec);
      const norms =
        options.maxSampleNorm !== undefined
          ? { maxSampleNorm: positive("max-sample-norm", options.maxSampleNorm) }
          : { inputNorm: options.inputNorm !== undefined ? Number(options.inputNorm) : 1 };
      // The auto-encoder's targets are its inputs: their bound is the input batch's (‖X₀‖ ≤ m_0).
      const targetNorm =
        options.loss !== "autoencoder"
          ? undefined
          : norms.maxSampleNorm !== undefined
            ? Math.sqrt(batch) * norms.maxSampleNorm
            : norms.inputNorm;
      if (options.loss === "autoencoder" && chain.outputSize !== chain.inputSize) {
        throw new Error(`--loss autoencoder: the model's output size (${chain.outputSize}) must equal its input size (${chain.inputSize})`);
      }
      const cert = certifyObjective(chain, makeObjective(), {
        radii: radii.length === 1 ? radii[0] : radii,
        batch,
        ...norms,
        targetNorm,
        variant: options.variant as CertificateVariant,
      });
      const report = options.witness
        ? layerWitnessReport(spec, makeObjective(), cert, {
            radii: radii.length === 1 ? radii[0] : radii,
            batch,
            inputNorm: cert.chain.inputNorm,
            steps: positive("witness-budget", options.witnessBudget, true),
            power: Math.max(4, positive("witness-budget", options.witnessBudget, true)),
            starts: positive("witness-starts", options.witnessStarts, true),
          })
        : null;
      if (options.json) {
        const guarantee = cert.stepSize > 0 ? convergenceGuarantee(cert, { epsilon }) : null;
        const replacer = (_k: string, v: unknown): unknown => (v === Infinity ? "Infinity" : v);
        process.stdout.write(
          `${JSON.stringify({ model: options.model, certificate: cert, guarantee, ...(report ? { witness: report } : {}) }, replacer, 2)}\n`,
        );
      } else {
        process.stdout.write(`${formatCertificate(cert, options.loss, l2, epsilon)}\n`);
        if (report) process.stdout.write(`\n${formatWitnessReport(report)}\n`);
      }
    });
}
