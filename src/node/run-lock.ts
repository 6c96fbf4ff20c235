import { closeSync, openSync, readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";

/**
 * An exclusive lock on a run directory, so that two processes never train the same run (a second
 * `chainopt train --resume DIR` while the first still runs would duplicate epochs in metrics.jsonl
 * and race on the checkpoints).
 *
 * The lock is the file `DIR/run.lock`, created with O_CREAT | O_EXCL (`open(2)` flag `wx`: atomic,
 * fails when the file exists) and holding `{pid, host, started, command}` as JSON. It is removed by
 * {@link RunLock.release} and, as a fallback, when the process exits. A lock left by a process that
 * died without removing it (SIGKILL, power loss) is stale: on the same host, a pid that no longer
 * exists (`kill(pid, 0)` fails with ESRCH) is recovered, i.e. the lock is taken over. A lock of
 * another host cannot be checked and is reported with how to remove it.
 */

/** What a lock file holds. */
export interface LockInfo {
  pid: number;
  host: string;
  /** ISO time the lock was taken. */
  started: string;
  command?: string;
}

/** The run directory is locked by another live process. */
export class RunLockedError extends Error {
  override name = "RunLockedError";
  constructor(
    message: string,
    readonly holder: LockInfo | null,
  ) {
    super(message);
  }
}

/** An unreadable lock younger than this (ms) is being written by its holder, not stale. */
const FRESH_MS = 5000;

function mtimeMs(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

/** The lock file of a run directory. */
export const LOCK_FILE = "run.lock";

/** Whether the process `pid` exists on this host. */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
  // A zombie (killed, not yet reaped: common in containers whose init does not reap) still answers
  // kill(pid, 0) but holds nothing; on Linux its state in /proc/<pid>/stat is "Z" (proc(5)).
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return true; // no /proc (macOS, BSD): kill(pid, 0) is all there is
  }
}

function readLock(file: string): LockInfo | null {
  try {
    const v = JSON.parse(readFileSync(file, "utf8")) as Partial<LockInfo>;
    if (typeof v.pid !== "number" || typeof v.host !== "string") return null;
    return { pid: v.pid, host: v.host, started: String(v.started ?? "?"), command: v.command };
  } catch {
    return null;
  }
}

/** A held lock. */
export class RunLock {
  private released = false;
  private readonly onExit = () => this.release();

  private constructor(
    readonly file: string,
    readonly info: LockInfo,
    /** The stale lock recovered on acquisition (a dead process's), else null. */
    readonly recovered: LockInfo | null,
  ) {
    process.once("exit", this.onExit);
  }

  /**
   * Takes the lock of run directory `dir` (which must exist), or throws {@link RunLockedError}
   * naming the holder (pid, host, start time). A stale lock of a dead process is taken over.
   */
  static acquire(dir: string, command = process.argv.slice(1).join(" ")): RunLock {
    const file = join(dir, LOCK_FILE);
    const info: LockInfo = { pid: process.pid, host: hostname(), started: new Date().toISOString(), command };
    let recovered: LockInfo | null = null;
    for (let attempt = 0; attempt < 3; attempt++) {
      let fd: number;
      try {
        fd = openSync(file, "wx");
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
        const holder = readLock(file);
        if (holder === null && Date.now() - mtimeMs(file) < FRESH_MS) {
          // Created an instant ago and not yet written: another process is taking the lock.
          throw new RunLockedError(`${dir}: another process is taking the lock ${file} right now`, null);
        }
        // An unreadable lock older than that: its holder died between create and write.
        const stale = holder === null || (holder.host === info.host && !processAlive(holder.pid));
        if (!stale) {
          const h = holder as LockInfo;
          const here = h.host === info.host;
          throw new RunLockedError(
            `${dir}: the run is in use by process ${h.pid} on ${here ? "this host" : `host ${h.host}`} since ${h.started}${h.command ? ` (${h.command})` : ""}; wait for it to finish or stop it${here ? "" : `, or remove ${file} if that process is gone`}`,
            h,
          );
        }
        recovered = holder;
        rmSync(file, { force: true });
        continue;
      }
      try {
        writeSync(fd, `${JSON.stringify(info)}\n`);
      } finally {
        closeSync(fd);
      }
      return new RunLock(file, info, recovered);
    }
    throw new RunLockedError(`${dir}: could not take the lock ${file} (another process keeps taking it)`, readLock(file));
  }

  /** Removes the lock file if it is still this process's. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    process.off("exit", this.onExit);
    const now = readLock(this.file);
    if (now && now.pid === this.info.pid && now.host === this.info.host && now.started === this.info.started) {
      rmSync(this.file, { force: true });
    }
  }
}
