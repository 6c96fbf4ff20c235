import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createChain } from "../src/chain/chain.js";
import { allFinite } from "../src/core/vector.js";
import { loadCheckpoint } from "../src/node/checkpoint.js";
import { epochRecordsWithoutTimes, jsonLines, readMetrics, runCli, startCli, tensorBytes, waitFor } from "./cli-helpers.js";

// A run interrupted (SIGKILL at any moment, or SIGINT) and resumed with
// `chainopt train --resume DIR` ends with parameters bit-identical to the uninterrupted run, and
// its metrics.jsonl has the same epoch records (but for wall-clock times).

const DATA = ["--dataset", "mnist", "--limit", "2000", "--validation", "200", "--epochs", "4", "--batch-size", "32", "--seed", "7"];
const CONFIGS: Record<string, string[]> = {
  // Adam: moments and the step count in the optimizer state.
  adam: ["--widths", "128", "--optimizer", "adam", "--lr", "1e-3"],
  // Heavy-ball momentum, a cosine schedule over the 4 epochs (its step index must resume), Polyak
  // averaging (the averaged iterate and its count) and early stopping (best value, epoch, params).
  momentum: [
    "--widths",
    "128",
    "--optimizer",
    "momentum",
    "--momentum",
    "0.9",
    "--lr",
    "0.05",
    "--schedule",
    "cosine",
    "--average",
    "polyak",
    "--early-stopping",
    "3",
  ],
};

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), "chainopt-resume-"));
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

function epochsIn(dir: string): number[] {
  return readMetrics(dir)
    .filter((r) => r.type === "epoch")
    .map((r) => r.epoch as number);
}

/** Asserts that two finished runs have byte-identical final models and the same epoch records. */
function assertSameRun(full: string, resumed: string): void {
  const a = tensorBytes(join(full, "model.safetensors"));
  const b = tensorBytes(join(resumed, "model.safetensors"));
  assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
  for (const [name, bytes] of a) assert.ok(bytes.equals(b.get(name) as Buffer), `model tensor ${name} differs`);
  assert.ok(
    readFileSync(join(full, "model.safetensors")).equals(readFileSync(join(resumed, "model.safetensors"))),
    "model.safetensors files differ",
  );
  // The last checkpoints hold the same parameters and optimizer state (their metadata has wall times).
  const ca = tensorBytes(join(full, "checkpoints", "last.safetensors"));
  const cb = tensorBytes(join(resumed, "checkpoints", "last.safetensors"));
  assert.deepEqual([...cb.keys()].sort(), [...ca.keys()].sort());
  for (const [name, bytes] of ca) assert.ok(bytes.equals(cb.get(name) as Buffer), `checkpoint tensor ${name} differs`);
  assert.deepEqual(epochRecordsWithoutTimes(resumed), epochRecordsWithoutTimes(full));
  const finalOf = (dir: string) => readMetrics(dir).filter((r) => r.type === "final");
  assert.equal(finalOf(resumed).length, 1);
  assert.equal(finalOf(resumed)[0].test_accuracy, finalOf(full)[0].test_accuracy);
  assert.equal(finalOf(resumed)[0].test_loss, finalOf(full)[0].test_loss);
}

describe("chainopt train --resume", () => {
  const fullRuns = new Map<string, string>();

  for (const [name, flags] of Object.entries(CONFIGS)) {
    const killAfter = name === "adam" ? 1 : 2;
    it(`${name}: SIGKILL after epoch ${killAfter}, then --resume: final parameters bit-identical to the uninterrupted run`, async () => {
      const full = join(root, `${name}-full`);
      const r = await runCli(["train", ...DATA, ...flags, "--out", full, "--json"]);
      assert.equal(r.code, 0, r.stderr);
      fullRuns.set(name, full);
      assert.deepEqual(epochsIn(full), [1, 2, 3, 4]);

      const killed = join(root, `${name}-killed`);
      const { child, done } = startCli(["train", ...DATA, ...flags, "--out", killed, "--json"]);
      // Kill as soon as metrics.jsonl shows the epoch: possibly before its checkpoint is written,
      // which the resumed run must repair (it drops metric lines newer than the last checkpoint).
      await waitFor(() => epochsIn(killed).includes(killAfter), done);
      child.kill("SIGKILL");
      const k = await done;
      assert.equal(k.signal, "SIGKILL", "the run ended before it could be killed; the test proves nothing");
      assert.ok(!existsSync(join(killed, "model.safetensors")), "the killed run already wrote its final model");

      const resumed = await runCli(["train", "--resume", killed, "--json"]);
      assert.equal(resumed.code, 0, resumed.stderr);
      const lines = jsonLines(resumed.stdout);
      const epochs = lines.filter((l) => l.final === undefined).map((l) => l.epoch as number);
      // From the checkpoint of epoch killAfter, or killAfter − 1 when the kill came between the
      // metrics line and the checkpoint of epoch killAfter.
      assert.ok(epochs[0] === killAfter + 1 || epochs[0] === killAfter, `resumed epochs ${epochs}`);
      assert.deepEqual(
        epochs,
        Array.from({ length: 5 - epochs[0] }, (_, i) => epochs[0] + i),
      );
      assert.equal(lines.at(-1)?.final, true);
      assertSameRun(full, killed);
      // The resumed run's configuration is the saved one.
      const config = JSON.parse(readFileSync(join(killed, "config.json"), "utf8")) as { train: { optimizer: string; out: string } };
      assert.equal(config.train.optimizer, name);
    });
  }

  it("SIGINT stops cleanly after saving: exit code 130, a message naming --resume, and the run resumes bit-identically", async () => {
    const full = fullRuns.get("adam");
    assert.ok(full, "needs the adam run of the first test");
    const dir = join(root, "adam-sigint");
    const { child, done } = startCli(["train", ...DATA, ...CONFIGS.adam, "--out", dir, "--json"]);
    await waitFor(() => epochsIn(dir).includes(1), done);
    child.kill("SIGINT");
    const r = await done;
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /stopping after this epoch/);
    assert.match(r.stderr, /interrupted after epoch (\d); checkpoint saved in .*; resume with: npx chainopt train --resume /);
    const stoppedAt = Number(/interrupted after epoch (\d)/.exec(r.stderr)?.[1]);
    assert.ok(stoppedAt >= 1 && stoppedAt < 4, `stopped after epoch ${stoppedAt}`);
    const final = jsonLines(r.stdout).at(-1);
    assert.equal(final?.interrupted, true);
    assert.ok(!existsSync(join(dir, "model.safetensors")) && !existsSync(join(dir, "summary.json")));
    const index = JSON.parse(readFileSync(join(dir, "checkpoints", "index.json"), "utf8")) as { last: { epoch: number } };
    assert.equal(index.last.epoch, stoppedAt);
    const chain = createChain(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")).model);
    assert.ok(allFinite(loadCheckpoint(join(dir, "checkpoints", "last.safetensors"), chain).params));

    const resumed = await runCli(["train", "--resume", dir]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, new RegExp(`resuming after epoch ${stoppedAt}`));
    assertSameRun(full, dir);
  });

  it("--resume takes the configuration from config.json: other flags are refused; a complete run is refused unless --epochs extends it", async () => {
    const full = fullRuns.get("adam");
    assert.ok(full);
    const mixed = await runCli(["train", "--resume", full, "--lr", "0.5", "--no-shuffle"]);
    assert.equal(mixed.code, 1);
    assert.match(mixed.stderr, /cannot be combined with --lr, --no-shuffle/);
    const withConfig = await runCli(["train", "--resume", full, "--config", "x.json"]);
    assert.equal(withConfig.code, 1);
    assert.match(withConfig.stderr, /cannot be combined with --config/);
    const complete = await runCli(["train", "--resume", full]);
    assert.equal(complete.code, 1);
    assert.match(complete.stderr, /already complete \(4 epochs\); to train longer pass --epochs N with N > 4/);
    const missing = await runCli(["train", "--resume", join(root, "nope")]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not a run directory \(no config\.json\)/);
  });
});
