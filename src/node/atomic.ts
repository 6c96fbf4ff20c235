import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/**
 * Crash-safe file writes. A file written with {@link writeFileAtomic} is either the old version or
 * the complete new one, never a prefix: the data go to a temporary file in the same directory
 * (same file system, so that the rename is atomic), the file is fsynced, renamed over the target
 * (POSIX rename(2) replaces atomically), and the directory is fsynced so that the rename itself
 * survives a power loss. Temporary files are named `.<name>.<random>.tmp`; a process killed
 * between the write and the rename leaves such a file behind, never a half-written target.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  let fd = -1;
  try {
    fd = openSync(tmp, "wx", 0o644);
    writeAll(fd, bytes);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, path);
  } catch (error) {
    if (fd >= 0) closeSync(fd);
    rmSync(tmp, { force: true });
    throw namedFileError(path, error, "write");
  }
  fsyncDirectory(dir);
}

/**
 * A file system error naming the file: `ENOSPC: no space left on device, write` says neither which
 * file nor which folder filled up; this says `<path>: cannot write: no space left on device (ENOSPC)`.
 * The error code is kept (`.code`).
 */
export function namedFileError(path: string, error: unknown, action: string): Error {
  const e = error as NodeJS.ErrnoException;
  if (!e?.code) return error as Error;
  const words: Record<string, string> = {
    ENOSPC: "no space left on device",
    EDQUOT: "disk quota exceeded",
    EROFS: "read-only file system",
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    ENOENT: "no such file or folder",
    EIO: "input/output error",
  };
  const out = new Error(`${path}: cannot ${action}: ${words[e.code] ?? e.message} (${e.code})`) as NodeJS.ErrnoException;
  out.code = e.code;
  return out;
}

/** Writes `value` as pretty-printed JSON (with a final newline), atomically. */
export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** fsyncs a directory so that entries created or renamed in it are durable (no-op where unsupported). */
export function fsyncDirectory(dir: string): void {
  let fd = -1;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // Some platforms (Windows) and file systems cannot fsync a directory; the rename is still atomic.
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
}

/** Options of {@link appendLineDurable}. */
export interface AppendOptions {
  /** fsync after the append (default true); false trades durability of the last lines for speed. */
  fsync?: boolean;
}

/**
 * Appends one JSON Lines record (`JSON.stringify(record)` + `\n`) with a single write(2) call on a
 * file opened with O_APPEND, so concurrent appenders never interleave within a line and a crash can
 * at worst leave a torn *last* line, which {@link readJsonLines} skips. Records must serialize to
 * one line (JSON.stringify without indentation never emits a raw newline). Non-finite numbers are
 * written as `null` by JSON; use {@link jsonSafe} first to keep them as strings.
 */
export function appendLineDurable(path: string, record: unknown, options: AppendOptions = {}): void {
  const line = Buffer.from(`${JSON.stringify(record)}\n`, "utf8");
  let fd: number;
  try {
    fd = openSync(path, "a", 0o644);
  } catch (error) {
    throw namedFileError(path, error, "append to");
  }
  try {
    const written = writeSync(fd, line);
    if (written !== line.length) throw new Error(`${path}: short append (${written} of ${line.length} bytes)`);
    if (options.fsync ?? true) fsyncSync(fd);
  } catch (error) {
    throw namedFileError(path, error, "append to");
  } finally {
    closeSync(fd);
  }
}

/**
 * Replaces non-finite numbers by the strings "NaN", "Infinity", "-Infinity" (JSON has no literal
 * for them and would write null), recursively, so metrics keep the information that a loss diverged.
 */
export function jsonSafe(value: unknown): unknown {
  if (typeof value === "number") return Number.isFinite(value) ? value : String(value);
  if (Array.isArray(value)) return value.map(jsonSafe);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = jsonSafe(v);
    return out;
  }
  return value;
}

/** Result of {@link readJsonLinesDetailed}. */
export interface JsonLinesResult<T> {
  records: T[];
  /** Bytes of a trailing line without its newline (a torn write), skipped; 0 when none. */
  tornBytes: number;
}

/**
 * Reads a JSON Lines file. A last line without its terminating newline is a torn append (a crash
 * during the write) and is skipped; so are blank lines. Any other line that fails to parse is an
 * error naming the file and the line number. A missing file reads as no records.
 */
export function readJsonLines<T = Record<string, unknown>>(path: string): T[] {
  return readJsonLinesDetailed<T>(path).records;
}

/** {@link readJsonLines} that also reports the size of a skipped torn last line. */
export function readJsonLinesDetailed<T = Record<string, unknown>>(path: string): JsonLinesResult<T> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { records: [], tornBytes: 0 };
    throw error;
  }
  const lines = text.split("\n");
  // After split, the last element is "" when the file ends with a newline, else the torn line.
  const torn = lines.pop() ?? "";
  const records: T[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    try {
      records.push(JSON.parse(line) as T);
    } catch (error) {
      // A torn line in the middle means appends went on after a crash without repairJsonLines.
      throw new Error(`${path}:${i + 1}: invalid JSON line (${(error as Error).message})`);
    }
  });
  return { records, tornBytes: Buffer.byteLength(torn, "utf8") };
}

/**
 * Makes a JSON Lines file safe to append to after a crash: truncates a torn last line (one without
 * its newline), atomically. Call once when resuming a run, before appending.
 */
export function repairJsonLines(path: string): number {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw error;
  }
  if (bytes.length === 0 || bytes[bytes.length - 1] === 0x0a) return 0;
  const keep = bytes.lastIndexOf(0x0a) + 1;
  writeFileAtomic(path, bytes.subarray(0, keep));
  return bytes.length - keep;
}
