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

/**
 * Solves (A + shift·I) x = b in place of b (float64, one right-hand side) for the symmetric n×n A
 * given by its upper triangle (row-major, diagonal included); the upper triangle and the diagonal
 * are unchanged on return, the strictly lower triangle is workspace. Native backend:
 * spdSolveMixed, LAPACK dsposv's algorithm (single-precision Cholesky, double-precision iterative
 * refinement to a backward error at double-precision level, double Cholesky as fallback; Buttari
 * et al., "Mixed precision iterative refinement techniques for the solution of dense linear
 * systems", IJHPCA 21(4), 2007); a backend with only `cholesky` gets it on a full copy; else the
 * portable Cholesky. Returns false when A + shift·I is not positive definite.
 */
export function solveSpdShiftedInPlace(backend: Backend, a: Float64Array, n: number, shift: number, b: Float64Array): boolean {
  if (n === 0) return true;
  if (backend.solveSpdShifted) return backend.solveSpdShifted(a, n, shift, b);
  if (backend.cholesky) {
    const l = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = i; j < n; j++) l[i * n + j] = l[j * n + i] = a[i * n + j] + (i === j ? shift : 0);
    if (!backend.cholesky(l, n)) return false;
    choleskySolveInPlace(backend, l, n, b, 1);
    return true;
  }
  return portableBackend.solveSpdShifted?.(a, n, shift, b) ?? false;
}

/** Block edge of {@link transposeUpperToLower} (64 × 64 float64 = 32 KiB). */
const BLOCK = 64;

/** a[r, c] ← a[c, r] for c < r: the strictly upper triangle of the row-major n×n `a` copied onto the lower one, cache-blocked. */
export function transposeUpperToLower(a: Float64Array, n: number): void {
  for (let r0 = 0; r0 < n; r0 += BLOCK) {
    const r1 = Math.min(n, r0 + BLOCK);
    for (let c0 = 0; c0 <= r0; c0 += BLOCK) {
      const c1 = Math.min(n, c0 + BLOCK);
      for (let r = r0; r < r1; r++) {
        const cEnd = Math.min(c1, r);
        for (let c = c0; c < cEnd; c++) a[r * n + c] = a[c * n + r];
      }
    }
  }
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
 * A factor S (k × k, row-major, written to `out`) with S Sᵀ = h for a symmetric PSD k × k block h,
 * by Cholesky with diagonal pivoting (Higham, "Accuracy and Stability of Numerical Algorithms",
 * Sec. 10.3): column j of S is the pivot column of the remaining Schur complement over the square
 * root of its pivot; pivots ≤ k·ε·max diag(h) end the factorization (rank-deficient blocks, e.g.
 * the logistic loss Hessian diag(p) − p pᵀ of rank k − 1 leave zero columns). Not symmetric.
 * Returns the rank (the number of non-zero leading columns).
 */
export function psdFactor(h: Float64Array, k: number, out: Float64Array): number {
  const a = h.slice(0, k * k);
  out.fill(0);
  let maxDiag = 0;
  for (let i = 0; i < k; i++) maxDiag = Math.max(maxDiag, a[i * k + i]);
  const tol = k * 2.220446049250313e-16 * maxDiag;
  const done = new Uint8Array(k);
  for (let j = 0; j < k; j++) {
    let piv = -1;
    let best = tol;
    for (let i = 0; i < k; i++)
      if (!done[i] && a[i * k + i] > best) {
        best = a[i * k + i];
        piv = i;
      }
    if (piv < 0) return j;
    done[piv] = 1;
    const s = 1 / Math.sqrt(best);
    for (let i = 0; i < k; i++) out[i * k + j] = done[i] && i !== piv ? 0 : a[i * k + piv] * s;
    for (let r = 0; r < k; r++) {
      if (done[r] && r !== piv) continue;
      const lr = out[r * k + j];
      if (lr === 0) continue;
      for (let c = 0; c < k; c++) a[r * k + c] -= lr * out[c * k + j];
    }
  }
  return k;
}

/** A copy of `x` as float64. */
export function toFloat64(x: ArrayLike<number>): Float64Array {
  return new Float64Array(x as ArrayLike<number>);
}

/** Copies `src` into `dst` (any precisions). */
export function copyInto(dst: FloatArray, src: ArrayLike<number>): void {
  if ((dst instanceof Float64Array && src instanceof Float64Array) || (dst instanceof Float32Array && src instanceof Float32Array)) {
    dst.set(src);
  } else for (let i = 0; i < dst.length; i++) dst[i] = src[i];
}
