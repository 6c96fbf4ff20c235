import { type Chain, componentContext } from "../chain/chain.js";
import { allocate, type FloatArray } from "../core/dtype.js";
import type { Batch } from "../objectives/batch.js";
import type { Loss } from "../objectives/loss.js";
import { runForward } from "./first-order.js";

// The input-gradient oracle: ∇_x f(ψ(x, w)) for a loss f of the chain's output, by one forward pass
// and one backward pass that propagates the slope through every component's input VJP and skips
// the parameter VJPs (the attacks of src/adversarial need dx only). The regularizer r(w) does not
// depend on x and is left out.

/** Options of {@link lossInputGradient}. */
export interface InputGradientOptions {
  /** Non-trainable state (batch-norm running statistics), read in evaluation mode. */
  state?: FloatArray;
  /** Training mode (batch statistics); default false: attacks run on the evaluation-mode network. */
  training?: boolean;
  /** Buffer receiving ∇_x (`batch.size × inputSize`; allocated when absent). */
  dx?: FloatArray;
}

/** Result of {@link lossInputGradient}. */
export interface InputGradient {
  /** f(ψ(x, w)), the batch-mean loss. */
  loss: number;
  /** ∇_x f(ψ(x, w)) (`size × inputSize`). */
  dx: FloatArray;
  /** The chain's output (workspace view, valid until the next oracle call on this batch size). */
  output: FloatArray;
}

/**
 * Loss and its gradient with respect to the input x of the chain, at parameters w:
 * ∇_x f(ψ(x, w)) = (∂ψ/∂x)ᵀ ∇f(ψ), the output slope ∇f carried back through the components' VJPs
 * (Roulet & Harchaoui, "An Elementary Approach…" (Allerton 2019), Sec. 3, Alg. 1, with the input as the variable).
 */
export function lossInputGradient(
  chain: Chain,
  loss: Loss,
  w: FloatArray,
  batch: Batch,
  options: InputGradientOptions = {},
): InputGradient {
  const training = options.training ?? false;
  const n = batch.size;
  const ws = runForward(chain, w, batch.x, n, training, options.state, false);
  const k = chain.components.length;
  const output = ws.activations[k];
  let dy = ws.slopes[0].subarray(0, output.length);
  const value = loss.evaluate(output, batch, chain.outputSize, dy);
  const dx = options.dx ?? allocate(chain.dtype, n * chain.inputSize);
  if (dx.length !== n * chain.inputSize) throw new Error(`dx: expected ${n} × ${chain.inputSize} values, got ${dx.length}`);
  const ctx = componentContext(chain, n, training, false);
  let which = 0;
  for (let i = k - 1; i >= 0; i--) {
    const c = chain.components[i];
    const io = ws.io[i];
    io.params = chain.paramBlock(w, i);
    const target = i === 0 ? dx : ws.slopes[1 - which].subarray(0, n * c.inputSize);
    c.backward(ctx, io, dy, target, null);
    dy = target;
    which = 1 - which;
  }
  return { loss: value, dx, output };
}
