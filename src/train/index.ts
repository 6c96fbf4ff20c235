// Training: the high-level `fit`, the Trainer (mini-batches, NaN policy, averaging, early
// stopping, snapshots), evaluation, and the second-order methods as trainer steps.

// Clustering metrics, observed orders of convergence, curvature and NTK diagnostics (docs/diagnostics.md),
// and data-parallel training over a collective (docs/distributed.md).
export * from "./cluster-metrics.js";
export * from "./convergence-order.js";
export * from "./data-parallel.js";
export * from "./diagnostics.js";
export * from "./evaluate.js";
export * from "./fit.js";
export * from "./second-order.js";
export * from "./trainer.js";
