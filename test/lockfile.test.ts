// The committed lock file must let `npm ci` succeed on every platform: npm checks that each optional
// dependency of every locked package (e.g. @biomejs/biome's per-platform binaries) has an entry,
// even for platforms other than the one that wrote the lock.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

interface LockEntry {
  version?: string;
  optionalDependencies?: Record<string, string>;
}

test("package-lock.json lists the optional dependencies of every platform", () => {
  const lock = JSON.parse(readFileSync("package-lock.json", "utf8")) as {
    packages: Record<string, LockEntry>;
  };
  const missing: string[] = [];
  for (const [path, entry] of Object.entries(lock.packages)) {
    for (const dep of Object.keys(entry.optionalDependencies ?? {})) {
      const nested = `${path}/node_modules/${dep}`;
      if (!(nested in lock.packages) && !(`node_modules/${dep}` in lock.packages)) {
        missing.push(`${dep} (optional dependency of ${path || "the root"})`);
      }
    }
  }
  assert.deepEqual(missing, [], `run 'npm install --package-lock-only' and commit the lock file`);
});

test("setup.sh installs npm dependencies with npm ci only (never rewrites the lock file)", () => {
  const setup = readFileSync("scripts/setup.sh", "utf8");
  assert.match(setup, /npm ci /);
  assert.doesNotMatch(setup, /^\s*npm install/m);
});
