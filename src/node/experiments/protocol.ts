import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Chain } from "../../chain/chain.js";
import type { FloatArray } from "../../core/dtype.js";
import { type Row, toCsv } from "../../report/plots.js";
import type { Evaluation } from "../../train/evaluate.js";
import { type EpochRecord, NumericalFaultError, type TrainData } from "../../train/trainer.js";
import { readJsonLines, writeFileAtomic } from "../atomic.js";
import { loadCheckpoint } from "../checkpoint.js";
import { canonicalJson, differingKeys } from "../config-digest.js";
import { epochRecordOf, type FitToRunDirOptions, fitToRunDir } from "../fit-run.js";
import { type PlotLinesOptions, plotLines } from "../report.js";
import { type MetricRecord, RunDirectory } from "../run-dir.js";
import { RunLock } from "../run-lock.js";
import { safeJoin } from "../safe-path.js";

// An experiment as a protocol over the public training API: a configuration, a set of named
// training runs, each one `fitToRunDir` in its own run directory under `<experiment>/runs/`, and
// tables and plots computed from what those runs recorded. Everything an experiment writes is
// atomic (src/node/atomic.ts) and every path built from a name stays inside the experiment folder
// (src/node/safe-path.ts). Re-running an experiment with `resume` set to its folder continues it:
// a finished run is read back from its files instead of trained again, an interrupted one resumes
// from its last checkpoint (bit-identical to an uninterrupted run), and the tables are rebuilt.
// With `divergence: "record"`, a run that diverges (a NumericalFaultError: non-finite loss,
// gradient or parameters) is a result, not a crash: `train` returns it with `source: "diverged"`,
// and a resumed experiment reads it back from the `fault` line of its metrics.jsonl instead of
// training into the same fault again (a resume from the last good checkpoint would repeat the
// fault bit for bit).

/** Where an experiment writes: a new folder (`out`, or `root/<timestamp>-<name>`), or `resume` to continue one. */
export interface ProtocolLocation {
  out?: string;
  root?: string;
  /** Continue the experiment in this folder (same configuration). */
  resume?: string;
}

/** Keys of an experiment's configuration that may change on resume (they do not change results). */
export const PROTOCOL_VOLATILE_KEYS: readonly string[] = ["out", "root", "resume", "threads"];

/** One training run of an experiment, as trained now or read back from its run directory. */
export interface ProtocolRun {
  /** The run's name (its folder under `runs/`, made safe). */
  name: string;
  runDir: string;
  /** One record per epoch. */
  history: EpochRecord[];
  /** The epoch lines of metrics.jsonl (with the `epochMetrics` numbers under snake_case keys). */
  epochs: MetricRecord[];
  /** The final parameters (those saved as model.safetensors). */
  params: FloatArray;
  /** The final non-trainable state. */
  state: FloatArray;
  /** Loss and accuracy of the final parameters on the test set, when the data had one (not when diverged). */
  test?: Evaluation;
  /**
   * `trained`: trained (or resumed) by this call; `finished`: read back from a finished run;
   * `diverged`: stopped by a numerical fault (only with `divergence: "record"`), now or before;
   * `params` are then those of its last good checkpoint.
   */
  source: "trained" | "finished" | "diverged";
  /** The numerical fault of a diverged run (its `fault` line of metrics.jsonl). */
  fault?: { step: number; epoch: number; message: string };
  /** Wall-clock seconds of the run (all its sessions). */
  seconds: number;
}

/** Options of {@link ExperimentProtocol.train}: those of `fitToRunDir` less where it writes. */
export type ProtocolTrainOptions = Omit<FitToRunDirOptions, "out" | "name" | "resumeDir" | "resume"> & {
  /**
   * What a `NumericalFaultError` does: `throw` (default) rethrows it; `record` returns the run as
   * `source: "diverged"` (and reads it back as such on resume, without training it again).
   */
  divergence?: "throw" | "record";
};

/** An experiment's folder, its lock, its runs and its result files. */
export class ExperimentProtocol {
  private constructor(
    readonly run: RunDirectory,
    readonly experiment: string,
    private readonly lock: RunLock,
    private readonly signal?: { stopRequested: boolean },
  ) {}

  /** The experiment folder (absolute). */
  get dir(): string {
    return this.run.dir;
  }

  /**
   * Starts experiment `experiment` with configuration `config` (JSON values; written to
   * config.json), or continues the one in `location.resume`, whose configuration must then be the
   * same except for {@link PROTOCOL_VOLATILE_KEYS} (else an Error lists each differing key). Takes
   * the folder's lock (src/node/run-lock.ts) until {@link finish} or the process ends. Setting
   * `signal.stopRequested` (e.g. on Ctrl-C) stops the current run after its epoch, with a
   * checkpoint; {@link train} then throws, naming the folder to resume.
   */
  static begin(
    experiment: string,
    location: ProtocolLocation,
    config: Record<string, unknown>,
    signal?: { stopRequested: boolean },
  ): ExperimentProtocol {
    const stable = (c: Record<string, unknown>) =>
      JSON.parse(canonicalJson(Object.fromEntries(Object.entries(c).filter(([k]) => !PROTOCOL_VOLATILE_KEYS.includes(k))))) as Record<
        string,
        unknown
      >;
    let run: RunDirectory;
    if (location.resume !== undefined) {
      run = RunDirectory.open(location.resume);
      const saved = run.readConfig();
      if (saved.experiment !== experiment) {
        throw new Error(`${run.configPath}: not a "${experiment}" experiment (experiment: ${JSON.stringify(saved.experiment)})`);
      }
      const before = stable((saved.options ?? {}) as Record<string, unknown>);
      const now = stable(config);
      const keys = differingKeys(before, now);
      if (keys.length > 0) {
        const show = (v: unknown) => (v === undefined ? "(unset)" : canonicalJson(v));
        const lines = keys.map((k) => `  ${k}: ${show(before[k])} in ${run.configPath}, ${show(now[k])} now`).join("\n");
        throw new Error(`--resume: the experiment's options differ from those it was started with:\n${lines}`);
      }
      const lock = RunLock.acquire(run.dir);
      return new ExperimentProtocol(run, experiment, lock, signal);
    }
    run = RunDirectory.create({ out: location.out, root: location.root, name: experiment });
    const lock = RunLock.acquire(run.dir);
    run.writeConfig({ experiment, options: stable(config) });
    return new ExperimentProtocol(run, experiment, lock, signal);
  }

  /** A path inside the experiment folder for a file named from data (made safe, never outside). */
  path(name: string, extension = ""): string {
    return safeJoin(this.dir, name, extension);
  }

  /**
   * Trains run `name` with `fitToRunDir` in `runs/<name>/`, or resumes it there from its last
   * checkpoint, or, when it finished before, reads it back without training. A finished run asked
   * for more epochs than it has (and not stopped early) continues from its last checkpoint, so that
   * an experiment can train several runs in lockstep, one epoch at a time. The caller passes the
   * same chain, data and options each time (they are the experiment's configuration).
   */
  async train(name: string, chain: Chain, data: TrainData, options: ProtocolTrainOptions): Promise<ProtocolRun> {
    const { divergence, ...fitOptions } = options;
    const runsDir = join(this.dir, "runs");
    const dir = safeJoin(runsDir, name, "", "run");
    if (divergence === "record") {
      const fault = faultOf(dir);
      if (fault) return this.readDiverged(name, dir, chain, fault);
    }
    if (existsSync(join(dir, "summary.json"))) {
      const summary = summaryOf(dir);
      if (summary.stoppedEarly === true || !(typeof summary.epochs === "number" && summary.epochs < options.epochs)) {
        return this.readFinished(name, dir, chain);
      }
    }
    const started = existsSync(join(dir, "config.json")) && existsSync(join(dir, "checkpoints", "last.safetensors"));
    let result: Awaited<ReturnType<typeof fitToRunDir>>;
    try {
      result = await fitToRunDir(chain, data, {
        ...fitOptions,
        signal: this.signal,
        ...(started ? { resumeDir: dir } : { out: dir }),
        config: { experiment: this.experiment, run: name, ...options.config },
      });
    } catch (error) {
      if (divergence === "record" && error instanceof NumericalFaultError) {
        const fault = faultOf(dir);
        if (fault) return this.readDiverged(name, dir, chain, fault);
      }
      throw error;
    }
    if (result.interrupted) throw new Error(`${this.experiment}: run ${name} was interrupted; continue with --resume ${this.dir}`);
    const seconds = summaryOf(dir).seconds;
    return {
      name,
      runDir: dir,
      history: result.history,
      epochs: metricsOf(dir).filter((m) => m.type === "epoch"),
      params: result.params,
      state: result.state,
      test: result.test,
      source: "trained",
      seconds: typeof seconds === "number" ? seconds : result.seconds,
    };
  }

  /** A diverged run read from its files (not opened: that would drop its `fault` line). */
  private readDiverged(name: string, dir: string, chain: Chain, fault: MetricRecord): ProtocolRun {
    const epochs = metricsOf(dir).filter((m) => m.type === "epoch");
    const last = loadCheckpoint(join(dir, "checkpoints", "last.safetensors"), chain);
    const wall = (last.extra as { wall?: unknown } | undefined)?.wall;
    return {
      name,
      runDir: dir,
      history: epochs.map(epochRecordOf),
      epochs,
      params: last.params,
      state: last.state,
      source: "diverged",
      fault: { step: fault.step, epoch: fault.epoch, message: String(fault.message ?? "") },
      seconds: typeof wall === "number" ? wall : 0,
    };
  }

  private readFinished(name: string, dir: string, chain: Chain): ProtocolRun {
    const metrics = metricsOf(dir);
    const epochs = metrics.filter((m) => m.type === "epoch");
    const final = metrics.filter((m) => m.type === "final").at(-1);
    const model = loadCheckpoint(join(dir, "model.safetensors"), chain);
    const summary = summaryOf(dir);
    return {
      name,
      runDir: dir,
      history: epochs.map(epochRecordOf),
      epochs,
      params: model.params,
      state: model.state,
      test:
        final && typeof final.test_loss === "number"
          ? {
              loss: final.test_loss,
              accuracy: typeof final.test_accuracy === "number" ? final.test_accuracy : undefined,
              size: typeof final.test_size === "number" ? final.test_size : 0,
            }
          : undefined,
      source: "finished",
      seconds: typeof summary.seconds === "number" ? summary.seconds : 0,
    };
  }

  /** Writes table `name`.csv in the experiment folder (atomically) and returns its path. */
  table(name: string, rows: Row[]): string {
    const file = this.path(name, ".csv");
    writeFileAtomic(file, toCsv(rows));
    return file;
  }

  /** Writes text file `name` (its extension included) in the experiment folder, atomically. */
  text(name: string, content: string): string {
    const file = this.path(name);
    writeFileAtomic(file, content);
    return file;
  }

  /** Plots `rows` into the experiment's plots/ folder (SVG, CSV, Vega-Lite; PNG unless disabled). */
  async plot(rows: Row[], options: Omit<PlotLinesOptions, "dir">): Promise<void> {
    await plotLines(rows, { ...options, dir: this.run.plotsDir });
  }

  /**
   * Releases the lock without writing a summary (idempotent; a no-op after {@link finish}), e.g. when
   * the experiment stops on an error or an interruption, so that the same process may resume it.
   */
  release(): void {
    this.lock.release();
  }

  /** Writes summary.json and releases the lock; returns the summary. */
  finish(summary: Record<string, unknown>): Record<string, unknown> {
    this.run.writeSummary(summary);
    this.lock.release();
    return summary;
  }
}

/** The metrics lines of run directory `dir` (read only: opening it to resume would cut lines). */
function metricsOf(dir: string): MetricRecord[] {
  return readJsonLines<MetricRecord>(join(dir, "metrics.jsonl"));
}

/** The numerical fault logged in run directory `dir`, if any. */
function faultOf(dir: string): MetricRecord | undefined {
  return metricsOf(dir).find((m) => m.type === "fault");
}

/** summary.json of run directory `dir`. */
function summaryOf(dir: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(dir, "summary.json"), "utf8")) as Record<string, unknown>;
}
