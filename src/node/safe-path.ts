import { isAbsolute, join, relative, resolve } from "node:path";

/**
 * File names built from data (metric keys of metrics.jsonl, per-layer file and quantity names,
 * experiment and optimizer names, configuration values) must never leave their folder, whatever
 * the data says: `val/acc`, `../../x`, an absolute path, NUL bytes or a name of 10 000 characters
 * all become one plain file name inside the folder.
 */

/** Longest file name produced by {@link safeFileName} (without extension); file systems allow 255 bytes. */
export const SAFE_NAME_MAX = 100;

/**
 * Turns a data-derived name into one safe path segment: every run of characters outside
 * `[A-Za-z0-9._-]` becomes `_`, leading dots are dropped (no `..`, no hidden files), and the result
 * is cut to {@link SAFE_NAME_MAX} characters; an empty result becomes `fallback`.
 */
export function safeFileName(name: string, fallback = "file"): string {
  const s = String(name)
    .replace(/[^A-Za-z0-9._-]+/g, "_")
    .replace(/^[.]+/, "")
    .slice(0, SAFE_NAME_MAX);
  return s === "" || /^[._-]*$/.test(s) ? fallback : s;
}

/** A path built from data left its folder (see {@link safeJoin}). */
export class UnsafePathError extends Error {
  override name = "UnsafePathError";
}

/**
 * The path of `name` (sanitized with {@link safeFileName}) plus `extension` inside `dir`, verified to
 * resolve to a direct child of `dir`. Throws {@link UnsafePathError} otherwise (it cannot happen
 * after sanitizing; the check guards against a future change of the sanitizer).
 */
export function safeJoin(dir: string, name: string, extension = "", fallback = "file"): string {
  const base = resolve(dir);
  const path = join(base, `${safeFileName(name, fallback)}${extension}`);
  assertInside(base, path, name);
  return path;
}

/** Throws unless `path` resolves to a location strictly inside `dir`. `what` names the data at fault. */
export function assertInside(dir: string, path: string, what = path): void {
  const rel = relative(resolve(dir), resolve(path));
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) {
    throw new UnsafePathError(`${JSON.stringify(what)}: the path ${resolve(path)} would leave its folder ${resolve(dir)}`);
  }
}

/**
 * Safe, distinct file names for a list of data-derived names: two names that sanitize to the same
 * file (`val/acc`, `val_acc`) get suffixes `-2`, `-3`, … in order (case-insensitively, for file
 * systems that fold case).
 */
export function uniqueSafeNames(names: readonly string[], fallback = "file"): string[] {
  const used = new Set<string>();
  return names.map((n) => {
    const base = safeFileName(n, fallback);
    let name = base;
    for (let k = 2; used.has(name.toLowerCase()); k++) name = `${base}-${k}`;
    used.add(name.toLowerCase());
    return name;
  });
}
