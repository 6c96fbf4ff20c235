import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Backend } from "../core/backend.js";
import type { FloatArray } from "../core/dtype.js";

/** The functions of the N-API addon `native/src/chainopt_blas.cc` (see the comments there). */
export interface NativeBlasBinding {
  readonly abi: number;
  readonly openblasVersion: string;
  sgemm(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: Float32Array,
    lda: number,
    b: Float32Array,
    ldb: number,
    beta: number,
    c: Float32Array,
    ldc: number,
  ): void;
  dgemm(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: Float64Array,
    lda: number,
    b: Float64Array,
    ldb: number,
    beta: number,
    c: Float64Array,
    ldc: number,
  ): void;
  // Level-1/2 (absent from addons built before they were added: NativeBackend then uses portable loops).
  saxpy?(n: number, alpha: number, x: Float32Array, y: Float32Array): void;
  daxpy?(n: number, alpha: number, x: Float64Array, y: Float64Array): void;
  saxpby?(n: number, alpha: number, x: Float32Array, beta: number, y: Float32Array): void;
  daxpby?(n: number, alpha: number, x: Float64Array, beta: number, y: Float64Array): void;
  sscal?(n: number, alpha: number, x: Float32Array): void;
  dscal?(n: number, alpha: number, x: Float64Array): void;
  /** float32 dot accumulated in double (cblas_dsdot). */
  sdot?(n: number, x: Float32Array, y: Float32Array): number;
  ddot?(n: number, x: Float64Array, y: Float64Array): number;
  sgemv?(
    trans: boolean,
    m: number,
    n: number,
    alpha: number,
    a: Float32Array,
    lda: number,
    x: Float32Array,
    beta: number,
    y: Float32Array,
  ): void;
  dgemv?(
    trans: boolean,
    m: number,
    n: number,
    alpha: number,
    a: Float64Array,
    lda: number,
    x: Float64Array,
    beta: number,
    y: Float64Array,
  ): void;
  sger?(m: number, n: number, alpha: number, x: Float32Array, y: Float32Array, a: Float32Array, lda: number): void;
  dger?(m: number, n: number, alpha: number, x: Float64Array, y: Float64Array, a: Float64Array, lda: number): void;
  /** Cholesky in place (lower triangle, upper zeroed); returns LAPACK's info (> 0: not positive definite). */
  dpotrf(n: number, a: Float64Array): number;
  dpotrs(n: number, l: Float64Array, b: Float64Array, nrhs: number): void;
  /** Eigenvalues into `w`; returns LAPACK's info (> 0: no convergence). */
  dsyevd(vectors: boolean, n: number, a: Float64Array, w: Float64Array): number;
  /** Returns LAPACK's info (> 0: singular). */
  dgesv(n: number, a: Float64Array, b: Float64Array, nrhs: number): number;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  getNumProcs(): number;
  getParallel(): number;
  getConfig(): string;
  getCorename(): string;
}

/** The interface version of the addon this code was written for (`kAbi` in chainopt_blas.cc). */
const ADDON_ABI = 1;

/** Details of the BLAS library behind a {@link NativeBackend}, for reports (`chainopt doctor`, benchmarks). */
export interface BlasInfo {
  library: "OpenBLAS";
  version: string;
  /** `openblas_get_config()`, e.g. `OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64`. */
  config: string;
  /** The kernel set OpenBLAS selected (`openblas_get_corename()`), e.g. `Haswell`, `Zen`, `SkylakeX`. */
  coreName: string;
  threads: number;
  /** 0 sequential, 1 pthreads, 2 OpenMP (`openblas_get_parallel()`). */
  parallel: "sequential" | "pthreads" | "openmp" | "unknown";
  /** Path of the loaded addon. */
  addonPath: string;
}

/** Backend over OpenBLAS through the N-API addon: s/dgemm, Cholesky (dpotrf), eigen (dsyevd), LU solve (dgetrf). */
export class NativeBackend implements Backend {
  readonly name = "openblas";

  constructor(
    private readonly binding: NativeBlasBinding,
    readonly addonPath: string,
  ) {}

  get threads(): number {
    return this.binding.getNumThreads();
  }

  setThreads(n: number): void {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`threads must be a positive integer, got ${n}`);
    this.binding.setNumThreads(n);
  }

  info(): BlasInfo {
    const config = this.binding.getConfig();
    const version = /OpenBLAS\s+(\S+)/.exec(config)?.[1] ?? this.binding.openblasVersion.trim().replace(/^OpenBLAS\s+/, "");
    const parallel = (["sequential", "pthreads", "openmp"] as const)[this.binding.getParallel()] ?? "unknown";
    return {
      library: "OpenBLAS",
      version,
      config,
      coreName: this.binding.getCorename(),
      threads: this.threads,
      parallel,
      addonPath: this.addonPath,
    };
  }

  describe(): string {
    const i = this.info();
    return `OpenBLAS ${i.version} via N-API (${i.config}; core ${i.coreName}; ${i.threads} thread${i.threads === 1 ? "" : "s"})`;
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
    // The addon checks types and sizes; a mix of precisions fails there with a TypeError naming the argument.
    if (c instanceof Float32Array)
      this.binding.sgemm(transA, transB, m, n, k, alpha, a as Float32Array, lda, b as Float32Array, ldb, beta, c, ldc);
    else this.binding.dgemm(transA, transB, m, n, k, alpha, a as Float64Array, lda, b as Float64Array, ldb, beta, c, ldc);
  }

  // Level-1/2 BLAS. Like gemm, the addon checks types and sizes. An addon built before these were
  // bound lacks them: then the portable loop runs (same results up to rounding).

  axpy(n: number, alpha: number, x: FloatArray, y: FloatArray): void {
    const b = this.binding;
    if (y instanceof Float32Array && b.saxpy) b.saxpy(n, alpha, x as Float32Array, y);
    else if (y instanceof Float64Array && b.daxpy) b.daxpy(n, alpha, x as Float64Array, y);
    else for (let i = 0; i < n; i++) y[i] += alpha * x[i];
  }

  axpby(n: number, alpha: number, x: FloatArray, beta: number, y: FloatArray): void {
    const b = this.binding;
    if (y instanceof Float32Array && b.saxpby) b.saxpby(n, alpha, x as Float32Array, beta, y);
    else if (y instanceof Float64Array && b.daxpby) b.daxpby(n, alpha, x as Float64Array, beta, y);
    else for (let i = 0; i < n; i++) y[i] = beta === 0 ? alpha * x[i] : alpha * x[i] + beta * y[i];
  }

  scal(n: number, alpha: number, x: FloatArray): void {
    const b = this.binding;
    if (x instanceof Float32Array && b.sscal) b.sscal(n, alpha, x);
    else if (x instanceof Float64Array && b.dscal) b.dscal(n, alpha, x);
    else for (let i = 0; i < n; i++) x[i] *= alpha;
  }

  dot(n: number, x: FloatArray, y: FloatArray): number {
    const b = this.binding;
    if (x instanceof Float32Array && b.sdot) return b.sdot(n, x, y as Float32Array);
    if (x instanceof Float64Array && b.ddot) return b.ddot(n, x, y as Float64Array);
    let s = 0;
    for (let i = 0; i < n; i++) s += x[i] * y[i];
    return s;
  }

  gemv(trans: boolean, m: number, n: number, alpha: number, a: FloatArray, lda: number, x: FloatArray, beta: number, y: FloatArray): void {
    const b = this.binding;
    if (y instanceof Float32Array && b.sgemv) b.sgemv(trans, m, n, alpha, a as Float32Array, lda, x as Float32Array, beta, y);
    else if (y instanceof Float64Array && b.dgemv) b.dgemv(trans, m, n, alpha, a as Float64Array, lda, x as Float64Array, beta, y);
    // GEMV is a GEMM with one column: op(A) (rows × cols) times x (cols × 1).
    else this.gemm(trans, false, trans ? n : m, 1, trans ? m : n, alpha, a, lda, x, 1, beta, y, 1);
  }

  ger(m: number, n: number, alpha: number, x: FloatArray, y: FloatArray, a: FloatArray, lda: number): void {
    const b = this.binding;
    if (a instanceof Float32Array && b.sger) b.sger(m, n, alpha, x as Float32Array, y as Float32Array, a, lda);
    else if (a instanceof Float64Array && b.dger) b.dger(m, n, alpha, x as Float64Array, y as Float64Array, a, lda);
    // A rank-one GEMM: x (m × 1) times yᵀ (1 × n), added to A.
    else this.gemm(false, false, m, n, 1, alpha, x, 1, y, n, 1, a, lda);
  }

  cholesky(a: Float64Array, n: number): boolean {
    return this.binding.dpotrf(n, a) === 0;
  }

  choleskySolve(l: Float64Array, n: number, b: Float64Array, nrhs: number): void {
    this.binding.dpotrs(n, l, b, nrhs);
  }

  symmetricEigen(a: Float64Array, n: number, vectors: boolean): Float64Array {
    const w = new Float64Array(n);
    const info = this.binding.dsyevd(vectors, n, a, w);
    if (info !== 0) throw new Error(`symmetricEigen: LAPACK dsyevd did not converge (info = ${info})`);
    return w;
  }

  solve(a: Float64Array, n: number, b: Float64Array, nrhs: number): boolean {
    return this.binding.dgesv(n, a, b, nrhs) === 0;
  }
}

/** The package root (the directory of chainopt's package.json), found upward from this module: works from `src/node` and `dist/src/node`. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "chainopt") return dir;
      } catch {
        // Not a readable package.json: keep going up.
      }
    }
    const parent = dirname(dir);
    if (parent === dir) return join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
    dir = parent;
  }
}

/** Where the addon is expected: `native/build/Release/chainopt_blas.node` under the package root. */
export function nativeAddonPath(): string {
  return join(packageRoot(), "native", "build", "Release", "chainopt_blas.node");
}

let cached: { backend: NativeBackend | null; error: string | null } | undefined;

/**
 * Why the last {@link loadNativeBackend} returned null: `not built` or the loader's error
 * (e.g. a missing libopenblas.so.0); null if it loaded.
 */
export function nativeLoadError(): string | null {
  return cached?.error ?? null;
}

/** Parses `CHAINOPT_THREADS`; undefined when unset or empty. */
export function threadsFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): number | undefined {
  const raw = env.CHAINOPT_THREADS?.trim();
  if (!raw) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`CHAINOPT_THREADS must be a positive integer, got '${raw}'`);
  return n;
}

/**
 * Loads the native OpenBLAS backend, or returns null if the addon is not built or does not load
 * ({@link nativeLoadError} says why). Loaded once per process; the thread count is set from
 * `CHAINOPT_THREADS` when that is set (otherwise OpenBLAS's own default: `OPENBLAS_NUM_THREADS` or all cores).
 */
export function loadNativeBackend(): NativeBackend | null {
  if (cached) return cached.backend;
  const threads = threadsFromEnv(); // A bad CHAINOPT_THREADS is an error, not a reason to fall back.
  const path = nativeAddonPath();
  if (!existsSync(path)) {
    cached = { backend: null, error: `not built (${path} is missing)` };
    return null;
  }
  try {
    const binding = createRequire(import.meta.url)(path) as NativeBlasBinding;
    if (binding.abi !== ADDON_ABI)
      throw new Error(`addon interface ${binding.abi}, expected ${ADDON_ABI}: rebuild it with \`npx chainopt build-native\``);
    const backend = new NativeBackend(binding, path);
    if (threads !== undefined) backend.setThreads(threads);
    cached = { backend, error: null };
  } catch (error) {
    cached = { backend: null, error: error instanceof Error ? error.message : String(error) };
  }
  return cached.backend;
}
