import type { Backend } from "../core/backend.js";
import type { FloatArray } from "../core/dtype.js";
import { portableBackend } from "../core/portable.js";

// Small dense linear algebra for the second-order oracles, in float64, through the backend's
// optional LAPACK-style methods (native OpenBLAS/LAPACK when registered) with the portable
// implementations as fallback.

/** Lower Cholesky factor of the SPD n×n matrix `a` (in place); false when not positive definite. */
export function choleskyInPlace(backend: Backend, a: Float64Array, n: number): boolean {
  if (n === 0) return true;
  if (backend.cholesky) return backend.cholesky(a, n);
  return (portableBackend.cholesky as NonNullable<Backend["cholesky"]>)(a, n);
}

/** Solves L Lᵀ X = B in place of B (n × nrhs) given the factor from {@link choleskyInPlace}. */
export function choleskySolveInPlace(backend: Backend, l: Float64Array, n: number, b: Float64Array, nrhs = 1): void {
  if (n === 0) return;
  if (backend.choleskySolve) backend.choleskySolve(l, n, b, nrhs);
  else (portableBackend.choleskySolve as NonNullable<Backend["choleskySolve"]>)(l, n, b, nrhs);
}

/** Solves A X = B (general square A, destroyed) in place of B; false when singular. */
export function solveInPlace(backend: Backend, a: Float64Array, n: number, b: Float64Array, nrhs = 1): boolean {
  if (n === 0) return true;
  if (backend.solve) return backend.solve(a, n, b, nrhs);
  return (portableBackend.solve as NonNullable<Backend["solve"]>)(a, n, b, nrhs);
}

/** Eigen-decomposition of a symmetric n×n matrix (eigenvectors as rows of `a` on return). */
export function symmetricEigenInPlace(backend: Backend, a: Float64Array, n: number): Float64Array {
  if (backend.symmetricEigen) return backend.symmetricEigen(a, n, true);
  return (portableBackend.symmetricEigen as NonNullable<Backend["symmetricEigen"]>)(a, n, true);
}

/**
 * Symmetric positive semi-definite square root S = V diag(√max(μ, 0)) Vᵀ of a symmetric PSD k×k
 * block h (so that S Sᵀ = S² = h), written to `out`. Diagonal blocks (the squared loss) skip the
 * eigen-decomposition.
 */
export function psdSqrt(backend: Backend, h: Float64Array, k: number, out: Float64Array): void {
  let diagonal = true;
  for (let i = 0; i < k && diagonal; i++) for (let j = 0; j < k; j++) if (i !== j && h[i * k + j] !== 0) diagonal = false;
  out.fill(0);
  if (diagonal) {
    for (let i = 0; i < k; i++) out[i * k + i] = Math.sqrt(Math.max(h[i * k + i], 0));
    return;
  }
  const a = Float64Array.from(h);
  const values = symmetricEigenInPlace(backend, a, k);
  // a's row r is the eigenvector of values[r]: S = Σ_r √μ_r v_r v_rᵀ.
  for (let r = 0; r < k; r++) {
    const s = Math.sqrt(Math.max(values[r], 0));
    if (s === 0) continue;
    for (let i = 0; i < k; i++) {
      const vi = s * a[r * k + i];
      for (let j = 0; j < k; j++) out[i * k + j] += vi * a[r * k + j];
    }
  }
  // Symmetrize against rounding.
  for (let i = 0; i < k; i++)
    for (let j = i + 1; j < k; j++) {
      const m = 0.5 * (out[i * k + j] + out[j * k + i]);
      out[i * k + j] = m;
      out[j * k + i] = m;
    }
}

/** A copy of `x` as float64. */
export function toFloat64(x: ArrayLike<number>): Float64Array {
  return x instanceof Float64Array ? Float64Array.from(x) : Float64Array.from(x as ArrayLike<number>);
}

/** Copies `src` into `dst` (any precisions). */
export function copyInto(dst: FloatArray, src: ArrayLike<number>): void {
  if ((dst instanceof Float64Array && src instanceof Float64Array) || (dst instanceof Float32Array && src instanceof Float32Array)) {
    dst.set(src);
  } else for (let i = 0; i < dst.length; i++) dst[i] = src[i];
}
