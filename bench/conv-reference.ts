// The oneDNN-only reference of the ConvNet preset's convolutions (bench/anchors.ts,
// bench/dnn-layouts.ts): the bare primitives called through the addon's plain entries, without
// the chain.
import type { NativeBlasBinding } from "../src/node/native-backend.js";

/** The ConvNet preset's convolutions at `batch`, as the addon's geometry arrays [N, C, H, W, F, OH, OW, KH, KW, SH, SW, PH, PW]. */
export function convnetConvGeometries(batch: number): Int32Array[] {
  return [Int32Array.of(batch, 3, 32, 32, 32, 32, 32, 3, 3, 1, 1, 1, 1), Int32Array.of(batch, 32, 16, 16, 64, 16, 16, 3, 3, 1, 1, 1, 1)];
}

/**
 * The convolutions `geometries` on the addon's plain entries (reorders at each call's edges):
 * forward + backward-weights + backward-data of each, the first one's backward-data only with
 * `firstBackwardData` (a training step computes no input gradient below its first layer with
 * parameters), as a closure; null for an addon without oneDNN. Operands are allocated here once.
 */
export function convReference(raw: NativeBlasBinding, geometries: Int32Array[], firstBackwardData: boolean): (() => void) | null {
  if (!raw.dnnConvForward || !raw.dnnConvBackwardData || !raw.dnnConvBackwardWeights) return null;
  const layers = geometries.map((g) => {
    const [n, c, h, w, f, oh, ow, kh, kw] = g;
    const fill = (len: number) => Float32Array.from({ length: len }, (_, i) => Math.sin(i));
    return {
      g,
      x: fill(n * c * h * w),
      w: fill(f * c * kh * kw),
      bias: fill(f),
      y: new Float32Array(n * f * oh * ow),
      dx: new Float32Array(n * c * h * w),
      dw: new Float32Array(f * c * kh * kw),
      db: new Float32Array(f),
    };
  });
  return () => {
    layers.forEach((t, i) => {
      raw.dnnConvForward!(t.g, t.x, t.w, t.bias, t.y);
      raw.dnnConvBackwardWeights!(t.g, t.x, t.y, t.dw, t.db);
      if (i > 0 || firstBackwardData) raw.dnnConvBackwardData!(t.g, t.y, t.w, t.dx);
    });
  };
}
