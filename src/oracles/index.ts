// First-order oracles: forward, value and gradient, VJP, JVP, and the gradient in the input.
export * from "./first-order.js";
export * from "./input-gradient.js";
