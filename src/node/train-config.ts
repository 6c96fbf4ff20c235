import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { z } from "zod";
import { OPTIMIZER_NAMES } from "../optim/aliases.js";
import { isSecondOrderMethod, SECOND_ORDER_METHODS } from "../second-order/budget.js";
import { datasetNames } from "./datasets.js";
import { checkLineSearchOptions, firstOrderArmijo, resolveLineSearchDefaults } from "./line-search-config.js";
import { checkUnsupervisedOptions } from "./unsupervised-config.js";

// The configuration of `chainopt train`: its schema (the JSON of `--config`, and the flags'
// target) with each field's command-line flag (the CLI declares its options from this table), and
// ONE validator, {@link resolveTrainConfig}, that parses a configuration, applies the
// defaults that depend on the method and checks the rules between fields, each rule stated once,
// every error naming the flag at fault. Nothing here reads data or writes files.

/**
 * One option of `chainopt train`: its command-line flag (the kebab-case of the key, see
 * {@link flagName}), value placeholder and help. Choices are read from the field's `z.enum`.
 */
export interface TrainFlag {
  /** The value's placeholder (`<n>`, `[kind]` for an optional value); none for a switch. */
  value?: string;
  /** The help line of `chainopt train --help`. */
  help: string;
  /** How the flag's text becomes the value: a number, an integer, a comma list of either, or text (default). */
  parse?: "number" | "int" | "numbers" | "ints" | ((text: string, flag: string) => unknown);
  /** A switch that is on by default: the flag is `--no-<name>` and `help` describes it. */
  negate?: boolean;
  /** Also declare `--no-<name>` (setting false) with this help, next to the positive flag. */
  negation?: string;
  /** Only in a `--config` file, no flag. */
  configOnly?: boolean;
}

/** A schema field with its flag: adding an option of `chainopt train` is one such entry. */
const field = <S extends z.ZodType>(schema: S, flag: TrainFlag) => ({ schema, flag });

/** The options of `chainopt train`, in the order of `--help`: schema and flag of each. */
const FIELDS = {
  model: field(z.union([z.string(), z.record(z.string(), z.unknown())]).default("mlp"), {
    value: "<preset|spec.json>",
    help: "model preset (mlp, convnet, vgg16, …) or JSON model spec",
  }),
  widths: field(z.array(z.number().int().positive()).optional(), {
    value: "<list>",
    help: "hidden widths of the mlp preset, e.g. 512,512",
    parse: "ints",
  }),
  activation: field(z.enum(["relu", "softplus", "sigmoid", "tanh"]).optional(), {
    value: "<name>",
    help: "activation of the mlp/convnet presets",
  }),
  dataset: field(z.string().default("mnist"), {
    value: "<name>",
    help: "mnist, fashion-mnist, cifar10, diabetes, boston, iris, wine, breast-cancer, digits, synthetic-teacher",
  }),
  limit: field(z.number().int().positive().optional(), {
    value: "<n>",
    help: "use only the first n training and test samples",
    parse: "int",
  }),
  validation: field(z.union([z.number().nonnegative(), z.literal("auto")]).default("auto"), {
    value: "<n>",
    help: "validation samples held out of the training set: count, fraction, 0 for none, or auto (default: 10%, at most 5000)",
    parse: (v, flag) => (v === "auto" ? v : parseNumber(v, flag)),
  }),
  normalize: field(z.boolean().default(true), {
    help: "keep pixels in [0,1] instead of normalizing per channel",
    negate: true,
  }),
  epochs: field(z.number().int().positive().default(10), { value: "<n>", help: "epochs", parse: "int" }),
  batchSize: field(z.number().int().positive().default(128), { value: "<n>", help: "mini-batch size", parse: "int" }),
  evalBatchSize: field(z.number().int().positive().default(1000), {
    value: "<n>",
    help: "batch size of evaluation",
    parse: "int",
    configOnly: true,
  }),
  seed: field(z.number().int().nonnegative().default(0), {
    value: "<n>",
    help: "seed of initialization, data order and splits",
    parse: "int",
  }),
  dtype: field(z.enum(["float32", "float64"]).default("float32"), { value: "<dtype>", help: "precision" }),
  loss: field(z.enum(["logistic", "squared"]).default("logistic"), { value: "<loss>", help: "loss" }),
  l2: field(z.number().nonnegative().default(0), {
    value: "<lambda>",
    help: "L2 regularization λ/2‖w‖² in the objective",
    parse: "number",
  }),
  // A first-order optimizer (OPTIMIZER_NAMES) or a second-order method (SECOND_ORDER_METHODS).
  optimizer: field(z.string().default("momentum"), {
    value: "<name>",
    help: "sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw, amsgrad, or second-order: gauss-newton, ggn, newton",
  }),
  lr: field(z.number().positive().default(0.02), {
    value: "<eta>",
    help: "learning rate (second-order: step size γ, η for ggn; default 1)",
    parse: "number",
  }),
  damping: field(z.number().nonnegative().optional(), {
    value: "<mu>",
    help: "second-order: initial damping μ (λ of JJᵀ + λI for ggn)",
    parse: "number",
  }),
  // Second-order: Armijo backtracking on the damping (default on, except for GGN). First order
  // (sgd, momentum): "armijo" (or true) searches the step (line-search-config.ts).
  lineSearch: field(z.union([z.boolean(), z.literal("armijo")]).optional(), {
    value: "[kind]",
    help: "armijo: sgd/momentum search the step (first trial --lr, see docs/line-search.md); second-order: Armijo backtracking, μ ×10 on failure (default for gauss-newton, newton)",
    negation: "second-order: proximal step with μ = 1/γ (default for ggn)",
  }),
  // --- Armijo line search of first-order training (line-search-config.ts, docs/line-search.md) ---
  armijoC: field(z.number().gt(0).lt(1).optional(), {
    value: "<c>",
    help: "line search: sufficient-decrease constant c ∈ (0, 1) (default 1e-4)",
    parse: "number",
  }),
  armijoShrink: field(z.number().gt(0).lt(1).optional(), {
    value: "<beta>",
    help: "line search: backtracking factor β ∈ (0, 1) (default 0.5)",
    parse: "number",
  }),
  armijoReset: field(z.enum(["constant", "previous", "increase"]).optional(), {
    value: "<policy>",
    help: "line search: first trial step (default increase: min(lr, 2·previous))",
  }),
  // --- end Armijo ---
  diagnostics: field(z.boolean().optional(), {
    help: "per epoch on a fixed probe batch: top Hessian and Gauss-Newton eigenvalues, (η/2)‖g‖²_H/‖g‖², ‖g‖ (docs/diagnostics.md)",
  }),
  // --- unsupervised objectives (unsupervised-config.ts, docs/unsupervised.md) ---
  objective: field(z.enum(["supervised", "clustering", "autoencoder"]).optional(), {
    value: "<kind>",
    help: "unsupervised objective instead of --loss: convex clustering of the outputs, or auto-encoder",
  }),
  clusteringLambda: field(z.number().nonnegative().optional(), {
    value: "<gamma>",
    help: "clustering: fusion strength γ (default 1)",
    parse: "number",
  }),
  clusteringNeighbors: field(z.number().int().positive().optional(), {
    value: "<k>",
    help: "clustering: k of the k-NN Gaussian weights (default 5)",
    parse: "int",
  }),
  clusteringTolerance: field(z.number().positive().optional(), {
    value: "<tol>",
    help: "clustering: relative accuracy of the inner solve (default 1e-6)",
    parse: "number",
  }),
  // --- end unsupervised ---
  gnImplementation: field(z.enum(["gram", "dual"]).optional(), {
    value: "<impl>",
    help: "gauss-newton: fast Gram matrix, or the papers' dual (2q+1 oracle calls)",
  }),
  stepSize: field(z.enum(["lr", "certified"]).optional(), {
    value: "<kind>",
    help: "certified: projected SGD on B_R with the certified step 1/L_F",
  }),
  radius: field(z.number().positive().optional(), {
    value: "<R>",
    help: "certified step: radius of B_R = {u : ‖u_t‖ ≤ R} (default 1)",
    parse: "number",
  }),
  radii: field(z.array(z.number().positive()).optional(), {
    value: "<list>",
    help: "certified step: one radius per parameterized layer",
    parse: "numbers",
  }),
  recertifyEvery: field(z.number().int().positive().optional(), {
    value: "<k>",
    help: "certified step: re-certify on a local ball around the iterate every k epochs",
    parse: "int",
  }),
  localDelta: field(z.number().positive().optional(), {
    value: "<delta>",
    help: "certified step: local ball ‖u_t‖ ≤ min(R_t, ‖w_t‖ + δ) (default max R/10)",
    parse: "number",
  }),
  smoothEpsilon: field(z.number().positive().optional(), {
    value: "<eps>",
    help: "replace relu/maxPool2d by smooth versions with |F − F_ε| ≤ ε on B_R (--radius); see docs/smoothing.md",
    parse: "number",
  }),
  momentum: field(z.number().min(0).max(1).optional(), {
    value: "<mu>",
    help: "momentum μ (sgd, momentum, nesterov, rmsprop)",
    parse: "number",
  }),
  weightDecay: field(z.number().nonnegative().optional(), {
    value: "<lambda>",
    help: "weight decay (coupled; decoupled for adamw)",
    parse: "number",
  }),
  schedule: field(z.enum(["constant", "inverse-power", "step", "exponential", "cosine"]).default("cosine"), {
    value: "<name>",
    help: "learning-rate schedule",
  }),
  schedulePower: field(z.number().positive().optional(), {
    value: "<alpha>",
    help: "α of the inverse-power schedule η(t) = η (t+1)^(−α)",
    parse: "number",
  }),
  warmupSteps: field(z.number().int().nonnegative().default(0), { value: "<n>", help: "linear warm-up steps", parse: "int" }),
  clipNorm: field(z.number().positive().optional(), { value: "<c>", help: "clip gradients to this global norm", parse: "number" }),
  clipValue: field(z.number().positive().optional(), { value: "<c>", help: "clip gradient entries to [−c, c]", parse: "number" }),
  average: field(z.enum(["polyak", "ema"]).optional(), { value: "<kind>", help: "evaluate an averaged iterate" }),
  earlyStopping: field(z.number().int().positive().optional(), {
    value: "<patience>",
    help: "stop after this many epochs without validation improvement; restore the best",
    parse: "int",
  }),
  shuffle: field(z.boolean().default(true), { help: "fixed data order (no per-epoch permutation)", negate: true }),
  onNan: field(z.enum(["stop", "skip"]).default("stop"), {
    value: "<policy>",
    help: "on a NaN/Inf loss, gradient or parameter: stop with an error naming the step and layer (the last good checkpoint is kept), or skip (undo) the step and go on",
  }),
  threads: field(z.number().int().positive().optional(), {
    value: "<n>",
    help: "BLAS threads (default: CHAINOPT_THREADS or OpenBLAS's default)",
    parse: "int",
  }),
  out: field(z.string().optional(), { value: "<dir>", help: "run directory (default runs/<timestamp>-<model>-<dataset>)" }),
  init: field(z.string().optional(), {
    value: "<weights.safetensors>",
    help: "start from these weights (PyTorch state_dict or chainopt checkpoint)",
  }),
  // --- adversarial training (src/node/adversarial-train.ts, docs/adversarial.md; checked there, errors name the flag) ---
  adversarial: field(z.string().optional(), { value: "<attack>", help: "adversarial training with this attack: pgd or fgsm" }),
  advEps: field(z.number().optional(), {
    value: "<eps>",
    help: "adversarial training: radius ε of the attack, in raw input units (pixels in [0,1])",
    parse: "number",
  }),
  advNorm: field(z.string().optional(), { value: "<norm>", help: "adversarial training: linf (default) or l2 ball" }),
  advSteps: field(z.number().optional(), { value: "<k>", help: "adversarial training: PGD steps (default 10)", parse: "int" }),
  advStepSize: field(z.number().optional(), {
    value: "<alpha>",
    help: "adversarial training: PGD step size (default 2.5 ε / steps)",
    parse: "number",
  }),
  advMix: field(z.number().optional(), {
    value: "<m>",
    help: "adversarial training: fraction of each batch replaced by adversarial examples (default 1, Madry)",
    parse: "number",
  }),
  advValidationSamples: field(z.number().optional(), {
    value: "<n>",
    help: "adversarial training: validation samples attacked each epoch (default 1000)",
    parse: "int",
  }),
  // --- end adversarial training ---
  maxMemory: field(z.union([z.number().positive(), z.string()]).optional(), {
    value: "<size>",
    help: "refuse models whose estimated memory exceeds this (e.g. 8G; default 80% of the machine's memory)",
  }),
};

type TrainShape = { [K in keyof typeof FIELDS]: (typeof FIELDS)[K]["schema"] };

/** Schema of a training configuration (the JSON accepted by `--config`, and the flags' target). */
export const trainConfigSchema = z.object(Object.fromEntries(Object.entries(FIELDS).map(([k, f]) => [k, f.schema])) as TrainShape).strict();

/** The flag of each configuration key, in the order of `--help`. */
export const TRAIN_FLAGS: { readonly [K in keyof typeof FIELDS]: TrainFlag } = Object.fromEntries(
  Object.entries(FIELDS).map(([k, f]) => [k, f.flag]),
) as { [K in keyof typeof FIELDS]: TrainFlag };

/** The choices of an enum field (behind `.optional()` / `.default()`), else undefined. */
export function trainFlagChoices(key: keyof typeof FIELDS): readonly string[] | undefined {
  let s: z.ZodType = FIELDS[key].schema;
  while (s instanceof z.ZodOptional || s instanceof z.ZodDefault) s = s.unwrap() as z.ZodType;
  return s instanceof z.ZodEnum ? (s.options as readonly string[]) : undefined;
}

// Number("") is 0: an empty value (`--lr ''`) is refused, naming the flag.
function parseNumber(text: string, flag: string): number {
  if (text.trim() === "") throw new Error(`${flag} needs a number, got an empty value`);
  const x = Number(text);
  if (!Number.isFinite(x)) throw new Error(`${flag}: expected a number, got "${text}"`);
  return x;
}

function parseInteger(text: string, flag: string): number {
  if (text.trim() === "") throw new Error(`${flag} needs an integer, got an empty value`);
  const x = Number(text);
  if (!Number.isInteger(x)) throw new Error(`${flag}: expected an integer, got "${text}"`);
  return x;
}

/** The parser of a flag's text (`flag`: its spelling, for errors); undefined for plain text. */
export function trainFlagParser(flag: TrainFlag, name: string): ((text: string) => unknown) | undefined {
  const p = flag.parse;
  if (p === undefined) return undefined;
  if (typeof p === "function") return (t) => p(t, name);
  if (p === "number") return (t) => parseNumber(t, name);
  if (p === "int") return (t) => parseInteger(t, name);
  if (p === "numbers") return (t) => t.split(",").map((x) => parseNumber(x, name));
  return (t) => t.split(",").map((x) => parseInteger(x, name));
}

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
 * `saved`: the configuration was resolved before (config.json of a run being resumed): a field
 * counts as given when its value differs from the one its method fixes (schedule and warm-up of a
 * constant step) or else from the schema's default, so that the same rules re-check a resolved
 * configuration without refusing the values they set themselves.
 */
export function resolveTrainConfig(input: unknown, options: { source?: string; saved?: boolean } = {}): TrainConfig {
  let config = parseTrainConfig(input, options.source);
  const second = isSecondOrderMethod(config.optimizer);
  const certified = config.stepSize === "certified";
  const constantStep = second || certified;
  // What the user gave: the input's keys, or (saved) the values no default explains.
  const fixedByMethod: Record<string, unknown> = constantStep ? { schedule: "constant", warmupSteps: 0 } : {};
  const user: Record<string, unknown> = options.saved
    ? Object.fromEntries(
        Object.entries(config).filter(([k, v]) => v !== undefined && v !== (k in fixedByMethod ? fixedByMethod[k] : SCHEMA_DEFAULTS[k])),
      )
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
