import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { consumerProject, ROOT, typecheck } from "./consumer-helpers.js";

// The README's TypeScript snippets compile and run as written: each ```ts block becomes a file
// of a consumer project that imports the built package by its name (`chainopt`, `chainopt/node`,
// through package.json's exports map, as `npm install chainopt` would), is type-checked with
// strict TypeScript and run with Node.

/** The ```ts blocks of a Markdown text. */
export function typescriptBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
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
