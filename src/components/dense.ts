import { z } from "zod";
import type { DType, FloatArray } from "../core/dtype.js";
import { columnSums, fillRows } from "../core/kernels.js";
import { Biaffine } from "./biaffine.js";
import { type Component, type ComponentContext, type LayerIO, SpecError } from "./component.js";
import type { BiaffineConstants, InputBounds } from "./smoothness.js";
import { initScheme, positiveInt } from "./spec-fields.js";

/** Spec schema of `{ type: "dense", units, bias, init }`. */
export const denseSpecSchema = z
  .object({ type: z.literal("dense"), units: positiveInt, bias: z.boolean().default(true), init: initScheme.default("he") })
  .strict();
/** A validated `dense` layer spec. */
export type DenseSpec = z.output<typeof denseSpecSchema>;

/**
 * Fully connected layer y = x Wᵀ + 1 bᵀ, the bi-affine map b(x, u) with u = (W, b)
 * (Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), Sec. II-A). W is stored `units × inputs` (PyTorch's Linear layout), then b.
 */
export class Dense extends Biaffine<DenseSpec> implements Component<null> {
  readonly type = "dense";

  /**
   * Smoothness constants (docs/certificates.md) of b(X, u) = X Wᵀ + 1 bᵀ on a batch X (N × n), u = (W, b):
   * - β(X, W) = X Wᵀ: ‖X Wᵀ‖_F ≤ ‖X‖_F ‖W‖₂ ≤ ‖X‖_F ‖W‖_F, so L_b = 1 (Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021),
   *   App. C-1 d, "L_full = 1"); equality for rank-one X and W, so it is exact.
   * - βᵘ(b) = 1 bᵀ: ‖1 bᵀ‖_F = √N ‖b‖, so lᵘ = √N (App. C-1 e, "ℓ_b = √m"; 0 without bias).
   * - βˣ = 0, β⁰ = 0. W and b are disjoint blocks of u.
   */
  smoothness(input: InputBounds): BiaffineConstants {
    return {
      kind: "biaffine",
      bilinear: 1,
      paramLipschitz: this.spec.bias ? Math.sqrt(input.batch) : 0,
      inputLipschitz: 0,
      valueAtZero: 0,
      disjointParamBlocks: true,
    };
  }
  readonly inputShape: readonly number[];
  readonly outputShape: readonly number[];
  readonly inputSize: number;
  readonly outputSize: number;

  constructor(spec: DenseSpec, inputShape: readonly number[], field = "dense") {
    if (inputShape.length !== 1) {
      throw new SpecError(field, `dense expects a flat input, got shape [${inputShape.join(", ")}]; insert {"type":"flatten"} before it`);
    }
    // W is `units × inputs` (PyTorch's Linear layout), then b; fan-in = inputs.
    super(spec, [spec.units, inputShape[0]], inputShape[0]);
    this.inputShape = inputShape;
    this.inputSize = inputShape[0];
    this.outputSize = spec.units;
    this.outputShape = [spec.units];
  }

  createTape(_batch: number, _dtype: DType): null {
    return null;
  }

  forward(ctx: ComponentContext, io: LayerIO<null>): void {
    const { x, y, params } = io;
    const n = this.inputSize;
    const m = this.outputSize;
    const nw = m * n;
    // y = 1 bᵀ + x Wᵀ (batch × m): the bias rows are copied in first (native row copies), then a
    // β = 1 GEMM adds x Wᵀ, so that no separate pass over y adds the bias.
    if (this.spec.bias) {
      fillRows(y, params.subarray(nw, nw + m), ctx.batch, m);
      ctx.backend.gemm(false, true, ctx.batch, m, n, 1, x, n, params, n, 1, y, m);
    } else ctx.backend.gemm(false, true, ctx.batch, m, n, 1, x, n, params, n, 0, y, m);
  }

  backward(ctx: ComponentContext, io: LayerIO<null>, dy: FloatArray, dx: FloatArray | null, dparams: FloatArray | null): void {
    const { x, params } = io;
    const n = this.inputSize;
    const m = this.outputSize;
    if (dparams) {
      // ∂⟨dy, xWᵀ + 1bᵀ⟩/∂W = dyᵀ x, ∂/∂b = dyᵀ 1.
      ctx.backend.gemm(true, false, m, n, ctx.batch, 1, dy, m, x, n, 0, dparams, n);
      // dyᵀ 1: a GEMV with ones on the native backend.
      if (this.spec.bias) columnSums(ctx.backend, ctx.batch, m, dy, m, 0, dparams.subarray(m * n, m * n + m));
    }
    // ∂/∂x = dy W.
    if (dx) ctx.backend.gemm(false, false, ctx.batch, n, m, 1, dy, m, params, n, 0, dx, n);
  }

  jvp(ctx: ComponentContext, io: LayerIO<null>, dx: FloatArray | null, dparams: FloatArray | null, dy: FloatArray): void {
    const { x, params } = io;
    const n = this.inputSize;
    const m = this.outputSize;
    // Bi-affine: dy = dx Wᵀ + x dWᵀ + 1 dbᵀ.
    let beta = 0;
    if (dx) {
      ctx.backend.gemm(false, true, ctx.batch, m, n, 1, dx, n, params, n, 0, dy, m);
      beta = 1;
    }
    if (dparams) {
      ctx.backend.gemm(false, true, ctx.batch, m, n, 1, x, n, dparams, n, beta, dy, m);
      if (this.spec.bias) addRowVector(dy, dparams.subarray(m * n, m * n + m), ctx.batch);
      beta = 1;
    }
    if (beta === 0) dy.fill(0);
  }

  /**
   * Second-order backward of the bilinear map (Component.backwardTangent). From backward,
   * dx = dy W and (dW, db) = (dyᵀ x, dyᵀ 1); differentiating along (dx, dW, db) and ddy gives the
   * bilinear cross terms (the only second derivatives of a bi-affine map, Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (long version with appendices) Sec. 2.3):
   * ddx = ddy W + dy dW, ddW = ddyᵀ x + dyᵀ dx, ddb = ddyᵀ 1.
   */
  backwardTangent(
    ctx: ComponentContext,
    io: LayerIO<null>,
    dy: FloatArray,
    ddy: FloatArray,
    dx: FloatArray | null,
    dparams: FloatArray | null,
    ddx: FloatArray | null,
    ddparams: FloatArray | null,
  ): void {
    const { x, params } = io;
    const n = this.inputSize;
    const m = this.outputSize;
    const b = ctx.batch;
    if (ddx) {
      ctx.backend.gemm(false, false, b, n, m, 1, ddy, m, params, n, 0, ddx, n);
      if (dparams) ctx.backend.gemm(false, false, b, n, m, 1, dy, m, dparams, n, 1, ddx, n);
    }
    if (ddparams) {
      ctx.backend.gemm(true, false, m, n, b, 1, ddy, m, x, n, 0, ddparams, n);
      if (dx) ctx.backend.gemm(true, false, m, n, b, 1, dy, m, dx, n, 1, ddparams, n);
      if (this.spec.bias) sumRows(ddy, b, m, ddparams.subarray(m * n, m * n + m));
    }
  }
}

/** y[i, :] += v for each of the `rows` rows of y. */
export function addRowVector(y: FloatArray, v: FloatArray, rows: number): void {
  const m = v.length;
  for (let i = 0; i < rows; i++) {
    const o = i * m;
    for (let j = 0; j < m; j++) y[o + j] += v[j];
  }
}

/** out[j] = Σ_i a[i, j] for a `rows × cols` matrix a. */
export function sumRows(a: FloatArray, rows: number, cols: number, out: FloatArray): void {
  out.fill(0);
  for (let i = 0; i < rows; i++) {
    const o = i * cols;
    for (let j = 0; j < cols; j++) out[j] += a[o + j];
  }
}
