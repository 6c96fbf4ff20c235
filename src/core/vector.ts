import type { FloatArray } from "./dtype.js";

// Level-1 kernels on flat vectors, in plain TypeScript, for any array-like. The backend-aware
// versions for long typed vectors (BLAS dot, native finiteness checks) are `dotOf`, `norm2Of` and
// `allFiniteOf` in `kernels.ts`: they take the backend explicitly.

/** ⟨x, y⟩ accumulated in float64. */
export function dot(x: ArrayLike<number>, y: ArrayLike<number>): number {
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
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) return false;
  return true;
}
