// Optimizers as composable gradient transformations (Optax style), schedules and training utilities.

export * from "./adaptive.js";
export * from "./aliases.js";
export * from "./armijo.js";
export * from "./averaging.js";
export * from "./clipping.js";
export * from "./early-stopping.js";
export * from "./line-search.js";
export * from "./momentum.js";
export * from "./options.js";
export * from "./schedules.js";
export * from "./state.js";
export * from "./transform.js";
export * from "./weight-decay.js";
