/** Floating-point element types supported by chainopt. */
export type DType = "float32" | "float64";

/** A contiguous array of floating-point numbers of either precision. */
export type FloatArray = Float32Array | Float64Array;

/** Allocates a zero-filled array of the given precision. */
export function allocate(dtype: DType, length: number): FloatArray {
  return dtype === "float32" ? new Float32Array(length) : new Float64Array(length);
}

/** The precision of an array. */
export function dtypeOf(array: FloatArray): DType {
  return array instanceof Float32Array ? "float32" : "float64";
}

/** Copies `source` into a new array of precision `dtype`. */
export function convert(source: ArrayLike<number>, dtype: DType): FloatArray {
  const out = allocate(dtype, source.length);
  for (let i = 0; i < source.length; i++) out[i] = source[i];
  return out;
}

/** Number of elements of a shape. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Formats a shape as `3x32x32`. */
export function formatShape(shape: readonly number[]): string {
  return shape.join("x");
}
