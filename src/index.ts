// chainopt: the portable core (no Node-only imports). Node-only pieces live in `chainopt/node`.
//
// The essentials are exported by name (chains, model specs, backends, `fit`); everything else is
// grouped in namespaces, one per layer of the library (docs/api.md):
//
//   import { createChain, fit, objectives, optim, presets } from "chainopt";
//   const chain = createChain(presets.mlp({ widths: [64] }), { backend: portableBackend });
//   await fit(chain, data, { objective: objectives.createObjective("logistic"), optimizer: optim.adam({ lr: 1e-3 }), ... });

/** Attacks (FGSM, PGD), adversarial training and certified input-space robustness (docs/adversarial.md). */
export * as adversarial from "./adversarial/index.js";
/** Certified smoothness constants, step sizes and empirical witnesses. */
export * as certify from "./certify/index.js";
// --- The essentials ---------------------------------------------------------------------------
export { Chain, type ChainLayer, type ChainOptions, ChainWorkspace, createChain } from "./chain/chain.js";
/** Preset model specs (mlp, convnet, vgg16). */
export * as presets from "./chain/presets.js";
export {
  type LayerSpec,
  type LayerSpecInput,
  type LayerSpecOf,
  type LayerType,
  layerSpecSchema,
  type ModelSpec,
  ModelSpecError,
  type ModelSpecInput,
  modelSpecSchema,
  parseModelSpec,
} from "./chain/spec.js";
/** The components of a chain: interface, registry, smoothness constants. */
export * as components from "./components/index.js";
export type { Backend } from "./core/backend.js";
export type { DType, FloatArray } from "./core/dtype.js";
// --- Namespaces, bottom to top ----------------------------------------------------------------
/** Element types, precision conversion and the portable backend's building blocks. */
export * as core from "./core/index.js";
export { PortableBackend, portableBackend } from "./core/portable.js";
export { Rng, type RngState } from "./core/rng.js";
/** Vector operations on flat parameter vectors (dot, norms, axpy, …). */
export * as vector from "./core/vector.js";
export type { Dataset } from "./data/dataset.js";
/** Data sets in memory, mini-batches, standardization, sklearn CSV parsers, synthetic data. */
export * as data from "./data/index.js";
export type { Batch } from "./objectives/batch.js";
/** Losses and regularized objectives. */
export * as objectives from "./objectives/index.js";
export type { Objective } from "./objectives/objective.js";
/** Optax-style optimizers (gradient transformations), schedules, clipping, averaging, early stopping. */
export * as optim from "./optim/index.js";
/** First-order oracles: forward, value and gradient, VJP, JVP. */
export * as oracles from "./oracles/index.js";
/** Per-layer report records and plot specifications (Vega-Lite, CSV). */
export * as report from "./report/index.js";
/** Second-order oracles and steps: Gauss-Newton, Gram-Gauss-Newton, Newton by dynamic programming. */
export * as secondOrder from "./second-order/index.js";
/** Automatic smoothing of non-smooth chains with a certificate. */
export * as smoothing from "./smoothing/index.js";
export { type FitCallbacks, type FitOptions, type FitResult, fit } from "./train/fit.js";
/** Training: fit, the Trainer, evaluation, second-order steppers. */
export * as train from "./train/index.js";
export type { EpochRecord, StepProgress, TrainData } from "./train/trainer.js";
