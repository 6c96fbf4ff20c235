// chainopt: the portable core (no Node-only imports). Node-only pieces live in `chainopt/node`.

export * from "./certify/index.js";
export * from "./chain/chain.js";
export * from "./chain/presets.js";
export * from "./chain/spec.js";
export * from "./components/component.js";
export { createComponent } from "./components/registry.js";
export { elementwiseConstants, identityConstants, maxWindowCoverage, type ScalarConstants } from "./components/smoothness.js";
export type { Backend } from "./core/backend.js";
export * from "./core/dtype.js";
export { PortableBackend, portableBackend } from "./core/portable.js";

export * from "./core/rng.js";
export * from "./core/vector.js";
export * from "./data/dataset.js";
export * from "./data/sklearn-csv.js";
export * from "./data/synthetic.js";
export { AutoencoderLoss } from "./objectives/autoencoder.js";
export type { Batch } from "./objectives/batch.js";
export * from "./objectives/clustering.js";
export { LogisticLoss } from "./objectives/logistic.js";
export * from "./objectives/loss.js";
export * from "./objectives/objective.js";
export { SquaredLoss } from "./objectives/squared.js";
export * from "./optim/index.js";
export * from "./oracles/first-order.js";
export * from "./report/plots.js";
export * from "./report/schema.js";
export * from "./second-order/index.js";
export * from "./smoothing/index.js";
export * from "./train/cluster-metrics.js";
export * from "./train/convergence-order.js";
export * from "./train/diagnostics.js";
