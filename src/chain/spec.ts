import { z } from "zod";

// Model specs: JSON documents describing a chain (input shape + list of components).
// Validation goes through zod so that every error names the path of the field at fault,
// e.g. `layers[3].units: expected a positive integer`.

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();
const pair = z.union([positiveInt, z.tuple([positiveInt, positiveInt])]);
const initScheme = z.enum(["he", "lecun", "torch"]);

const denseSpec = z
  .object({ type: z.literal("dense"), units: positiveInt, bias: z.boolean().default(true), init: initScheme.default("he") })
  .strict();
const conv2dSpec = z
  .object({
    type: z.literal("conv2d"),
    filters: positiveInt,
    kernel: pair,
    stride: pair.default(1),
    padding: z.union([nonNegativeInt, z.tuple([nonNegativeInt, nonNegativeInt])]).default(0),
    bias: z.boolean().default(true),
    init: initScheme.default("he"),
  })
  .strict();
const poolSpec = <T extends string>(type: T) =>
  z
    .object({
      type: z.literal(type),
      size: pair,
      stride: pair.optional(),
      padding: z.union([nonNegativeInt, z.tuple([nonNegativeInt, nonNegativeInt])]).default(0),
    })
    .strict();
/** Smooth max pooling (issue 6): max-pool windows, log-sum-exp at temperature `mu` (src/components/smooth-max-pool.ts). */
const smoothMaxPoolSpec = z
  .object({
    type: z.literal("smoothMaxPool2d"),
    size: pair,
    stride: pair.optional(),
    padding: z.union([nonNegativeInt, z.tuple([nonNegativeInt, nonNegativeInt])]).default(0),
    mu: z.number().positive(),
  })
  .strict();
const batchNormSpec = z
  .object({
    type: z.literal("batchNorm"),
    epsilon: z.number().positive().default(1e-5),
    momentum: z.number().min(0).max(1).default(0.1),
    affine: z.boolean().default(false),
  })
  .strict();

/** Schema of one layer entry. */
export const layerSpecSchema = z.discriminatedUnion("type", [
  denseSpec,
  conv2dSpec,
  z.object({ type: z.literal("relu") }).strict(),
  z.object({ type: z.literal("softplus"), beta: z.number().positive().default(1) }).strict(),
  z.object({ type: z.literal("sigmoid") }).strict(),
  z.object({ type: z.literal("tanh") }).strict(),
  z.object({ type: z.literal("smoothRelu"), mu: z.number().positive() }).strict(),
  poolSpec("maxPool2d"),
  poolSpec("avgPool2d"),
  smoothMaxPoolSpec,
  batchNormSpec,
  z.object({ type: z.literal("softmax") }).strict(),
  z.object({ type: z.literal("flatten") }).strict(),
]);

/** Schema of a whole model spec. */
export const modelSpecSchema = z
  .object({
    /** Shape of one input sample: `[features]` or `[channels, height, width]` (NCHW layout). */
    input: z.array(positiveInt).min(1).max(3),
    layers: z.array(layerSpecSchema).min(1),
  })
  .strict();

/** A validated layer entry, defaults filled in. */
export type LayerSpec = z.output<typeof layerSpecSchema>;
/** A layer entry as written by a user (defaults optional). */
export type LayerSpecInput = z.input<typeof layerSpecSchema>;
/** A validated model spec. */
export type ModelSpec = z.output<typeof modelSpecSchema>;
/** A model spec as written by a user. */
export type ModelSpecInput = z.input<typeof modelSpecSchema>;
/** The layer types chainopt knows. */
export type LayerType = LayerSpec["type"];
/** The spec of one layer type. */
export type LayerSpecOf<T extends LayerType> = Extract<LayerSpec, { type: T }>;

/** Error for an invalid model spec; the message lists each offending field and what was expected. */
export class ModelSpecError extends Error {
  constructor(
    message: string,
    readonly issues: readonly { path: string; message: string }[] = [],
  ) {
    super(message);
    this.name = "ModelSpecError";
  }
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out === "" ? String(p) : `.${String(p)}`;
  return out === "" ? "(root)" : out;
}

/**
 * Validates a model spec (parsed JSON) and fills defaults. Throws a {@link ModelSpecError} naming
 * each field at fault, e.g. `layers[2].type: unknown layer type "dropout"; expected one of …`.
 */
export function parseModelSpec(input: unknown, source = "model spec"): ModelSpec {
  const result = modelSpecSchema.safeParse(input);
  if (result.success) return result.data;
  const known = layerSpecSchema.options.map((o) => o.shape.type.value).join(", ");
  const issues = result.error.issues.map((issue) => {
    const path = formatPath(issue.path);
    let message = issue.message;
    if (issue.code === "invalid_union" && path.endsWith(".type")) {
      const value = issue.path.reduce<unknown>((v, k) => (v as Record<PropertyKey, unknown> | undefined)?.[k], input);
      message = `unknown layer type ${JSON.stringify(value)}; expected one of ${known}`;
    }
    return { path, message };
  });
  const lines = issues.map((i) => `  ${i.path}: ${i.message}`).join("\n");
  throw new ModelSpecError(`invalid ${source}:\n${lines}`, issues);
}
