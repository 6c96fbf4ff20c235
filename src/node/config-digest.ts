import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readSafetensorsHeader } from "./safetensors.js";

/**
 * The configuration digest of a training run: SHA-256 of the canonical JSON of the resolved
 * training configuration (config.json's `train` section), recorded in every checkpoint. Resuming
 * compares the digest of config.json as it is now with the checkpoint's, so that an edit between
 * an interrupt and `--resume` (e.g. `train.lr`) is refused, naming the keys that differ, instead
 * of silently training on with other settings (`--allow-config-change` accepts it).
 *
 * Canonical JSON: object keys sorted, `undefined` entries dropped, no whitespace. Keys that do not
 * change what is computed are left out: `epochs` (extended with `--resume DIR --epochs N`),
 * `threads` (BLAS threads), `out` (where the run lives), `maxMemory` (a guard).
 */

/** Keys of the training configuration not covered by the digest (see the module documentation). */
export const DIGEST_EXCLUDED_KEYS: readonly string[] = ["epochs", "threads", "out", "maxMemory"];

/** JSON with object keys sorted at every level and `undefined` dropped. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? "null" : canonicalJson(v))).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

/** The part of a configuration the digest covers. */
export function digestedConfig(config: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(config).filter(([k, v]) => !DIGEST_EXCLUDED_KEYS.includes(k) && v !== undefined));
}

/** `sha256:<hex>` of the canonical JSON of the digested configuration. */
export function configDigest(config: Record<string, unknown>): string {
  return `sha256:${createHash("sha256")
    .update(canonicalJson(digestedConfig(config)))
    .digest("hex")}`;
}

/** What a checkpoint records of its configuration (in its `extra`): the digest and the values. */
export interface CheckpointConfigRecord {
  digest: string;
  values: Record<string, unknown>;
}

/** The record to store in a checkpoint. */
export function checkpointConfigRecord(config: Record<string, unknown>): CheckpointConfigRecord {
  return { digest: configDigest(config), values: JSON.parse(canonicalJson(digestedConfig(config))) as Record<string, unknown> };
}

/** Top-level keys whose values differ between two configurations (sorted). */
export function differingKeys(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => canonicalJson(a[k] ?? null) !== canonicalJson(b[k] ?? null)).sort();
}

/** The configuration record of a checkpoint file, read from its header only (undefined when absent). */
export function readCheckpointConfig(file: string): CheckpointConfigRecord | undefined {
  if (!existsSync(file)) return undefined;
  const meta = readSafetensorsHeader(file).metadata;
  if (meta.extra === undefined) return undefined;
  try {
    const c = (JSON.parse(meta.extra) as { config?: CheckpointConfigRecord }).config;
    return c && typeof c.digest === "string" && c.values && typeof c.values === "object" ? c : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Compares a run's configuration with its last checkpoint's record; throws, naming the keys that
 * differ with both values and the override flag, unless `allowChange`. Returns the keys that differ
 * (empty when they match or when the checkpoint predates digests).
 */
export function checkResumeConfig(
  config: Record<string, unknown>,
  checkpoint: string,
  options: { allowChange?: boolean; configFile?: string } = {},
): string[] {
  const saved = readCheckpointConfig(checkpoint);
  if (!saved) return [];
  if (configDigest(config) === saved.digest) return [];
  const now = JSON.parse(canonicalJson(digestedConfig(config))) as Record<string, unknown>;
  const keys = differingKeys(saved.values, now);
  if (options.allowChange) return keys;
  const show = (v: unknown) => (v === undefined ? "(unset)" : canonicalJson(v));
  const lines = keys.map((k) => `  train.${k}: ${show(saved.values[k])} in the checkpoint, ${show(now[k])} now`).join("\n");
  throw new Error(
    `--resume: the configuration${options.configFile ? ` in ${options.configFile}` : ""} differs from the one the checkpoint ${checkpoint} was trained with (digest ${saved.digest}):\n${lines}\nrestore it, or pass --allow-config-change to train on with the new values`,
  );
}
