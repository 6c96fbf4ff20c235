#!/usr/bin/env node
// `npm run docs`: API documentation from the TSDoc comments with TypeDoc, into docs/api
// (git-ignored), warnings treated as errors (typedoc.json). TypeDoc needs TypeScript's JavaScript
// API, which TypeScript 7 (chainopt's compiler) does not ship, so TypeDoc and a TypeScript 6 live in
// their own package, tools/docs (installed here with `npm ci` from its lock file on first use).
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const tools = join(root, "tools", "docs");
const typedoc = join(tools, "node_modules", "typedoc", "bin", "typedoc");

function run(command, args, cwd) {
  const r = spawnSync(command, args, { cwd, stdio: "inherit", shell: process.platform === "win32" });
  if (r.status !== 0) {
    process.stderr.write(`chainopt docs: ${command} ${args.join(" ")} failed (exit ${r.status ?? r.signal})\n`);
    process.exit(r.status ?? 1);
  }
}

if (!existsSync(typedoc)) run("npm", ["ci", "--no-audit", "--no-fund", "--ignore-scripts"], tools);
run(process.execPath, [typedoc, "--options", join(root, "typedoc.json")], root);
