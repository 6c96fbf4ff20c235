import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { PNG } from "pngjs";
import { type InputDomain, toRaw } from "../adversarial/attack.js";
import type { Chain } from "../chain/chain.js";
import type { FloatArray } from "../core/dtype.js";
import { type Dataset, subsetDataset } from "../data/dataset.js";
import { inputDomainFor } from "./adversarial-train.js";
import { chainOfModelFile, loadCheckpoint } from "./checkpoint.js";
import { datasetNames, loadDataset } from "./datasets.js";
import { bestBackend } from "./index.js";

// What `chainopt attack` and `chainopt analyze --input-space` share: the trained model (a run
// directory or a chainopt weights file), the test samples, the input box, and the PNG grid of
// adversarial examples.

/** A trained model with the data it is attacked on. */
export interface AttackTarget {
  chain: Chain;
  w: FloatArray;
  state: FloatArray;
  dataset: string;
  domain: InputDomain;
  /** The first `samples` test samples (the training split for sets without one). */
  samples: Dataset;
  /** Where outputs go by default: the run directory, or the current directory. */
  outDir: string;
}

/** Options naming the model and data: `--run DIR` or `--weights FILE --dataset NAME`. */
export interface TargetOptions {
  run?: string;
  weights?: string;
  dataset?: string;
  normalize?: boolean;
  samples?: number;
  threads?: number;
}

/** Loads the model and samples; errors name the flag or file at fault. */
export async function loadAttackTarget(o: TargetOptions): Promise<AttackTarget> {
  if (o.run === undefined && o.weights === undefined) throw new Error("--run or --weights: give a run directory or a weights file");
  if (o.run !== undefined && o.weights !== undefined) throw new Error("--run and --weights: give one of them, not both");
  let weights: string;
  let dataset = o.dataset;
  let normalize = o.normalize ?? true;
  let outDir = process.cwd();
  if (o.run !== undefined) {
    const dir = resolve(o.run);
    const configPath = join(dir, "config.json");
    if (!existsSync(configPath)) throw new Error(`--run ${o.run}: not a run directory (no config.json)`);
    const train = (JSON.parse(readFileSync(configPath, "utf8")) as { train?: { dataset?: string; normalize?: boolean } }).train;
    if (!train) throw new Error(`--run ${o.run}: config.json has no "train" section (not a run of chainopt train)`);
    dataset ??= train.dataset ?? "mnist";
    if (o.normalize === undefined) normalize = train.normalize ?? true;
    weights = join(dir, "model.safetensors");
    if (!existsSync(weights)) throw new Error(`--run ${o.run}: no model.safetensors (the run has not finished)`);
    outDir = dir;
  } else {
    weights = o.weights as string;
    if (!existsSync(weights)) throw new Error(`--weights ${weights}: file not found`);
    if (dataset === undefined) throw new Error("--dataset: required with --weights");
  }
  if (!(datasetNames as readonly string[]).includes(dataset)) throw new Error(`--dataset: unknown data set ${JSON.stringify(dataset)}`);
  const domain = inputDomainFor(dataset, normalize);
  if (!domain) throw new Error(`--dataset: ${dataset} has no input box (attacks need bounded raw inputs: mnist, fashion-mnist, cifar10)`);
  const chain = chainOfModelFile(weights, bestBackend({ threads: o.threads, quiet: true }));
  if (!chain)
    throw new Error(
      `--weights ${weights}: not a chainopt model (no model spec in its metadata); import PyTorch weights with train --init first`,
    );
  const ck = loadCheckpoint(weights, chain);
  const samples = o.samples ?? 1000;
  if (!(Number.isInteger(samples) && samples >= 1)) throw new Error(`--samples: expected a positive integer, got ${samples}`);
  const data = await loadDataset(dataset, {
    normalize,
    limit: dataset === "mnist" || dataset === "fashion-mnist" || dataset === "cifar10" ? undefined : samples,
  });
  const test = data.test ?? data.train;
  if (test.inputShape.join("x") !== chain.inputShape.join("x"))
    throw new Error(
      `--weights ${weights}: the model reads inputs of shape ${chain.inputShape.join("x")}, ${dataset} has ${test.inputShape.join("x")}`,
    );
  return { chain, w: ck.params, state: ck.state, dataset, domain, samples: subsetDataset(test, samples), outDir };
}

/**
 * A PNG grid of image samples: for each of the first `count` samples a column of three tiles,
 * the clean image, the adversarial image, and the perturbation (mid-grey = 0, scaled so that the
 * largest |δ| of the grid is black or white). Raw values in [lower, upper] map to 0…255.
 */
export function adversarialGridPng(
  chain: Chain,
  domain: InputDomain,
  clean: ArrayLike<number>,
  adversarial: ArrayLike<number>,
  count: number,
): Buffer {
  const [c, h, w] = chain.inputShape.length === 3 ? chain.inputShape : [1, 1, chain.inputSize];
  const d = chain.inputSize;
  const x0 = toRaw(chain, domain, clean, count);
  const xa = toRaw(chain, domain, adversarial, count);
  let dmax = 0;
  for (let i = 0; i < count * d; i++) dmax = Math.max(dmax, Math.abs(xa[i] - x0[i]));
  const pad = 2;
  const png = new PNG({ width: count * (w + pad) + pad, height: 3 * (h + pad) + pad });
  png.data.fill(255);
  const span = domain.upper - domain.lower;
  for (let s = 0; s < count; s++) {
    for (let row = 0; row < 3; row++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const px = pad + s * (w + pad) + x;
          const py = pad + row * (h + pad) + y;
          const o = (py * png.width + px) * 4;
          for (let k = 0; k < 3; k++) {
            const ch = c === 3 ? k : 0;
            const j = s * d + ch * h * w + y * w + x;
            let v: number;
            if (row === 0) v = (x0[j] - domain.lower) / span;
            else if (row === 1) v = (xa[j] - domain.lower) / span;
            else v = dmax > 0 ? 0.5 + (0.5 * (xa[j] - x0[j])) / dmax : 0.5;
            png.data[o + k] = Math.max(0, Math.min(255, Math.round(255 * v)));
          }
          png.data[o + 3] = 255;
        }
      }
    }
  }
  return PNG.sync.write(png);
}
