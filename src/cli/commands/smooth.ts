import { writeFileSync } from "node:fs";
import type { Command } from "commander";
import { createChain } from "../../chain/chain.js";
import { presetNames } from "../../chain/presets.js";
import type { LossType } from "../../objectives/objective.js";
import { type SmoothResult, smooth, smoothingSummary } from "../../smoothing/smooth.js";
import { formatCertificate, parseShape, resolveModel } from "./analyze.js";

/** Options of `chainopt smooth`. */
interface SmoothCliOptions {
  model: string;
  epsilon: string;
  radius: string;
  input?: string;
  batch: string;
  inputNorm?: string;
  maxSampleNorm?: string;
  classes?: string;
  target: string;
  loss: string;
  l2: string;
  variant: string;
  json?: boolean;
  out?: string;
}

function positive(name: string, value: string, integer = false): number {
  const v = Number(value);
  if (!(v > 0) || (integer && !Number.isInteger(v)))
    throw new Error(`--${name}: expected a positive ${integer ? "integer" : "number"}, got "${value}"`);
  return v;
}

function fmt(v: number): string {
  if (v === Infinity) return "∞";
  if (v === 0) return "0";
  return v.toExponential(3);
}

/** The smoothing as a printable report: per-part table, accuracy statements, then ψ_ε's certificate. */
export function formatSmoothing(r: SmoothResult, lossType: string, l2: number): string {
  const rows: string[][] = [["t", "j", "component", "ℓ_a", "K", "factor ℓ_{t,j+1}", "accuracy µ_{t,j}/n", "replacement"]];
  for (const p of r.parts) {
    const rep = p.replacement ? `${p.replacement.type}(μ = ${fmt(p.parameter)})` : "kept";
    rows.push([
      String(p.layer),
      String(p.position),
      `${p.index}:${p.type}`,
      fmt(p.lipschitz),
      fmt(p.smoothnessPerAccuracy),
      fmt(p.multiplier),
      p.accuracy > 0 ? fmt(p.accuracy) : "-",
      rep,
    ]);
  }
  const widths = rows[0].map((_, j) => Math.max(...rows.map((row) => row[j].length)));
  const line = (row: string[]): string => row.map((c, j) => (j === 2 || j === 7 ? c.padEnd(widths[j]) : c.padStart(widths[j]))).join("  ");
  const out = [
    `automatic smoothing (Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), Algorithm 2), ε = ${r.epsilon} (${r.target}), R = [${r.radii.map(fmt).join(", ")}], n = ${r.smoothedParts} smoothed part(s):`,
    line(rows[0]),
    ...rows.slice(1).map(line),
    "",
    `certificate: ‖ψ(x,u) − ψ_ε(x,u)‖ ≤ ${fmt(r.outputAccuracy)} for every sample x and u in B_R` +
      ` (batch of ${r.certificate.chain.batch}: ‖Ψ − Ψ_ε‖_F ≤ ${fmt(r.batchAccuracy)})`,
    `objective: ${r.objective.statement}`,
    "",
    "smoothed chain ψ_ε:",
    formatCertificate(r.certificate, lossType, l2, 1e-2),
  ];
  return out.join("\n");
}

/** `chainopt smooth`: automatic smoothing with a certificate (docs/smoothing.md). */
export function register(program: Command): void {
  program
    .command("smooth")
    .description("smooth a non-smooth model (relu, max-pool) to accuracy ε on B_R = {‖u_t‖ ≤ R_t}, with a certificate")
    .requiredOption("--model <preset|spec.json>", `a preset (${presetNames().join(", ")}) or a model spec file`)
    .option("--epsilon <eps>", "target accuracy ε", "1")
    .option("--radius <r>", "R_t: one radius for all layers or a comma-separated list", "1")
    .option("--input <shape>", "input shape of one sample, e.g. 3x32x32 or 784 (default: the model's)")
    .option("--batch <n>", "batch size N of ψ_ε's certificate", "1")
    .option("--input-norm <x>", "bound on the Frobenius norm of the whole input batch (default 1)")
    .option("--max-sample-norm <x>", "largest input sample norm of the data (then ‖X₀‖ ≤ √N·x)")
    .option("--classes <k>", "number of outputs of presets")
    .option("--target <t>", "output: ‖ψ − ψ_ε‖ ≤ ε per sample; objective: |F − F_ε| ≤ ε (Lemma 8)", "output")
    .option("--loss <type>", "logistic or squared", "logistic")
    .option("--l2 <lambda>", "L2 regularization weight λ", "0")
    .option("--variant <v>", "certificate variant of ψ_ε: tight, corrected or printed", "tight")
    .option("--json", "print the smoothing and the certificate as JSON")
    .option("--out <file>", "write the smoothed model spec (JSON) to this file")
    .action((options: SmoothCliOptions) => {
      const epsilon = positive("epsilon", options.epsilon);
      const batch = positive("batch", options.batch, true);
      const input = options.input ? parseShape(options.input) : undefined;
      const classes = options.classes !== undefined ? positive("classes", options.classes, true) : undefined;
      const radii = options.radius.split(",").map((s) => {
        const v = Number(s);
        if (!(v > 0)) throw new Error(`--radius: expected positive numbers, got "${options.radius}"`);
        return v;
      });
      if (options.target !== "output" && options.target !== "objective")
        throw new Error(`--target: expected output or objective, got "${options.target}"`);
      if (options.loss !== "logistic" && options.loss !== "squared")
        throw new Error(`--loss: expected logistic or squared, got "${options.loss}"`);
      if (!["tight", "corrected", "printed"].includes(options.variant))
        throw new Error(`--variant: expected tight, corrected or printed, got "${options.variant}"`);
      const l2 = Number(options.l2);
      if (!(l2 >= 0)) throw new Error(`--l2: expected a non-negative number, got "${options.l2}"`);
      const spec = resolveModel(options.model, input, undefined, classes);
      const chain = createChain(spec);
      const norms =
        options.maxSampleNorm !== undefined
          ? { maxSampleNorm: positive("max-sample-norm", options.maxSampleNorm) }
          : { inputNorm: options.inputNorm !== undefined ? positive("input-norm", options.inputNorm) : 1 };
      const r = smooth(chain, {
        epsilon,
        radii: radii.length === 1 ? radii[0] : radii,
        batch,
        ...norms,
        target: options.target,
        loss: options.loss as LossType,
        l2,
        variant: options.variant as "tight" | "corrected" | "printed",
      });
      if (options.out) writeFileSync(options.out, `${JSON.stringify(r.spec, null, 2)}\n`);
      if (options.json) {
        const replacer = (_k: string, v: unknown): unknown => (v === Infinity ? "Infinity" : v);
        process.stdout.write(
          `${JSON.stringify({ model: options.model, ...smoothingSummary(r), certificate: r.certificate }, replacer, 2)}\n`,
        );
      } else {
        process.stdout.write(`${formatSmoothing(r, options.loss, l2)}\n`);
        if (options.out) process.stdout.write(`smoothed model spec written to ${options.out}\n`);
      }
    });
}
