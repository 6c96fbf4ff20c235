import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { z } from "zod";
import { OPTIMIZER_NAMES } from "../optim/aliases.js";
import { isSecondOrderMethod, SECOND_ORDER_METHODS } from "../second-order/budget.js";
import { datasetNames } from "./datasets.js";
import { checkLineSearchOptions, firstOrderArmijo, resolveLineSearchDefaults } from "./line-search-config.js";
import { checkUnsupervisedOptions } from "./unsupervised-config.js";

// The configuration of `chainopt train`: its schema (the JSON of `--config`, and the flags'
// target), and ONE validator, {@link resolveTrainConfig}, that parses a configuration, applies the
// defaults that depend on the method and checks the rules between fields, each rule stated once,
// every error naming the flag at fault. Nothing here reads data or writes files.

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

/** The command-line spelling of a configuration key (for error messages). */
export function flagName(key: string, value?: unknown): string {
  const kebab = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  return value === false ? `--no-${kebab}` : `--${kebab}`;
}

export { SECOND_ORDER_METHODS };

/** Options of the first-order optimizers, refused (when given) by second-order and certified runs. */
const FIRST_ORDER_ONLY = ["momentum", "weightDecay", "schedule", "schedulePower", "warmupSteps", "clipNorm", "clipValue"] as const;
const SECOND_ORDER_ONLY = ["damping", "lineSearch", "gnImplementation"] as const;
const CERTIFIED_ONLY = ["radius", "radii", "recertifyEvery", "localDelta"] as const;

const flagList = (keys: readonly string[], values: Record<string, unknown>) => keys.map((k) => flagName(k, values[k])).join(", ");

/** The schema's defaults (a saved value equal to one of them was not necessarily given by the user). */
const SCHEMA_DEFAULTS: Record<string, unknown> = trainConfigSchema.parse({});

/**
 * Parses a training configuration, applies the defaults that depend on the method, and checks the
 * rules between fields; errors name the flag at fault. The one validator of `chainopt train`
 * configurations (new runs, `--resume`, sweeps).
 *
 * Method defaults: second-order runs (`--optimizer gauss-newton|ggn|newton`) and certified runs
 * (`--step-size certified`) take a constant step (no schedule) and refuse the first-order
 * optimizers' options; second-order methods default to step size 1 (`lr`: γ of the proximal step,
 * η of GGN); a certified run is plain projected SGD (`--lr` refused: the step is 1/L_F). A
 * first-order Armijo run (`--line-search armijo`) takes a constant first trial step.
 *
 * `saved`: the configuration was resolved before (config.json of a run being resumed): the
 * defaults are not applied again, and a field counts as given when its value is neither the
 * schema's default nor the value its method fixes, so that the same rules re-check a resolved
 * configuration without refusing the values they set.
 */
export function resolveTrainConfig(input: unknown, options: { source?: string; saved?: boolean } = {}): TrainConfig {
  let config = parseTrainConfig(input, options.source);
  const second = isSecondOrderMethod(config.optimizer);
  const certified = config.stepSize === "certified";
  const constantStep = second || certified;
  // What the user gave: the input's keys, or (saved) the values no default explains.
  const fixedByMethod = (k: string, v: unknown) =>
    constantStep && ((k === "schedule" && v === "constant") || (k === "warmupSteps" && v === 0));
  const user: Record<string, unknown> = options.saved
    ? Object.fromEntries(Object.entries(config).filter(([k, v]) => v !== undefined && v !== SCHEMA_DEFAULTS[k] && !fixedByMethod(k, v)))
    : (input as Record<string, unknown>);
  const given = (k: string) => user[k] !== undefined;
  const c = config as Record<string, unknown>;

  if (!(datasetNames as readonly string[]).includes(config.dataset)) {
    throw new Error(`dataset: unknown data set ${JSON.stringify(config.dataset)}; known: ${datasetNames.join(", ")}`);
  }
  if (!second && !(OPTIMIZER_NAMES as readonly string[]).includes(config.optimizer)) {
    throw new Error(
      `optimizer: unknown optimizer ${JSON.stringify(config.optimizer)}; known: ${[...OPTIMIZER_NAMES, ...SECOND_ORDER_METHODS].join(", ")}`,
    );
  }
  // A constant step: the first-order optimizers' options are refused, the schedule is constant.
  const what = second ? `--optimizer ${config.optimizer}` : "--step-size certified";
  if (constantStep) {
    const bad = FIRST_ORDER_ONLY.filter(given);
    if (bad.length > 0)
      throw new Error(`${what}: ${flagList(bad, user)} ${bad.length > 1 ? "are options" : "is an option"} of the first-order optimizers`);
    config = { ...config, schedule: "constant", warmupSteps: 0 };
  }
  if (certified && (second || (given("optimizer") && config.optimizer !== "sgd"))) {
    throw new Error(`--step-size certified runs projected SGD; it cannot be combined with --optimizer ${config.optimizer}`);
  }
  if (second && !given("lr") && !options.saved) config = { ...config, lr: 1 };
  if (certified) {
    if (given("lr")) throw new Error("--step-size certified: the step size is 1/L_F from the certificate; drop --lr");
    config = { ...config, optimizer: "sgd" };
  }
  // The first-order Armijo line search is checked by checkLineSearchOptions (line-search-config.ts).
  const so = SECOND_ORDER_ONLY.filter((k) => c[k] !== undefined && !(k === "lineSearch" && firstOrderArmijo(config)));
  if (!second && so.length > 0) {
    throw new Error(
      `${flagList(so, c)}: options of the second-order methods (--optimizer ${SECOND_ORDER_METHODS.join("|")}), not of ${config.optimizer}`,
    );
  }
  if (config.gnImplementation !== undefined && config.optimizer !== "gauss-newton") {
    throw new Error(`--gn-implementation: applies to --optimizer gauss-newton only, not ${config.optimizer}`);
  }
  // The radii of B_R are also those of the smoothing's certificate.
  const co = CERTIFIED_ONLY.filter((k) => c[k] !== undefined && !(config.smoothEpsilon !== undefined && (k === "radius" || k === "radii")));
  if (!certified && co.length > 0) throw new Error(`${flagList(co, c)}: options of --step-size certified`);
  if (config.radius !== undefined && config.radii !== undefined) throw new Error("--radius, --radii: give one of them");
  if (config.localDelta !== undefined && config.recertifyEvery === undefined) {
    throw new Error("--local-delta: the radius of the local ball of --recertify-every; give --recertify-every K too");
  }
  config = resolveLineSearchDefaults(user, config); // Armijo line search (line-search-config.ts)
  checkLineSearchOptions(config);
  checkUnsupervisedOptions(config, user); // --objective (unsupervised-config.ts)
  return config;
}

/** Reads and re-checks the training configuration of a run directory (without modifying the directory). */
export function readRunTrainConfig(dir: string): TrainConfig {
  const configPath = join(resolve(dir), "config.json");
  if (!existsSync(configPath)) throw new Error(`--resume ${dir}: not a run directory (no config.json)`);
  const saved = readConfigFile(configPath) as { train?: unknown };
  if (saved === null || typeof saved !== "object" || saved.train === undefined) {
    throw new Error(`${configPath}: no "train" section (not a run of chainopt train)`);
  }
  return resolveTrainConfig(saved.train, { source: `${configPath} (train)`, saved: true });
}
