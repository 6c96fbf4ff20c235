import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { z } from "zod";
import { writeJsonAtomic } from "./atomic.js";
import type { DistributedTraining } from "./distributed/train.js";
import { parseTrainConfig, type TrainConfigInput, trainConfigSchema } from "./train-config.js";
import { runTrainJob, type TrainJobEvents } from "./train-job.js";

// `chainopt sweep SWEEP.json` (docs/distributed.md): a grid over any `chainopt train` options
// (seeds, learning rates, smoothing ε, models, data sets …) expanded into numbered tasks, each
// trained in its own run directory under the sweep's output folder, so that a scheduler's job
// array (Slurm `--array`, a Kubernetes Indexed Job) runs one task per array element. A finished
// task (summary.json present) is skipped; a killed one resumes from its last checkpoint.

/** Schema of a sweep file. */
export const sweepSchema = z
  .object({
    /** Name of the sweep (letters, digits, `.`, `_`, `-`): the default output folder's name. */
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "letters, digits, '.', '_' and '-' only, starting with a letter or digit")
      .max(80),
    description: z.string().optional(),
    /** Output folder (default `sweeps/<name>` relative to the current directory); relative paths are taken from the sweep file's folder. */
    out: z.string().min(1).optional(),
    /** Options common to every task (any `chainopt train` option but `out`). */
    base: z.record(z.string(), z.unknown()).default({}),
    /**
     * Axis → its values; tasks are the Cartesian product, the last axis varying fastest. An axis is
     * a train option (`null` leaves it unset) or, under any other name, a bundle: a list of objects
     * of train options that vary together (e.g. `{"smoothEpsilon": 0.01, "radii": [...]}`).
     */
    grid: z.record(z.string(), z.array(z.unknown()).min(1, "an axis needs at least one value")),
  })
  .strict();

/** A sweep file as written. */
export type SweepInput = z.input<typeof sweepSchema>;

/** One task of a sweep. */
export interface SweepTask {
  /** 0-based index (the job-array index). */
  index: number;
  /** Folder name under the sweep's output folder (built from the index and sanitized values). */
  name: string;
  /** The axis values of this task (null: option unset). */
  assignment: Record<string, unknown>;
  /** The task's full training configuration (base + assignment), without `out`. */
  config: TrainConfigInput;
}

/** A parsed sweep: its tasks and output folder. */
export interface Sweep {
  name: string;
  description?: string;
  out: string;
  axes: { name: string; values: unknown[] }[];
  tasks: SweepTask[];
}

const OPTION_KEYS = Object.keys(trainConfigSchema.shape);

function issues(error: z.ZodError, prefix: string): string[] {
  return error.issues.map(
    (i) =>
      `  ${[prefix, ...i.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`))].join("").replace(/^\./, "")}: ${i.message}`,
  );
}

/** A short, file-name-safe rendering of an axis value (model specs become `spec<i>`). */
export function valueLabel(value: unknown, index: number): string {
  if (value === null) return "none";
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (typeof value === "string") return safeSegment(value.replace(/^.*[/\\]/, "").replace(/\.json$/, ""), 24);
  if (Array.isArray(value)) return safeSegment(value.join("x"), 24);
  if (isBundle(value)) {
    // A bundle of options: its scalar entries, e.g. `smoothEpsilon=0.01` ("none" when empty).
    const parts = Object.entries(value)
      .filter(([, v]) => typeof v === "number" || typeof v === "string" || typeof v === "boolean")
      .map(([k, v]) => `${k}=${v}`);
    return parts.length > 0 ? safeSegment(parts.join("_"), 40) : "none";
  }
  return `spec${index}`;
}

/** A bundle value: a plain object of train options (not a model spec). */
function isBundle(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !("layers" in value);
}

/** Letters, digits, `.`, `-`, `+`, `=` only (others become `_`), no leading dot, at most `max` characters. */
export function safeSegment(s: string, max = 40): string {
  const t = s
    .replace(/[^A-Za-z0-9.+=-]+/g, "_")
    .replace(/^[._]+/, "")
    .slice(0, max);
  return t === "" || t === "." || t === ".." ? "x" : t;
}

/** Validates a sweep (errors name the field: `grid.lr[2]: …`) and expands it into tasks. */
export function parseSweep(input: unknown, file = "sweep file"): Sweep {
  const r = sweepSchema.safeParse(input);
  if (!r.success) throw new Error(`invalid ${file}:\n${issues(r.error, "").join("\n")}`);
  const s = r.data;
  const errors: string[] = [];
  for (const key of ["out", "resume"]) {
    if (key in s.base) errors.push(`  base.${key}: set by the sweep (each task writes its own run directory under the sweep's "out")`);
    if (key in s.grid) errors.push(`  grid.${key}: set by the sweep (each task writes its own run directory under the sweep's "out")`);
  }
  // The base alone (with defaults for the rest).
  const baseCheck = trainConfigSchema.safeParse(Object.fromEntries(Object.entries(s.base).filter(([k]) => k !== "out")));
  if (!baseCheck.success) errors.push(...issues(baseCheck.error, "base"));
  const axes = Object.entries(s.grid).map(([name, values]) => ({ name, values }));
  for (const { name, values } of axes) {
    if (name === "out") continue;
    if (!OPTION_KEYS.includes(name)) {
      // A bundle axis: each value an object of options that vary together (e.g. smoothEpsilon with its radii).
      if (!values.every((v) => v === null || isBundle(v))) {
        errors.push(
          `  grid.${name}: not a train option (known: ${OPTION_KEYS.filter((k) => k !== "out").join(", ")}), nor a bundle axis (a list of objects of train options)`,
        );
        continue;
      }
      values.forEach((v, i) => {
        if (v === null) return;
        for (const key of ["out", "resume"]) if (key in (v as object)) errors.push(`  grid.${name}[${i}].${key}: set by the sweep`);
        const c = trainConfigSchema.safeParse(v);
        if (!c.success) errors.push(...issues(c.error, `grid.${name}[${i}]`));
      });
      continue;
    }
    values.forEach((v, i) => {
      if (v === null) return;
      const c = trainConfigSchema.safeParse({ [name]: v });
      if (!c.success) errors.push(...issues(c.error, "grid").map((l) => l.replace(`grid.${name}:`, `grid.${name}[${i}]:`)));
    });
  }
  if (errors.length > 0) throw new Error(`invalid ${file}:\n${errors.join("\n")}`);
  const count = axes.reduce((n, a) => n * a.values.length, 1);
  const digits = Math.max(4, String(count - 1).length);
  const tasks: SweepTask[] = [];
  for (let index = 0; index < count; index++) {
    let rest = index;
    const assignment: Record<string, unknown> = {};
    const labels: string[] = [];
    for (let a = axes.length - 1; a >= 0; a--) {
      const { name, values } = axes[a];
      const vi = rest % values.length;
      rest = Math.floor(rest / values.length);
      assignment[name] = values[vi];
      if (values.length > 1) labels.unshift(`${safeSegment(name, 16)}=${valueLabel(values[vi], vi)}`);
    }
    const ordered = Object.fromEntries(axes.map((a) => [a.name, assignment[a.name]]));
    const config: Record<string, unknown> = { ...s.base };
    for (const [k, v] of Object.entries(ordered)) {
      if (!OPTION_KEYS.includes(k))
        Object.assign(config, v ?? {}); // a bundle axis
      else if (v === null) delete config[k];
      else config[k] = v;
    }
    // The whole configuration must be valid too (e.g. combinations the per-field checks cannot see).
    try {
      parseTrainConfig(config, `task ${index}`);
    } catch (error) {
      throw new Error(`invalid ${file}: ${(error as Error).message}`);
    }
    const name = safeSegment(`task-${String(index).padStart(digits, "0")}${labels.length > 0 ? `-${labels.join("-")}` : ""}`, 120);
    tasks.push({ index, name, assignment: ordered, config: config as TrainConfigInput });
  }
  return { name: s.name, description: s.description, out: s.out ?? join("sweeps", s.name), axes, tasks };
}

/** Reads and parses a sweep file; a relative `out` is resolved from the file's folder. */
export function readSweepFile(file: string): Sweep {
  if (!existsSync(file)) throw new Error(`${file}: sweep file not found`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new Error(`${file}: invalid JSON (${(error as Error).message})`);
  }
  const sweep = parseSweep(json, file);
  const given = (json as { out?: string }).out;
  sweep.out = given !== undefined ? (isAbsolute(given) ? given : resolve(dirname(file), given)) : resolve(sweep.out);
  return sweep;
}

/** The run directory of a task: `<out>/<task name>`, checked to stay inside `<out>`. */
export function taskDirectory(sweep: Sweep, task: SweepTask): string {
  const root = resolve(sweep.out);
  const dir = resolve(root, task.name);
  const rel = relative(root, dir);
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel) || rel.includes(sep))
    throw new Error(`task ${task.index}: folder name ${JSON.stringify(task.name)} leaves ${root}`);
  return dir;
}

/**
 * The task index from `--task`, else `SLURM_ARRAY_TASK_ID` (Slurm job arrays), else
 * `JOB_COMPLETION_INDEX` (Kubernetes Indexed Jobs); null when none is set (run every task).
 */
export function taskIndexFrom(
  flag: string | undefined,
  count: number,
  env: Readonly<Record<string, string | undefined>> = process.env,
): number | null {
  const sources: [string, string | undefined][] = [
    ["--task", flag],
    ["SLURM_ARRAY_TASK_ID", env.SLURM_ARRAY_TASK_ID],
    ["JOB_COMPLETION_INDEX", env.JOB_COMPLETION_INDEX],
  ];
  for (const [what, v] of sources) {
    if (v === undefined || v === "") continue;
    if (!/^\d+$/.test(v)) throw new Error(`${what}: expected a task index 0…${count - 1}, got ${JSON.stringify(v)}`);
    const k = Number(v);
    if (k >= count) throw new Error(`${what}: task ${k} does not exist (the sweep has ${count} tasks, 0…${count - 1})`);
    return k;
  }
  return null;
}

/** What running one task did. */
export type TaskOutcome = "finished" | "skipped" | "resumed";

/**
 * Runs one task: skipped when its run directory has a summary.json (finished), resumed from its
 * last checkpoint when it has a config.json (killed), started otherwise. With `distributed` (the
 * task launched by mpirun/srun on several ranks) every rank decides before rank 0 writes anything.
 */
export async function runSweepTask(
  sweep: Sweep,
  task: SweepTask,
  events: TrainJobEvents = {},
  distributed?: DistributedTraining,
): Promise<TaskOutcome> {
  const dir = taskDirectory(sweep, task);
  const c = distributed?.collective;
  const root = !c || c.rank === 0;
  const outcome: TaskOutcome = existsSync(join(dir, "summary.json"))
    ? "skipped"
    : existsSync(join(dir, "config.json"))
      ? "resumed"
      : "finished";
  c?.barrier();
  if (root) writeManifest(sweep);
  if (outcome === "skipped") return outcome;
  if (outcome === "resumed") {
    await runTrainJob({ resume: dir }, events, undefined, distributed);
    return outcome;
  }
  // Killed before its configuration was written: only an empty checkpoints/ folder can be there.
  if (root && existsSync(dir)) {
    const entries = readdirSync(dir);
    const emptyCheckpoints = entries.length === 1 && entries[0] === "checkpoints" && readdirSync(join(dir, "checkpoints")).length === 0;
    if (entries.length > 0 && !emptyCheckpoints)
      throw new Error(`${dir}: exists but is not a run directory of this sweep (no config.json); move it away`);
    if (emptyCheckpoints) rmdirSync(join(dir, "checkpoints"));
    rmdirSync(dir);
  }
  c?.barrier();
  await runTrainJob({ ...task.config, out: dir }, events, undefined, distributed);
  return outcome;
}

/** `<out>/sweep.json`: the sweep's axes and tasks, read by `chainopt report`. */
export function writeManifest(sweep: Sweep): void {
  mkdirSync(sweep.out, { recursive: true });
  const file = join(sweep.out, "sweep.json");
  const manifest = {
    name: sweep.name,
    description: sweep.description,
    axes: sweep.axes,
    tasks: sweep.tasks.map((t) => ({ index: t.index, name: t.name, assignment: t.assignment })),
  };
  if (existsSync(file) && readFileSync(file, "utf8") === `${JSON.stringify(manifest, null, 2)}\n`) return;
  writeJsonAtomic(file, manifest);
}
