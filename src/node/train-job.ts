import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { z } from "zod";
import { certifiedStep, certifyObjective, layerNorms, localRadii, projectOntoBall, resolveRadii } from "../certify/certificate.js";
import { Chain } from "../chain/chain.js";
import { getPreset, presetNames } from "../chain/presets.js";
import { type ModelSpec, type ModelSpecInput, parseModelSpec } from "../chain/spec.js";
import type { FloatArray } from "../core/dtype.js";
import { allFinite } from "../core/vector.js";
import { type Dataset, inputSizeOf } from "../data/dataset.js";
import { createObjective, type Objective } from "../objectives/objective.js";
import { createOptimizer, OPTIMIZER_NAMES } from "../optim/aliases.js";
import { createSchedule } from "../optim/schedules.js";
import type { LearningRate } from "../optim/transform.js";
import { requireSecondOrder } from "../second-order/curvature.js";
import type { SecondOrderMethod } from "../second-order/stepper.js";
import { type SmoothResult, smoothingSummary, smoothModelSpec } from "../smoothing/smooth.js";
import { type SecondOrderCustomStepper, secondOrderTrainingStepper } from "../train/second-order.js";
import { type EpochRecord, type StepProgress, Trainer, type TrainerOptions } from "../train/trainer.js";
import { type AdversarialTraining, prepareAdversarialTraining, resolveAdversarialAttack } from "./adversarial-train.js";
import { jsonSafe, writeFileAtomic, writeJsonAtomic } from "./atomic.js";
import { type LoadedCheckpoint, loadCheckpoint } from "./checkpoint.js";
import { checkpointConfigRecord, checkResumeConfig } from "./config-digest.js";
import { DEFAULT_TEST_SPLIT, datasetNames, type LoadedDataset, loadDataset } from "./datasets.js";
import { DistributedJob, type DistributedTraining } from "./distributed/train.js";
import { createEpochExtras } from "./epoch-extras.js";
import { saveTrainerCheckpoint, snapshotFromCheckpoint, trainInRunDirectory } from "./fit-run.js";
import { bestBackend } from "./index.js";
import { checkLineSearchOptions, firstOrderArmijo, resolveLineSearchDefaults, wrapWithArmijo } from "./line-search-config.js";
import { checkTrainingMemory, optimizerSlots, parseMemorySize } from "./memory.js";
import { RunDirectory } from "./run-dir.js";
import { RunLock } from "./run-lock.js";
import { readSafetensorsHeader } from "./safetensors.js";
import { importTorchSafetensors } from "./torch-interop.js";
import { checkFolderWritable, checkLossMatchesData, checkThreads } from "./train-guards.js";
import { checkUnsupervisedOptions, dropLabels, presetOutputs, unsupervisedObjective } from "./unsupervised-config.js";

// The `chainopt train` job: resolves a configuration (command-line flags and/or a JSON file,
// validated with errors naming the field), loads data, builds the chain and optimizer, trains with
// a run directory (config, metrics, checkpoints, final model), and reports per-epoch records.
//
// Order of work: everything that can fail on bad input (configuration, data set name and files,
// model spec and shapes, optimizer options, --init weights) is checked *before* the run directory
// is created, so a rejected command writes nothing. Then config.json and an epoch-0 checkpoint are
// written, and a checkpoint after every epoch (metrics line first, checkpoint second: a kill between
// the two is repaired by RunDirectory.open, which drops metric lines newer than the checkpoint).

/** Schema of a training configuration (the JSON accepted by `--config`, and the flags' target). */
export const trainConfigSchema = z
  .object({
    model: z.union([z.string(), z.record(z.string(), z.unknown())]).default("mlp"),
    /** Hidden widths of the `mlp` preset. */
    widths: z.array(z.number().int().positive()).optional(),
    activation: z.enum(["relu", "softplus", "sigmoid", "tanh"]).optional(),
    dataset: z.string().default("mnist"),
    /** Use only the first N training (and test) samples. */
    limit: z.number().int().positive().optional(),
    /** Validation samples held out of the training set: a count, a fraction, or "auto" (10%, at most 5000). */
    validation: z.union([z.number().nonnegative(), z.literal("auto")]).default("auto"),
    normalize: z.boolean().default(true),
    epochs: z.number().int().positive().default(10),
    batchSize: z.number().int().positive().default(128),
    evalBatchSize: z.number().int().positive().default(1000),
    seed: z.number().int().nonnegative().default(0),
    dtype: z.enum(["float32", "float64"]).default("float32"),
    loss: z.enum(["logistic", "squared"]).default("logistic"),
    l2: z.number().nonnegative().default(0),
    /** A first-order optimizer (OPTIMIZER_NAMES) or a second-order method (SECOND_ORDER_METHODS). */
    optimizer: z.string().default("momentum"),
    /** Learning rate; for the second-order methods the step size (γ of the proximal step, η of GGN; default 1). */
    lr: z.number().positive().default(0.02),
    /** Second-order methods: initial damping μ (λ of J Jᵀ + λI for GGN). */
    damping: z.number().nonnegative().optional(),
    /**
     * Second-order methods: Armijo backtracking on the damping (default on, except for GGN).
     * First order (sgd, momentum): "armijo" (or true) searches the step (line-search-config.ts).
     */
    lineSearch: z.union([z.boolean(), z.literal("armijo")]).optional(),
    // --- Armijo line search of first-order training (line-search-config.ts, docs/line-search.md) ---
    armijoC: z.number().gt(0).lt(1).optional(),
    armijoShrink: z.number().gt(0).lt(1).optional(),
    armijoReset: z.enum(["constant", "previous", "increase"]).optional(),
    // --- end Armijo ---
    /** Per-epoch curvature diagnostics on a fixed probe batch (epoch-extras.ts, docs/diagnostics.md). */
    diagnostics: z.boolean().optional(),
    // --- unsupervised objectives (unsupervised-config.ts, docs/unsupervised.md) ---
    objective: z.enum(["supervised", "clustering", "autoencoder"]).optional(),
    clusteringLambda: z.number().nonnegative().optional(),
    clusteringNeighbors: z.number().int().positive().optional(),
    clusteringTolerance: z.number().positive().optional(),
    // --- end unsupervised ---
    /** Gauss-Newton: "gram" (fast, default) or "dual" (the papers' 2q+1 oracle calls). */
    gnImplementation: z.enum(["gram", "dual"]).optional(),
    /** "certified": projected SGD on B_R with the step 1/L_F of the smoothness certificate. */
    stepSize: z.enum(["lr", "certified"]).optional(),
    /** R of B_R = {u : ‖u_t‖ ≤ R} (certified step; default 1). */
    radius: z.number().positive().optional(),
    /** R_t per parameterized layer (certified step). */
    radii: z.array(z.number().positive()).optional(),
    /** Re-certify on a local ball around the iterate every K epochs (certified step). */
    recertifyEvery: z.number().int().positive().optional(),
    /** δ of the local ball {u : ‖u_t‖ ≤ min(R_t, ‖w_t‖ + δ)} (default max R_t / 10). */
    localDelta: z.number().positive().optional(),
    /** Smooth the model (relu, maxPool2d) so that |F − F_ε| ≤ ε on B_R (src/smoothing, Algorithm 2). */
    smoothEpsilon: z.number().positive().optional(),
    momentum: z.number().min(0).max(1).optional(),
    weightDecay: z.number().nonnegative().optional(),
    schedule: z.enum(["constant", "inverse-power", "step", "exponential", "cosine"]).default("cosine"),
    schedulePower: z.number().positive().optional(),
    warmupSteps: z.number().int().nonnegative().default(0),
    clipNorm: z.number().positive().optional(),
    clipValue: z.number().positive().optional(),
    average: z.enum(["polyak", "ema"]).optional(),
    earlyStopping: z.number().int().positive().optional(),
    shuffle: z.boolean().default(true),
    onNan: z.enum(["stop", "skip"]).default("stop"),
    threads: z.number().int().positive().optional(),
    out: z.string().optional(),
    init: z.string().optional(),
    // --- adversarial training (src/node/adversarial-train.ts; checked there, errors name the flag) ---
    adversarial: z.string().optional(),
    advEps: z.number().optional(),
    advNorm: z.string().optional(),
    advSteps: z.number().optional(),
    advStepSize: z.number().optional(),
    advMix: z.number().optional(),
    advValidationSamples: z.number().optional(),
    // --- end adversarial training ---
    /** Refuse a model whose estimated memory exceeds this size (bytes or e.g. "8G"; default 80% of the machine). */
    maxMemory: z.union([z.number().positive(), z.string()]).optional(),
  })
  .strict();

/** A training configuration as written by a user. */
export type TrainConfigInput = z.input<typeof trainConfigSchema>;
/** A validated training configuration. */
export type TrainConfig = z.output<typeof trainConfigSchema>;

/** Validates a configuration, naming each field at fault. */
export function parseTrainConfig(input: unknown, source = "training configuration"): TrainConfig {
  const r = trainConfigSchema.safeParse(input);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message}`).join("\n");
  throw new Error(`invalid ${source}:\n${lines}`);
}

/** Reads a JSON configuration file (errors name the file). */
export function readConfigFile(file: string): unknown {
  if (!existsSync(file)) throw new Error(`${file}: configuration file not found`);
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
}

/** Resolves `--model`: a preset name or a JSON spec file, adapted to the data's input shape. */
export function resolveModelSpec(
  config: Pick<TrainConfig, "model" | "widths" | "activation">,
  inputShape: readonly number[],
  classes: number,
): ModelSpec {
  const { model } = config;
  let spec: ModelSpecInput;
  let source = "model spec";
  if (typeof model !== "string") spec = model as ModelSpecInput;
  else if (model.endsWith(".json") || existsSync(model)) {
    source = model;
    spec = readConfigFile(model) as ModelSpecInput;
  } else {
    if (!presetNames().includes(model))
      throw new Error(`model: unknown preset or file "${model}"; presets: ${presetNames().join(", ")}, or a path to a JSON spec`);
    spec = getPreset(model, { input: [...inputShape], classes, widths: config.widths, activation: config.activation });
  }
  const parsed = parseModelSpec(spec, source);
  const want = inputShape.join("x");
  if (parsed.input.join("x") !== want)
    throw new Error(`model.input: the model expects inputs of shape ${parsed.input.join("x")} but the data set has ${want}`);
  return parsed;
}

/** Events of a training job, for the command line's printing. */
export interface TrainJobEvents {
  onStart?(info: {
    run: RunDirectory;
    chain: Chain;
    backend: string;
    config: TrainConfig;
    resumedFromEpoch: number;
    trainSize: number;
    /** The certificate of a certified run (`stepSize: "certified"`). */
    certified?: CertifiedSummary;
    /** `--smooth-epsilon`: what the smoothing guarantees (one line). */
    smoothing?: string;
  }): void;
  onStep?(progress: StepProgress): void;
  /** `extra`: per-epoch numbers of second-order runs (damping, rejected steps) and certified runs (step size, projections). */
  onEpoch?(record: EpochRecord, extra?: Record<string, number>): void;
}

/** What a certified run reports (`chainopt train --step-size certified`). */
export interface CertifiedSummary {
  /** The certified step 1/L_F on B_R (the smaller of those for the full and the last partial batch). */
  stepSize: number;
  /** L_F on B_R for a full batch. */
  smoothness: number;
  radii: number[];
  batch: number;
  /** The data set's largest sample norm (m_0 = √N · maxSampleNorm). */
  maxSampleNorm: number;
  /** The step size in use (the local one after a re-certification). */
  currentStepSize: number;
  /** The radii of the ball in use (local radii after a re-certification). */
  currentRadii: number[];
  /** The initialization lay outside B_R and was projected onto it before training. */
  initialProjection: boolean;
  /** Steps after which the projection changed w. */
  projections: number;
  /** Steps after which the iterate lay outside B_R itself (before its projection). */
  outsideGlobal: number;
  /** No step left B_R (outsideGlobal = 0). */
  stayedInside: boolean;
  recertifications: { epoch: number; radii: number[]; stepSize: number; smoothness: number }[];
}

/** The final result of a training job. */
export interface TrainResult {
  epochs: EpochRecord[];
  testLoss?: number;
  testAccuracy?: number;
  seconds: number;
  runDir: string;
  params: FloatArray;
  /** Stopped on request (SIGINT) after saving a checkpoint; resumable with `--resume`. */
  interrupted: boolean;
  /** Early stopping ended the run (the final parameters are the best epoch's). */
  stoppedEarly: boolean;
  /** Certified runs: the certificate's step and whether training stayed inside B_R. */
  certified?: CertifiedSummary;
  /** Second-order runs: the damping the next step would start from, steps, rejected steps. */
  secondOrder?: { method: string; damping: number; steps: number; rejected: number };
}

/** `--resume RUN_DIR`, optionally with `epochs` to extend the run. Any other key is an error. */
export interface ResumeInput {
  resume: string;
  epochs?: number;
  /** Resume although the configuration differs from the checkpoint's (config digest). */
  allowConfigChange?: boolean;
  maxMemory?: number | string;
  [flag: string]: unknown;
}

/** The command-line spelling of a configuration key (for error messages). */
export function flagName(key: string, value?: unknown): string {
  const kebab = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  return value === false ? `--no-${kebab}` : `--${kebab}`;
}

/** Reads the training configuration of a run directory (without modifying the directory). */
export function readRunTrainConfig(dir: string): TrainConfig {
  const configPath = join(resolve(dir), "config.json");
  if (!existsSync(configPath)) throw new Error(`--resume ${dir}: not a run directory (no config.json)`);
  const saved = readConfigFile(configPath) as { train?: unknown };
  if (saved === null || typeof saved !== "object" || saved.train === undefined) {
    throw new Error(`${configPath}: no "train" section (not a run of chainopt train)`);
  }
  return parseTrainConfig(saved.train, `${configPath} (train)`);
}

/** What {@link prepareTrainJob} builds: everything but the run directory and the trainer. */
interface Prepared {
  backend: ReturnType<typeof bestBackend>;
  data: LoadedDataset;
  spec: ModelSpec;
  chain: Chain;
  lr: LearningRate;
  optimizerOptions: Record<string, unknown>;
  trainerOptions: TrainerOptions;
  init: { params: FloatArray; state: FloatArray; source: string | null };
  /** The second-order stepper (`--optimizer gauss-newton|ggn|newton`), else null. */
  secondOrder: SecondOrderCustomStepper | null;
  /** The certified step's state (`--step-size certified`), else null. */
  certified: CertifiedState | null;
  /** The smoothing of the model (`--smooth-epsilon`), else null. */
  smoothing: SmoothResult | null;
  /** Adversarial training (`--adversarial`), else null. */
  adversarial: AdversarialTraining | null;
}

/** Builds and validates everything a run needs; writes nothing. Errors name the field at fault. */
async function prepareTrainJob(config: TrainConfig, events: TrainJobEvents, options: { skipInit: boolean }): Promise<Prepared> {
  if (!(datasetNames as readonly string[]).includes(config.dataset)) {
    throw new Error(`dataset: unknown data set ${JSON.stringify(config.dataset)}; known: ${datasetNames.join(", ")}`);
  }
  const secondOrderMethod = isSecondOrder(config.optimizer) ? config.optimizer : null;
  if (!secondOrderMethod && !(OPTIMIZER_NAMES as readonly string[]).includes(config.optimizer)) {
    throw new Error(
      `optimizer: unknown optimizer ${JSON.stringify(config.optimizer)}; known: ${[...OPTIMIZER_NAMES, ...SECOND_ORDER_METHODS].join(", ")}`,
    );
  }
  checkMethodOptions(config);
  const adversarialAttack = resolveAdversarialAttack(config); // adversarial training: flags checked first
  checkLineSearchOptions(config); // Armijo line search (line-search-config.ts)
  if (config.init && !existsSync(config.init)) throw new Error(`init: ${config.init}: file not found`);
  const maxBytes = config.maxMemory !== undefined ? parseMemorySize(config.maxMemory) : undefined;
  const backend = bestBackend({ quiet: false });
  checkThreads(config.threads, backend);
  if (config.threads !== undefined && "setThreads" in backend) (backend as { setThreads(n: number): void }).setThreads(config.threads);
  const data: LoadedDataset = await loadDataset(config.dataset, {
    limit: config.limit,
    validation: config.validation === "auto" || config.validation > 0 ? config.validation : undefined,
    // Sets without an official test split (sklearn) get a fixed, seeded one (docs/training.md).
    test: DEFAULT_TEST_SPLIT.fraction,
    testSeed: DEFAULT_TEST_SPLIT.seed,
    seed: config.seed,
    normalize: config.normalize,
    standardize: true,
  });
  if (data.train.size === 0)
    throw new Error(`dataset: ${config.dataset} has no training samples left (limit ${config.limit}, validation ${config.validation})`);
  const classes = data.train.classes ?? data.train.targetSize ?? 1;
  let spec = resolveModelSpec(config, data.train.inputShape, presetOutputs(config, data.train.inputShape, classes)); // unsupervised: presetOutputs
  let smoothing: SmoothResult | null = null;
  if (config.smoothEpsilon !== undefined) {
    // ψ_ε on B_R for batches of N samples of this data set (docs/smoothing.md).
    const r = smoothModelSpec(spec, {
      epsilon: config.smoothEpsilon,
      radii: config.radii ?? config.radius ?? 1,
      batch: Math.min(config.batchSize, data.train.size),
      maxSampleNorm: dataNorms(data.train, config.loss).maxSampleNorm,
      loss: config.loss,
      l2: config.l2,
    });
    spec = r.spec;
    smoothing = r.certificate;
  }
  let chain: Chain;
  try {
    chain = new Chain(spec, { dtype: config.dtype, backend });
  } catch (error) {
    // Shape errors name the layer (`layers[i]: …`); say which model they are about.
    const where = typeof config.model === "string" ? config.model : "model spec";
    throw new Error(`model ${where}: ${(error as Error).message}`);
  }
  // Refuse a model that does not fit in memory before allocating its parameters (src/node/memory.ts).
  checkTrainingMemory(chain, {
    batchSize: Math.min(config.batchSize, data.train.size),
    evalBatchSize: Math.min(config.evalBatchSize, Math.max(data.validation?.size ?? 0, data.test?.size ?? 0, 1)),
    optimizerSlots: secondOrderMethod ? 0 : optimizerSlots(config.optimizer, { momentum: config.momentum }),
    extraCopies: (config.onNan === "skip" ? 1 : 0) + (config.average ? 1 : 0) + (config.earlyStopping ? 1 : 0),
    maxBytes,
  });
  const unsupervised = unsupervisedObjective(config); // --objective clustering|autoencoder
  if (unsupervised) dropLabels(data);
  if (!unsupervised && data.train.labels && config.loss === "logistic" && chain.outputSize !== classes) {
    throw new Error(`model: the last layer has ${chain.outputSize} outputs but ${config.dataset} has ${classes} classes`);
  }
  const objective = unsupervised ?? createObjective(config.loss, config.l2);
  const secondOrder = secondOrderMethod ? prepareSecondOrder(config, secondOrderMethod, chain, data) : null;
  if (!unsupervised) checkLossMatchesData(config.loss, data.train, config.dataset); // unsupervised objectives drop the labels
  const certified = config.stepSize === "certified" ? prepareCertified(config, chain, objective, data) : null;
  const adversarial = adversarialAttack ? prepareAdversarialTraining(config, adversarialAttack, chain, objective) : null;
  const stepsPerEpoch = Math.ceil(data.train.size / config.batchSize);
  const lr: LearningRate = certified
    ? () => certified.current.stepSize
    : config.schedule === "constant" && config.warmupSteps === 0
      ? config.lr
      : createSchedule(config.schedule, {
          lr: config.lr,
          power: config.schedulePower,
          totalSteps: config.schedule === "cosine" ? config.epochs * stepsPerEpoch : undefined,
          every: config.schedule === "step" ? Math.max(1, Math.floor((config.epochs * stepsPerEpoch) / 3)) : undefined,
          rate: config.schedule === "exponential" ? 0.1 : undefined,
          transitionSteps: config.schedule === "exponential" ? config.epochs * stepsPerEpoch : undefined,
          warmupSteps: config.warmupSteps,
        });
  const optimizerOptions: Record<string, unknown> = { lr };
  if (config.momentum !== undefined) optimizerOptions.momentum = config.momentum;
  if (config.weightDecay !== undefined) optimizerOptions.weightDecay = config.weightDecay;
  if (config.clipNorm !== undefined) optimizerOptions.clipNorm = config.clipNorm;
  if (config.clipValue !== undefined) optimizerOptions.clipValue = config.clipValue;
  // Second-order runs step with their own stepper; the trainer's optimizer (plain SGD) is unused.
  const optimizer = firstOrderArmijo(config)
    ? wrapWithArmijo(config, (unit) => createOptimizer(config.optimizer, { ...optimizerOptions, lr: unit })) // Armijo line search
    : createOptimizer(secondOrderMethod ? "sgd" : config.optimizer, optimizerOptions);

  let params: FloatArray;
  let state = chain.initState();
  let source: string | null = null;
  if (config.init && !options.skipInit) {
    const imported =
      config.init.endsWith(".safetensors") && !isChainoptCheckpoint(config.init) ? importTorchSafetensors(chain, config.init) : null;
    if (imported) {
      params = imported.params;
      if (imported.state) state = imported.state;
      source = "torch";
    } else {
      const ck = loadCheckpoint(config.init, chain);
      params = ck.params;
      state = ck.state;
      source = "chainopt";
    }
    if (!allFinite(params)) throw new Error(`init: ${config.init}: the weights contain NaN or infinite values`);
  } else params = chain.initParams(config.seed);
  if (certified) {
    // Projected SGD starts from the projection of the initialization onto B_R.
    certified.initialProjection = !projectOntoBall(chain, params, certified.radii).inside;
  }
  const trainerOptions: TrainerOptions = {
    chain,
    objective,
    optimizer,
    learningRate: lr,
    batchSize: config.batchSize,
    seed: config.seed,
    shuffle: config.shuffle,
    evalBatchSize: config.evalBatchSize,
    average: config.average ? { kind: config.average } : undefined,
    earlyStopping: config.earlyStopping ? { patience: config.earlyStopping } : undefined,
    onNaN: config.onNan,
    onStep: events.onStep,
    stepper: secondOrder ?? undefined,
    projection: certified ? (w) => certified.project(w) : undefined,
    batchTransform: adversarial?.transform,
  };
  return {
    backend,
    data,
    spec,
    chain,
    lr,
    optimizerOptions,
    trainerOptions,
    init: { params, state, source },
    secondOrder,
    certified,
    smoothing,
    adversarial,
  };
}

/** The second-order methods of `--optimizer`. */
export const SECOND_ORDER_METHODS = ["gauss-newton", "ggn", "newton"] as const;

function isSecondOrder(name: string): name is SecondOrderMethod {
  return (SECOND_ORDER_METHODS as readonly string[]).includes(name);
}

/** Options of the first-order optimizers, refused (when given) by second-order and certified runs. */
const FIRST_ORDER_ONLY = ["momentum", "weightDecay", "schedule", "schedulePower", "warmupSteps", "clipNorm", "clipValue"] as const;
const SECOND_ORDER_ONLY = ["damping", "lineSearch", "gnImplementation"] as const;
const CERTIFIED_ONLY = ["radius", "radii", "recertifyEvery", "localDelta"] as const;

const flagList = (keys: readonly string[], values: Record<string, unknown>) => keys.map((k) => flagName(k, values[k])).join(", ");

/**
 * The defaults that depend on the method, from the options the user gave (`input`: flags and
 * --config): second-order and certified runs take a constant step (no schedule) and refuse the
 * first-order optimizers' options; second-order methods default to step size 1 (`lr`: γ of the
 * proximal step, η of GGN); a certified run is plain projected SGD (`--lr` refused: the step is 1/L_F).
 * Applied once, to a new run's configuration; config.json records the result.
 */
export function resolveMethodDefaults(input: Record<string, unknown>, config: TrainConfig): TrainConfig {
  const given = (k: string) => input[k] !== undefined;
  const second = isSecondOrder(config.optimizer);
  const certified = config.stepSize === "certified";
  if (second || certified) {
    const what = second ? `--optimizer ${config.optimizer}` : "--step-size certified";
    const bad = FIRST_ORDER_ONLY.filter(given);
    if (bad.length > 0)
      throw new Error(`${what}: ${flagList(bad, input)} ${bad.length > 1 ? "are options" : "is an option"} of the first-order optimizers`);
    config = { ...config, schedule: "constant", warmupSteps: 0 };
  }
  if (second && certified) {
    throw new Error(`--step-size certified runs projected SGD; it cannot be combined with --optimizer ${config.optimizer}`);
  }
  if (second && !given("lr")) config = { ...config, lr: 1 };
  if (certified) {
    if (given("lr")) throw new Error("--step-size certified: the step size is 1/L_F from the certificate; drop --lr");
    if (given("optimizer") && config.optimizer !== "sgd") {
      throw new Error(`--step-size certified runs projected SGD; it cannot be combined with --optimizer ${config.optimizer}`);
    }
    config = { ...config, optimizer: "sgd" };
  }
  return config;
}

/** Checks the options of second-order and certified runs against the method (errors name the flags). */
function checkMethodOptions(config: TrainConfig): void {
  const c = config as Record<string, unknown>;
  const given = (k: string) => c[k] !== undefined;
  const second = isSecondOrder(config.optimizer);
  const certified = config.stepSize === "certified";
  // The first-order Armijo line search is checked by checkLineSearchOptions (line-search-config.ts).
  const so = SECOND_ORDER_ONLY.filter((k) => given(k) && !(k === "lineSearch" && firstOrderArmijo(config)));
  if (!second && so.length > 0) {
    throw new Error(
      `${flagList(so, c)}: options of the second-order methods (--optimizer ${SECOND_ORDER_METHODS.join("|")}), not of ${config.optimizer}`,
    );
  }
  if (config.gnImplementation !== undefined && config.optimizer !== "gauss-newton") {
    throw new Error(`--gn-implementation: applies to --optimizer gauss-newton only, not ${config.optimizer}`);
  }
  // The radii of B_R are also those of the smoothing's certificate.
  const co = CERTIFIED_ONLY.filter((k) => given(k) && !(config.smoothEpsilon !== undefined && (k === "radius" || k === "radii")));
  if (!certified && co.length > 0) throw new Error(`${flagList(co, c)}: options of --step-size certified`);
  if (config.radius !== undefined && config.radii !== undefined) throw new Error("--radius, --radii: give one of them");
  if (config.localDelta !== undefined && config.recertifyEvery === undefined) {
    throw new Error("--local-delta: the radius of the local ball of --recertify-every; give --recertify-every K too");
  }
  if ((second || certified) && (config.schedule !== "constant" || config.warmupSteps !== 0)) {
    throw new Error(
      `${second ? `--optimizer ${config.optimizer}` : "--step-size certified"}: takes a constant step (no --schedule, --warmup-steps)`,
    );
  }
  if (second || certified) {
    const bad = FIRST_ORDER_ONLY.filter((k) => k !== "schedule" && k !== "warmupSteps" && given(k));
    if (bad.length > 0) {
      const what = second ? `--optimizer ${config.optimizer}` : "--step-size certified";
      throw new Error(`${what}: ${flagList(bad, c)} ${bad.length > 1 ? "are options" : "is an option"} of the first-order optimizers`);
    }
  }
  if (certified && config.optimizer !== "sgd") {
    throw new Error(`--step-size certified runs projected SGD; it cannot be combined with --optimizer ${config.optimizer}`);
  }
}

/** Largest work memory a second-order step may ask for before the run is refused. */
const SECOND_ORDER_MEMORY_LIMIT = 2 * 1024 ** 3;
const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GiB`;

/** Checks that the method applies to the model, loss and batch size, and builds its stepper. */
function prepareSecondOrder(config: TrainConfig, method: SecondOrderMethod, chain: Chain, data: LoadedDataset): SecondOrderCustomStepper {
  const what = `optimizer ${method}`;
  if (method === "ggn" && config.loss !== "squared") {
    throw new Error(
      `${what}: Gram-Gauss-Newton is defined for regression with the squared loss (--loss squared), got --loss ${config.loss}; use --optimizer gauss-newton for the ${config.loss} loss`,
    );
  }
  const n = Math.min(config.batchSize, data.train.size);
  let bytes: number;
  if (method === "newton") {
    try {
      requireSecondOrder(chain, what);
    } catch {
      const first = Math.max(
        0,
        chain.components.findIndex((c) => c.paramSize > 0),
      );
      const i = chain.components.findIndex((c, j) => j >= first && typeof c.backwardTangent !== "function");
      const c = chain.components[i];
      throw new Error(
        `${what}: component layers[${i}] (${c.type}) has no second-order backward, so the Newton step does not apply to this model; use --optimizer gauss-newton`,
      );
    }
    // Dense stage matrices A (b × a), B (b × ρ) and the second derivatives ((a + ρ)²) of each
    // component, a = N·inputSize, b = N·outputSize, ρ its parameters (newton-dp.ts), in float64.
    bytes = 0;
    for (const c of chain.components) {
      const a = n * c.inputSize;
      const b = n * c.outputSize;
      bytes += 8 * (b * a + b * c.paramSize + (a + c.paramSize) ** 2);
    }
    if (bytes > SECOND_ORDER_MEMORY_LIMIT) {
      throw new Error(
        `${what}: the Newton step by dynamic programming stores dense stage matrices, about ${gib(bytes)} for this model at batch ${n} (limit ${gib(SECOND_ORDER_MEMORY_LIMIT)}); use a smaller --batch-size or model, or --optimizer gauss-newton`,
      );
    }
  } else {
    // The q × q Gram matrix (float64), its Cholesky factor and a scratch copy, q = N × outputs.
    const q = n * chain.outputSize;
    bytes = 3 * 8 * q * q;
    if (bytes > SECOND_ORDER_MEMORY_LIMIT) {
      throw new Error(
        `${what}: the ${q} × ${q} Gram matrix (batch ${n} × ${chain.outputSize} outputs) needs about ${gib(bytes)} (limit ${gib(SECOND_ORDER_MEMORY_LIMIT)}); use a smaller --batch-size`,
      );
    }
  }
  return secondOrderTrainingStepper({
    method,
    damping: config.damping,
    stepSize: config.lr,
    lineSearch: config.lineSearch === undefined ? undefined : config.lineSearch !== false,
    implementation: config.gnImplementation,
  });
}

/** The certified step's configuration and mutable state (current ball, step, counters). */
export interface CertifiedState {
  /** R_t of B_R. */
  radii: number[];
  batch: number;
  lastBatch: number;
  maxSampleNorm: number;
  /** √N · max ‖y_i‖ for regression targets (squared loss), else undefined (the loss's default). */
  maxTargetNorm: number | undefined;
  /** The certificate on B_R. */
  global: ReturnType<typeof certifiedStep>;
  stepSize: number;
  delta: number;
  current: { stepSize: number; radii: number[] };
  initialProjection: boolean;
  projections: number;
  outsideGlobal: number;
  epochProjections: number;
  /** Certifies on the ball of these radii: the step (min over the full and last batch size) and the certificate. */
  certify(radii: readonly number[]): { stepSize: number; result: ReturnType<typeof certifiedStep> };
  /** Projects w onto the current ball, counting. */
  project(w: FloatArray): void;
}

/** The largest sample norm of a data set, and the largest target norm (regression with the squared loss). */
function dataNorms(train: Dataset, loss: TrainConfig["loss"]): { maxSampleNorm: number; maxTargetNorm: number | undefined } {
  const d = inputSizeOf(train);
  let maxSq = 0;
  for (let i = 0; i < train.size; i++) {
    let s2 = 0;
    for (let j = i * d; j < (i + 1) * d; j++) s2 += train.x[j] * train.x[j];
    maxSq = Math.max(maxSq, s2);
  }
  let maxTargetNorm: number | undefined;
  if (train.targets && loss === "squared") {
    const k = train.targetSize ?? 1;
    let m = 0;
    for (let i = 0; i < train.size; i++) {
      let s2 = 0;
      for (let j = i * k; j < (i + 1) * k; j++) s2 += train.targets[j] * train.targets[j];
      m = Math.max(m, s2);
    }
    maxTargetNorm = Math.sqrt(m);
  }
  return { maxSampleNorm: Math.sqrt(maxSq), maxTargetNorm };
}

function prepareCertified(config: TrainConfig, chain: Chain, objective: Objective, data: LoadedDataset): CertifiedState {
  let radii: number[];
  try {
    radii = resolveRadii(chain, config.radii ?? config.radius ?? 1);
  } catch (e) {
    throw new Error(`${config.radii ? "--radii" : "--radius"}: ${(e as Error).message.replace(/^radii: /, "")}`);
  }
  const train = data.train;
  const batch = Math.min(config.batchSize, train.size);
  const lastBatch = train.size % batch || batch;
  const { maxSampleNorm, maxTargetNorm: maxTarget } = dataNorms(train, config.loss);
  const optionsFor = (radii: readonly number[], n: number) => ({
    radii,
    batch: n,
    maxSampleNorm,
    targetNorm: maxTarget === undefined ? undefined : Math.sqrt(n) * maxTarget,
  });
  // Not smooth: name the components without a finite smoothness constant.
  const probe = certifyObjective(chain, objective, optionsFor(radii, batch));
  if (!(probe.smoothness < Infinity)) {
    const rough = probe.chain.layers.flatMap((l) =>
      l.parts.filter((p) => !(p.constants.smoothness < Infinity)).map((p) => `layers[${p.index}] (${p.type})`),
    );
    throw new Error(
      `--step-size certified: the objective is not smooth (L_F = ${probe.smoothness}${rough.length > 0 ? `: ${rough.join(", ")} ${rough.length > 1 ? "have" : "has"} no finite smoothness constant` : ""}), so no step size is certified; use smooth components (--activation softplus or tanh; softplus/smoothRelu and avgPool2d instead of relu and maxPool2d in a model spec), or smooth the model automatically with --smooth-epsilon`,
    );
  }
  const certify = (r: readonly number[]) => {
    const main = certifiedStep(chain, objective, optionsFor(r, batch));
    let stepSize = main.stepSize;
    // The last partial batch has its own certificate (the constants depend on N): take the smaller step.
    if (lastBatch !== batch) stepSize = Math.min(stepSize, certifiedStep(chain, objective, optionsFor(r, lastBatch)).stepSize);
    return { stepSize, result: main };
  };
  const g = certify(radii);
  const state: CertifiedState = {
    radii,
    batch,
    lastBatch,
    maxSampleNorm,
    maxTargetNorm: maxTarget,
    global: g.result,
    stepSize: g.stepSize,
    delta: config.localDelta ?? Math.max(...radii) / 10,
    current: { stepSize: g.stepSize, radii: [...radii] },
    initialProjection: false,
    projections: 0,
    outsideGlobal: 0,
    epochProjections: 0,
    certify,
    project(w: FloatArray) {
      const p = projectOntoBall(chain, w, state.current.radii);
      if (!p.inside) {
        state.projections++;
        state.epochProjections++;
      }
      if (p.norms.some((x, t) => x > state.radii[t])) state.outsideGlobal++;
    },
  };
  return state;
}

/** The summary of a certified run (for the events, summary.json and certificate.json). */
function certifiedSummary(c: CertifiedState, recertifications: CertifiedSummary["recertifications"]): CertifiedSummary {
  return {
    stepSize: c.stepSize,
    smoothness: c.global.certificate.smoothness,
    radii: c.radii,
    batch: c.batch,
    maxSampleNorm: c.maxSampleNorm,
    currentStepSize: c.current.stepSize,
    currentRadii: c.current.radii,
    initialProjection: c.initialProjection,
    projections: c.projections,
    outsideGlobal: c.outsideGlobal,
    stayedInside: c.outsideGlobal === 0,
    recertifications,
  };
}

const finiteOrNull = (x: number) => (Number.isFinite(x) ? x : null);

/**
 * certificate.json of a certified run, in the per-layer schema of src/report/schema.ts (so that
 * `chainopt report` draws m_t, ℓ_t, L_t and R_t per layer), plus the objective's constants, the
 * guarantee, and the run's outcome (projections, whether it stayed inside B_R, re-certifications).
 */
function certificateRecord(c: CertifiedState, summary: CertifiedSummary): Record<string, unknown> {
  const cert = c.global.certificate;
  const layers = cert.chain.layers.filter((l) => l.biaffineIndex >= 0);
  return {
    title: `Smoothness certificate on B_R (batch ${c.batch})`,
    layers: layers.map((l) => `${l.layer} ${l.types.join("+")}`),
    quantities: {
      radius: layers.map((l) => l.radius),
      bound: layers.map((l) => finiteOrNull(l.bound)),
      lipschitz: layers.map((l) => finiteOrNull(l.lipschitz)),
      smoothness: layers.map((l) => finiteOrNull(l.smoothness)),
    },
    log: true,
    variant: cert.chain.variant,
    batch: c.batch,
    lastBatch: c.lastBatch,
    inputNorm: cert.chain.inputNorm,
    maxSampleNorm: c.maxSampleNorm,
    objective: {
      lipschitz: finiteOrNull(cert.lipschitz),
      smoothness: finiteOrNull(cert.smoothness),
      bound: finiteOrNull(cert.bound),
      stepSize: c.stepSize,
      loss: jsonSafe(cert.loss),
    },
    guarantee: jsonSafe(c.global.guarantee),
    run: summary,
  };
}

/**
 * Runs a training job. With `resume`, continues the run in that directory from its last checkpoint
 * (the configuration is read from its config.json; only `epochs` may be given, to extend the run);
 * the result is bit-identical to an uninterrupted run with the same configuration.
 */
export async function runTrainJob(
  input: TrainConfigInput | ResumeInput,
  events: TrainJobEvents = {},
  signal?: { stopRequested: boolean },
  /** Data-parallel training over the ranks of an MPI job (docs/distributed.md). */
  distributed?: DistributedTraining,
): Promise<TrainResult> {
  const resumeDir = "resume" in input && input.resume !== undefined ? resolve(String(input.resume)) : null;
  let config: TrainConfig;
  let extendTo: number | undefined;
  let hasCheckpoint = false;
  if (resumeDir !== null) {
    const given = Object.entries(input).filter(
      ([k, v]) => !["resume", "epochs", "allowConfigChange", "maxMemory"].includes(k) && v !== undefined,
    );
    if (given.length > 0) {
      throw new Error(
        `--resume continues a run with the configuration saved in its config.json; it cannot be combined with ${given.map(([k, v]) => flagName(k, v)).join(", ")} (only --epochs, to extend the run)`,
      );
    }
    config = readRunTrainConfig(resumeDir);
    const epochs = (input as ResumeInput).epochs;
    if (epochs !== undefined) {
      if (!Number.isInteger(epochs) || epochs < 1) throw new Error(`--epochs: expected a positive integer, got ${epochs}`);
      if (epochs !== config.epochs) extendTo = epochs;
      config = { ...config, epochs };
    }
    hasCheckpoint = existsSync(join(resumeDir, "checkpoints", "last.safetensors"));
    // The checkpoint's configuration digest against config.json as it is now (src/node/config-digest.ts).
    checkResumeConfig(config, join(resumeDir, "checkpoints", "last.safetensors"), {
      allowChange: (input as ResumeInput).allowConfigChange === true,
      configFile: join(resumeDir, "config.json"),
    });
    const maxMemory = (input as ResumeInput).maxMemory;
    if (maxMemory !== undefined) config = { ...config, maxMemory };
  } else {
    config = resolveLineSearchDefaults(
      input as Record<string, unknown>,
      resolveMethodDefaults(input as Record<string, unknown>, parseTrainConfig(input)),
    );
    checkUnsupervisedOptions(config, input as Record<string, unknown>); // --objective (unsupervised-config.ts)
    if (config.out && existsSync(config.out) && readdirSync(config.out).length > 0) {
      throw new Error(
        `--out ${config.out}: the directory exists and is not empty (use --resume ${config.out} to continue that run, or another --out)`,
      );
    }
    checkFolderWritable(config.out ?? "runs", config.out ? "--out" : "run directory");
  }

  const prepared = await prepareTrainJob(config, events, { skipInit: hasCheckpoint });

  // Only now, with every input validated, does the job touch the file system. The run directory
  // is locked first (src/node/run-lock.ts): a second process on the same run is refused.
  // --- distributed (src/node/distributed/train.ts): only rank 0 writes the run directory ---
  const dist = distributed ? new DistributedJob(distributed, { resumeDir, config, secondOrder: prepared.secondOrder }) : null;
  dist?.attach(prepared.trainerOptions, prepared.chain);
  // --- end distributed ---
  let lock: RunLock | null = null;
  const openRun = (dir: string | null): RunDirectory => {
    if (resumeDir !== null) {
      const target = dir ?? resumeDir;
      lock = RunLock.acquire(target);
      try {
        return RunDirectory.open(target);
      } catch (error) {
        lock.release();
        lock = null;
        throw error;
      }
    }
    const created = RunDirectory.create({
      out: dir ?? config.out,
      name: `${typeof config.model === "string" ? config.model : "model"}-${config.dataset}`,
    });
    lock = RunLock.acquire(created.dir);
    return created;
  };
  const run = dist ? dist.openRun(resumeDir, openRun) : openRun(null);
  try {
    return await trainLocked(run, config, prepared, resumeDir, extendTo, events, signal, dist);
  } finally {
    (lock as RunLock | null)?.release();
  }
}

/** The body of {@link runTrainJob} once the run directory is open and locked. */
async function trainLocked(
  run: RunDirectory,
  config: TrainConfig,
  prepared: Prepared,
  resumeDir: string | null,
  extendTo: number | undefined,
  events: TrainJobEvents,
  signal: { stopRequested: boolean } | undefined,
  dist: DistributedJob | null,
): Promise<TrainResult> {
  const { backend, data, spec, chain, certified, secondOrder } = prepared;
  const trainer = new Trainer(prepared.trainerOptions, { params: prepared.init.params, state: prepared.init.state });
  let resumedFromEpoch = 0;
  const last = resumeDir !== null ? run.loadLastCheckpoint(chain) : null;
  dist?.broadcastStart(trainer.w, trainer.state); // --- distributed: every rank starts from rank 0's point ---
  if (last) {
    trainer.restore(snapshotFromCheckpoint(trainer, last));
    if (certified) restoreCertified(certified, last);
    resumedFromEpoch = last.epoch;
    if (existsSync(run.summaryPath) && (trainer.epoch >= config.epochs || trainer.stopped)) {
      throw new Error(
        `${run.dir}: the run is already complete (${trainer.epoch} epochs${trainer.stopped ? ", ended by early stopping" : ""}); to train longer pass --epochs N with N > ${trainer.epoch}`,
      );
    }
  }
  if (resumeDir === null) {
    run.writeConfig({
      name: basename(run.dir),
      model: spec,
      optimizer: { name: config.optimizer, ...prepared.optimizerOptions, lr: config.lr, schedule: config.schedule },
      data: { name: config.dataset, train: data.train.size, validation: data.validation?.size ?? 0, test: data.test?.size ?? 0 },
      seed: config.seed,
      backend: { name: backend.name, threads: backend.threads, description: backend.describe() },
      init: config.init ? { file: resolve(config.init), format: prepared.init.source } : undefined,
      train: config,
    });
  } else {
    // A resumed run: drop the final record of a completed run being extended (a new one follows),
    // and record the new epoch count so that a later --resume continues to it.
    const metrics = run.readMetrics();
    if (metrics.some((m) => m.type === "final")) {
      writeFileAtomic(
        run.metricsPath,
        metrics
          .filter((m) => m.type !== "final")
          .map((m) => `${JSON.stringify(m)}\n`)
          .join(""),
      );
    }
    if (extendTo !== undefined) {
      const saved = run.readConfig<Record<string, unknown> & { train: TrainConfig }>();
      writeJsonAtomic(run.configPath, { ...saved, train: { ...saved.train, epochs: extendTo } });
    }
  }
  const recertifications = (): CertifiedSummary["recertifications"] =>
    run
      .readMetrics()
      .filter((m) => m.type === "recertify")
      .map((m) => ({
        epoch: Number(m.epoch),
        radii: (m.radii as number[]) ?? [],
        stepSize: Number(m.step_size),
        smoothness: Number(m.smoothness),
      }));
  const certificatePath = join(run.dir, "certificate.json");
  if (certified && !last) writeJsonAtomic(certificatePath, certificateRecord(certified, certifiedSummary(certified, [])));
  const smoothing = prepared.smoothing;
  if (smoothing && !last) {
    // The smoothing's full record, and its per-layer summary in the report's schema (src/report/schema.ts).
    writeJsonAtomic(join(run.dir, "smoothing-certificate.json"), jsonSafe(smoothingSummary(smoothing)));
    const layers = smoothing.layers.filter((l) => l.layer > 0);
    writeJsonAtomic(join(run.dir, "smoothing.json"), {
      title: `Smoothing (ε = ${smoothing.epsilon}, ${smoothing.target})`,
      layers: layers.map((l) => `${l.layer} ${l.types.join("+")}`),
      quantities: {
        radius: layers.map((l) => l.radius),
        mu: layers.map((l) => (l.parameters.length > 0 ? Math.max(...l.parameters) : 0)),
      },
      log: true,
    });
  }
  // The starting point (epoch 0), so that a run killed or faulting in its first epoch keeps a
  // good checkpoint and can be resumed.
  if (!last) saveTrainerCheckpoint(run, trainer, config.optimizer, certifiedCheckpointExtra(certified));
  events.onStart?.({
    run,
    chain,
    backend: backend.describe(),
    config,
    resumedFromEpoch,
    trainSize: data.train.size,
    certified: certified ? certifiedSummary(certified, recertifications()) : undefined,
    smoothing: smoothing ? `${smoothing.smoothedParts} part(s) smoothed; ${smoothing.objective.statement}` : undefined,
  });

  let certifiedResult: CertifiedSummary | undefined;
  let secondOrderResult: TrainResult["secondOrder"];
  // The epochs, metrics, checkpoints, final model and summary: the run-directory loop of
  // `fitToRunDir` (fit-run.ts), with the hooks of second-order and certified runs.
  // --- diagnostics and line-search numbers per epoch (epoch-extras.ts) ---
  const epochExtras = createEpochExtras(
    { diagnostics: config.diagnostics === true, armijo: firstOrderArmijo(config) },
    chain,
    prepared.trainerOptions.objective,
    data.train,
    trainer.optimizerState,
  );
  // --- end ---
  const result = await trainInRunDirectory(run, trainer, data, {
    epochs: config.epochs,
    optimizerName: config.optimizer,
    signal,
    hooks: {
      onEpochStart: () => {
        if (certified) certified.epochProjections = 0;
      },
      // Per-epoch numbers of second-order runs (the damping the next step starts from, steps whose
      // every direction failed the Armijo test, in all) and certified runs (step, projections).
      epochExtra: (record) => {
        const extra: Record<string, number> = {};
        if (secondOrder) {
          extra.damping = secondOrder.state.damping;
          extra.rejectedSteps = secondOrder.counters.rejected;
        }
        if (certified) {
          extra.stepSize = certified.current.stepSize;
          extra.projections = certified.epochProjections;
        }
        // --- adversarial training: robust validation metrics ---
        if (prepared.adversarial && data.validation) {
          const r = prepared.adversarial.validate(trainer.evaluationParams(), trainer.state, data.validation, trainer.epoch);
          extra.validationRobustLoss = r.robustLoss;
          extra.validationRobustAccuracy = r.robustAccuracy;
        }
        // --- end adversarial training ---
        // --- diagnostics and line-search numbers (epoch-extras.ts) ---
        Object.assign(
          extra,
          epochExtras({ w: trainer.w, state: trainer.state, optimizerState: trainer.optimizerState, learningRate: record.learningRate }),
        );
        // --- end ---
        return extra;
      },
      // Re-certification on a local ball around the iterate (after the epoch's metrics line, before
      // its checkpoint, so that a resumed run neither repeats nor misses it).
      afterEpochMetrics: () => {
        if (certified && config.recertifyEvery && trainer.epoch % config.recertifyEvery === 0 && trainer.epoch < config.epochs) {
          const radii = localRadii(chain, trainer.w, certified.delta, certified.radii);
          const local = certified.certify(radii);
          certified.current = { stepSize: Math.max(local.stepSize, certified.stepSize), radii };
          run.logMetrics({
            type: "recertify",
            step: trainer.step,
            epoch: trainer.epoch,
            step_size: certified.current.stepSize,
            smoothness: local.result.certificate.smoothness,
            radii,
            norms: layerNorms(chain, trainer.w),
          });
        }
      },
      // The certified run's ball and counters, and the configuration digest checked on --resume
      // (src/node/config-digest.ts).
      checkpointExtra: () => ({
        ...certifiedCheckpointExtra(certified),
        config: checkpointConfigRecord(config as Record<string, unknown>),
      }),
      onEpoch: events.onEpoch,
      onFinish: () => {
        certifiedResult = certified ? certifiedSummary(certified, recertifications()) : undefined;
        secondOrderResult = secondOrder
          ? {
              method: secondOrder.name,
              damping: secondOrder.state.damping,
              steps: secondOrder.state.steps,
              rejected: secondOrder.counters.rejected,
            }
          : undefined;
        if (certified && certifiedResult) writeJsonAtomic(certificatePath, certificateRecord(certified, certifiedResult));
        return {
          ...(certifiedResult ? { certified: jsonSafe(certifiedResult) } : {}),
          ...(secondOrderResult ? { secondOrder: jsonSafe(secondOrderResult) } : {}),
        };
      },
    },
  });
  return {
    epochs: result.history,
    testLoss: result.test?.loss,
    testAccuracy: result.test?.accuracy,
    seconds: result.seconds,
    runDir: run.dir,
    params: result.params,
    interrupted: result.interrupted,
    stoppedEarly: result.stoppedEarly,
    certified: certifiedResult,
    secondOrder: secondOrderResult,
  };
}

function isChainoptCheckpoint(file: string): boolean {
  try {
    // The header only (the file may be large): chainopt checkpoints carry their format in __metadata__.
    return JSON.stringify(readSafetensorsHeader(file).metadata).includes("chainopt.checkpoint");
  } catch {
    return false;
  }
}

/** The `extra` entries of a certified run's checkpoints: its current ball, step and counters. */
function certifiedCheckpointExtra(certified: CertifiedState | null): Record<string, unknown> {
  if (!certified) return {};
  return {
    certified: {
      stepSize: certified.current.stepSize,
      radii: certified.current.radii,
      initialProjection: certified.initialProjection,
      projections: certified.projections,
      outsideGlobal: certified.outsideGlobal,
    },
  };
}

/** Restores a certified run's current ball, step and counters from a checkpoint. */
function restoreCertified(c: CertifiedState, ck: LoadedCheckpoint): void {
  const saved = (ck.extra as { certified?: Record<string, unknown> }).certified;
  if (!saved) throw new Error("checkpoint: the certified step's state (extra.certified) is missing");
  const radii = saved.radii as number[];
  if (!Array.isArray(radii) || radii.length !== c.radii.length) throw new Error("checkpoint: extra.certified.radii is malformed");
  c.current = { stepSize: Number(saved.stepSize), radii: radii.map(Number) };
  c.initialProjection = saved.initialProjection === true;
  c.projections = Number(saved.projections);
  c.outsideGlobal = Number(saved.outsideGlobal);
}
