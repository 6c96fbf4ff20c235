// Second-order oracles on chains: curvature products, Gauss-Newton (dual reference and Gram fast
// path), Gram-Gauss-Newton, Newton by dynamic programming, and a stepping API. See docs/second-order.md.

export {
  checkSecondOrderBudget,
  isSecondOrderMethod,
  SECOND_ORDER_MEMORY_LIMIT,
  SECOND_ORDER_METHODS,
  secondOrderWorkBytes,
} from "./budget.js";
export { gaussNewtonVectorProduct, hessianVectorProduct, requireSecondOrder } from "./curvature.js";
export * from "./distributed.js";
export {
  type GaussNewtonImplementation,
  type GaussNewtonOptions,
  type GaussNewtonSubproblem,
  gaussNewtonDirection,
  gaussNewtonStep,
  prepareGaussNewton,
} from "./gauss-newton.js";
export { type GgnOptions, type GgnSubproblem, ggnStep, prepareGgn } from "./ggn.js";
export { empiricalNtk, type GramInfo, type GramOptions, gramFromWorkspace, type OutputFactor, structuredGramApplies } from "./gram.js";
export { Linearization, lossHessianBlocks, type SecondOrderOptions } from "./linearize.js";
export { NewtonNotPositiveDefiniteError, type NewtonSubproblem, newtonDirection, newtonStep, prepareNewton } from "./newton-dp.js";
export { type NtkSpectrum, ntkSpectrum } from "./ntk-spectrum.js";
export {
  createSecondOrderStepper,
  type SecondOrderMethod,
  type SecondOrderState,
  type SecondOrderStepper,
  type SecondOrderStepperOptions,
  type SecondOrderStepResult,
} from "./stepper.js";
