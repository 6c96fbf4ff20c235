import type { Backend } from "./backend.js";
import type { DType, FloatArray } from "./dtype.js";

// Level-1/2 kernels of a training step's hot paths (optimizer updates, bias rows and bias
// gradients), dispatched to the backend's optional BLAS methods (Backend.axpy, …) when it has
// them and the vectors are long enough for a native call to pay off, and to the portable loops
// below otherwise. Results agree up to rounding (BLAS may fuse multiply-adds and sum in another
// order); float32 dot products accumulate in float64 on both paths.

/**
 * Below this many entries the portable loop is used even when the backend has the kernel: a
 * native call costs about a microsecond, the loop about a nanosecond per entry.
 */
export const NATIVE_MIN_LENGTH = 2048;

/** y ← α·x + y on the first n entries. */
export function axpyInto(backend: Backend, n: number, alpha: number, x: FloatArray, y: FloatArray): void {
  if (backend.axpy && n >= NATIVE_MIN_LENGTH && sameKind(x, y)) backend.axpy(n, alpha, x, y);
  else for (let i = 0; i < n; i++) y[i] += alpha * x[i];
}

/** y ← α·x + β·y on the first n entries (β = 0 overwrites y, NaNs in y included). */
export function axpbyInto(backend: Backend, n: number, alpha: number, x: FloatArray, beta: number, y: FloatArray): void {
  if (backend.axpby && n >= NATIVE_MIN_LENGTH && sameKind(x, y)) backend.axpby(n, alpha, x, beta, y);
  else if (beta === 0) for (let i = 0; i < n; i++) y[i] = alpha * x[i];
  else for (let i = 0; i < n; i++) y[i] = alpha * x[i] + beta * y[i];
}

/**
 * out ← α·x + β·y on the first n entries across precisions (each of x, y, out float32 or float64;
 * they may be the same array): every entry is formed in float64 and rounded once to out's
 * precision, on both paths (the native kernel is this loop, bit for bit). For the second-order
 * steps' mixed vectors: a float64 gradient from a float32 one, a float64 direction applied to
 * float32 parameters.
 */
export function combineInto(backend: Backend, n: number, alpha: number, x: FloatArray, beta: number, y: FloatArray, out: FloatArray): void {
  const combine = backend.kernels?.combine;
  if (combine && n >= NATIVE_MIN_LENGTH) combine(n, alpha, x, beta, y, out);
  else for (let i = 0; i < n; i++) out[i] = alpha * x[i] + beta * y[i];
}

/** x ← α·x on the first n entries. */
export function scalInPlace(backend: Backend, n: number, alpha: number, x: FloatArray): void {
  if (backend.scal && n >= NATIVE_MIN_LENGTH) backend.scal(n, alpha, x);
  else for (let i = 0; i < n; i++) x[i] *= alpha;
}

/** ⟨x, y⟩ over the first n entries, accumulated in float64. */
export function dotOf(backend: Backend, n: number, x: FloatArray, y: FloatArray): number {
  if (backend.dot && n >= NATIVE_MIN_LENGTH && sameKind(x, y)) {
    const r = backend.dot(n, x, y);
    // OpenBLAS 0.3.21's dsdot (float32 in, double accumulation) forms each product in float32:
    // entries above ~1.8e19 overflow it to ±∞ although the double sum is finite. A non-finite
    // result is therefore recomputed below, where float32 products cannot overflow (< 1.2e77).
    if (Number.isFinite(r) || !(x instanceof Float32Array)) return r;
  }
  let s = 0;
  for (let i = 0; i < n; i++) s += x[i] * y[i];
  return s;
}

/** Euclidean norm ‖x‖₂ of the first n entries, accumulated in float64 (BLAS dot on long vectors). */
export function norm2Of(backend: Backend, n: number, x: FloatArray): number {
  return Math.sqrt(dotOf(backend, n, x, x));
}

/** True when every one of the first n entries of x is finite. */
export function allFiniteOf(backend: Backend, n: number, x: FloatArray): boolean {
  // A native backend's vectorized, multi-threaded test of the exponent bits.
  if (backend.kernels?.allFinite && n >= NATIVE_MIN_LENGTH) return backend.kernels.allFinite(n, x);
  // float32: Σ xᵢ² accumulated in float64 cannot overflow (xᵢ² < 1.2e77), so it is finite iff every
  // entry is: one BLAS dot instead of a branchy loop on long vectors (about 10× faster, measured
  // on a 670k-entry gradient).
  if (x instanceof Float32Array && backend.dot && n >= NATIVE_MIN_LENGTH) return Number.isFinite(backend.dot(n, x, x));
  for (let i = 0; i < n; i++) if (!Number.isFinite(x[i])) return false;
  return true;
}

/**
 * out[j] ← β·out[j] + Σ_i a[i·lda + j] for a rows×cols matrix a (column sums: aᵀ·1, a GEMV with
 * a vector of ones on the native backend).
 */
export function columnSums(backend: Backend, rows: number, cols: number, a: FloatArray, lda: number, beta: number, out: FloatArray): void {
  if (backend.gemv && rows * cols >= NATIVE_MIN_LENGTH && sameKind(a, out)) {
    backend.gemv(true, rows, cols, 1, a, lda, ones(kindOf(a), rows), beta, out);
    return;
  }
  if (beta === 0) for (let j = 0; j < cols; j++) out[j] = 0;
  else if (beta !== 1) for (let j = 0; j < cols; j++) out[j] *= beta;
  for (let i = 0; i < rows; i++) {
    const o = i * lda;
    for (let j = 0; j < cols; j++) out[j] += a[o + j];
  }
}

/**
 * out[i] ← β·out[i] + Σ_j a[i·lda + j] for a rows×cols matrix a (row sums: a·1, a GEMV with a
 * vector of ones on the native backend). Sums accumulate in float64 on the portable path.
 */
export function rowSums(backend: Backend, rows: number, cols: number, a: FloatArray, lda: number, beta: number, out: FloatArray): void {
  if (backend.gemv && rows * cols >= NATIVE_MIN_LENGTH && sameKind(a, out)) {
    backend.gemv(false, rows, cols, 1, a, lda, ones(kindOf(a), cols), beta, out);
    return;
  }
  for (let i = 0; i < rows; i++) {
    const o = i * lda;
    let s = 0;
    for (let j = 0; j < cols; j++) s += a[o + j];
    out[i] = beta === 0 ? s : beta * out[i] + s;
  }
}

/** y[i, :] ← v for each of the `rows` rows of y (row stride `ld`): native copies, for a bias before a β = 1 GEMM. */
export function fillRows(y: FloatArray, v: FloatArray, rows: number, ld: number): void {
  const m = v.length;
  if (m < 16) {
    for (let i = 0; i < rows; i++) for (let j = 0, o = i * ld; j < m; j++) y[o + j] = v[j];
    return;
  }
  // TypedArray.prototype.set with a same-type source is a memmove.
  for (let i = 0; i < rows; i++) y.set(v, i * ld);
}

function kindOf(a: FloatArray): DType {
  return a instanceof Float32Array ? "float32" : "float64";
}

/** Whether x and y have the same precision (both Float32Array or both Float64Array). */
export function sameKind(x: FloatArray, y: FloatArray): boolean {
  return x instanceof Float32Array ? y instanceof Float32Array : y instanceof Float64Array;
}

const onesCache: Record<DType, FloatArray> = { float32: new Float32Array(0), float64: new Float64Array(0) };

/** A vector of n ones (shared, read-only by convention: a view of one cached buffer per precision). */
export function ones(dtype: DType, n: number): FloatArray {
  let buf = onesCache[dtype];
  if (buf.length < n) {
    buf = dtype === "float32" ? new Float32Array(Math.max(n, 2 * buf.length)) : new Float64Array(Math.max(n, 2 * buf.length));
    buf.fill(1);
    onesCache[dtype] = buf;
  }
  return buf.length === n ? buf : buf.subarray(0, n);
}
