import { SingleBar } from "cli-progress";
import { type Command, Option } from "commander";
import { type ResumeInput, readConfigFile, runTrainJob, SECOND_ORDER_METHODS, type TrainConfigInput } from "../../node/train-job.js";
import type { EpochRecord } from "../../train/trainer.js";

const num = (name: string) => (v: string) => {
  const x = Number(v);
  if (!Number.isFinite(x)) throw new Error(`--${name}: expected a number, got "${v}"`);
  return x;
};
const int = (name: string) => (v: string) => {
  const x = Number(v);
  if (!Number.isInteger(x)) throw new Error(`--${name}: expected an integer, got "${v}"`);
  return x;
};

/** `chainopt train`: trains a model on a data set and reports per-epoch metrics. */
export function register(program: Command): void {
  program
    .command("train")
    .description("train a chain on a data set (default: MLP 784-512-512-10 on MNIST, momentum 0.9, lr 0.02 cosine, 10 epochs)")
    .option("--config <file>", "JSON file with any of the options below (flags override it)")
    .option("--model <preset|spec.json>", "model preset (mlp, convnet, vgg16, …) or JSON model spec")
    .option("--widths <list>", "hidden widths of the mlp preset, e.g. 512,512", (v) => v.split(",").map(int("widths")))
    .addOption(new Option("--activation <name>", "activation of the mlp/convnet presets").choices(["relu", "softplus", "sigmoid", "tanh"]))
    .option("--dataset <name>", "mnist, fashion-mnist, cifar10, diabetes, boston, iris, wine, breast-cancer, digits, synthetic-teacher")
    .option("--limit <n>", "use only the first n training and test samples", int("limit"))
    .option("--validation <n>", "validation samples held out of the training set (count or fraction; 0 for none)", num("validation"))
    .option("--no-normalize", "keep pixels in [0,1] instead of normalizing per channel")
    .option("--epochs <n>", "epochs", int("epochs"))
    .option("--batch-size <n>", "mini-batch size", int("batch-size"))
    .option("--seed <n>", "seed of initialization, data order and splits", int("seed"))
    .addOption(new Option("--dtype <dtype>", "precision").choices(["float32", "float64"]))
    .addOption(new Option("--loss <loss>", "loss").choices(["logistic", "squared"]))
    .option("--l2 <lambda>", "L2 regularization λ/2‖w‖² in the objective", num("l2"))
    .option(
      "--optimizer <name>",
      "sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw, amsgrad, or second-order: gauss-newton, ggn, newton",
    )
    .option("--lr <eta>", "learning rate (second-order: step size γ, η for ggn; default 1)", num("lr"))
    .option("--damping <mu>", "second-order: initial damping μ (λ of JJᵀ + λI for ggn)", num("damping"))
    .option("--line-search", "second-order: Armijo backtracking, μ ×10 on failure (default for gauss-newton, newton)")
    .option("--no-line-search", "second-order: proximal step with μ = 1/γ (default for ggn)")
    .addOption(new Option("--gn-implementation <impl>", "gauss-newton: fast Gram matrix, or the papers' dual").choices(["gram", "dual"]))
    .addOption(
      new Option("--step-size <kind>", "certified: projected SGD on B_R with the certified step 1/L_F").choices(["lr", "certified"]),
    )
    .option("--radius <R>", "certified step: radius of B_R = {u : ‖u_t‖ ≤ R} (default 1)", num("radius"))
    .option("--radii <list>", "certified step: one radius per parameterized layer", (v) => v.split(",").map(num("radii")))
    .option("--recertify-every <k>", "certified step: re-certify on a local ball around the iterate every k epochs", int("recertify-every"))
    .option(
      "--smooth-epsilon <eps>",
      "replace relu/maxPool2d by smooth versions with |F − F_ε| ≤ ε on B_R (--radius); see docs/smoothing.md",
      num("smooth-epsilon"),
    )
    .option("--local-delta <delta>", "certified step: local ball ‖u_t‖ ≤ min(R_t, ‖w_t‖ + δ) (default max R/10)", num("local-delta"))
    .option("--momentum <mu>", "momentum μ (sgd, momentum, nesterov, rmsprop)", num("momentum"))
    .option("--weight-decay <lambda>", "weight decay (coupled; decoupled for adamw)", num("weight-decay"))
    .addOption(
      new Option("--schedule <name>", "learning-rate schedule").choices(["constant", "inverse-power", "step", "exponential", "cosine"]),
    )
    .option("--schedule-power <alpha>", "α of the inverse-power schedule η(t) = η (t+1)^(−α)", num("schedule-power"))
    .option("--warmup-steps <n>", "linear warm-up steps", int("warmup-steps"))
    .option("--clip-norm <c>", "clip gradients to this global norm", num("clip-norm"))
    .option("--clip-value <c>", "clip gradient entries to [−c, c]", num("clip-value"))
    .addOption(new Option("--average <kind>", "evaluate an averaged iterate").choices(["polyak", "ema"]))
    .option(
      "--early-stopping <patience>",
      "stop after this many epochs without validation improvement; restore the best",
      int("early-stopping"),
    )
    .option("--no-shuffle", "fixed data order (no per-epoch permutation)")
    .addOption(
      new Option(
        "--on-nan <policy>",
        "on a NaN/Inf loss, gradient or parameter: stop with an error naming the step and layer (the last good checkpoint is kept), or skip (undo) the step and go on",
      ).choices(["stop", "skip"]),
    )
    .option("--threads <n>", "BLAS threads (default: CHAINOPT_THREADS or OpenBLAS's default)", int("threads"))
    .option("--out <dir>", "run directory (default runs/<timestamp>-<model>-<dataset>)")
    .option("--init <weights.safetensors>", "start from these weights (PyTorch state_dict or chainopt checkpoint)")
    .option(
      "--resume <run-dir>",
      "continue an interrupted run from its last checkpoint, with the configuration of its config.json (only --epochs may be given, to extend it)",
    )
    .option("--json", "print one JSON object per epoch and a final one, instead of text")
    .option("--no-progress", "no progress bar")
    .action(async (opts: Record<string, unknown>) => {
      const json = opts.json === true;
      if (typeof opts.resume === "string" && typeof opts.config === "string") {
        throw new Error("--resume continues a run with the configuration saved in its config.json; it cannot be combined with --config");
      }
      const fromFile = typeof opts.config === "string" ? (readConfigFile(opts.config) as Record<string, unknown>) : {};
      const flags: Record<string, unknown> = {};
      const keys = [
        "model",
        "widths",
        "activation",
        "dataset",
        "limit",
        "validation",
        "epochs",
        "batchSize",
        "seed",
        "dtype",
        "loss",
        "l2",
        "optimizer",
        "lr",
        "damping",
        "lineSearch",
        "gnImplementation",
        "stepSize",
        "radius",
        "radii",
        "recertifyEvery",
        "localDelta",
        "smoothEpsilon",
        "momentum",
        "weightDecay",
        "schedule",
        "schedulePower",
        "warmupSteps",
        "clipNorm",
        "clipValue",
        "average",
        "earlyStopping",
        "onNan",
        "threads",
        "out",
        "init",
      ];
      for (const k of keys) if (opts[k] !== undefined) flags[k] = opts[k];
      if (opts.normalize === false) flags.normalize = false;
      if (opts.shuffle === false) flags.shuffle = false;
      const config = { ...fromFile, ...flags } as TrainConfigInput;
      const showBar = !json && opts.progress !== false && process.stderr.isTTY === true;
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
      const out = (line: string) => process.stdout.write(`${line}\n`);
      const input: TrainConfigInput | ResumeInput = typeof opts.resume === "string" ? { ...flags, resume: opts.resume } : config;
      let result: Awaited<ReturnType<typeof runTrainJob>>;
      try {
        result = await runTrainJob(
          input,
          {
            onStart: ({ run, chain, backend, config: c, resumedFromEpoch, trainSize, certified, smoothing }) => {
              if (json) return;
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
        );
      } finally {
        bar?.stop();
        process.off("SIGINT", onSigint);
      }
      const seconds = result.epochs.reduce((s, e) => s + e.seconds, 0);
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
  parts.push(
    `|∇F| ${r.gradNorm.toFixed(3)}`,
    `${extra?.stepSize !== undefined ? "step" : "lr"} ${r.learningRate.toPrecision(3)}`,
    `${r.seconds.toFixed(1)} s`,
    `${Math.round(r.samplesPerSecond)} samples/s`,
  );
  return parts.join(" · ");
}
