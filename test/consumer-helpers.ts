import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

// Consumer projects for the package tests: a folder with node_modules/chainopt linked to this
// repository, type-checked with this repository's TypeScript.

/** The repository root. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url)); // dist/test → repository root
const TSC = join(ROOT, "node_modules", "typescript", "bin", "tsc");

/**
 * A consumer project in a temporary folder: package.json (ESM), node_modules/chainopt linked to
 * this repository, and a strict tsconfig with `moduleResolution: NodeNext`.
 */
export function consumerProject(files: Record<string, string>, compilerOptions: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "chainopt-consumer-"));
  mkdirSync(join(dir, "node_modules"));
  symlinkSync(ROOT, join(dir, "node_modules", "chainopt"), "dir");
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        lib: ["ES2022"],
        strict: true,
        skipLibCheck: false,
        outDir: "out",
        ...compilerOptions,
      },
      include: Object.keys(files),
    }),
  );
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

/** Runs tsc in a consumer project; fails the test with tsc's output on errors. */
export function typecheck(dir: string): void {
  try {
    execFileSync(process.execPath, [TSC, "-p", join(dir, "tsconfig.json")], { cwd: dir, encoding: "utf8", stdio: "pipe" });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    assert.fail(`tsc failed in ${dir}:\n${err.stdout ?? ""}${err.stderr ?? ""}`);
  }
}
