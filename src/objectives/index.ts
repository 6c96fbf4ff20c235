// Losses f(ψ(w)) and regularized objectives F(w) = f(ψ(w)) + λ/2 ‖w‖².

// Unsupervised objectives (docs/unsupervised.md).
export { AutoencoderLoss } from "./autoencoder.js";
export type { Batch } from "./batch.js";
export * from "./clustering.js";
export { LogisticLoss } from "./logistic.js";
export * from "./loss.js";
export * from "./objective.js";
export { SquaredLoss } from "./squared.js";
