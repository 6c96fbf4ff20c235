import { inputSpaceAnalysis } from "../../adversarial/report.js";
import { BatchLoader } from "../../data/dataset.js";
import { loadAttackTarget } from "../../node/adversarial-cli.js";
import { createLoss } from "../../objectives/objective.js";

// `chainopt analyze --input-space`: input Lipschitz bounds and certified radii of a trained
// classifier (docs/adversarial.md).

/** Options of `chainopt analyze --input-space`. */
export interface InputSpaceCliOptions {
  run?: string;
  weights?: string;
  dataset?: string;
  normalize?: boolean;
  samples?: string;
  epsList?: string;
  searchSamples?: string;
  json?: boolean;
}

function count(flag: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const x = Number(v);
  if (!(Number.isInteger(x) && x >= 1)) throw new Error(`${flag}: expected a positive integer, got "${v}"`);
  return x;
}

/** Runs the input-space analysis and prints it. */
export async function analyzeInputSpace(o: InputSpaceCliOptions): Promise<void> {
  const radii = (o.epsList ?? "0.1,0.25,0.5,1").split(",").map((s) => {
    const x = Number(s);
    if (s.trim() === "" || !(x >= 0)) throw new Error(`--eps-list: expected radii ≥ 0, got "${o.epsList}"`);
    return x;
  });
  const samples = count("--samples", o.samples, 1000);
  const searchSamples = count("--search-samples", o.searchSamples, 100);
  const target = await loadAttackTarget({ run: o.run, weights: o.weights, dataset: o.dataset, normalize: o.normalize, samples });
  const { chain, w, state, domain } = target;
  const batch = new BatchLoader(target.samples, { batchSize: target.samples.size, dtype: chain.dtype }).batch(0);
  const a = inputSpaceAnalysis(chain, createLoss("logistic"), w, batch, { domain, state, radii, searchSamples });
  if (o.json) {
    const replacer = (_k: string, v: unknown): unknown => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v);
    process.stdout.write(`${JSON.stringify({ dataset: target.dataset, ...a }, replacer)}\n`);
    return;
  }
  const f = (x: number) => (Number.isFinite(x) ? x.toPrecision(4) : String(x));
  const lines = [
    `input-space analysis of ${chain.components.length} components on ${a.samples} ${target.dataset} test samples (ℓ2, raw input units; clean accuracy ${(100 * a.cleanAccuracy).toFixed(2)}%)`,
    "per component: type, certified constant (method), power-iteration spectral norm, Frobenius norm",
    ...a.lipschitz.components.map(
      (c) =>
        `  ${String(c.index).padStart(2)} ${c.type.padEnd(10)} ${f(c.upper).padStart(10)}  (${c.method})${c.spectral !== undefined ? `  power ${f(c.spectral)}` : ""}${c.frobenius !== undefined ? `  Frobenius ${f(c.frobenius)}` : ""}`,
    ),
    `Lipschitz constant of the network in its input (×${f(a.scale)} for the normalization):`,
    `  certified upper bound (Gram-iteration spectral norms)   ${f(a.certified)}`,
    `  AutoLip product of power-iteration spectral norms      ${f(a.autolip)}`,
    `  naive product of Frobenius norms                        ${f(a.frobeniusProduct)}`,
    `  lower bound: largest input-Jacobian norm at the samples ${f(a.jacobianLower)}`,
    `  lower bound: best attack ‖Δψ‖/‖Δx‖                      ${f(a.attackLower)}`,
    `certified ℓ2 radius (median over correct samples): ${f(a.medianCertifiedRadius)} per-pair margin, ${f(a.medianGlobalRadius)} global margin/(√2 L)`,
    `smallest ℓ2 perturbation PGD finds (median over ${searchSamples} samples): ${f(a.medianAttackRadius)}; median certified/attack ratio ${f(a.medianRadiusRatio)}`,
    "radius ε   certified accuracy (lower bound)   PGD-ℓ2 robust accuracy (upper bound)",
    ...a.atRadius.map(
      (r) =>
        `  ${String(r.eps).padEnd(8)} ${(100 * r.certifiedAccuracy).toFixed(2).padStart(8)}%                       ${(100 * r.attackAccuracy).toFixed(2).padStart(8)}%`,
    ),
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}
