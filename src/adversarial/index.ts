// Adversarial attacks, adversarial training and certified robustness (docs/adversarial.md).
export * from "./attack.js";
export * from "./lipschitz.js";
export * from "./report.js";
export * from "./training.js";
