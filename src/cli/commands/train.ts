import { SingleBar } from "cli-progress";
import { type Command, Option } from "commander";
import { distributedErrorHandler, distributedFromFlags } from "../../node/distributed/cli.js";
import {
  flagName,
  readConfigFile,
  SECOND_ORDER_METHODS,
  TRAIN_FLAGS,
  type TrainConfigInput,
  trainFlagChoices,
  trainFlagParser,
} from "../../node/train-config.js";
import { type ResumeInput, runTrainJob } from "../../node/train-job.js";
import type { EpochRecord } from "../../train/trainer.js";

/**
 * Declares the configuration's options on the command, from their table in train-config.ts
 * (flag, value placeholder, help, parser; choices from the schema's enums).
 */
function addConfigOptions(command: Command): Command {
  for (const [key, flag] of Object.entries(TRAIN_FLAGS)) {
    if (flag.configOnly) continue;
    const name = flagName(key);
    const option = new Option(flag.negate ? flagName(key, false) : flag.value ? `${name} ${flag.value}` : name, flag.help);
    const choices = trainFlagChoices(key as keyof typeof TRAIN_FLAGS);
    if (choices) option.choices(choices);
    const parse = trainFlagParser(flag, name);
    if (parse) option.argParser(parse);
    command.addOption(option);
    if (flag.negation) command.addOption(new Option(flagName(key, false), flag.negation));
  }
  return command;
}

/** The configuration given by flags: the keys of the table set on the command line. */
function configFromFlags(opts: Record<string, unknown>): Record<string, unknown> {
  const flags: Record<string, unknown> = {};
  for (const [key, flag] of Object.entries(TRAIN_FLAGS)) {
    // Commander sets a `--no-x` switch's key to true by default: only `false` was given.
    if (opts[key] !== undefined && (!flag.negate || opts[key] === false)) flags[key] = opts[key];
  }
  return flags;
}

/** `chainopt train`: trains a model on a data set and reports per-epoch metrics. */
export function register(program: Command): void {
  const command = program
    .command("train")
    .description("train a chain on a data set (default: MLP 784-512-512-10 on MNIST, momentum 0.9, lr 0.02 cosine, 10 epochs)")
    .option("--config <file>", "JSON file with any of the options below (flags override it)");
  addConfigOptions(command)
    .option(
      "--resume <run-dir>",
      "continue an interrupted run from its last checkpoint, with the configuration of its config.json (only --epochs may be given, to extend it)",
    )
    // --- distributed (docs/distributed.md) ---
    .option("--distributed", "data-parallel over the ranks of an MPI job (mpirun -np N …; automatic under mpirun with N > 1)")
    .option("--deterministic-reduce", "distributed: sum gradients in rank order (bit-reproducible for a given N)")
    // --- end distributed ---
    .option("--allow-config-change", "with --resume: train on although config.json differs from the checkpoint's configuration")
    .option("--json", "print one JSON object per epoch and a final one, instead of text")
    .option("--no-progress", "no progress bar")
    .action(async (opts: Record<string, unknown>) => {
      // --- distributed: MPI init (or a clear error), rank > 0 prints nothing ---
      const distributed = distributedFromFlags(opts);
      const silent = distributed !== null && distributed.collective.rank > 0;
      // --- end distributed ---
      const json = opts.json === true;
      if (typeof opts.resume === "string" && typeof opts.config === "string") {
        throw new Error("--resume continues a run with the configuration saved in its config.json; it cannot be combined with --config");
      }
      const fromFile = typeof opts.config === "string" ? (readConfigFile(opts.config) as Record<string, unknown>) : {};
      const flags = configFromFlags(opts);
      const config = { ...fromFile, ...flags } as TrainConfigInput;
      const showBar = !json && !silent && opts.progress !== false && process.stderr.isTTY === true;
      const bar = showBar
        ? new SingleBar({
            format: "epoch {epoch} |{bar}| {value}/{total} batches | loss {loss} | {speed} samples/s",
            hideCursor: true,
            clearOnComplete: true,
            stream: process.stderr,
          })
        : null;
      const signal = { stopRequested: false };
      const onSigint = () => {
        if (signal.stopRequested) {
          process.stderr.write("\nchainopt: quitting now; the checkpoint of the last completed epoch is kept\n");
          process.exit(130);
        }
        signal.stopRequested = true;
        bar?.stop();
        process.stderr.write("\nchainopt: stopping after this epoch and saving a checkpoint; press Ctrl-C again to quit now\n");
      };
      process.on("SIGINT", onSigint);
      const out = (line: string) => {
        if (!silent) process.stdout.write(`${line}\n`);
      };
      if (opts.allowConfigChange === true && typeof opts.resume !== "string")
        throw new Error("--allow-config-change: applies to --resume only");
      const input: TrainConfigInput | ResumeInput =
        typeof opts.resume === "string"
          ? { ...flags, resume: opts.resume, allowConfigChange: opts.allowConfigChange === true || undefined }
          : config;
      let result: Awaited<ReturnType<typeof runTrainJob>>;
      try {
        result = await runTrainJob(
          input,
          {
            onStart: ({ run, chain, backend, config: c, resumedFromEpoch, trainSize, certified, smoothing }) => {
              if (json || silent) return;
              process.stderr.write(`backend: ${backend}\n`);
              const method = certified
                ? `projected sgd, certified step ${certified.stepSize.toPrecision(4)} (1/L_F, L_F = ${certified.smoothness.toPrecision(4)} on B_R, R = ${formatList(certified.radii)})`
                : SECOND_ORDER.includes(c.optimizer)
                  ? `${c.optimizer}${c.damping !== undefined ? ` damping ${c.damping}` : ""}${c.lineSearch === false ? " (no line search)" : c.lineSearch ? " (line search)" : ""}, step ${c.lr}`
                  : `${c.optimizer} lr ${c.lr}`;
              out(
                `model ${typeof c.model === "string" ? c.model : "spec"}: ${chain.paramSize} parameters (${c.dtype}); ${c.dataset}: ${trainSize} training samples; ${method}, batch ${c.batchSize}`,
              );
              if (smoothing) out(`smoothed model: ${smoothing}`);
              out(`run directory: ${run.dir}${resumedFromEpoch > 0 ? ` (resuming after epoch ${resumedFromEpoch})` : ""}`);
            },
            onStep: bar
              ? (p) => {
                  if (p.batch === 1) bar.start(p.batches, 0, { epoch: p.epoch, loss: "-", speed: "-" });
                  if (p.batch % 10 === 0 || p.batch === p.batches)
                    bar.update(p.batch, { epoch: p.epoch, loss: p.loss.toFixed(4), speed: Math.round(p.samplesPerSecond) });
                  if (p.batch === p.batches) bar.stop();
                }
              : undefined,
            onEpoch: (r: EpochRecord, extra?: Record<string, number>) => {
              if (json) out(JSON.stringify(epochJson(r, extra)));
              else out(formatEpoch(r, extra));
            },
          },
          signal,
          distributed ?? undefined,
        ).catch(distributedErrorHandler(distributed));
      } finally {
        bar?.stop();
        process.off("SIGINT", onSigint);
      }
      const seconds = result.epochs.reduce((s, e) => s + e.seconds, 0);
      const skipped = result.epochs.reduce((s, e) => s + e.skippedSteps, 0);
      if (skipped > 0) process.stderr.write(`chainopt: warning: ${skipped} step(s) were skipped (non-finite values, --on-nan skip)\n`);
      if (json) {
        out(
          JSON.stringify({
            final: true,
            epoch: result.epochs.at(-1)?.epoch ?? 0,
            testLoss: result.testLoss ?? null,
            testAccuracy: result.testAccuracy ?? null,
            seconds,
            runDir: result.runDir,
            interrupted: result.interrupted,
            stoppedEarly: result.stoppedEarly,
            ...(result.certified ? { certified: result.certified } : {}),
            ...(result.secondOrder ? { secondOrder: result.secondOrder } : {}),
          }),
        );
      }
      if (result.interrupted) {
        // 128 + SIGINT, as a shell reports a process ended by Ctrl-C; the message goes to stderr.
        process.stderr.write(
          `chainopt: interrupted after epoch ${result.epochs.at(-1)?.epoch ?? 0}; checkpoint saved in ${result.runDir}/checkpoints; resume with: npx chainopt train --resume ${result.runDir}\n`,
        );
        process.exitCode = 130;
      } else if (!json) {
        const acc = result.testAccuracy !== undefined ? `, test accuracy ${(100 * result.testAccuracy).toFixed(2)}%` : "";
        out(`test loss ${result.testLoss?.toFixed(4) ?? "n/a"}${acc} (${seconds.toFixed(1)} s of training)`);
      }
      const cert = result.certified;
      if (cert && !json) {
        const local = cert.recertifications.map((x) => `epoch ${x.epoch}: ${x.stepSize.toPrecision(4)}`).join(", ");
        out(
          `certified step ${cert.stepSize.toPrecision(4)} on B_R${local ? `; local re-certifications ${local}` : ""}; ${cert.projections} projection(s) changed w; ${cert.stayedInside ? "training stayed inside B_R" : `training left B_R ${cert.outsideGlobal} time(s) (projected back)`}${cert.initialProjection ? "; the initialization was projected onto B_R" : ""}; certificate: ${result.runDir}/certificate.json`,
        );
      }
    });
}

/**
 * The per-epoch JSON line of `--json`: epoch, trainLoss, valLoss, valAccuracy,
 * testAccuracy (null per epoch: the test set is evaluated once, in the final object), seconds, plus
 * learningRate, gradNorm, and skippedSteps when `--on-nan skip` skipped any. Non-finite numbers
 * (a diverged loss) are null.
 */
export function epochJson(r: EpochRecord, extra?: Record<string, number>): Record<string, unknown> {
  const o: Record<string, unknown> = {
    epoch: r.epoch,
    trainLoss: r.trainLoss,
    valLoss: r.valLoss ?? null,
    valAccuracy: r.valAccuracy ?? null,
    testAccuracy: null,
    seconds: r.seconds,
    learningRate: r.learningRate,
    gradNorm: r.gradNorm,
  };
  if (r.skippedSteps > 0) o.skippedSteps = r.skippedSteps;
  // Second-order runs: damping, rejectedSteps; certified runs: stepSize, projections.
  if (extra) Object.assign(o, extra);
  return o;
}

const SECOND_ORDER: readonly string[] = SECOND_ORDER_METHODS;
const formatList = (xs: readonly number[]) => (xs.every((x) => x === xs[0]) ? String(xs[0]) : xs.join(","));

function formatEpoch(r: EpochRecord, extra?: Record<string, number>): string {
  const parts = [`epoch ${r.epoch}`, `train loss ${r.trainLoss.toFixed(4)}`];
  if (r.valLoss !== undefined) parts.push(`val loss ${r.valLoss.toFixed(4)}`);
  if (r.valAccuracy !== undefined) parts.push(`val acc ${(100 * r.valAccuracy).toFixed(2)}%`);
  if (r.skippedSteps > 0) parts.push(`${r.skippedSteps} steps skipped (non-finite)`);
  if (extra?.damping !== undefined) parts.push(`damping ${extra.damping.toPrecision(3)}`);
  if (extra?.rejectedSteps) parts.push(`${extra.rejectedSteps} steps rejected in all`);
  if (extra?.projections !== undefined) parts.push(`${extra.projections} projections`);
  if (extra?.validationRobustAccuracy !== undefined)
    parts.push(
      `robust val loss ${extra.validationRobustLoss.toFixed(4)}`,
      `robust val acc ${(100 * extra.validationRobustAccuracy).toFixed(2)}%`,
    ); // adversarial training
  // --- line search and diagnostics (docs/line-search.md, docs/diagnostics.md) ---
  if (extra?.armijoStep !== undefined) parts.push(`armijo step ${extra.armijoStep.toPrecision(3)} (${extra.armijoEvaluations} evals)`);
  if (extra?.gaussNewtonTop !== undefined) {
    parts.push(
      `λ_H ${extra.hessianTop.toPrecision(3)} λ_GN ${extra.gaussNewtonTop.toPrecision(3)} (η/2)‖g‖²_H/‖g‖² ${extra.curvatureRatio.toPrecision(3)} ‖g‖ ${extra.probeGradNorm.toPrecision(3)}`,
    );
  }
  // --- end ---
  parts.push(
    `|∇F| ${r.gradNorm.toFixed(3)}`,
    `${extra?.stepSize !== undefined ? "step" : "lr"} ${r.learningRate.toPrecision(3)}`,
    `${r.seconds.toFixed(1)} s`,
    `${Math.round(r.samplesPerSecond)} samples/s`,
  );
  return parts.join(" · ");
}
