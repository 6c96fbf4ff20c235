// Experiments: named, reproducible studies that write a run directory (src/node/run-dir.ts) with
// CSV tables, plots (src/node/report.ts, plotLines) and a summary. They are Node-side code (they
// write files and may load data sets), like src/node and src/cli. Each experiment module exports
// one {@link ExperimentDefinition}; src/node/experiments/registry.ts lists them, and the CLI
// (`chainopt experiment <name>`, src/cli/commands/experiment.ts) builds one subcommand per entry
// from its declared options.

/** Type of an experiment option, which decides how the CLI parses its flag. */
export type ExperimentOptionType = "int" | "number" | "string" | "boolean" | "numbers" | "strings";

/** One option of an experiment; the CLI flag is the kebab-case of `key` (`hiddenWidth` → `--hidden-width`). */
export interface ExperimentOption {
  key: string;
  type: ExperimentOptionType;
  description: string;
  /** Default value (shown in the help). Booleans defaulting to true get a `--no-<flag>` switch. */
  default?: number | string | boolean | readonly number[] | readonly string[];
  /** Allowed values of a `string` option. */
  choices?: readonly string[];
  /** Placeholder of the value in the help, e.g. `<n>` (default from the type). */
  placeholder?: string;
}

/** Where an experiment reports progress (the CLI prints to stdout; tests may collect or drop lines). */
export interface ExperimentIO {
  log(line: string): void;
  /**
   * Set `stopRequested` to stop the experiment after the current epoch of its current run (a
   * checkpoint is written; `--resume <folder>` continues it). The CLI sets it on Ctrl-C.
   */
  signal?: { stopRequested: boolean };
}

/** What an experiment returns: its run directory and the numbers of its summary.json. */
export interface ExperimentOutcome {
  runDir: string;
  summary: Record<string, unknown>;
}

/** A named experiment: description, options and entry point. */
export interface ExperimentDefinition {
  name: string;
  description: string;
  options: readonly ExperimentOption[];
  /**
   * Runs the experiment. `options` holds the parsed flags (only those given, plus `out` when
   * `--out` was given); the experiment fills in its own defaults and validates.
   */
  run(options: Record<string, unknown>, io: ExperimentIO): Promise<ExperimentOutcome>;
}

/** An {@link ExperimentIO} that drops everything. */
export const silentIO: ExperimentIO = { log: () => {} };

/**
 * The options of an experiment with defaults filled in: declared options take `given[key]` when
 * present, else their default; other given keys (e.g. `out`) are kept. Values given with the wrong
 * type throw an Error naming the option.
 */
export function resolveOptions(declared: readonly ExperimentOption[], given: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...given };
  for (const o of declared) {
    const v = given[o.key];
    if (v === undefined) {
      if (o.default !== undefined) out[o.key] = Array.isArray(o.default) ? [...o.default] : o.default;
      continue;
    }
    const fail = (what: string) => {
      throw new Error(`${o.key}: expected ${what}, got ${JSON.stringify(v)}`);
    };
    switch (o.type) {
      case "int":
        if (!Number.isInteger(v)) fail("an integer");
        break;
      case "number":
        if (typeof v !== "number" || !Number.isFinite(v)) fail("a finite number");
        break;
      case "boolean":
        if (typeof v !== "boolean") fail("true or false");
        break;
      case "string":
        if (typeof v !== "string") fail("a string");
        if (o.choices && !o.choices.includes(v as string)) fail(`one of ${o.choices.join(", ")}`);
        break;
      case "numbers":
        if (!Array.isArray(v) || v.some((x) => typeof x !== "number" || !Number.isFinite(x))) fail("a list of numbers");
        break;
      case "strings":
        if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) fail("a list of strings");
        break;
    }
  }
  return out;
}
