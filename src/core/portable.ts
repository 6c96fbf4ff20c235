import type { Backend } from "./backend.js";
import type { FloatArray } from "./dtype.js";

/**
 * Pure TypeScript backend: correct everywhere (browser included), about 1–3 GFLOP/s.
 * Loop orders keep the innermost loop contiguous in memory for each transpose case.
 */
export class PortableBackend implements Backend {
  readonly name = "portable";
  readonly threads = 1;

  describe(): string {
    // How to get the native backend is said once by bestBackend (src/node) when it is unavailable, not when chosen.
    return "portable TypeScript kernels (1 thread)";
  }

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
  ): void {
    for (let i = 0; i < m; i++) {
      const ci = i * ldc;
      if (beta === 0) for (let j = 0; j < n; j++) c[ci + j] = 0;
      else if (beta !== 1) for (let j = 0; j < n; j++) c[ci + j] *= beta;
    }
    if (m === 0 || n === 0 || k === 0 || alpha === 0) return;
    if (!transA && !transB) {
      // C[i,:] += α A[i,p] B[p,:]
      for (let i = 0; i < m; i++) {
        const ci = i * ldc;
        const ai = i * lda;
        for (let p = 0; p < k; p++) {
          const s = alpha * a[ai + p];
          if (s === 0) continue;
          const bp = p * ldb;
          for (let j = 0; j < n; j++) c[ci + j] += s * b[bp + j];
        }
      }
    } else if (!transA && transB) {
      // C[i,j] += α ⟨A[i,:], B[j,:]⟩
      for (let i = 0; i < m; i++) {
        const ci = i * ldc;
        const ai = i * lda;
        for (let j = 0; j < n; j++) {
          const bj = j * ldb;
          let s = 0;
          for (let p = 0; p < k; p++) s += a[ai + p] * b[bj + p];
          c[ci + j] += alpha * s;
        }
      }
    } else if (transA && !transB) {
      // C[i,:] += α A[p,i] B[p,:], iterating p outermost for contiguous rows of A and B.
      for (let p = 0; p < k; p++) {
        const ap = p * lda;
        const bp = p * ldb;
        for (let i = 0; i < m; i++) {
          const s = alpha * a[ap + i];
          if (s === 0) continue;
          const ci = i * ldc;
          for (let j = 0; j < n; j++) c[ci + j] += s * b[bp + j];
        }
      }
    } else {
      // C[i,j] += α Σ_p A[p,i] B[j,p]
      for (let i = 0; i < m; i++) {
        const ci = i * ldc;
        for (let j = 0; j < n; j++) {
          const bj = j * ldb;
          let s = 0;
          for (let p = 0; p < k; p++) s += a[p * lda + i] * b[bj + p];
          c[ci + j] += alpha * s;
        }
      }
    }
  }

  cholesky(a: Float64Array, n: number): boolean {
    // Cholesky–Banachiewicz, lower triangle, row-major: L[i,j] = (A[i,j] − Σ_{p<j} L[i,p]L[j,p]) / L[j,j].
    for (let i = 0; i < n; i++) {
      for (let j = 0; j <= i; j++) {
        let s = a[i * n + j];
        for (let p = 0; p < j; p++) s -= a[i * n + p] * a[j * n + p];
        if (i === j) {
          if (!(s > 0)) return false;
          a[i * n + i] = Math.sqrt(s);
        } else a[i * n + j] = s / a[j * n + j];
      }
      for (let j = i + 1; j < n; j++) a[i * n + j] = 0;
    }
    return true;
  }

  solveSpdShifted(a: Float64Array, n: number, shift: number, b: Float64Array): boolean {
    // Cholesky–Banachiewicz of A + shift·I read from the upper triangle (A[i,j] = a[j,i], j < i):
    // L's strictly lower part written to the strictly lower triangle, its diagonal kept apart (the
    // diagonal of `a` is A's); then L y = b, Lᵀ x = y.
    const d = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j <= i; j++) {
        let s = i === j ? a[i * n + i] + shift : a[j * n + i];
        for (let p = 0; p < j; p++) s -= a[i * n + p] * a[j * n + p];
        if (i === j) {
          if (!(s > 0)) return false;
          d[i] = Math.sqrt(s);
        } else a[i * n + j] = s / d[j];
      }
    }
    for (let i = 0; i < n; i++) {
      let s = b[i];
      for (let p = 0; p < i; p++) s -= a[i * n + p] * b[p];
      b[i] = s / d[i];
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = b[i];
      for (let p = i + 1; p < n; p++) s -= a[p * n + i] * b[p];
      b[i] = s / d[i];
    }
    return true;
  }

  syrk(
    upper: boolean,
    trans: boolean,
    n: number,
    k: number,
    alpha: number,
    a: FloatArray,
    lda: number,
    beta: number,
    c: FloatArray,
    ldc: number,
  ): void {
    // C[i,j] = α Σ_p op(A)[i,p] op(A)[j,p] + β C[i,j] for j ≥ i (upper) or j ≤ i (lower).
    for (let i = 0; i < n; i++) {
      const j0 = upper ? i : 0;
      const j1 = upper ? n : i + 1;
      for (let j = j0; j < j1; j++) {
        let s = 0;
        if (trans) for (let p = 0; p < k; p++) s += a[p * lda + i] * a[p * lda + j];
        else for (let p = 0; p < k; p++) s += a[i * lda + p] * a[j * lda + p];
        c[i * ldc + j] = beta === 0 ? alpha * s : alpha * s + beta * c[i * ldc + j];
      }
    }
  }

  gramHadamard(
    q: number,
    cols: number,
    batch: number,
    bias: number,
    t: FloatArray,
    p: FloatArray,
    g: Float64Array,
    accumulate: boolean,
  ): void {
    for (let r = 0; r < q; r++) {
      const si = Math.floor(r / cols);
      let c = r;
      for (let sj = si; sj < batch; sj++) {
        const f = p[si * batch + sj] + bias;
        const c1 = (sj + 1) * cols;
        for (; c < c1; c++) g[r * q + c] = (accumulate ? g[r * q + c] : 0) + t[r * q + c] * f;
      }
    }
  }

  choleskySolve(l: Float64Array, n: number, b: Float64Array, nrhs: number): void {
    for (let r = 0; r < nrhs; r++) {
      // Forward substitution L y = b, then back substitution Lᵀ x = y, column r of B.
      for (let i = 0; i < n; i++) {
        let s = b[i * nrhs + r];
        for (let p = 0; p < i; p++) s -= l[i * n + p] * b[p * nrhs + r];
        b[i * nrhs + r] = s / l[i * n + i];
      }
      for (let i = n - 1; i >= 0; i--) {
        let s = b[i * nrhs + r];
        for (let p = i + 1; p < n; p++) s -= l[p * n + i] * b[p * nrhs + r];
        b[i * nrhs + r] = s / l[i * n + i];
      }
    }
  }

  solve(a: Float64Array, n: number, b: Float64Array, nrhs: number): boolean {
    // Gaussian elimination with partial pivoting.
    for (let col = 0; col < n; col++) {
      let piv = col;
      for (let i = col + 1; i < n; i++) if (Math.abs(a[i * n + col]) > Math.abs(a[piv * n + col])) piv = i;
      if (a[piv * n + col] === 0) return false;
      if (piv !== col) {
        for (let j = 0; j < n; j++) [a[col * n + j], a[piv * n + j]] = [a[piv * n + j], a[col * n + j]];
        for (let j = 0; j < nrhs; j++) [b[col * nrhs + j], b[piv * nrhs + j]] = [b[piv * nrhs + j], b[col * nrhs + j]];
      }
      const d = a[col * n + col];
      for (let i = col + 1; i < n; i++) {
        const f = a[i * n + col] / d;
        if (f === 0) continue;
        for (let j = col; j < n; j++) a[i * n + j] -= f * a[col * n + j];
        for (let j = 0; j < nrhs; j++) b[i * nrhs + j] -= f * b[col * nrhs + j];
      }
    }
    for (let i = n - 1; i >= 0; i--) {
      for (let j = 0; j < nrhs; j++) {
        let s = b[i * nrhs + j];
        for (let p = i + 1; p < n; p++) s -= a[i * n + p] * b[p * nrhs + j];
        b[i * nrhs + j] = s / a[i * n + i];
      }
    }
    return true;
  }

  symmetricEigen(a: Float64Array, n: number, vectors: boolean): Float64Array {
    // Cyclic Jacobi rotations (Golub & Van Loan, Alg. 8.5.3): simple and accurate for the
    // small matrices the portable backend is used with.
    const v = new Float64Array(n * n);
    for (let i = 0; i < n; i++) v[i * n + i] = 1;
    for (let sweep = 0; sweep < 100; sweep++) {
      let off = 0;
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off += a[i * n + j] ** 2;
      if (off < 1e-30) break;
      for (let p = 0; p < n; p++) {
        for (let q = p + 1; q < n; q++) {
          const apq = a[p * n + q];
          if (Math.abs(apq) < 1e-300) continue;
          const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
          const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
          const cs = 1 / Math.sqrt(t * t + 1);
          const sn = t * cs;
          for (let r = 0; r < n; r++) {
            const arp = a[r * n + p];
            const arq = a[r * n + q];
            a[r * n + p] = cs * arp - sn * arq;
            a[r * n + q] = sn * arp + cs * arq;
          }
          for (let r = 0; r < n; r++) {
            const apr = a[p * n + r];
            const aqr = a[q * n + r];
            a[p * n + r] = cs * apr - sn * aqr;
            a[q * n + r] = sn * apr + cs * aqr;
          }
          for (let r = 0; r < n; r++) {
            const vrp = v[r * n + p];
            const vrq = v[r * n + q];
            v[r * n + p] = cs * vrp - sn * vrq;
            v[r * n + q] = sn * vrp + cs * vrq;
          }
        }
      }
    }
    const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => a[i * n + i] - a[j * n + j]);
    const values = Float64Array.from(order, (i) => a[i * n + i]);
    if (vectors) {
      // Row r of `a` on return holds the eigenvector of values[r] (column order[r] of V).
      for (let r = 0; r < n; r++) for (let i = 0; i < n; i++) a[r * n + i] = v[i * n + order[r]];
    }
    return values;
  }
}

/** The shared portable backend instance. */
export const portableBackend: Backend = new PortableBackend();
