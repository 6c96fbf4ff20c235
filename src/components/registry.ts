import type { LayerSpec } from "../chain/spec.js";
import { AvgPool2d } from "./avg-pool.js";
import { BatchNorm } from "./batch-norm.js";
import type { Component } from "./component.js";
import { Conv2d } from "./conv2d.js";
import { Dense } from "./dense.js";
import { Flatten } from "./flatten.js";
import { MaxPool2d } from "./max-pool.js";
import { Relu } from "./relu.js";
import { Sigmoid } from "./sigmoid.js";
import { SmoothMaxPool2d } from "./smooth-max-pool.js";
import { SmoothRelu } from "./smooth-relu.js";
import { Softmax } from "./softmax.js";
import { Softplus } from "./softplus.js";
import { Tanh } from "./tanh.js";

/**
 * Builds the component for a validated layer spec, given the shape of one input sample.
 * `field` names the spec entry (e.g. `layers[3]`) in error messages. Adding a component is adding
 * its file and one case here.
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
