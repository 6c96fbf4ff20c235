import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { readSafetensors } from "../src/node/safetensors.js";

// Helpers of the tests that run the `chainopt` command as a child process (the built CLI).

/** The built CLI, dist/src/cli/main.js. */
export const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

/** Exit of a child process: code (null when killed by a signal), signal, and its output. */
export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts `chainopt ARGS` (no progress bar; stdin ignored). */
export function startCli(args: readonly string[], env: Record<string, string> = {}): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString("utf8");
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString("utf8");
  });
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

/** Runs `chainopt ARGS` to completion. */
export function runCli(args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  return startCli(args, env).done;
}

/** The JSON objects printed one per line (lines that are not JSON objects are skipped). */
export function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The records of a run's metrics.jsonl ([] when absent; a torn last line skipped). */
export function readMetrics(dir: string): Record<string, unknown>[] {
  const file = `${dir}/metrics.jsonl`;
  if (!existsSync(file)) return [];
  const out: Record<string, unknown>[] = [];
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (line === "") continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // torn last line
    }
  }
  return out;
}

/** Epoch records of metrics.jsonl without the wall-clock fields (wall, seconds, samplesPerSecond). */
export function epochRecordsWithoutTimes(dir: string): Record<string, unknown>[] {
  return readMetrics(dir)
    .filter((r) => r.type === "epoch")
    .map((r) => {
      const { wall: _w, seconds: _s, record, ...rest } = r as Record<string, unknown> & { record?: Record<string, unknown> };
      const { seconds: _rs, samplesPerSecond: _sps, ...inner } = record ?? {};
      return { ...rest, record: inner };
    });
}

/**
 * Resolves when `predicate` holds (polled every `everyMs`); rejects after `timeoutMs`, or when the
 * process `exited` first (with its output).
 */
export function waitFor(predicate: () => boolean, exited?: Promise<CliResult>, timeoutMs = 30_000, everyMs = 5): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    let over = false;
    exited?.then((r) => {
      if (over) return;
      over = true;
      clearInterval(timer);
      if (predicate()) resolve();
      else reject(new Error(`waitFor: the process exited first (code ${r.code}, signal ${r.signal}):\n${r.stderr}`));
    });
    const timer = setInterval(() => {
      if (over) return;
      let ok = false;
      try {
        ok = predicate();
      } catch {
        ok = false;
      }
      if (ok) {
        over = true;
        clearInterval(timer);
        resolve();
      } else if (Date.now() - started > timeoutMs) {
        over = true;
        clearInterval(timer);
        reject(new Error(`waitFor: timed out after ${timeoutMs} ms`));
      }
    }, everyMs);
  });
}

/** name → raw bytes of every tensor of a safetensors file. */
export function tensorBytes(file: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [name, t] of readSafetensors(file).tensors) {
    const d = t.data as ArrayBufferView;
    out.set(name, Buffer.from(d.buffer, d.byteOffset, d.byteLength));
  }
  return out;
}
