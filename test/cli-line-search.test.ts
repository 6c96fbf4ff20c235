import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { jsonLines, runCli } from "./cli-helpers.js";

// `chainopt train --line-search armijo` with sgd and momentum, end to end on a small MNIST subset.

const TINY = ["--dataset", "mnist", "--limit", "300", "--validation", "100", "--epochs", "2", "--widths", "16"];

let root: string;
let count = 0;
const fresh = (name: string) => join(root, `${name}-${++count}`);
before(() => {
  root = mkdtempSync(join(tmpdir(), "chainopt-cli-ls-"));
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

describe("chainopt train --line-search armijo", () => {
  it("sgd and momentum train with the searched step; config.json records the search and a constant schedule", async () => {
    for (const optimizer of ["sgd", "momentum"]) {
      const out = fresh(optimizer);
      const r = await runCli([
        "train",
        ...TINY,
        "--optimizer",
        optimizer,
        "--line-search",
        "armijo",
        "--lr",
        "2",
        "--armijo-c",
        "0.1",
        "--json",
        "--out",
        out,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const lines = jsonLines(r.stdout);
      const epochs = lines.filter((l) => typeof l.epoch === "number" && l.trainLoss !== undefined);
      assert.ok(epochs.length >= 2);
      for (const e of epochs) assert.ok(Number.isFinite(e.trainLoss as number));
      // The loss decreases over the run (each accepted step decreases its batch's loss).
      assert.ok((epochs[1].trainLoss as number) < (epochs[0].trainLoss as number) + 1e-9, JSON.stringify(epochs));
      const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8")) as Record<string, unknown>;
      const cfg = config.train as Record<string, unknown>;
      assert.equal(cfg.lineSearch, "armijo");
      assert.equal(cfg.armijoC, 0.1);
      assert.equal(cfg.schedule, "constant");
    }
  });

  it("refuses the search with other optimizers, with a schedule, and its options without it; nothing is written", async () => {
    const cases: [string[], RegExp][] = [
      [["--optimizer", "adam", "--line-search", "armijo"], /--line-search armijo: applies to --optimizer sgd\|momentum/],
      [["--optimizer", "sgd", "--line-search", "armijo", "--schedule", "cosine"], /drop --schedule/],
      [["--optimizer", "sgd", "--armijo-c", "0.5"], /--armijo-c: options of --line-search armijo/],
      [["--optimizer", "sgd", "--line-search", "armijo", "--armijo-shrink", "1.5"], /armijoShrink/],
    ];
    for (const [args, re] of cases) {
      const out = fresh("bad");
      const r = await runCli(["train", ...TINY, ...args, "--out", out]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, re);
      assert.ok(!existsSync(out));
    }
  });
});
