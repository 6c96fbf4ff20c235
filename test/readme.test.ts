import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

// The README's TypeScript snippets compile and run as written: each ```ts block becomes a file
// of a consumer project that imports the built package by its name (`chainopt`, `chainopt/node`,
// through package.json's exports map, as `npm install chainopt` would), is type-checked with
// strict TypeScript and run with Node.

const ROOT = fileURLToPath(new URL("../../", import.meta.url)); // dist/test → repository root
const TSC = join(ROOT, "node_modules", "typescript", "bin", "tsc");

/** The ```ts blocks of a Markdown text. */
export function typescriptBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
}

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

/** Runs tsc in a consumer project; returns its output (throws with the output on errors). */
export function typecheck(dir: string): void {
  try {
    execFileSync(process.execPath, [TSC, "-p", join(dir, "tsconfig.json")], { cwd: dir, encoding: "utf8", stdio: "pipe" });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    assert.fail(`tsc failed in ${dir}:\n${err.stdout ?? ""}${err.stderr ?? ""}`);
  }
}

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("README", () => {
  const blocks = typescriptBlocks(readFileSync(join(ROOT, "README.md"), "utf8"));

  it("has TypeScript snippets", () => {
    assert.ok(blocks.length >= 1);
  });

  blocks.forEach((code, i) => {
    it(`snippet ${i + 1} type-checks (strict, NodeNext) and runs against the built package`, () => {
      const name = `snippet${i + 1}.ts`;
      // A Node user has Node's types (the snippet prints with console.log).
      const dir = consumerProject({ [name]: code }, { types: ["node"], typeRoots: [join(ROOT, "node_modules", "@types")] });
      dirs.push(dir);
      typecheck(dir);
      const out = execFileSync(process.execPath, [join(dir, "out", name.replace(/\.ts$/, ".js"))], {
        cwd: dir,
        encoding: "utf8",
        env: { ...process.env, CHAINOPT_BACKEND: "portable" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      assert.ok(out.trim().length > 0, "the snippet printed nothing");
      assert.doesNotMatch(out, /NaN/);
    });
  });
});
