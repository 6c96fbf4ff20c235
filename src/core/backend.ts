import type { FloatArray } from "./dtype.js";

/**
 * The numeric kernels a chain needs, behind one interface so that the portable TypeScript
 * implementation and the native BLAS binding are interchangeable.
 *
 * Matrices are row-major. `a`, `b`, `c` may be subarray views; all three share one precision.
 */
export interface Backend {
  /** Short name, e.g. `portable` or `openblas`. */
  readonly name: string;
  /** A sentence describing the implementation (library, version, threads). */
  describe(): string;
  /**
   * General matrix product C ← α·op(A)·op(B) + β·C with op(X) = X or Xᵀ, C of size m×n,
   * op(A) m×k, op(B) k×n; lda/ldb/ldc are the row strides of the stored matrices.
   * When β = 0, C is overwritten (NaNs in C are not propagated), as in BLAS.
   */
  gemm(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: FloatArray,
    lda: number,
    b: FloatArray,
    ldb: number,
    beta: number,
    c: FloatArray,
    ldc: number,
  ): void;
  /** Number of threads the backend computes with. */
  readonly threads: number;
  /** Sets the number of threads, where the backend supports it. */
  setThreads?(n: number): void;
  /**
   * Cholesky factorization in place of the lower triangle of a symmetric positive definite n×n
   * matrix (row-major). Returns false if the matrix is not positive definite.
   */
  cholesky?(a: Float64Array, n: number): boolean;
  /** Solves L Lᵀ X = B in place of B (n×nrhs, row-major) given the factor from {@link Backend.cholesky}. */
  choleskySolve?(l: Float64Array, n: number, b: Float64Array, nrhs: number): void;
  /** Eigenvalues (ascending) and, if wanted, eigenvectors (rows of `a` on return) of a symmetric n×n matrix. */
  symmetricEigen?(a: Float64Array, n: number, vectors: boolean): Float64Array;
  /** Solves A X = B for general square A (n×n) in place of B (n×nrhs); returns false if singular. */
  solve?(a: Float64Array, n: number, b: Float64Array, nrhs: number): boolean;
}
