// The components of a chain: the interface every component implements, the registry that builds
// them from layer specs, and the smoothness constants of the nonlinear parts.
export * from "./component.js";
export { createComponent } from "./registry.js";
export { elementwiseConstants, identityConstants, maxWindowCoverage, type ScalarConstants } from "./smoothness.js";
