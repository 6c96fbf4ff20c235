import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Chain } from "../chain/chain.js";
import { appendLineDurable, jsonSafe, readJsonLines, repairJsonLines, writeFileAtomic, writeJsonAtomic } from "./atomic.js";
import { type CheckpointData, type LoadedCheckpoint, loadCheckpoint, saveCheckpoint } from "./checkpoint.js";
import { safeFileName } from "./safe-path.js";
import { exportTorchSafetensors } from "./torch-interop.js";
import { createFolder } from "./train-guards.js";

/**
 * A run directory: everything one `chainopt train` / `chainopt experiment` run writes.
 *
 *   config.json                  the fully resolved configuration (see {@link RunConfig}), atomic
 *   metrics.jsonl                one JSON object per line (see {@link MetricRecord}), appended
 *   checkpoints/last.safetensors the latest checkpoint (chainopt layout, see checkpoint.ts)
 *   checkpoints/best.safetensors the checkpoint with the best monitored metric so far
 *   checkpoints/index.json       which step/epoch each holds, and the best metric value
 *   model.safetensors            the final parameters (chainopt layout)
 *   model.torch.safetensors      the same under PyTorch nn.Sequential names (optional)
 *   summary.json                 final numbers (written at the end)
 *   certificate.json, smoothing.json   optional per-layer results (schema in src/report/schema.ts)
 *   plots/                       SVG/CSV/Vega-Lite files written by plotLines
 *
 * Every file but metrics.jsonl is replaced atomically (temporary file + fsync + rename), so a
 * process killed at any moment leaves each file either old or new. metrics.jsonl is appended one
 * line per write(2); a torn last line is skipped on read and cut by {@link RunDirectory.open}.
 */

/** The resolved configuration of a run, as written to config.json. Free-form beyond these keys. */
export interface RunConfig {
  name?: string;
  /** The model spec (validated, defaults filled). */
  model?: unknown;
  optimizer?: unknown;
  data?: unknown;
  seed?: number;
  /** Backend description, e.g. `{ name: "portable", threads: 1 }`. */
  backend?: unknown;
  [key: string]: unknown;
}

/**
 * One line of metrics.jsonl. `type: "step"` records carry per-step values (`loss`, `lr`,
 * `grad_norm`); `type: "epoch"` records carry per-epoch evaluations named `<split>_<metric>`,
 * with split ∈ {train, validation, test} and metric ∈ {loss, accuracy}, e.g. `validation_accuracy`.
 * `wall` is seconds since the run started (accumulated across resumes). Any other numeric key is
 * kept and plotted by the report as an extra series. Non-finite numbers are stored as strings.
 */
export interface MetricRecord {
  type: "step" | "epoch" | string;
  step: number;
  epoch: number;
  wall?: number;
  loss?: number;
  lr?: number;
  grad_norm?: number;
  [key: string]: unknown;
}

/** checkpoints/index.json */
export interface CheckpointIndex {
  last?: { file: string; step: number; epoch: number; wall?: number };
  best?: { file: string; step: number; epoch: number; metric: string; value: number; mode: "min" | "max" };
}

/** Options of {@link RunDirectory.create}. */
export interface CreateRunOptions {
  /** The directory (`--out`); default `<root>/<timestamp>-<name>`. */
  out?: string;
  /** Parent of default directories (default `runs`). */
  root?: string;
  /** Short name used in the default directory name (default `run`). */
  name?: string;
  /** Allow an existing non-empty `out` directory (default false: refuse to mix two runs). */
  overwrite?: boolean;
  /** Time used for the default name (tests). */
  now?: Date;
}

/** `YYYYMMDD-HHMMSS` in UTC. */
export function timestamp(d: Date = new Date()): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}

let cachedVersion: string | undefined;
/** chainopt's version, from its package.json. */
export function libraryVersion(): string {
  if (cachedVersion === undefined) {
    try {
      // dist/src/node/run-dir.js → the package root.
      const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version?: string };
      cachedVersion = pkg.version ?? "unknown";
    } catch {
      cachedVersion = "unknown";
    }
  }
  return cachedVersion;
}

/** The `__metadata__` of a safetensors file, reading only its header (undefined when absent or unreadable). */
function readSafetensorsMetadata(file: string): Record<string, string> | undefined {
  if (!existsSync(file)) return undefined;
  const fd = openSync(file, "r");
  try {
    const head = Buffer.alloc(8);
    if (readSync(fd, head, 0, 8, 0) !== 8) return undefined;
    const n = Number(head.readBigUInt64LE(0));
    if (n > 100_000_000) return undefined;
    const header = Buffer.alloc(n);
    if (readSync(fd, header, 0, n, 8) !== n) return undefined;
    return (JSON.parse(header.toString("utf8")) as { __metadata__?: Record<string, string> }).__metadata__;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** A run's default folder name from data (model and data set names): one safe path segment (src/node/safe-path.ts). */
const safeName = (name: string) => safeFileName(name, "run").slice(0, 80);

/** A run directory (see the module documentation for the layout). */
export class RunDirectory {
  readonly dir: string;
  private startWall: number;
  private wallOffset: number;

  private constructor(dir: string, wallOffset = 0) {
    this.dir = dir;
    this.startWall = performance.now();
    this.wallOffset = wallOffset;
  }

  /** Creates a new run directory (and `checkpoints/`); writes nothing else yet. */
  static create(options: CreateRunOptions = {}): RunDirectory {
    let dir: string;
    if (options.out) {
      dir = resolve(options.out);
      if (existsSync(dir) && readdirSync(dir).length > 0 && !options.overwrite) {
        throw new Error(`${dir}: the run directory exists and is not empty (use --resume to continue it, or another --out)`);
      }
    } else {
      const base = join(options.root ?? "runs", `${timestamp(options.now)}-${safeName(options.name ?? "run")}`);
      dir = resolve(base);
      for (let k = 2; existsSync(dir); k++) dir = resolve(`${base}-${k}`);
    }
    // One level at a time, with errors naming the folder (src/node/train-guards.ts).
    createFolder(join(dir, "checkpoints"), options.out ? "--out" : "run directory", options.out ?? dir);
    return new RunDirectory(dir);
  }

  /**
   * Opens an existing run directory to resume it: cuts a torn last line of metrics.jsonl, and drops
   * metric records logged after the last checkpoint (they will be logged again by the resumed run,
   * so that the file matches an uninterrupted run's). The wall clock continues from the checkpoint.
   */
  static open(dir: string): RunDirectory {
    const abs = resolve(dir);
    if (!existsSync(join(abs, "config.json"))) throw new Error(`${abs}: not a run directory (no config.json)`);
    mkdirSync(join(abs, "checkpoints"), { recursive: true });
    const run = new RunDirectory(abs);
    run.cleanTemporaryFiles();
    repairJsonLines(run.metricsPath);
    // The position of checkpoints/last.safetensors itself: index.json is written after it, so a
    // kill between the two leaves the index one checkpoint behind the file that will be resumed.
    const last = run.lastCheckpointPosition() ?? run.checkpointIndex().last;
    if (last) {
      run.truncateMetricsAfter(last.step, last.epoch);
      run.wallOffset = last.wall ?? 0;
    } else if (existsSync(run.metricsPath)) {
      writeFileAtomic(run.metricsPath, "");
    }
    return run;
  }

  get configPath(): string {
    return join(this.dir, "config.json");
  }
  get metricsPath(): string {
    return join(this.dir, "metrics.jsonl");
  }
  get checkpointsDir(): string {
    return join(this.dir, "checkpoints");
  }
  get lastCheckpointPath(): string {
    return join(this.dir, "checkpoints", "last.safetensors");
  }
  get bestCheckpointPath(): string {
    return join(this.dir, "checkpoints", "best.safetensors");
  }
  get modelPath(): string {
    return join(this.dir, "model.safetensors");
  }
  get summaryPath(): string {
    return join(this.dir, "summary.json");
  }
  get plotsDir(): string {
    return join(this.dir, "plots");
  }
  /** A path inside the run directory. */
  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  /** Seconds since the run started (across resumes). */
  wall(): number {
    return this.wallOffset + (performance.now() - this.startWall) / 1000;
  }

  /**
   * Writes config.json (atomically), adding `library: {name, version}`, `node` (process.version),
   * and `created` (ISO time). Returns what was written.
   */
  writeConfig(config: RunConfig): RunConfig & { library: { name: string; version: string } } {
    const full = {
      ...config,
      library: { name: "chainopt", version: libraryVersion() },
      node: process.version,
      created: new Date().toISOString(),
    };
    writeJsonAtomic(this.configPath, jsonSafe(full));
    return full;
  }

  readConfig<T = RunConfig>(): T {
    return JSON.parse(readFileSync(this.configPath, "utf8")) as T;
  }

  /** Appends one record to metrics.jsonl (adds `wall` when missing; NaN/Inf kept as strings). */
  logMetrics(record: MetricRecord, options: { fsync?: boolean } = {}): void {
    const r = record.wall === undefined ? { ...record, wall: this.wall() } : record;
    appendLineDurable(this.metricsPath, jsonSafe(r), options);
  }

  /** All records of metrics.jsonl (a torn last line skipped). */
  readMetrics(): MetricRecord[] {
    return readJsonLines<MetricRecord>(this.metricsPath);
  }

  /** Keeps only records with step ≤ `step` (and, for epoch records, epoch ≤ `epoch`), atomically. */
  truncateMetricsAfter(step: number, epoch: number): void {
    if (!existsSync(this.metricsPath)) return;
    const kept = this.readMetrics().filter((r) => r.step <= step && (r.type !== "epoch" || r.epoch <= epoch));
    writeFileAtomic(this.metricsPath, kept.map((r) => `${JSON.stringify(r)}\n`).join(""));
  }

  checkpointIndex(): CheckpointIndex {
    const p = join(this.checkpointsDir, "index.json");
    return existsSync(p) ? (JSON.parse(readFileSync(p, "utf8")) as CheckpointIndex) : {};
  }

  /**
   * Saves `checkpoints/last.safetensors`, and `best.safetensors` when `monitor` improves on the best
   * so far (mode `min` by default: lower is better; NaN never improves). The index is written after
   * the checkpoint files, so it never names a checkpoint that is not complete. Returns whether this
   * checkpoint became the best. Call after each epoch (or every N steps), after logging its metrics.
   */
  saveCheckpoint(chain: Chain, data: CheckpointData, monitor?: { metric: string; value: number; mode?: "min" | "max" }): boolean {
    const step = data.step ?? 0;
    const epoch = data.epoch ?? 0;
    const wall = this.wall();
    const extra = { ...data.extra, wall };
    saveCheckpoint(this.lastCheckpointPath, chain, { ...data, extra });
    const index = this.checkpointIndex();
    index.last = { file: "last.safetensors", step, epoch, wall };
    let improved = false;
    if (monitor && Number.isFinite(monitor.value)) {
      const mode = monitor.mode ?? "min";
      const best = index.best;
      improved = !best || best.metric !== monitor.metric || (mode === "min" ? monitor.value < best.value : monitor.value > best.value);
      if (improved) {
        saveCheckpoint(this.bestCheckpointPath, chain, { ...data, extra: { ...extra, best: monitor } });
        index.best = { file: "best.safetensors", step, epoch, metric: monitor.metric, value: monitor.value, mode };
      }
    }
    writeJsonAtomic(join(this.checkpointsDir, "index.json"), index);
    return improved;
  }

  /** Step, epoch and wall time of checkpoints/last.safetensors, read from its header (undefined when absent or unreadable). */
  lastCheckpointPosition(): { step: number; epoch: number; wall?: number } | undefined {
    const meta = readSafetensorsMetadata(this.lastCheckpointPath);
    if (!meta || meta.step === undefined || meta.epoch === undefined) return undefined;
    let wall: number | undefined;
    try {
      const w = (JSON.parse(meta.extra ?? "{}") as { wall?: unknown }).wall;
      if (typeof w === "number") wall = w;
    } catch {
      wall = undefined;
    }
    return { step: Number(meta.step), epoch: Number(meta.epoch), wall };
  }

  /** Loads the last checkpoint (or null when none was saved). */
  loadLastCheckpoint(chain: Chain): LoadedCheckpoint | null {
    return existsSync(this.lastCheckpointPath) ? loadCheckpoint(this.lastCheckpointPath, chain) : null;
  }

  /** Loads the best checkpoint (or null). */
  loadBestCheckpoint(chain: Chain): LoadedCheckpoint | null {
    return existsSync(this.bestCheckpointPath) ? loadCheckpoint(this.bestCheckpointPath, chain) : null;
  }

  /**
   * Writes the final model: model.safetensors (chainopt layout, a checkpoint without optimizer
   * state) and, with `torch: true`, model.torch.safetensors under PyTorch names.
   */
  saveModel(
    chain: Chain,
    params: CheckpointData["params"],
    state?: CheckpointData["state"],
    options: { torch?: boolean; step?: number; epoch?: number } = {},
  ): void {
    saveCheckpoint(this.modelPath, chain, { params, state, step: options.step, epoch: options.epoch });
    if (options.torch) exportTorchSafetensors(chain, params, state ?? null, join(this.dir, "model.torch.safetensors"));
  }

  /** Writes summary.json (atomically), adding the total wall time. */
  writeSummary(summary: Record<string, unknown>): void {
    writeJsonAtomic(this.summaryPath, jsonSafe({ ...summary, wall: summary.wall ?? this.wall() }));
  }

  /** Writes any JSON file of the run (e.g. certificate.json, smoothing.json), atomically. */
  writeJson(name: string, value: unknown): void {
    writeJsonAtomic(join(this.dir, name), jsonSafe(value));
  }

  /** Removes leftover temporary files of interrupted atomic writes (`.*.tmp`). */
  cleanTemporaryFiles(): number {
    let n = 0;
    for (const d of [this.dir, this.checkpointsDir]) {
      if (!existsSync(d)) continue;
      for (const f of readdirSync(d)) {
        if (f.startsWith(".") && f.endsWith(".tmp")) {
          rmSync(join(d, f), { force: true });
          n++;
        }
      }
    }
    return n;
  }
}
