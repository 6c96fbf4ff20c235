import type { FloatArray } from "../core/dtype.js";
import type { Rng } from "../core/rng.js";

/**
 * Weight initializations for bi-affine components, by fan-in (inputs per output):
 * - `he`: N(0, 2/fan_in) (He et al., 2015), suited to ReLU chains; biases 0.
 * - `lecun`: N(0, 1/fan_in) (LeCun et al., 1998), suited to tanh/sigmoid; biases 0.
 * - `torch`: U(±1/√fan_in) for weights and biases, PyTorch's default for Linear/Conv2d.
 */
export type InitScheme = "he" | "lecun" | "torch";

/** Fills `weights` and `bias` (may be empty) according to `scheme`. */
export function initBiaffine(scheme: InitScheme, fanIn: number, weights: FloatArray, bias: FloatArray, rng: Rng): void {
  if (scheme === "torch") {
    const bound = 1 / Math.sqrt(fanIn);
    for (let i = 0; i < weights.length; i++) weights[i] = rng.uniformIn(-bound, bound);
    for (let i = 0; i < bias.length; i++) bias[i] = rng.uniformIn(-bound, bound);
    return;
  }
  const std = Math.sqrt((scheme === "he" ? 2 : 1) / fanIn);
  for (let i = 0; i < weights.length; i++) weights[i] = std * rng.normal();
  bias.fill(0);
}
