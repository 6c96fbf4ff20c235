import type { LayerSpec } from "../chain/spec.js";
import type { Component } from "./component.js";
import { Dense } from "./dense.js";
import { Flatten } from "./flatten.js";
import { Relu } from "./relu.js";
import { Sigmoid } from "./sigmoid.js";
import { SmoothRelu } from "./smooth-relu.js";
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
    default:
      throw new Error(`${field}.type: layer type "${spec.type}" is not implemented yet`);
  }
}
