import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { renderReport } from "../src/node/report.js";
import { RunDirectory } from "../src/node/run-dir.js";
import { assertInside, safeFileName, safeJoin, UnsafePathError, uniqueSafeNames } from "../src/node/safe-path.js";

// A path built from data never leaves its folder (src/node/safe-path.ts), and `chainopt report`
// on a shared run directory whose metric and certificate keys are crafted writes only inside its
// plots folder.

describe("safe paths from data", () => {
  it("sanitizes separators, dot-dot, absolute paths, NUL and long names into one segment", () => {
    for (const bad of ["../../x", "val/acc", "/etc/passwd", "..", ".", "a\\b", "x\0y", "a".repeat(1000), "", "..\\..\\win"]) {
      const name = safeFileName(bad);
      assert.ok(!name.includes("/") && !name.includes("\\") && !name.includes("\0"), name);
      assert.ok(!name.startsWith("."), name);
      assert.ok(name.length > 0 && name.length <= 100, name);
      const dir = "/tmp/some/folder";
      const p = safeJoin(dir, bad, ".svg");
      assert.equal(join(dir, p.slice(dir.length + 1)), p);
      assert.ok(!p.slice(dir.length + 1).includes("/"), p);
    }
    assert.equal(safeFileName("epoch-val/acc"), "epoch-val_acc");
  });

  it("assertInside refuses paths that leave the folder", () => {
    assert.throws(() => assertInside("/a/b", "/a/b/../c"), UnsafePathError);
    assert.throws(() => assertInside("/a/b", "/a/b"), UnsafePathError);
    assert.doesNotThrow(() => assertInside("/a/b", "/a/b/c.svg"));
  });

  it("a run directory named from data (model and data set names) stays under its root", () => {
    const root = mkdtempSync(join(tmpdir(), "chainopt-runroot-"));
    for (const name of ["../../evil", "/etc/x", "..", "a/../../b"]) {
      const run = RunDirectory.create({ root, name });
      assert.equal(join(run.dir, ".."), root, run.dir);
    }
    assert.deepEqual(
      readdirSync(join(root, "..")).filter((f) => f.includes("evil")),
      [],
    );
  });

  it("names that collide after sanitizing get distinct files", () => {
    assert.deepEqual(uniqueSafeNames(["val/acc", "val_acc", "VAL_ACC"]), ["val_acc", "val_acc-2", "VAL_ACC-3"]);
  });
});

describe("chainopt report on a planted run directory", () => {
  it("writes every plot file inside the plots folder and does not crash on `val/acc`", async () => {
    const root = mkdtempSync(join(tmpdir(), "chainopt-planted-"));
    const run = join(root, "shared", "run");
    mkdirSync(run, { recursive: true });
    const lines = [1, 2, 3].map((epoch) =>
      JSON.stringify({ type: "epoch", step: epoch, epoch, train_loss: 1 / epoch, "val/acc": 0.5 + epoch / 10, "../../../pwned": epoch }),
    );
    writeFileSync(join(run, "metrics.jsonl"), `${lines.join("\n")}\n`);
    writeFileSync(join(run, "certificate.json"), JSON.stringify({ layers: ["1", "2"], quantities: { "../../../../cert-pwned": [1, 2] } }));
    const out = join(root, "out", "report.html");
    const result = await renderReport([run], out, { png: false });
    const plotsDir = join(root, "out", "report-plots");
    // Nothing escaped: the only entries of root are the run and the report folder.
    assert.deepEqual(readdirSync(root).sort(), ["out", "shared"]);
    assert.deepEqual(readdirSync(join(root, "shared")), ["run"]);
    assert.deepEqual(readdirSync(join(root, "out")).sort(), ["report-plots", "report.html"]);
    assert.ok(!existsSync(join(root, "pwned.svg")) && !existsSync(join(root, "..", "pwned.svg")));
    for (const p of result.plots) {
      for (const f of [p.files?.svg, p.files?.csv, p.files?.spec]) {
        assert.ok(f?.startsWith(`${plotsDir}/`), String(f));
        assert.ok(existsSync(f as string));
      }
    }
    const ids = result.plots.map((p) => p.id);
    assert.ok(ids.includes("epoch-val/acc"), ids.join(", "));
    assert.ok(readdirSync(plotsDir).includes("epoch-val_acc.svg"));
  });
});
