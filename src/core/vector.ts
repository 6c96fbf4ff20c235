import type { FloatArray } from "./dtype.js";
import { NATIVE_MIN_LENGTH } from "./kernels.js";
import { getDefaultBackend } from "./registry.js";

// Level-1 kernels on flat vectors, in plain TypeScript. `dot` (hence `norm2`) and `allFinite` hand
// long typed vectors to the default backend's BLAS dot when it has one: measured on a 670k-entry
// float32 gradient, OpenBLAS's dsdot takes about 0.05 ms where the scalar loop takes 0.5 ms.

/** ⟨x, y⟩ accumulated in float64. */
export function dot(x: ArrayLike<number>, y: ArrayLike<number>): number {
  // Long typed vectors of one precision: the default backend's BLAS dot (dsdot/ddot) when it has one.
  if (x.length >= NATIVE_MIN_LENGTH && (x instanceof Float32Array || x instanceof Float64Array) && y.length >= x.length) {
    const b = getDefaultBackend();
    if (b.dot && (x instanceof Float32Array ? y instanceof Float32Array : y instanceof Float64Array))
      return b.dot(x.length, x, y as FloatArray);
  }
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * y[i];
  return s;
}

/** Euclidean norm ‖x‖₂, accumulated in float64. */
export function norm2(x: ArrayLike<number>): number {
  return Math.sqrt(dot(x, x));
}

/** y ← y + a·x. */
export function axpy(a: number, x: ArrayLike<number>, y: FloatArray): void {
  for (let i = 0; i < y.length; i++) y[i] += a * x[i];
}

/** x ← a·x. */
export function scale(a: number, x: FloatArray): void {
  for (let i = 0; i < x.length; i++) x[i] *= a;
}

/** Largest absolute entry ‖x‖_∞. */
export function normInf(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    const a = Math.abs(x[i]);
    if (a > m) m = a;
  }
  return m;
}

/** True when every entry is finite. */
export function allFinite(x: ArrayLike<number>): boolean {
  // float32: Σ xᵢ² accumulated in float64 cannot overflow (xᵢ² < 1.2e77), so it is finite iff
  // every entry is: one BLAS dot instead of a branchy loop, on long vectors.
  if (x instanceof Float32Array && x.length >= NATIVE_MIN_LENGTH && getDefaultBackend().dot) return Number.isFinite(dot(x, x));
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) return false;
  return true;
}
