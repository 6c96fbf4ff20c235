import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import type { Chain } from "../../chain/chain.js";
import type { Collective } from "../../core/collective.js";
import type { FloatArray } from "../../core/dtype.js";
import { DataParallel, distributedGgnStepper } from "../../train/data-parallel.js";
import type { SecondOrderCustomStepper } from "../../train/second-order.js";
import type { TrainerOptions } from "../../train/trainer.js";
import { writeJsonAtomic } from "../atomic.js";
import type { RunDirectory } from "../run-dir.js";
import { LOCK_FILE } from "../run-lock.js";
import type { TrainConfig } from "../train-config.js";

/** How `chainopt train --distributed` runs: the job's communicator and the reduction mode. */
export interface DistributedTraining {
  collective: Collective;
  /** Sum gradients in rank order (bit-reproducible for a given number of ranks). */
  deterministic?: boolean;
}

/** `distributed.json` of a run directory: how the run was launched. */
export interface DistributedRecord {
  ranks: number;
  deterministicReduce: boolean;
  library: string;
}

const RECORD = "distributed.json";

/**
 * The data-parallel part of a training job (docs/distributed.md): attaches a {@link DataParallel}
 * to the trainer's options, gives ranks other than 0 a private scratch run directory (only rank 0
 * writes the real one), and broadcasts rank 0's starting point.
 */
export class DistributedJob {
  readonly collective: Collective;
  readonly dataParallel: DataParallel;
  private scratch: string | null = null;

  private readonly secondOrder: SecondOrderCustomStepper | null;
  private readonly stepSize: number;

  constructor(
    d: DistributedTraining,
    options: { resumeDir: string | null; config: TrainConfig; secondOrder: SecondOrderCustomStepper | null },
  ) {
    const { config, secondOrder } = options;
    if (secondOrder && (config.optimizer !== "ggn" || config.lineSearch === true)) {
      throw new Error(
        `--distributed: --optimizer ${config.optimizer}${config.lineSearch ? " --line-search" : ""} is not data-parallel; of the second-order methods, --optimizer ggn (without line search) is, with its Gram matrix split by rows across the ranks`,
      );
    }
    this.secondOrder = secondOrder;
    this.stepSize = config.lr;
    this.collective = d.collective;
    let deterministic = d.deterministic ?? false;
    if (options.resumeDir !== null) {
      // A resumed run keeps its reduction mode (bit-identical continuation needs it).
      const saved = readDistributedRecord(options.resumeDir);
      if (saved) {
        deterministic = deterministic || saved.deterministicReduce;
        if (saved.ranks !== d.collective.size && d.collective.rank === 0) {
          process.stderr.write(
            `chainopt: warning: the run was trained on ${saved.ranks} rank(s), resumed on ${d.collective.size}: it continues correctly but not bit-identically to an uninterrupted run\n`,
          );
        }
      }
    }
    this.dataParallel = new DataParallel(d.collective, { deterministic });
  }

  /** Adds the data-parallel hook to the trainer's options (and the row-split GGN step for `--optimizer ggn`). */
  attach(options: TrainerOptions, chain: Chain): void {
    options.dataParallel = this.dataParallel;
    if (this.secondOrder) {
      if (chain.stateSize > 0) throw new Error("--distributed --optimizer ggn: chains with batch normalization are not supported");
      options.stepper = distributedGgnStepper(this.dataParallel, this.secondOrder, this.stepSize);
    }
  }

  /**
   * Opens the run directory: rank 0 runs `open` (the real directory); every other rank works in a
   * copy in a private temporary folder (removed at exit), so that the job's file writes are rank
   * 0's alone while every rank runs the same code. The barrier makes every rank finish checking
   * its inputs (e.g. that `--out` is empty) before rank 0 writes anything.
   */
  openRun(resumeDir: string | null, open: (dir: string | null) => RunDirectory): RunDirectory {
    const c = this.collective;
    if (c.rank === 0) {
      c.barrier();
      const run = open(null);
      if (resumeDir === null) {
        const record: DistributedRecord = { ranks: c.size, deterministicReduce: this.dataParallel.deterministic, library: c.name };
        writeJsonAtomic(join(run.dir, RECORD), record);
      }
      return run;
    }
    const scratch = mkdtempSync(join(tmpdir(), `chainopt-rank${c.rank}-`));
    this.scratch = scratch;
    process.once("exit", () => this.cleanup());
    const dir = join(scratch, "run");
    // A resumed run: a copy, taken before rank 0 repairs the original (RunDirectory.open).
    // Without rank 0's lock file: this copy is the rank's own (src/node/run-lock.ts).
    if (resumeDir !== null) cpSync(resumeDir, dir, { recursive: true, filter: (src) => basename(src) !== LOCK_FILE });
    c.barrier();
    return open(dir);
  }

  /** Makes every rank start from rank 0's parameters and state. */
  broadcastStart(w: FloatArray, state: FloatArray): void {
    this.dataParallel.broadcast(w, state);
  }

  /** Removes this rank's scratch directory. */
  cleanup(): void {
    if (this.scratch) rmSync(this.scratch, { recursive: true, force: true });
    this.scratch = null;
  }
}

/** The `distributed.json` of a run directory, or null. */
export function readDistributedRecord(dir: string): DistributedRecord | null {
  const f = join(dir, RECORD);
  if (!existsSync(f)) return null;
  return JSON.parse(readFileSync(f, "utf8")) as DistributedRecord;
}
