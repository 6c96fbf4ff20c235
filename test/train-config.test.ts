import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  flagName,
  resolveTrainConfig,
  TRAIN_FLAGS,
  trainConfigSchema,
  trainFlagChoices,
  trainFlagParser,
} from "../src/node/train-config.js";
import { runCli } from "./cli-helpers.js";

// The configuration of `chainopt train` (src/node/train-config.ts): the flag table the CLI is
// generated from, and the one validator, resolveTrainConfig.

describe("train configuration flags (train-config.ts)", () => {
  it("every schema field has a flag entry, and `chainopt train --help` shows each flag with its value and choices", async () => {
    assert.deepEqual(Object.keys(TRAIN_FLAGS).sort(), Object.keys(trainConfigSchema.shape).sort());
    const r = await runCli(["train", "--help"]);
    assert.equal(r.code, 0, r.stderr);
    // Commander wraps long help lines: compare with whitespace collapsed.
    const help = r.stdout.replace(/\s+/g, " ");
    for (const [key, flag] of Object.entries(TRAIN_FLAGS)) {
      if (flag.configOnly) {
        assert.ok(!help.includes(`${flagName(key)} `), `${key} is config-only but has a flag`);
        continue;
      }
      const spelled = flag.negate ? flagName(key, false) : flag.value ? `${flagName(key)} ${flag.value}` : flagName(key);
      assert.ok(help.includes(spelled), `--help lacks ${spelled}`);
      if (flag.negation) assert.ok(help.includes(flagName(key, false)), `--help lacks ${flagName(key, false)}`);
      const choices = trainFlagChoices(key as keyof typeof TRAIN_FLAGS);
      if (choices) assert.ok(help.includes(`choices: ${choices.map((c) => `"${c}"`).join(", ")}`), `--help lacks the choices of ${key}`);
    }
  });

  it("parsers name the flag and refuse empty and malformed values", () => {
    const lr = trainFlagParser(TRAIN_FLAGS.lr, "--lr");
    const widths = trainFlagParser(TRAIN_FLAGS.widths, "--widths");
    const validation = trainFlagParser(TRAIN_FLAGS.validation, "--validation");
    assert.ok(lr && widths && validation);
    assert.equal(lr("0.5"), 0.5);
    assert.throws(() => lr(""), /--lr needs a number, got an empty value/);
    assert.throws(() => lr("fast"), /--lr: expected a number, got "fast"/);
    assert.deepEqual(widths("8,16"), [8, 16]);
    assert.throws(() => widths("8,1.5"), /--widths: expected an integer, got "1.5"/);
    assert.equal(validation("auto"), "auto");
    assert.equal(validation("0.2"), 0.2);
    assert.equal(trainFlagParser(TRAIN_FLAGS.model, "--model"), undefined);
  });
});

describe("resolveTrainConfig", () => {
  const base = { dataset: "diabetes", loss: "squared" as const };
  const inputs: Record<string, unknown>[] = [
    { ...base },
    { ...base, optimizer: "adam", lr: 0.001, schedule: "step", warmupSteps: 3, clipNorm: 1 },
    { ...base, optimizer: "gauss-newton", damping: 0.1 },
    { ...base, optimizer: "ggn", lineSearch: false, lr: 0.02 },
    { ...base, optimizer: "newton", lr: 0.5 },
    { ...base, stepSize: "certified", radius: 2, recertifyEvery: 2, localDelta: 0.1 },
    { ...base, optimizer: "sgd", lineSearch: "armijo", armijoC: 0.1 },
    { dataset: "iris", objective: "clustering", clusteringLambda: 0.5, optimizer: "sgd" },
  ];

  it("applies the method defaults to a new configuration", () => {
    const so = resolveTrainConfig({ ...base, optimizer: "newton" });
    assert.equal(so.lr, 1);
    assert.equal(so.schedule, "constant");
    assert.equal(so.warmupSteps, 0);
    const cert = resolveTrainConfig({ ...base, stepSize: "certified" });
    assert.equal(cert.optimizer, "sgd");
    assert.equal(cert.schedule, "constant");
    const armijo = resolveTrainConfig({ ...base, optimizer: "momentum", lineSearch: "armijo" });
    assert.equal(armijo.schedule, "constant");
    assert.equal(resolveTrainConfig(base).schedule, "cosine");
  });

  it("re-checking a resolved configuration (a resumed config.json) accepts it unchanged", () => {
    for (const input of inputs) {
      const resolved = resolveTrainConfig(input);
      assert.deepEqual(resolveTrainConfig(JSON.parse(JSON.stringify(resolved)), { saved: true }), resolved, JSON.stringify(input));
    }
  });

  it("re-checking a saved configuration still refuses what the rules refuse, naming the flag", () => {
    const so = resolveTrainConfig({ ...base, optimizer: "gauss-newton" });
    assert.throws(
      () => resolveTrainConfig({ ...so, momentum: 0.9 }, { saved: true }),
      /--optimizer gauss-newton: --momentum is an option of the first-order optimizers/,
    );
    assert.throws(() => resolveTrainConfig({ ...so, schedule: "cosine" }, { saved: true }), /--schedule is an option of the first-order/);
    const cert = resolveTrainConfig({ ...base, stepSize: "certified" });
    assert.throws(() => resolveTrainConfig({ ...cert, optimizer: "adam" }, { saved: true }), /cannot be combined with --optimizer adam/);
    assert.throws(
      () => resolveTrainConfig({ ...base, stepSize: "certified", radius: 1, radii: [1] }),
      /--radius, --radii: give one of them/,
    );
  });
});
