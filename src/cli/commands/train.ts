import { SingleBar } from "cli-progress";
import { type Command, Option } from "commander";
import { distributedErrorHandler, distributedFromFlags } from "../../node/distributed/cli.js";
import { type ResumeInput, readConfigFile, runTrainJob, SECOND_ORDER_METHODS, type TrainConfigInput } from "../../node/train-job.js";
import type { EpochRecord } from "../../train/trainer.js";

// Number("") is 0: an empty value (`--lr ''`) is refused here, naming the flag.
const num = (name: string) => (v: string) => {
  const x = v.trim() === "" ? Number.NaN : Number(v);
  if (v.trim() === "") throw new Error(`--${name} needs a number, got an empty value`);
  if (!Number.isFinite(x)) throw new Error(`--${name}: expected a number, got "${v}"`);
  return x;
};
const int = (name: string) => (v: string) => {
  const x = v.trim() === "" ? Number.NaN : Number(v);
  if (v.trim() === "") throw new Error(`--${name} needs an integer, got an empty value`);
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
    .option(
      "--validation <n>",
      "validation samples held out of the training set: count, fraction, 0 for none, or auto (default: 10%, at most 5000)",
      (v) => (v === "auto" ? v : num("validation")(v)),
    )
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
    .option(
      "--line-search [kind]",
      "armijo: sgd/momentum search the step (first trial --lr, see docs/line-search.md); second-order: Armijo backtracking, μ ×10 on failure (default for gauss-newton, newton)",
    )
    // --- Armijo line search of first-order training ---
    .option("--armijo-c <c>", "line search: sufficient-decrease constant c ∈ (0, 1) (default 1e-4)", num("armijo-c"))
    .option("--armijo-shrink <beta>", "line search: backtracking factor β ∈ (0, 1) (default 0.5)", num("armijo-shrink"))
    .addOption(
      new Option("--armijo-reset <policy>", "line search: first trial step (default increase: min(lr, 2·previous))").choices([
        "constant",
        "previous",
        "increase",
      ]),
    )
    // --- end Armijo ---
    // --- unsupervised objectives (docs/unsupervised.md) ---
    .addOption(
      new Option(
        "--objective <kind>",
        "unsupervised objective instead of --loss: convex clustering of the outputs, or auto-encoder",
      ).choices(["supervised", "clustering", "autoencoder"]),
    )
    .option("--clustering-lambda <gamma>", "clustering: fusion strength γ (default 1)", num("clustering-lambda"))
    .option("--clustering-neighbors <k>", "clustering: k of the k-NN Gaussian weights (default 5)", int("clustering-neighbors"))
    .option("--clustering-tolerance <tol>", "clustering: relative accuracy of the inner solve (default 1e-6)", num("clustering-tolerance"))
    // --- end unsupervised ---
    .option("--diagnostics", "per epoch on a fixed probe batch: top Hessian and Gauss-Newton eigenvalues, (η/2)‖g‖²_H/‖g‖², ‖g‖")
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
    // --- adversarial training (docs/adversarial.md) ---
    .option("--adversarial <attack>", "adversarial training with this attack: pgd or fgsm")
    .option("--adv-eps <eps>", "adversarial training: radius ε of the attack, in raw input units (pixels in [0,1])", num("adv-eps"))
    .option("--adv-norm <norm>", "adversarial training: linf (default) or l2 ball")
    .option("--adv-steps <k>", "adversarial training: PGD steps (default 10)", int("adv-steps"))
    .option("--adv-step-size <alpha>", "adversarial training: PGD step size (default 2.5 ε / steps)", num("adv-step-size"))
    .option(
      "--adv-mix <m>",
      "adversarial training: fraction of each batch replaced by adversarial examples (default 1, Madry)",
      num("adv-mix"),
    )
    .option(
      "--adv-validation-samples <n>",
      "adversarial training: validation samples attacked each epoch (default 1000)",
      int("adv-validation-samples"),
    )
    // --- end adversarial training ---
    // --- distributed (docs/distributed.md) ---
    .option("--distributed", "data-parallel over the ranks of an MPI job (mpirun -np N …; automatic under mpirun with N > 1)")
    .option("--deterministic-reduce", "distributed: sum gradients in rank order (bit-reproducible for a given N)")
    // --- end distributed ---
    .option("--max-memory <size>", "refuse models whose estimated memory exceeds this (e.g. 8G; default 80% of the machine's memory)")
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
        "armijoC",
        "armijoShrink",
        "armijoReset",
        "diagnostics",
        "objective",
        "clusteringLambda",
        "clusteringNeighbors",
        "clusteringTolerance",
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
        ...["adversarial", "advEps", "advNorm", "advSteps", "advStepSize", "advMix", "advValidationSamples"], // adversarial training
        "maxMemory",
      ];
      for (const k of keys) if (opts[k] !== undefined) flags[k] = opts[k];
      if (opts.normalize === false) flags.normalize = false;
      if (opts.shuffle === false) flags.shuffle = false;
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
 * The per-epoch JSON line of `--json` (issue 2's format): epoch, trainLoss, valLoss, valAccuracy,
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
