import { type Command, Option } from "commander";
import type { ExperimentDefinition, ExperimentOption } from "../../node/experiments/experiment.js";
import { EXPERIMENTS } from "../../node/experiments/registry.js";
import { bestBackend } from "../../node/index.js";

// `chainopt experiment <name>`: one subcommand per entry of src/node/experiments/registry.ts, with a
// flag per declared option (kebab-case of its key), plus --out, --threads and --json.

const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

function parser(o: ExperimentOption): ((v: string) => unknown) | undefined {
  const flag = `--${kebab(o.key)}`;
  const num = (v: string) => {
    const x = Number(v);
    if (v.trim() === "" || !Number.isFinite(x)) throw new Error(`${flag}: expected a number, got "${v}"`);
    return x;
  };
  const int = (v: string) => {
    const x = num(v);
    if (!Number.isInteger(x)) throw new Error(`${flag}: expected an integer, got "${v}"`);
    return x;
  };
  switch (o.type) {
    case "int":
      return int;
    case "number":
      return num;
    case "numbers":
      return (v) => v.split(",").map(num);
    case "strings":
      return (v) =>
        v
          .split(",")
          .map((s) => s.trim())
          .filter((s) => s !== "");
    default:
      return undefined;
  }
}

function addExperiment(parent: Command, def: ExperimentDefinition): void {
  const cmd = parent.command(def.name).description(def.description);
  for (const o of def.options) {
    const flag = kebab(o.key);
    if (o.type === "boolean") {
      cmd.option(
        o.default === true ? `--no-${flag}` : `--${flag}`,
        o.default === true ? `${o.description} (on by default; this flag turns it off)` : o.description,
      );
      continue;
    }
    const placeholder =
      o.placeholder ?? (o.type === "int" ? "<n>" : o.type === "number" ? "<x>" : o.type.endsWith("s") ? "<list>" : "<value>");
    const shown = o.default === undefined ? undefined : Array.isArray(o.default) ? o.default.join(",") : String(o.default);
    const opt = new Option(`--${flag} ${placeholder}`, `${o.description}${shown !== undefined ? ` (default: ${shown})` : ""}`);
    const parse = parser(o);
    if (parse) opt.argParser(parse);
    if (o.choices) opt.choices([...o.choices]);
    cmd.addOption(opt);
  }
  cmd
    .option("--out <dir>", `run directory (default runs/<timestamp>-${def.name})`)
    .option(
      "--resume <dir>",
      "continue the experiment in this folder (same options): finished runs are read back, an interrupted one resumes",
    )
    .option("--threads <n>", "BLAS threads of the native backend (default: CHAINOPT_THREADS or OpenBLAS's default)", (v) => {
      const x = Number(v);
      if (!Number.isInteger(x) || x < 1) throw new Error(`--threads: expected a positive integer, got "${v}"`);
      return x;
    })
    .option("--json", "print the summary as one JSON object instead of text")
    .action(async (opts: Record<string, unknown>) => {
      const json = opts.json === true;
      const backend = bestBackend({ threads: opts.threads as number | undefined, quiet: json });
      const given: Record<string, unknown> = {};
      for (const o of def.options) if (opts[o.key] !== undefined) given[o.key] = opts[o.key];
      if (typeof opts.out === "string") given.out = opts.out;
      if (typeof opts.resume === "string") given.resume = opts.resume;
      const log = (line: string) => {
        if (!json) process.stdout.write(`${line}\n`);
      };
      if (!json) process.stderr.write(`backend: ${backend.describe()}\n`);
      // Ctrl-C: the current run stops after its epoch with a checkpoint; a second Ctrl-C exits at once.
      const signal = { stopRequested: false };
      const onSigint = () => {
        if (signal.stopRequested) process.exit(130);
        signal.stopRequested = true;
        process.stderr.write("stopping after this epoch (Ctrl-C again to exit now)\n");
      };
      process.on("SIGINT", onSigint);
      let outcome: Awaited<ReturnType<ExperimentDefinition["run"]>>;
      try {
        outcome = await def.run(given, { log, signal });
      } finally {
        process.off("SIGINT", onSigint);
      }
      if (json) process.stdout.write(`${JSON.stringify({ experiment: def.name, runDir: outcome.runDir, ...outcome.summary })}\n`);
    });
}

/** `chainopt experiment <name>`: runs a named experiment (see src/node/experiments/registry.ts). */
export function register(program: Command): void {
  const experiment = program
    .command("experiment")
    .description(`run an experiment and write its run directory: ${EXPERIMENTS.map((e) => e.name).join(", ")}`);
  for (const def of EXPERIMENTS) addExperiment(experiment, def);
}
