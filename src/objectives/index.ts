// Losses f(ψ(w)) and regularized objectives F(w) = f(ψ(w)) + λ/2 ‖w‖².
export type { Batch } from "./batch.js";
export { LogisticLoss } from "./logistic.js";
export * from "./loss.js";
export * from "./objective.js";
export { SquaredLoss } from "./squared.js";
