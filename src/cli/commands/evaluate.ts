import type { Command } from "commander";
import {
  EVALUATION_SPLITS,
  EVALUATION_WEIGHTS,
  type EvaluationSplit,
  type EvaluationWeights,
  evaluateRun,
} from "../../node/evaluate-run.js";
import { bestBackend } from "../../node/index.js";

/** Registers `chainopt evaluate`: a run's weights on its own splits (src/node/evaluate-run.ts). */
export function register(program: Command): void {
  program
    .command("evaluate")
    .description("evaluate a run's model (or checkpoint) on the splits it was trained with: loss and accuracy")
    .argument("<run-dir>", "a run directory of chainopt train or of a sweep task")
    .option("--split <list>", `splits to evaluate, comma-separated: ${EVALUATION_SPLITS.join(", ")} (default: all the run has)`)
    .option("--weights <which>", `${EVALUATION_WEIGHTS.join(", ")}: the final model, or the last or best checkpoint`, "model")
    .option("--threads <n>", "BLAS threads of the native backend", (v) => {
      const x = Number(v);
      if (!Number.isInteger(x) || x < 1) throw new Error(`--threads: expected a positive integer, got "${v}"`);
      return x;
    })
    .option("--json", "print the result as one JSON object")
    .action(async (dir: string, opts: { split?: string; weights: string; threads?: number; json?: boolean }) => {
      const splits = opts.split
        ?.split(",")
        .map((s) => s.trim())
        .filter((s) => s !== "") as EvaluationSplit[] | undefined;
      const backend = bestBackend({ threads: opts.threads, quiet: true });
      const result = await evaluateRun(dir, { splits, weights: opts.weights as EvaluationWeights, backend });
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(result)}\n`);
        return;
      }
      process.stdout.write(`${result.weights} (epoch ${result.epoch}, step ${result.step})\n`);
      for (const [split, e] of Object.entries(result.splits)) {
        const acc = e.accuracy !== undefined ? `, accuracy ${(100 * e.accuracy).toFixed(2)} %` : "";
        process.stdout.write(`${split}: loss ${e.loss.toPrecision(6)}${acc} (${e.size} samples)\n`);
      }
    });
}
