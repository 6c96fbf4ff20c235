// The components of a chain: the interface every component implements, the registry that builds
// them from layer specs, and the smoothness constants of the nonlinear parts.

export { Biaffine, type BiaffineSpec } from "./biaffine.js";
export * from "./component.js";
export type { InitScheme } from "./init.js";
export { createComponent } from "./registry.js";
export { elementwiseConstants, identityConstants, maxWindowCoverage, type ScalarConstants } from "./smoothness.js";
