import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

/**
 * Trains `chainopt ARGS` twice into a fresh temporary folder: once uninterrupted, once killed with
 * SIGKILL after `killAfter` epochs and resumed; asserts the two final models are byte-identical.
 * `setup(root)` may write files the arguments name (e.g. a model spec) and returns extra arguments.
 */
export async function assertKillResumeBitIdentical(
  args: readonly string[],
  options: { killAfter?: number; setup?: (root: string) => string[] } = {},
): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), "chainopt-kill-resume-"));
  try {
    const all = [...args, ...(options.setup?.(root) ?? [])];
    const full = join(root, "full");
    const r = await runCli([...all, "--out", full]);
    assert.equal(r.code, 0, r.stderr);
    const killed = join(root, "killed");
    const { child, done } = startCli([...all, "--out", killed]);
    const epochs = () => readMetrics(killed).filter((m) => m.type === "epoch").length;
    await waitFor(() => epochs() >= (options.killAfter ?? 2), done, 120_000);
    child.kill("SIGKILL");
    assert.equal((await done).signal, "SIGKILL", "the run ended before it could be killed; the test proves nothing");
    assert.ok(!existsSync(join(killed, "model.safetensors")));
    const resumed = await runCli(["train", "--resume", killed, "--json"]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.ok(readFileSync(join(full, "model.safetensors")).equals(readFileSync(join(killed, "model.safetensors"))), "final models differ");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
