// The side-by-side benchmarks (bench/side-by-side.ts): argument parsing, and the PyTorch side's
// script bench/torch_step.py, found under the package root as an installed package has it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import { parseBenchArgs } from "../bench/cli.js";
import { torchScriptPath } from "../bench/side-by-side.js";
import { packageRoot } from "../src/node/native-backend.js";

const PYTHON = process.env.CHAINOPT_PYTHON ?? (existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");
const hasTorch = spawnSync(PYTHON, ["-c", "import torch"], { encoding: "utf8" }).status === 0;

describe("chainopt bench", () => {
  it("parses its arguments and names the flag at fault", () => {
    const args = parseBenchArgs(["--threads", "1,2", "--models", "mlp", "--skip", "torch,gemm", "--quick"]);
    assert.deepEqual(args.threads, [1, 2]);
    assert.deepEqual(args.models, ["mlp"]);
    assert.deepEqual(args.skip, ["torch", "gemm"]);
    assert.equal(args.quick, true);
    assert.throws(() => parseBenchArgs(["--models", "resnet"]), /--models: mlp or convnet, got resnet/);
    assert.throws(() => parseBenchArgs(["--threads", "0"]), /--threads/);
  });

  it("finds bench/torch_step.py under the package root, and the package ships it", () => {
    const script = torchScriptPath();
    assert.ok(existsSync(script), script);
    const files = (JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as { files: string[] }).files;
    const rel = relative(packageRoot(), script);
    assert.ok(
      files.some((f) => rel === f || rel.startsWith(`${f}/`)),
      `${rel} is not in package.json "files"`,
    );
    assert.ok(files.includes("dist/bench"), `dist/bench (the benchmark modules of the CLI) is not in package.json "files"`);
  });

  it("bench/torch_step.py times one training step per job", { skip: hasTorch ? false : `no torch in ${PYTHON}` }, () => {
    const cfg = { threads: 1, batch: 4, jobs: [{ model: "mlp", warmup: 0, reps: 1, steps: 1 }] };
    const r = spawnSync(PYTHON, [torchScriptPath(), JSON.stringify(cfg)], {
      encoding: "utf8",
      env: { ...process.env, OMP_NUM_THREADS: "1" },
    });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      threads: number;
      timings: { model: string; medianMs: number; reps: number; stepsPerRep: number }[];
    };
    assert.equal(out.threads, 1);
    assert.equal(out.timings.length, 1);
    assert.equal(out.timings[0].model, "mlp");
    assert.equal(out.timings[0].reps, 1);
    assert.ok(out.timings[0].medianMs > 0);
  });
});
