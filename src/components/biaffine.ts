import type { FloatArray } from "../core/dtype.js";
import type { Rng } from "../core/rng.js";
import { type ParamSpec, paramTable } from "./component.js";
import { type InitScheme, initBiaffine } from "./init.js";

/** The spec fields every bi-affine component has. */
export interface BiaffineSpec {
  readonly type: string;
  readonly bias: boolean;
  readonly init: InitScheme;
}

/**
 * Base of the bi-affine components b(x, u) = β(x, W) + βᵘ(b) (dense, conv2d; the bi-affine maps of
 * Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), Sec. II-A): the parameter
 * table (weights of `weightShape`, then one bias per output channel when `spec.bias`), the
 * initialization by fan-in, and no state. Subclasses hold the shapes, kernels and constants.
 */
export abstract class Biaffine<Spec extends BiaffineSpec> {
  readonly role = "biaffine" as const;
  readonly params: readonly ParamSpec[];
  readonly paramSize: number;
  readonly stateSize = 0;
  /** Entries of the weight block (it comes first in the parameter vector). */
  readonly weightSize: number;
  /** Inputs per output (dense: the input size; conv2d: C·kh·kw): the scale of the initialization. */
  readonly fanIn: number;

  /** `weightShape[0]` is the number of output channels (the bias length). */
  constructor(
    readonly spec: Spec,
    weightShape: readonly number[],
    fanIn: number,
  ) {
    this.params = paramTable(
      spec.bias
        ? [
            ["weight", weightShape],
            ["bias", [weightShape[0]]],
          ]
        : [["weight", weightShape]],
    );
    this.paramSize = this.params.reduce((s, p) => s + p.size, 0);
    this.weightSize = weightShape.reduce((a, b) => a * b, 1);
    this.fanIn = fanIn;
  }

  /** Weights and biases by the spec's scheme (init.ts), scaled by the fan-in. */
  initParams(params: FloatArray, rng: Rng): void {
    initBiaffine(this.spec.init, this.fanIn, params.subarray(0, this.weightSize), params.subarray(this.weightSize), rng);
  }

  initState(): void {}
}
