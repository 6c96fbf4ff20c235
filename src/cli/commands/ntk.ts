import type { Command } from "commander";
import { createChain } from "../../chain/chain.js";
import { subsetDataset } from "../../data/dataset.js";
import { datasetNames, loadDataset } from "../../node/datasets.js";
import { bestBackend } from "../../node/index.js";
import { resolveModelSpec } from "../../node/train-job.js";
import { ntkSpectrum } from "../../second-order/ntk-spectrum.js";

interface NtkOptions {
  model: string;
  dataset: string;
  samples: string;
  seed: string;
  widths?: string;
  activation?: string;
  json?: boolean;
}

function positiveInt(name: string, v: string): number {
  const x = Number(v);
  if (!(Number.isInteger(x) && x > 0)) throw new Error(`--${name}: expected a positive integer, got "${v}"`);
  return x;
}

/**
 * `chainopt ntk`: the spectrum of the empirical NTK Gram matrix Θ = J Jᵀ of a model at its
 * initialization on the first samples of a data set, and the step size and linear rate it implies
 * for gradient descent on the squared loss (second-order/ntk-spectrum.ts, docs/diagnostics.md).
 */
export function register(program: Command): void {
  program
    .command("ntk")
    .description("empirical NTK Gram spectrum (λ_min, λ_max) at initialization, and the step size and linear rate it implies")
    .requiredOption("--model <preset|spec.json>", "model preset or JSON spec (adapted to the data's input shape)")
    .requiredOption("--dataset <name>", `one of ${datasetNames.join(", ")}`)
    .option("--samples <n>", "number of training samples N (Θ is N·k × N·k)", "20")
    .option("--seed <n>", "seed of the initialization", "0")
    .option("--widths <list>", "hidden widths of the mlp preset, e.g. 64,64")
    .option("--activation <name>", "activation of the presets")
    .option("--json", "print the result as JSON")
    .action(async (options: NtkOptions) => {
      const samples = positiveInt("samples", options.samples);
      const seed = Number(options.seed);
      if (!(Number.isInteger(seed) && seed >= 0)) throw new Error(`--seed: expected a non-negative integer, got "${options.seed}"`);
      if (!(datasetNames as readonly string[]).includes(options.dataset)) {
        throw new Error(`--dataset: unknown data set "${options.dataset}"; known: ${datasetNames.join(", ")}`);
      }
      const widths = options.widths?.split(",").map((w) => positiveInt("widths", w));
      const data = await loadDataset(options.dataset, { limit: Math.max(samples, 100), normalize: true, standardize: true });
      const train = data.train;
      if (train.size < samples) throw new Error(`--samples: ${options.dataset} has only ${train.size} training samples`);
      const classes = train.classes ?? train.targetSize ?? 1;
      const spec = resolveModelSpec({ model: options.model, widths, activation: options.activation as never }, train.inputShape, classes);
      const chain = createChain(spec, { dtype: "float64", backend: bestBackend({ quiet: true }) });
      const w = chain.initParams(seed);
      const probe = subsetDataset(train, samples);
      const s = ntkSpectrum(chain, w, Float64Array.from(probe.x), samples);
      if (options.json) {
        const { eigenvalues, ...rest } = s;
        const replacer = (_k: string, v: unknown): unknown => (v === Infinity ? "Infinity" : v);
        process.stdout.write(
          `${JSON.stringify({ model: options.model, dataset: options.dataset, ...rest, eigenvalues: [...eigenvalues] }, replacer)}\n`,
        );
        return;
      }
      const f = (v: number) => (v === Infinity ? "∞" : v.toPrecision(4));
      // A rate near 1 as "1 − x".
      const r = (v: number) => (v >= 0.999 && v < 1 ? `1 − ${(1 - v).toExponential(2)}` : f(v));
      process.stdout.write(
        [
          `empirical NTK Θ = J Jᵀ at initialization (seed ${seed}): ${samples} samples × ${s.outputs} outputs = ${s.eigenvalues.length}² Gram`,
          `  λ_min ${f(s.lambdaMin)}, λ_max ${f(s.lambdaMax)}, κ = λ_max/λ_min ${f(s.condition)}`,
          "gradient descent on the squared loss ‖ψ − y‖²/(2N), linearized (r⁺ = (I − ηΘ/N) r):",
          `  step η = N/λ_max = ${f(s.step)}: residual contracts by ${r(s.rate)} per step (1 − λ_min/λ_max)`,
          `  best constant step η* = 2N/(λ_min + λ_max) = ${f(s.optimalStep)}: rate (κ − 1)/(κ + 1) = ${r(s.optimalRate)}`,
          `  Du et al. 2019 (Thm 4.1) form with λ₀ = λ_min and the step η = N/λ_max: ‖r‖² rate 1 − ηλ₀/2 = ${r(s.duRate)}`,
        ].join("\n") + "\n",
      );
    });
}
