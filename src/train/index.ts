// Training: the high-level `fit`, the Trainer (mini-batches, NaN policy, averaging, early
// stopping, snapshots), evaluation, and the second-order methods as trainer steps.
export * from "./evaluate.js";
export * from "./fit.js";
export * from "./second-order.js";
export * from "./trainer.js";
