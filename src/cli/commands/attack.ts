import { join, resolve } from "node:path";
import type { Command } from "commander";
import { ATTACK_KINDS, type AttackKind, type AttackNorm, attackBatch } from "../../adversarial/attack.js";
import { datasetRobustness } from "../../adversarial/training.js";
import { Rng } from "../../core/rng.js";
import { BatchLoader } from "../../data/dataset.js";
import { adversarialGridPng, loadAttackTarget } from "../../node/adversarial-cli.js";
import { writeFileAtomic } from "../../node/atomic.js";
import { createLoss } from "../../objectives/objective.js";

// `chainopt attack`: clean and robust accuracy of a trained classifier under FGSM/PGD, and a PNG
// grid of adversarial examples (docs/adversarial.md).

const number =
  (flag: string, integer = false) =>
  (v: string) => {
    const x = Number(v);
    if (v.trim() === "" || !Number.isFinite(x) || (integer && !Number.isInteger(x)))
      throw new Error(`${flag}: expected ${integer ? "an integer" : "a number"}, got "${v}"`);
    return x;
  };

/** Registers `chainopt attack`. */
export function register(program: Command): void {
  program
    .command("attack")
    .description("attack a trained classifier with FGSM/PGD: clean and robust accuracy, PNG grid of adversarial examples")
    .option("--run <dir>", "a run directory of chainopt train (its model.safetensors and data set)")
    .option("--weights <file>", "a chainopt model file (model.safetensors or a checkpoint); needs --dataset")
    .option("--dataset <name>", "data set (default: the run's): mnist, fashion-mnist, cifar10")
    .option("--no-normalize", "with --weights: the model reads pixels in [0,1] (trained with --no-normalize)")
    .requiredOption("--eps <eps>", "radius ε of the ball, in raw input units (pixels in [0,1])", number("--eps"))
    .option("--norm <norm>", "linf or l2", "linf")
    .option("--attack <kind>", "pgd or fgsm", "pgd")
    .option("--steps <k>", "PGD steps", number("--steps", true), 20)
    .option("--step-size <alpha>", "PGD step size (default 2.5 ε / steps)", number("--step-size"))
    .option("--restarts <r>", "PGD random restarts", number("--restarts", true), 1)
    .option("--samples <n>", "test samples attacked", number("--samples", true), 1000)
    .option("--seed <n>", "seed of the random starts", number("--seed", true), 0)
    .option("--png <file>", "PNG grid of adversarial examples (default: <run>/adversarial-<norm>-<eps>.png or ./adversarial.png)")
    .option("--threads <n>", "BLAS threads", number("--threads", true))
    .option("--json", "print the result as one JSON object")
    .action(async (opts: Record<string, unknown>) => {
      const eps = opts.eps as number;
      if (!(eps >= 0)) throw new Error(`--eps: expected a radius ε ≥ 0, got ${eps}`);
      const norm = opts.norm as string;
      if (norm !== "linf" && norm !== "l2") throw new Error(`--norm: unknown norm ${JSON.stringify(norm)}; expected linf or l2`);
      const kind = opts.attack as string;
      if (!(ATTACK_KINDS as readonly string[]).includes(kind))
        throw new Error(`--attack: unknown attack ${JSON.stringify(kind)}; expected pgd or fgsm`);
      const target = await loadAttackTarget({
        run: opts.run as string | undefined,
        weights: opts.weights as string | undefined,
        dataset: opts.dataset as string | undefined,
        normalize: opts.weights !== undefined ? opts.normalize !== false : opts.normalize === false ? false : undefined,
        samples: opts.samples as number,
        threads: opts.threads as number | undefined,
      });
      const { chain, w, state, domain, samples } = target;
      const loss = createLoss("logistic");
      const attack = {
        kind: kind as AttackKind,
        norm: norm as AttackNorm,
        eps,
        steps: opts.steps as number,
        restarts: opts.restarts as number,
        ...(opts.stepSize !== undefined ? { stepSize: opts.stepSize as number } : {}),
        domain,
      };
      const st = state.length > 0 ? state : undefined;
      const r = datasetRobustness(chain, loss, w, samples, attack, { state: st, seed: opts.seed as number });
      // The grid: the first 8 samples, attacked again with the same seed (the first batch's points).
      const count = Math.min(8, samples.size);
      const first = new BatchLoader(samples, { batchSize: count, dtype: chain.dtype }).batch(0);
      const clean = first.x.slice();
      const adv = attackBatch(chain, loss, w, first, { ...attack, rng: new Rng(opts.seed as number), state: st });
      const png = resolve(
        typeof opts.png === "string"
          ? opts.png
          : join(target.outDir, target.outDir === process.cwd() ? "adversarial.png" : `adversarial-${norm}-${eps}.png`),
      );
      writeFileAtomic(png, adversarialGridPng(chain, domain, clean, adv.x, count));
      const result = { dataset: target.dataset, attack: kind, norm, eps, ...r, png };
      if (opts.json) process.stdout.write(`${JSON.stringify(result)}\n`);
      else {
        process.stdout.write(
          `${kind} ${norm} ε = ${eps} on ${r.samples} ${target.dataset} test samples: clean accuracy ${(100 * r.cleanAccuracy).toFixed(2)}% (loss ${r.cleanLoss.toFixed(4)}), robust accuracy ${(100 * r.robustAccuracy).toFixed(2)}% (loss ${r.robustLoss.toFixed(4)})\nadversarial examples: ${png} (rows: clean, adversarial, perturbation)\n`,
        );
      }
    });
}
