import { z } from "zod";
import { AvgPool2d, avgPoolSpecSchema } from "./avg-pool.js";
import { BatchNorm, batchNormSpecSchema } from "./batch-norm.js";
import type { Component } from "./component.js";
import { Conv2d, conv2dSpecSchema } from "./conv2d.js";
import { Dense, denseSpecSchema } from "./dense.js";
import { Flatten, flattenSpecSchema } from "./flatten.js";
import { MaxPool2d, maxPoolSpecSchema } from "./max-pool.js";
import { Relu, reluSpecSchema } from "./relu.js";
import { Sigmoid, sigmoidSpecSchema } from "./sigmoid.js";
import { SmoothMaxPool2d, smoothMaxPoolSpecSchema } from "./smooth-max-pool.js";
import { SmoothRelu, smoothReluSpecSchema } from "./smooth-relu.js";
import { Softmax, softmaxSpecSchema } from "./softmax.js";
import { Softplus, softplusSpecSchema } from "./softplus.js";
import { Tanh, tanhSpecSchema } from "./tanh.js";

/**
 * Schema of one layer entry: the union of the components' own spec schemas (each component file
 * exports its schema). Adding a component is adding its file, its schema here and one case in
 * {@link createComponent}.
 */
export const layerSpecSchema = z.discriminatedUnion("type", [
  denseSpecSchema,
  conv2dSpecSchema,
  reluSpecSchema,
  softplusSpecSchema,
  sigmoidSpecSchema,
  tanhSpecSchema,
  smoothReluSpecSchema,
  maxPoolSpecSchema,
  avgPoolSpecSchema,
  smoothMaxPoolSpecSchema,
  batchNormSpecSchema,
  softmaxSpecSchema,
  flattenSpecSchema,
]);

/** A validated layer entry, defaults filled in. */
export type LayerSpec = z.output<typeof layerSpecSchema>;
/** A layer entry as written by a user (defaults optional). */
export type LayerSpecInput = z.input<typeof layerSpecSchema>;
/** The layer types chainopt knows. */
export type LayerType = LayerSpec["type"];
/** The spec of one layer type. */
export type LayerSpecOf<T extends LayerType> = Extract<LayerSpec, { type: T }>;

/**
 * Builds the component for a validated layer spec, given the shape of one input sample.
 * `field` names the spec entry (e.g. `layers[3]`) in error messages.
 */
export function createComponent(spec: LayerSpec, inputShape: readonly number[], field: string): Component {
  switch (spec.type) {
    case "dense":
      return new Dense(spec, inputShape, field);
    case "relu":
      return new Relu(spec, inputShape);
    case "softplus":
      return new Softplus(spec, inputShape);
    case "sigmoid":
      return new Sigmoid(spec, inputShape);
    case "tanh":
      return new Tanh(spec, inputShape);
    case "smoothRelu":
      return new SmoothRelu(spec, inputShape);
    case "flatten":
      return new Flatten(spec, inputShape);
    case "conv2d":
      return new Conv2d(spec, inputShape, field);
    case "maxPool2d":
      return new MaxPool2d(spec, inputShape, field);
    case "avgPool2d":
      return new AvgPool2d(spec, inputShape, field);
    case "smoothMaxPool2d":
      return new SmoothMaxPool2d(spec, inputShape, field);
    case "batchNorm":
      return new BatchNorm(spec, inputShape);
    case "softmax":
      return new Softmax(spec, inputShape);
    default: {
      // Exhaustive: a layer type added to the spec schema without a case here fails to compile.
      const unknown: never = spec;
      throw new Error(`${field}.type: unknown layer type "${(unknown as { type: string }).type}"`);
    }
  }
}
