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
  /**
   * Optional level-1/2 kernels (the native backend binds BLAS's; callers use the portable loops of
   * `src/core/kernels.ts` when a backend lacks them). Vectors are contiguous; `n` entries are used.
   * All arrays of one call share one precision.
   */
  /** y ← α·x + y. */
  axpy?(n: number, alpha: number, x: FloatArray, y: FloatArray): void;
  /** y ← α·x + β·y; β = 0 overwrites y. */
  axpby?(n: number, alpha: number, x: FloatArray, beta: number, y: FloatArray): void;
  /** x ← α·x. */
  scal?(n: number, alpha: number, x: FloatArray): void;
  /** ⟨x, y⟩, accumulated in float64 whatever the precision. */
  dot?(n: number, x: FloatArray, y: FloatArray): number;
  /**
   * y ← α·op(A)·x + β·y with A row-major m×n (row stride lda), op(A) = Aᵀ when `trans`; β = 0
   * overwrites y.
   */
  gemv?(trans: boolean, m: number, n: number, alpha: number, a: FloatArray, lda: number, x: FloatArray, beta: number, y: FloatArray): void;
  /** A ← α·x·yᵀ + A, A row-major m×n (row stride lda). */
  ger?(m: number, n: number, alpha: number, x: FloatArray, y: FloatArray, a: FloatArray, lda: number): void;
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
