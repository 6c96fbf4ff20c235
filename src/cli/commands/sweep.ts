import type { Command } from "commander";
import { distributedErrorHandler, distributedFromFlags } from "../../node/distributed/cli.js";
import { readSweepFile, runSweepTask, type SweepTask, taskDirectory, taskIndexFrom } from "../../node/sweep.js";

/**
 * `chainopt sweep SWEEP.json [--task K] [--list]`: expands a grid of training options into numbered
 * tasks and runs task K (default: SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX; every task in turn
 * when none is set). See docs/distributed.md.
 */
export function register(program: Command): void {
  program
    .command("sweep")
    .description(
      "run a grid of training configurations as numbered tasks (Slurm job arrays, Kubernetes Indexed Jobs); see docs/distributed.md",
    )
    .argument("<sweep.json>", "sweep file: {name, out?, base: {train options}, grid: {option: [values]}}")
    .option("--task <k>", "run only task k (default: $SLURM_ARRAY_TASK_ID or $JOB_COMPLETION_INDEX; all tasks when unset)")
    .option("--list", "print the tasks (index, run directory, values) and exit")
    .option("--json", "print one JSON line per task run")
    .option("--distributed", "train each task data-parallel over the ranks of an MPI job (automatic under mpirun/srun with N > 1)")
    .option("--deterministic-reduce", "distributed: sum gradients in rank order")
    .action(
      async (
        file: string,
        opts: { task?: string; list?: boolean; json?: boolean; distributed?: boolean; deterministicReduce?: boolean },
      ) => {
        const sweep = readSweepFile(file);
        const out = (line: string) => process.stdout.write(`${line}\n`);
        if (opts.list) {
          out(`${sweep.name}: ${sweep.tasks.length} task(s) in ${sweep.out}`);
          for (const t of sweep.tasks) out(`${t.index}\t${t.name}\t${JSON.stringify(t.assignment)}`);
          return;
        }
        const k = taskIndexFrom(opts.task, sweep.tasks.length);
        const distributed = distributedFromFlags(opts);
        const silent = distributed !== null && distributed.collective.rank > 0;
        const tasks: SweepTask[] = k === null ? sweep.tasks : [sweep.tasks[k]];
        for (const t of tasks) {
          const started = performance.now();
          if (!opts.json && !silent)
            process.stderr.write(`chainopt: sweep ${sweep.name}: task ${t.index} of ${sweep.tasks.length} (${t.name})\n`);
          const outcome = await runSweepTask(sweep, t, {}, distributed ?? undefined).catch(distributedErrorHandler(distributed));
          if (silent) continue;
          const seconds = (performance.now() - started) / 1000;
          if (opts.json) out(JSON.stringify({ task: t.index, name: t.name, outcome, seconds, runDir: taskDirectory(sweep, t) }));
          else
            out(
              `task ${t.index}: ${outcome === "skipped" ? "already finished, skipped" : outcome} (${seconds.toFixed(1)} s) in ${taskDirectory(sweep, t)}`,
            );
        }
      },
    );
}
