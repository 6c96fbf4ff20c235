import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { prepareCifar10 } from "../src/node/datasets.js";
import { CLI, type CliResult } from "./cli-helpers.js";

// Every `npx chainopt …` command of README.md's shell blocks runs (exit code 0), in a fresh
// working folder, as written plus small overrides that keep it short:
//   train        + `--epochs 1 --limit 300` (one epoch on 300 samples); `--resume DIR` + `--epochs 2`
//   attack, analyze --input-space   + `--samples 20` (test samples attacked / certified)
//   experiment   deep-linear + `--hidden 8 --points 20`; deep-clustering + `--datasets iris --samples 60 --epochs 5`
//   bench        + `--quick --models mlp --threads 1 --rounds 1 --skip portable,torch,tfjs,gemm,mnist`
//   sweep        + `--list` (a task trains a 9-million-parameter MLP for 200 epochs: hours; --list
//                parses the sweep file and prints its task table)
// Placeholders are made first: `runs/20261122-070000-mlp-mnist`, `runs/A`, `runs/B`, `runs/X`
// (short runs), `weights.safetensors` and `W` (the first run's model), `spec.json` (a small spec),
// and a copy of the repository's sweeps/.
// Skipped, with the reason:
const SKIPPED: Record<string, string> = {
  "build-native": "compiles the native addon (tens of seconds, needs a compiler); `npm ci` and scripts/setup.sh run it",
  playground: "serves the playground until stopped; test/static-server.test.ts covers the server",
  mpirun: "runs under an MPI launcher (mpirun -np 4); the distributed tests cover data-parallel training",
};

const README = fileURLToPath(new URL("../../README.md", import.meta.url));

/** The `npx chainopt …` commands of README.md's ```sh blocks (comments and `&&` chains cut). */
export function readmeCommands(text: string): string[][] {
  const out: string[][] = [];
  let inSh = false;
  for (const line of text.split("\n")) {
    if (line.startsWith("```")) {
      inSh = !inSh && /^```(sh|bash|shell)\s*$/.test(line);
      continue;
    }
    if (!inSh) continue;
    const at = line.indexOf("npx chainopt");
    if (at < 0) continue;
    const command = line
      .slice(at)
      .replace(/\s+#.*$/, "")
      .split("&&")[0]
      .trim();
    // A launcher before the command (`mpirun -np 4 npx chainopt …`) is kept as a marker.
    const launcher = /\bmpirun\b|\bsrun\b/.test(line.slice(0, at)) ? ["mpirun"] : [];
    out.push([...launcher, ...command.split(/\s+/).slice(2)]);
  }
  return out;
}

let cwd: string;
const run = (args: readonly string[], timeoutMs = 300_000): Promise<CliResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString("utf8");
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString("utf8");
    });
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });

const SHORT_TRAIN = ["--epochs", "1", "--limit", "300"];

/** The command with the overrides listed above. */
function shortened(args: string[]): string[] {
  const [command, ...rest] = args;
  if (command === "train") return rest.includes("--resume") ? [...args, "--epochs", "2"] : [...args, ...SHORT_TRAIN];
  if (command === "experiment" && rest[0] === "deep-linear") return [...args, "--hidden", "8", "--points", "20"];
  if (command === "experiment" && rest[0] === "deep-clustering") {
    return [...args, "--datasets", "iris", "--samples", "60", "--epochs", "5"];
  }
  if (command === "attack" || (command === "analyze" && rest.includes("--input-space"))) return [...args, "--samples", "20"];
  if (command === "sweep") return [...args, "--list"];
  if (command === "bench") {
    return [...args, "--quick", "--models", "mlp", "--threads", "1", "--rounds", "1", "--skip", "portable,torch,tfjs,gemm,mnist"];
  }
  return args;
}

const commands = readmeCommands(readFileSync(README, "utf8"));

describe("README.md's commands run", () => {
  before(async () => {
    cwd = mkdtempSync(join(tmpdir(), "chainopt-readme-"));
    for (const out of ["runs/20261122-070000-mlp-mnist", "runs/A", "runs/B", "runs/X"]) {
      const r = await run(["train", "--model", "mlp", "--dataset", "mnist", ...SHORT_TRAIN, "--out", out]);
      assert.equal(r.code, 0, r.stderr);
    }
    copyFileSync(join(cwd, "runs/20261122-070000-mlp-mnist/model.safetensors"), join(cwd, "weights.safetensors"));
    copyFileSync(join(cwd, "runs/20261122-070000-mlp-mnist/model.safetensors"), join(cwd, "W"));
    // The README's commands run from the repository root, where sweeps/ lives.
    cpSync(fileURLToPath(new URL("../../sweeps", import.meta.url)), join(cwd, "sweeps"), { recursive: true });
    writeFileSync(
      join(cwd, "spec.json"),
      JSON.stringify({ input: [4], layers: [{ type: "dense", units: 8 }, { type: "softplus" }, { type: "dense", units: 3 }] }),
    );
  });
  after(() => {
    rmSync(cwd, { recursive: true, force: true });
  });

  it("finds the command block", () => {
    assert.ok(commands.length >= 10, `${commands.length} commands`);
    for (const c of ["train", "report", "analyze", "experiment", "doctor", "bench"])
      assert.ok(
        commands.some((a) => a[0] === c),
        c,
      );
  });

  for (const args of commands) {
    const name = args[0] === "mpirun" ? `mpirun … npx chainopt ${args.slice(1).join(" ")}` : `npx chainopt ${args.join(" ")}`;
    const reason = SKIPPED[args[0]];
    it(name, { skip: reason ?? false, timeout: 600_000 }, async (t) => {
      if (args.includes("cifar10")) {
        try {
          await prepareCifar10({ download: false });
        } catch (e) {
          t.skip(`CIFAR-10 is not in the data cache (scripts/setup-data.sh --cifar10): ${(e as Error).message}`);
          return;
        }
      }
      const r = await run(shortened(args));
      assert.equal(r.code, 0, `${name}\n${r.stderr}`);
      if (args[0] === "train" && !args.includes("--json") && !args.includes("--objective")) {
        assert.match(r.stdout, /test loss \d/, "a test loss is reported");
      }
      if (args[0] === "report") assert.ok(existsSync(join(cwd, "report.html")));
    });
  }
});
