import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createChain } from "../src/chain/chain.js";
import { allFinite } from "../src/core/vector.js";
import { loadCheckpoint } from "../src/node/checkpoint.js";
import { exportTorchSafetensors } from "../src/node/torch-interop.js";
import { jsonLines, readMetrics, runCli, startCli } from "./cli-helpers.js";

// `chainopt train` end to end, as a child process, on small data: the --json format, reproducibility, --config, errors before anything is written, the
// portable backend, --init/--no-shuffle, and numerical faults.

const SMALL = ["--dataset", "mnist", "--limit", "1000", "--validation", "200", "--epochs", "2", "--widths", "64"];
const TINY = ["--dataset", "mnist", "--limit", "300", "--validation", "100", "--epochs", "1", "--widths", "16"];

let root: string;
let count = 0;
const fresh = (name: string) => join(root, `${name}-${++count}`);
before(() => {
  root = mkdtempSync(join(tmpdir(), "chainopt-cli-train-"));
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

const withoutSeconds = (lines: Record<string, unknown>[]) => lines.map(({ seconds: _s, runDir: _r, ...rest }) => rest);

describe("chainopt train --json", () => {
  it("prints one JSON object per epoch and a final one; same seed → same numbers, other seed → other numbers", async () => {
    const [a, b, c] = await Promise.all([
      runCli(["train", ...SMALL, "--seed", "1", "--json", "--out", fresh("a")]),
      runCli(["train", ...SMALL, "--seed", "1", "--json", "--out", fresh("b")]),
      runCli(["train", ...SMALL, "--seed", "2", "--json", "--out", fresh("c")]),
    ]);
    for (const r of [a, b, c]) assert.equal(r.code, 0, r.stderr);
    // stdout holds only the JSON objects (the backend line goes to stderr).
    assert.ok(
      a.stdout
        .trim()
        .split("\n")
        .every((l) => l.startsWith("{")),
      a.stdout,
    );
    const lines = jsonLines(a.stdout);
    assert.equal(lines.length, 3);
    for (const [i, l] of lines.slice(0, 2).entries()) {
      assert.deepEqual(Object.keys(l), [
        "epoch",
        "trainLoss",
        "valLoss",
        "valAccuracy",
        "testAccuracy",
        "seconds",
        "learningRate",
        "gradNorm",
      ]);
      assert.equal(l.epoch, i + 1);
      assert.equal(l.testAccuracy, null);
      for (const k of ["trainLoss", "valLoss", "valAccuracy", "seconds", "learningRate", "gradNorm"])
        assert.equal(typeof l[k], "number", k);
      assert.ok((l.valAccuracy as number) > 0.5, `epoch ${i + 1} validation accuracy ${l.valAccuracy}`);
    }
    const final = lines[2];
    assert.equal(final.final, true);
    assert.equal(typeof final.testAccuracy, "number");
    assert.ok((final.testAccuracy as number) > 0.5, `test accuracy ${final.testAccuracy}`);
    assert.deepEqual(withoutSeconds(jsonLines(b.stdout)), withoutSeconds(lines));
    const other = jsonLines(c.stdout);
    assert.notEqual(other[0].trainLoss, lines[0].trainLoss);
    assert.notEqual(other[2].testAccuracy === lines[2].testAccuracy && other[1].valLoss === lines[1].valLoss, true);
  });

  it("--config FILE sets the options and flags override it; config.json records the resolved configuration", async () => {
    const file = join(root, "train-config.json");
    writeFileSync(
      file,
      JSON.stringify({ dataset: "mnist", limit: 1000, validation: 200, epochs: 1, widths: [32], lr: 0.05, seed: 3, optimizer: "momentum" }),
    );
    const out = fresh("config");
    const r = await runCli(["train", "--config", file, "--epochs", "2", "--json", "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(jsonLines(r.stdout).length, 3);
    const saved = JSON.parse(readFileSync(join(out, "config.json"), "utf8")) as {
      train: Record<string, unknown>;
      model: { layers: { units?: number }[] };
      library: { version: string };
    };
    assert.equal(saved.train.epochs, 2);
    assert.equal(saved.train.lr, 0.05);
    assert.equal(saved.train.optimizer, "momentum");
    assert.equal(saved.model.layers[1].units, 32);
    assert.equal(typeof saved.library.version, "string");
    const bad = join(root, "bad-config.json");
    writeFileSync(bad, JSON.stringify({ epochs: 1, learningRate: 0.1 }));
    const e = await runCli(["train", "--config", bad, "--out", fresh("bad")]);
    assert.equal(e.code, 1);
    assert.match(e.stderr, /Unrecognized key.*learningRate|learningRate/);
  });

  it("adam with a cosine schedule, clipping, Polyak averaging and early stopping runs", async () => {
    const out = fresh("adam");
    const r = await runCli([
      "train",
      ...SMALL,
      "--optimizer",
      "adam",
      "--lr",
      "1e-3",
      "--schedule",
      "cosine",
      "--clip-norm",
      "1",
      "--average",
      "polyak",
      "--early-stopping",
      "5",
      "--json",
      "--out",
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const lines = jsonLines(r.stdout);
    assert.equal(lines.length, 3);
    // Cosine: η_t = η/2 (1 + cos(π t/T)) decays during the run.
    assert.ok((lines[1].learningRate as number) < (lines[0].learningRate as number));
    // 14 small clipped steps, averaged from the first: well above chance (0.1), not yet good.
    assert.ok((lines[2].testAccuracy as number) > 0.3, `test accuracy ${lines[2].testAccuracy}`);
    assert.ok(existsSync(join(out, "model.safetensors")) && existsSync(join(out, "summary.json")));
  });

  it("the portable backend (CHAINOPT_BACKEND=portable) trains a tiny model like the native one", async () => {
    const [portable, native] = await Promise.all([
      runCli(["train", ...TINY, "--json", "--out", fresh("portable")], { CHAINOPT_BACKEND: "portable" }),
      runCli(["train", ...TINY, "--json", "--out", fresh("native")]),
    ]);
    assert.equal(portable.code, 0, portable.stderr);
    assert.match(portable.stderr, /portable TypeScript backend \(CHAINOPT_BACKEND=portable\)/);
    const p = jsonLines(portable.stdout);
    const n = jsonLines(native.stdout);
    // Same computation, other summation order: equal up to float32 rounding.
    assert.ok(
      Math.abs((p[0].trainLoss as number) - (n[0].trainLoss as number)) < 1e-4 * (n[0].trainLoss as number),
      `${p[0].trainLoss} vs ${n[0].trainLoss}`,
    );
    assert.equal(typeof p[1].testAccuracy, "number");
  });
});

describe("chainopt train: errors before training, nothing written", () => {
  const specs: Record<string, unknown> = {
    malformed: { input: [1, 28, 28], layers: [{ type: "flatten" }, { type: "dense", units: -3 }] },
    unknownLayer: { input: [1, 28, 28], layers: [{ type: "flatten" }, { type: "dropout", p: 0.5 }, { type: "dense", units: 10 }] },
    noFlatten: { input: [1, 28, 28], layers: [{ type: "dense", units: 10 }] },
    inputShape: { input: [784], layers: [{ type: "dense", units: 10 }] },
    classes: { input: [1, 28, 28], layers: [{ type: "flatten" }, { type: "dense", units: 7 }] },
  };
  const cases: { name: string; args: (dir: string) => string[]; message: RegExp }[] = [
    {
      name: "a malformed model spec names the field",
      args: (d) => ["--model", join(d, "malformed.json")],
      message: /layers\[1\]\.units: Too small: expected number to be >0/,
    },
    {
      name: "an unknown layer type",
      args: (d) => ["--model", join(d, "unknownLayer.json")],
      message: /layers\[1\]\.type: unknown layer type "dropout"; expected one of dense, conv2d/,
    },
    {
      name: "dense after an image input without flatten",
      args: (d) => ["--model", join(d, "noFlatten.json")],
      message: /layers\[0\]: dense expects a flat input, got shape \[1, 28, 28\]; insert \{"type":"flatten"\}/,
    },
    {
      name: "model input shape ≠ data shape",
      args: (d) => ["--model", join(d, "inputShape.json")],
      message: /model\.input: the model expects inputs of shape 784 but the data set has 1x28x28/,
    },
    {
      name: "output size ≠ classes",
      args: (d) => ["--model", join(d, "classes.json")],
      message: /the last layer has 7 outputs but mnist has 10 classes/,
    },
    {
      name: "a model spec file that is not JSON",
      args: (d) => ["--model", join(d, "truncated.json")],
      message: /truncated\.json: not valid JSON/,
    },
    {
      name: "an unknown preset",
      args: () => ["--model", "resnet9000"],
      message: /model: unknown preset or file "resnet9000"; presets: mlp/,
    },
    {
      name: "an unknown dataset lists the known ones",
      args: () => ["--dataset", "imagenet"],
      message: /dataset: unknown data set "imagenet"; known: mnist, fashion-mnist, cifar10/,
    },
    { name: "a non-numeric flag value", args: () => ["--epochs", "abc"], message: /--epochs: expected an integer, got "abc"/ },
    { name: "a negative learning rate", args: () => ["--lr=-1"], message: /lr: Too small: expected number to be >0/ },
    { name: "a zero batch size", args: () => ["--batch-size", "0"], message: /batchSize: Too small/ },
    {
      name: "an unknown optimizer",
      args: () => ["--optimizer", "lion"],
      message: /optimizer: unknown optimizer "lion"; known: sgd, momentum/,
    },
    {
      name: "an option of another optimizer",
      args: () => ["--optimizer", "adam", "--momentum", "0.9"],
      message: /adam: option "momentum" is not an option here/,
    },
    { name: "an invalid choice", args: () => ["--schedule", "linear"], message: /argument 'linear' is invalid/ },
    {
      name: "too large a validation split",
      args: () => ["--validation", "5000"],
      message: /--validation 5000 \(configuration field "validation"\): mnist has \d+ training samples .*leaves no training samples/,
    },
    {
      name: "missing --init weights",
      args: (d) => ["--init", join(d, "nope.safetensors")],
      message: /init: .*nope\.safetensors: file not found/,
    },
  ];
  let dir: string;
  before(() => {
    dir = join(root, "specs");
    mkdirSync(dir, { recursive: true });
    for (const [name, spec] of Object.entries(specs)) writeFileSync(join(dir, `${name}.json`), JSON.stringify(spec));
    writeFileSync(join(dir, "truncated.json"), '{"input":[1,28,28],"layers":[{"type":"flatten"},{"type":"dense","units":');
  });
  it("each fails with exit code 1 and a message naming the field; no run directory is created", async () => {
    const results = await Promise.all(
      cases.map(async (c) => {
        const out = fresh("error");
        return { c, out, r: await runCli(["train", "--limit", "300", "--validation", "100", "--out", out, ...c.args(dir)]) };
      }),
    );
    for (const { c, out, r } of results) {
      assert.equal(r.code, 1, `${c.name}: exit code ${r.code}\n${r.stderr}`);
      assert.match(r.stderr, c.message, c.name);
      assert.ok(!existsSync(out), `${c.name}: wrote ${out}`);
      assert.doesNotMatch(r.stdout, /epoch/, c.name);
    }
  });
  it("an existing, non-empty --out is refused (use --resume)", async () => {
    const out = fresh("taken");
    mkdirSync(out);
    writeFileSync(join(out, "notes.txt"), "mine");
    const r = await runCli(["train", ...TINY, "--out", out]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /exists and is not empty \(use --resume/);
    assert.ok(!existsSync(join(out, "config.json")));
  });
});

describe("chainopt train --init --no-shuffle", () => {
  it("starts from given PyTorch weights: with a fixed data order the run no longer depends on the seed", async () => {
    const spec = {
      input: [1, 28, 28],
      layers: [{ type: "flatten" }, { type: "dense", units: 16 }, { type: "relu" }, { type: "dense", units: 10 }],
    };
    const specFile = join(root, "init-spec.json");
    writeFileSync(specFile, JSON.stringify(spec));
    const chain = createChain(spec as never);
    const w0 = chain.initParams(123);
    const weights = join(root, "init.safetensors");
    exportTorchSafetensors(chain, w0, null, weights); // keys 1.weight, 1.bias, 3.weight, 3.bias
    const args = [
      "train",
      "--model",
      specFile,
      "--limit",
      "500",
      "--validation",
      "0",
      "--epochs",
      "1",
      "--batch-size",
      "50",
      "--no-shuffle",
      "--json",
    ];
    const [a, b, c] = await Promise.all([
      runCli([...args, "--init", weights, "--seed", "1", "--out", fresh("init")]),
      runCli([...args, "--init", weights, "--seed", "2", "--out", fresh("init")]),
      runCli([...args, "--seed", "1", "--out", fresh("noinit")]),
    ]);
    for (const r of [a, b, c]) assert.equal(r.code, 0, r.stderr);
    const [da, db, dc] = [a, b, c].map((r) => jsonLines(r.stdout).at(-1)?.runDir as string);
    const model = (d: string) => readFileSync(join(d, "model.safetensors"));
    assert.ok(model(da).equals(model(db)), "--init + --no-shuffle: the seed changed the result");
    assert.ok(!model(da).equals(model(dc)), "--init had no effect");
    const config = JSON.parse(readFileSync(join(da, "config.json"), "utf8")) as { init: { format: string } };
    assert.equal(config.init.format, "torch");
    // The epoch-0 checkpoint holds exactly the given weights.
    const first = loadCheckpoint(join(da, "checkpoints", "last.safetensors"), chain);
    assert.equal(first.epoch, 1);
    const wrong = await runCli([...args, "--init", join(root, "init-spec.json"), "--out", fresh("wrong")]);
    assert.equal(wrong.code, 1);
  });
});

describe("chainopt train: numerical faults", () => {
  it("--lr 1e6: stops with a message naming the step and the layer; exit code 1; the last good checkpoint is kept, loadable and finite", async () => {
    const out = fresh("nan");
    const r = await runCli(["train", ...TINY, "--epochs", "3", "--batch-size", "20", "--lr", "1e6", "--out", out]);
    assert.equal(r.code, 1, r.stderr);
    const m =
      /non-finite (loss|gradient|parameters) at step (\d+) \(epoch (\d+), batch \d+ of 10\); first at (layers\[\d+\] \(\w+\) \w+)/.exec(
        r.stderr,
      );
    assert.ok(m, r.stderr);
    assert.match(r.stderr, /--on-nan skip/);
    const epoch = Number(m[3]);
    // The checkpoint of the last completed epoch (epoch 0: the starting point) is left as it was.
    assert.match(
      r.stderr,
      new RegExp(`the last good checkpoint is kept: .*last\\.safetensors \\(epoch ${epoch - 1}, step ${10 * (epoch - 1)}\\)`),
    );
    const fault = readMetrics(out).find((x) => x.type === "fault");
    assert.equal(fault?.step, Number(m[2]));
    assert.equal(fault?.component, m[4]);
    const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8")) as { model: unknown };
    const chain = createChain(config.model as never);
    const ck = loadCheckpoint(join(out, "checkpoints", "last.safetensors"), chain);
    assert.equal(ck.epoch, epoch - 1);
    assert.ok(allFinite(ck.params) && allFinite(ck.state));
    assert.ok(!existsSync(join(out, "model.safetensors")));
  });

  it("--on-nan skip: non-finite steps are undone and counted, training goes on, the final model is finite", async () => {
    const out = fresh("skip");
    const r = await runCli([
      "train",
      ...TINY,
      "--epochs",
      "3",
      "--batch-size",
      "20",
      "--lr",
      "1e8",
      "--on-nan",
      "skip",
      "--json",
      "--out",
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const lines = jsonLines(r.stdout);
    const skipped = lines.reduce((s, l) => s + ((l.skippedSteps as number | undefined) ?? 0), 0);
    assert.ok(skipped > 0, r.stdout);
    assert.equal(lines.at(-1)?.final, true);
    const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8")) as { model: unknown };
    const chain = createChain(config.model as never);
    assert.ok(allFinite(loadCheckpoint(join(out, "model.safetensors"), chain).params));
    assert.ok(readMetrics(out).some((x) => x.type === "epoch" && (x.skipped_steps as number) > 0));
  });
});

describe("chainopt train: a reader that closes stdout early", () => {
  it("`train --json | head -1`: the job runs to its end and writes its run directory, exit code 0", async () => {
    const out = fresh("epipe");
    const { child, done } = startCli(["train", ...TINY, "--epochs", "4", "--batch-size", "20", "--json", "--out", out]);
    // Close our end of the pipe after the first line, as `head -1` does.
    await new Promise<void>((resolve) => child.stdout!.once("data", () => resolve()));
    child.stdout!.destroy();
    const r = await done;
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /EPIPE|Unhandled/);
    const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8")) as { epochs: number };
    assert.equal(summary.epochs, 4);
  });
});
