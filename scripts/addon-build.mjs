// Helpers shared by the optional native addons' build scripts (build-native.mjs: OpenBLAS/oneDNN;
// build-mpi.mjs: MPI). Plain JavaScript: they run at `npm install`, before TypeScript is compiled.
import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

/** A child process, its output captured as text. */
export function run(command, commandArgs, options = {}) {
  return spawnSync(command, commandArgs, { encoding: "utf8", ...options });
}

/** The last `lines` lines of `text`. */
export function tail(text, lines = 30) {
  return text.split("\n").slice(-lines).join("\n");
}

/**
 * The node-gyp to run, as [command, ...args]: npm's own copy (npm_config_node_gyp, set inside npm
 * scripts), a local node_modules, the copy bundled with the npm next to this Node, and last
 * `npx node-gyp`.
 */
export function findNodeGyp(root) {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  try {
    candidates.push(createRequire(join(root, "package.json")).resolve("node-gyp/bin/node-gyp.js"));
  } catch {
    // Not installed locally.
  }
  const prefix = dirname(dirname(process.execPath));
  candidates.push(join(prefix, "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"));
  candidates.push(join(dirname(process.execPath), "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"));
  for (const c of candidates) if (c && existsSync(c)) return [process.execPath, c];
  return [process.platform === "win32" ? "npx.cmd" : "npx", "--yes", "node-gyp"];
}

/** `--nodedir=<prefix>` when this Node's installation carries its headers, else nothing (node-gyp downloads them). */
export function nodeDirArgs() {
  const prefix = dirname(dirname(process.execPath));
  const inc = join(prefix, "include", "node");
  if (existsSync(join(inc, "node_api.h")) && existsSync(join(inc, "common.gypi"))) return [`--nodedir=${prefix}`];
  return [];
}

/** Whether the built `addon` is newer than each of `sources` (paths relative to `dir`) that exists. */
export function addonUpToDate(addon, dir, sources) {
  if (!existsSync(addon)) return false;
  const built = statSync(addon).mtimeMs;
  return sources.map((f) => join(dir, f)).every((f) => !existsSync(f) || statSync(f).mtimeMs <= built);
}
