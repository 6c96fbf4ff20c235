import { z } from "zod";
import { layerSpecSchema } from "../components/registry.js";
import { positiveInt } from "../components/spec-fields.js";

// Model specs: JSON documents describing a chain (input shape + list of components). Each
// component owns the schema of its layer entry; src/components/registry.ts assembles the union.
// Validation goes through zod so that every error names the path of the field at fault,
// e.g. `layers[3].units: expected a positive integer`.

export { type LayerSpec, type LayerSpecInput, type LayerSpecOf, type LayerType, layerSpecSchema } from "../components/registry.js";

/** Schema of a whole model spec. */
export const modelSpecSchema = z
  .object({
    /** Shape of one input sample: `[features]` or `[channels, height, width]` (NCHW layout). */
    input: z.array(positiveInt).min(1).max(3),
    layers: z.array(layerSpecSchema).min(1),
  })
  .strict();

/** A validated model spec. */
export type ModelSpec = z.output<typeof modelSpecSchema>;
/** A model spec as written by a user. */
export type ModelSpecInput = z.input<typeof modelSpecSchema>;

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
