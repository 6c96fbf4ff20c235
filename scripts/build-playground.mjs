#!/usr/bin/env node
// Builds the playground page into playground/dist: the MNIST subset, then Vite's production build.
// Used by `npm run build:playground` and, on first use, by `chainopt playground`.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const run = (args) => {
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
run([join(root, "scripts", "build-playground-data.mjs"), join(root, "playground", "public", "mnist-subset.bin")]);
let vite;
try {
  vite = join(dirname(createRequire(import.meta.url).resolve("vite/package.json")), "bin", "vite.js");
} catch {
  vite = null;
}
if (!vite || !existsSync(vite)) {
  console.error("build-playground: vite is not installed (a devDependency: run npm ci in the repository)");
  process.exit(1);
}
run([vite, "build", "--config", join(root, "playground", "vite.config.ts")]);
console.error(`build-playground: built ${join(root, "playground", "dist")}`);
