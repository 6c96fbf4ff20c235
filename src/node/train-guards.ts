import { accessSync, constants, existsSync, mkdirSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, resolve } from "node:path";
import type { Backend } from "../core/backend.js";
import { type Dataset, ValidationSizeError } from "../data/dataset.js";

/**
 * Checks of a training job's inputs that must pass before anything is written (docs/training.md,
 * "Order of work"): the output folder can be created, the loss fits the data set's task, the
 * thread count is within the backend's limit. Each error names the flag, file or folder at fault.
 */

const FS_ERRORS: Record<string, string> = {
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EROFS: "read-only file system",
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  ENOENT: "the folder does not accept new entries",
  ENOTDIR: "a part of the path is a file, not a folder",
  EEXIST: "a file of that name exists",
};

/** A file system error code in words (`ENOSPC` → `no space left on device (ENOSPC)`). */
export function describeFsError(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  const words = e?.code ? FS_ERRORS[e.code] : undefined;
  return words ? `${words} (${e.code})` : String(e?.message ?? error);
}

/**
 * A validation size the data set cannot give (from src/data's split) as an error naming the flag
 * `--validation` and the configuration field `validation`, and the training samples there are
 * (after `--limit` and the data set's test split); other errors are returned unchanged.
 */
export function validationFlagError(error: unknown, dataset: string): unknown {
  if (!(error instanceof ValidationSizeError)) return error;
  const { validation, size } = error;
  const why =
    Number.isFinite(validation) && validation > 0 && (validation < 1 || Number.isInteger(validation))
      ? `${validation < 1 ? `a fraction of ${validation} is ${Math.round(validation * size)} samples, which leaves` : "that leaves"} no training samples`
      : "expected a count ≥ 1 or a fraction in (0, 1)";
  return new Error(
    `--validation ${validation} (configuration field "validation"): ${dataset} has ${size} training samples (after --limit and its test split); ${why}. Use a count below ${size} or a fraction in (0, 1)`,
  );
}

/** The nearest existing ancestor of `path` (itself when it exists). */
function nearestExisting(path: string): string {
  let p = resolve(path);
  while (!existsSync(p)) {
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  return p;
}

/**
 * Checks, without writing, that folder `dir` exists or can be created: its nearest existing
 * ancestor must be a folder that is writable (access(2) W_OK). `flag` names the option (`--out`).
 */
export function checkFolderWritable(dir: string, flag = "--out"): void {
  const abs = resolve(dir);
  const base = nearestExisting(abs);
  if (!statSync(base).isDirectory()) throw new Error(`${flag} ${dir}: ${base} is a file, not a folder`);
  try {
    accessSync(base, constants.W_OK);
  } catch (error) {
    throw new Error(`${flag} ${dir}: cannot create the run directory: the folder ${base} is not writable (${describeFsError(error)})`);
  }
}

/**
 * Creates folder `dir` and its missing parents one level at a time (not `mkdir -p`: Node's
 * recursive mkdir loops forever under some read-only mounts such as /proc), with an error naming
 * the folder that could not be created and why.
 */
export function createFolder(dir: string, flag = "--out", shown = dir): void {
  const abs = resolve(dir);
  const missing: string[] = [];
  for (let p = abs; !existsSync(p); p = dirname(p)) {
    missing.unshift(p);
    if (dirname(p) === p) break;
  }
  for (const p of missing) {
    try {
      mkdirSync(p);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST" && statSync(p).isDirectory()) continue;
      throw new Error(`${flag} ${shown}: cannot create the folder ${p} in ${dirname(p)}: ${describeFsError(error)}`);
    }
  }
}

/** The logistic loss needs class labels; regression sets (targets) need the squared loss. */
export function checkLossMatchesData(loss: string, train: Dataset, dataset: string): void {
  if (loss === "logistic" && !train.labels) {
    throw new Error(
      `loss: the logistic loss needs class labels, but ${dataset} is a regression data set (real-valued targets); use --loss squared`,
    );
  }
}

/** Largest `--threads`: OpenBLAS's compiled MAX_THREADS for the native backend, else the cores. */
export function threadLimit(backend: Backend & { info?: () => { config?: string } }): { limit: number; why: string } {
  const config = typeof backend.info === "function" ? (backend.info().config ?? "") : "";
  const m = /MAX_THREADS=(\d+)/.exec(config);
  if (m) return { limit: Number(m[1]), why: `OpenBLAS was built with MAX_THREADS=${m[1]}` };
  const cores = availableParallelism();
  return { limit: Math.max(1, 4 * cores), why: `4 × the ${cores} cores of this machine` };
}

/** `--threads n` within the backend's limit (the error names the flag and the limit). */
export function checkThreads(threads: number | undefined, backend: Backend & { info?: () => { config?: string } }): void {
  if (threads === undefined) return;
  const { limit, why } = threadLimit(backend);
  if (threads > limit) throw new Error(`--threads ${threads}: at most ${limit} (${why}; this machine has ${availableParallelism()} cores)`);
}
