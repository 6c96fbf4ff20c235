import { z } from "zod";
import type { DType, FloatArray } from "../core/dtype.js";
import type { Component, ComponentContext, LayerIO } from "./component.js";
import { type InputBounds, identityConstants, type NonlinearConstants } from "./smoothness.js";

/** Spec schema of `{ type: "flatten" }` (no options). */
export const flattenSpecSchema = z.object({ type: z.literal("flatten") }).strict();
/** A validated `flatten` layer spec. */
export type FlattenSpec = z.output<typeof flattenSpecSchema>;

/**
 * Flatten `[C, H, W]` samples to `[C·H·W]` (row-major, the order PyTorch's nn.Flatten uses on
 * NCHW). The data is already laid out that way, so every pass is a copy.
 */
export class Flatten implements Component<null> {
  readonly type = "flatten";

  /** Smoothness constants (docs/certificates.md): a re-indexing of the coordinates, an isometry: the identity's. */
  smoothness(input: InputBounds): NonlinearConstants {
    return identityConstants(input);
  }
  readonly role = "reshape" as const;
  readonly outputShape: readonly number[];
  readonly inputSize: number;
  readonly outputSize: number;
  readonly params = [];
  readonly paramSize = 0;
  readonly stateSize = 0;

  constructor(
    readonly spec: FlattenSpec,
    readonly inputShape: readonly number[],
  ) {
    this.inputSize = inputShape.reduce((a, b) => a * b, 1);
    this.outputSize = this.inputSize;
    this.outputShape = [this.inputSize];
  }

  initParams(): void {}
  initState(): void {}
  createTape(_batch: number, _dtype: DType): null {
    return null;
  }
  forward(_ctx: ComponentContext, io: LayerIO<null>): void {
    io.y.set(io.x);
  }
  backward(_ctx: ComponentContext, _io: LayerIO<null>, dy: FloatArray, dx: FloatArray | null): void {
    dx?.set(dy);
  }
  jvp(_ctx: ComponentContext, _io: LayerIO<null>, dx: FloatArray | null, _dp: FloatArray | null, dy: FloatArray): void {
    if (dx) dy.set(dx);
    else dy.fill(0);
  }
  /** Linear: no curvature, the second-order backward is the backward of ddy. */
  backwardTangent(
    _ctx: ComponentContext,
    _io: LayerIO<null>,
    _dy: FloatArray,
    ddy: FloatArray,
    _dx: FloatArray | null,
    _dp: FloatArray | null,
    ddx: FloatArray | null,
  ): void {
    ddx?.set(ddy);
  }
}
