import type { Backend } from "../core/backend.js";
import type { DType, FloatArray } from "../core/dtype.js";

/** Timing of one GEMM shape C(m×n) = A(m×k)·B(k×n) on a backend. */
export interface GemmTiming {
  m: number;
  k: number;
  n: number;
  dtype: DType;
  /** Timed repetitions (after one warm-up call). */
  reps: number;
  /** Fastest repetition, milliseconds. */
  bestMs: number;
  /** Median repetition, milliseconds. */
  medianMs: number;
  /** 2mnk / best time. */
  bestGflops: number;
  /** 2mnk / median time. */
  medianGflops: number;
}

/** Options of {@link timeGemm}. */
export interface GemmTimingOptions {
  /** At least this many timed repetitions (default 5). */
  minReps?: number;
  /** At most this many (default 200). */
  maxReps?: number;
  /** Keep repeating until this much time is spent, milliseconds (default 200). */
  minTimeMs?: number;
  /** Transposes (default: none). */
  transA?: boolean;
  transB?: boolean;
}

function filled(dtype: DType, length: number, seed: number): FloatArray {
  const out = dtype === "float32" ? new Float32Array(length) : new Float64Array(length);
  // xorshift32: a cheap deterministic fill in [−1, 1).
  let s = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s / 2147483648 - 1;
  }
  return out;
}

/**
 * Times C ← A·B (row-major, β = 0) on `backend`: one warm-up call, then repetitions until both
 * `minReps` and `minTimeMs` are reached (or `maxReps`). GFLOP/s counts 2mnk flops per product.
 */
export function timeGemm(backend: Backend, m: number, k: number, n: number, dtype: DType, options: GemmTimingOptions = {}): GemmTiming {
  const minReps = options.minReps ?? 5;
  const maxReps = Math.max(minReps, options.maxReps ?? 200);
  const minTimeMs = options.minTimeMs ?? 200;
  const transA = options.transA ?? false;
  const transB = options.transB ?? false;
  const a = filled(dtype, m * k, 1);
  const b = filled(dtype, k * n, 2);
  const c = filled(dtype, m * n, 3);
  const lda = transA ? m : k;
  const ldb = transB ? k : n;
  const run = () => backend.gemm(transA, transB, m, n, k, 1, a, lda, b, ldb, 0, c, n);
  run();
  const times: number[] = [];
  let total = 0;
  while (times.length < maxReps && (times.length < minReps || total < minTimeMs)) {
    const t0 = process.hrtime.bigint();
    run();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    times.push(ms);
    total += ms;
  }
  times.sort((x, y) => x - y);
  const bestMs = times[0];
  const mid = times.length >> 1;
  const medianMs = times.length % 2 ? times[mid] : (times[mid - 1] + times[mid]) / 2;
  const flops = 2 * m * n * k;
  return { m, k, n, dtype, reps: times.length, bestMs, medianMs, bestGflops: flops / bestMs / 1e6, medianGflops: flops / medianMs / 1e6 };
}
