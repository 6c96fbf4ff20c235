import type { Chain } from "../chain/chain.js";
import { requireSecondOrder } from "./curvature.js";
import type { SecondOrderMethod } from "./stepper.js";

// Whether a second-order method applies to a model, loss and batch size, and whether its work
// memory fits: checked before a run allocates anything (`chainopt train --optimizer
// gauss-newton|ggn|newton`, docs/second-order.md). Errors name the method and the flag to change.

/** The second-order methods of `--optimizer`. */
export const SECOND_ORDER_METHODS = ["gauss-newton", "ggn", "newton"] as const;

/** True for a second-order method's name. */
export function isSecondOrderMethod(name: string): name is SecondOrderMethod {
  return (SECOND_ORDER_METHODS as readonly string[]).includes(name);
}

/** Largest work memory a second-order step may ask for before the run is refused. */
export const SECOND_ORDER_MEMORY_LIMIT = 2 * 1024 ** 3;
const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GiB`;

/**
 * Estimated work memory (bytes) of one step of the method on a batch of `batch` samples:
 * Newton by dynamic programming stores per component the dense stage matrices A (b × a), B (b × ρ)
 * and the second derivatives ((a + ρ)²), a = N·inputSize, b = N·outputSize, ρ its parameters
 * (newton-dp.ts), in float64; Gauss-Newton and GGN the q × q Gram matrix (float64), its Cholesky
 * factor and a scratch copy, q = N × outputs (gram.ts).
 */
export function secondOrderWorkBytes(method: SecondOrderMethod, chain: Chain, batch: number): number {
  if (method === "newton") {
    let bytes = 0;
    for (const c of chain.components) {
      const a = batch * c.inputSize;
      const b = batch * c.outputSize;
      bytes += 8 * (b * a + b * c.paramSize + (a + c.paramSize) ** 2);
    }
    return bytes;
  }
  const q = batch * chain.outputSize;
  return 3 * 8 * q * q;
}

/**
 * Checks that the method applies to the model and loss (GGN: squared loss; Newton: every component
 * has a second-order backward) and that its work memory at this batch size stays under
 * {@link SECOND_ORDER_MEMORY_LIMIT}. Throws an error naming the method and the flag to change.
 */
export function checkSecondOrderBudget(method: SecondOrderMethod, chain: Chain, options: { loss: string; batch: number }): void {
  const what = `optimizer ${method}`;
  const { loss, batch: n } = options;
  if (method === "ggn" && loss !== "squared") {
    throw new Error(
      `${what}: Gram-Gauss-Newton is defined for regression with the squared loss (--loss squared), got --loss ${loss}; use --optimizer gauss-newton for the ${loss} loss`,
    );
  }
  if (method === "newton") {
    try {
      requireSecondOrder(chain, what);
    } catch {
      const first = Math.max(
        0,
        chain.components.findIndex((c) => c.paramSize > 0),
      );
      const i = chain.components.findIndex((c, j) => j >= first && typeof c.backwardTangent !== "function");
      const c = chain.components[i];
      throw new Error(
        `${what}: component layers[${i}] (${c.type}) has no second-order backward, so the Newton step does not apply to this model; use --optimizer gauss-newton`,
      );
    }
  }
  const bytes = secondOrderWorkBytes(method, chain, n);
  if (bytes <= SECOND_ORDER_MEMORY_LIMIT) return;
  if (method === "newton") {
    throw new Error(
      `${what}: the Newton step by dynamic programming stores dense stage matrices, about ${gib(bytes)} for this model at batch ${n} (limit ${gib(SECOND_ORDER_MEMORY_LIMIT)}); use a smaller --batch-size or model, or --optimizer gauss-newton`,
    );
  }
  const q = n * chain.outputSize;
  throw new Error(
    `${what}: the ${q} × ${q} Gram matrix (batch ${n} × ${chain.outputSize} outputs) needs about ${gib(bytes)} (limit ${gib(SECOND_ORDER_MEMORY_LIMIT)}); use a smaller --batch-size`,
  );
}
