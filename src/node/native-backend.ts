import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type {
  ActivationLayout,
  Backend,
  BatchNormGeometry,
  ConvGeometry,
  DnnPrimitives,
  ElementwiseKernels,
  PoolWindowGeometry,
} from "../core/backend.js";
import type { FloatArray } from "../core/dtype.js";
import { portableBackend } from "../core/portable.js";

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
  /** Mixed-precision SPD solve of the row-major lower triangle (absent from older addons). */
  spdSolveMixed?(n: number, a: Float64Array, shift: number, b: Float64Array): { info: number; iter: number };
  ssyrk?(
    upper: boolean,
    trans: boolean,
    n: number,
    k: number,
    alpha: number,
    a: Float32Array,
    lda: number,
    beta: number,
    c: Float32Array,
    ldc: number,
  ): void;
  dsyrk?(
    upper: boolean,
    trans: boolean,
    n: number,
    k: number,
    alpha: number,
    a: Float64Array,
    lda: number,
    beta: number,
    c: Float64Array,
    ldc: number,
  ): void;
  sgramHadamard?(
    q: number,
    cols: number,
    batch: number,
    bias: number,
    t: Float32Array,
    p: Float32Array,
    g: Float64Array,
    accumulate: boolean,
  ): void;
  dgramHadamard?(
    q: number,
    cols: number,
    batch: number,
    bias: number,
    t: Float64Array,
    p: Float64Array,
    g: Float64Array,
    accumulate: boolean,
  ): void;
  /** Eigenvalues into `w`; returns LAPACK's info (> 0: no convergence). */
  dsyevd(vectors: boolean, n: number, a: Float64Array, w: Float64Array): number;
  /** Returns LAPACK's info (> 0: singular). */
  dgesv(n: number, a: Float64Array, b: Float64Array, nrhs: number): number;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  getNumProcs(): number;
  getParallel(): number;
  /** OpenBLAS's and OpenMP's configured thread counts and `openblas_get_parallel()` (absent from older addons). */
  getThreadCounts?(): { openblas: number; openmp: number; parallel: number };
  /** The file of the OpenBLAS library the loader picked ("" when unknown; absent from older addons). */
  getBlasLibrary?(): string;
  getConfig(): string;
  getCorename(): string;
  // Element-wise kernels (native/src/chainopt_kernels.cc; absent from older addons).
  adamUpdate?: ElementwiseKernels["adam"];
  rmsUpdate?: ElementwiseKernels["rms"];
  rssUpdate?: ElementwiseKernels["rss"];
  momentumUpdate?: ElementwiseKernels["momentum"];
  reluForward?: ElementwiseKernels["reluForward"];
  reluBackward?: ElementwiseKernels["reluBackward"];
  logisticLoss?: ElementwiseKernels["logistic"];
  addFinite?: ElementwiseKernels["addFinite"];
  allFinite?: ElementwiseKernels["allFinite"];
  sgdApply?: ElementwiseKernels["sgdApply"];
  clipValue?: ElementwiseKernels["clipValue"];
  averageUpdate?: ElementwiseKernels["averageUpdate"];
  combine?: ElementwiseKernels["combine"];
  getOmpThreads?(): number;
  /** The sizes under which GEMMs (multiply-adds), level-1/2 BLAS and the element-wise kernels (entries) run on one thread; with an array, sets them first (bench/thresholds.ts). Absent from older addons. */
  serialThresholds?(set?: [number, number, number]): [number, number, number];
  /** The instruction set of the element-wise loops ("avx2" or "baseline"); with a name, switches first (absent from older addons). */
  kernelIsa?(name?: "avx2" | "baseline"): "avx2" | "baseline";
  // oneDNN (native/src/chainopt_dnn.cc): present only when the addon was built with oneDNN.
  readonly dnnlVersion?: string;
  // The trailing layouts (0 NCHW, 8 nChw8c, 16 nChw16c) are accepted by addons that have dnnActivationBlock.
  dnnConvForward?(g: Int32Array, x: Float32Array, w: Float32Array, b: Float32Array | null, y: Float32Array, xl?: number, yl?: number): void;
  dnnConvBackwardData?(g: Int32Array, dy: Float32Array, w: Float32Array, dx: Float32Array, xl?: number, yl?: number): void;
  dnnConvBackwardWeights?(
    g: Int32Array,
    x: Float32Array,
    dy: Float32Array,
    dw: Float32Array,
    db: Float32Array | null,
    xl?: number,
    yl?: number,
  ): void;
  dnnPoolWorkspaceBytes?(g: Int32Array, max: boolean, xl?: number): number;
  dnnPoolForward?(g: Int32Array, max: boolean, x: Float32Array, y: Float32Array, ws: Uint8Array | null, xl?: number, yl?: number): void;
  dnnPoolBackward?(g: Int32Array, max: boolean, dy: Float32Array, dx: Float32Array, ws: Uint8Array | null, xl?: number, yl?: number): void;
  /** The blocked activation layout oneDNN's convolutions pick here (16, 8 or 0); absent from addons without layout arguments. */
  dnnActivationBlock?(): number;
  /** Batch normalization: geometry [N, C, S], flags (1 running statistics, 2 affine), ε. */
  dnnBatchNormForward?(
    g: Int32Array,
    flags: number,
    epsilon: number,
    x: Float32Array,
    scale: Float32Array | null,
    shift: Float32Array | null,
    mean: Float32Array,
    variance: Float32Array,
    y: Float32Array,
    layout?: number,
  ): void;
  dnnBatchNormBackward?(
    g: Int32Array,
    flags: number,
    epsilon: number,
    x: Float32Array,
    dy: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    scale: Float32Array | null,
    shift: Float32Array | null,
    dx: Float32Array | null,
    dscale: Float32Array | null,
    dshift: Float32Array | null,
    layout?: number,
  ): void;
  /** The implementation oneDNN chose for a convolution (0 forward, 1 backward-data, 2 backward-weights), e.g. `jit:avx2`. */
  dnnConvImpl?(g: Int32Array, which: number): string;
  /**
   * Benchmark only (bench/dnn-layouts.ts): the convolution primitives timed on tensors in their own
   * (blocked) layouts, through the plain entries' path, and each reorder that path pays; medians over
   * `reps` alternating rounds, ms. Absent without oneDNN and from older addons.
   */
  dnnConvLayoutBench?(g: Int32Array, reps: number): DnnLayoutBenchResult;
  /** Benchmark only: max pooling and oneDNN's ReLU on nchw and on nChw`block`c, and the reorders between them, ms. */
  dnnPoolLayoutBench?(g: Int32Array, reps: number, block: 8 | 16): DnnLayoutBenchResult;
}

/**
 * What the addon's layout benchmarks return: the layouts in oneDNN's notation (e.g. `nChw16c`,
 * `OIhw16i16o`) by "pass.tensor" or side, oneDNN's implementation by pass (convolutions), and median
 * times in ms by name ("blocked.forward", "plain.forward", "reorder.forward.dst", …).
 */
export interface DnnLayoutBenchResult {
  readonly layouts: Readonly<Record<string, string>>;
  readonly impl?: Readonly<Record<string, string>>;
  readonly ms: Readonly<Record<string, number>>;
}

/** Which optional native paths a {@link NativeBackend} uses (both default to "when the addon has them"). */
export interface NativePaths {
  /** oneDNN convolution, pooling and batch normalization (float32). */
  dnn?: boolean;
  /** Multi-threaded element-wise kernels (optimizer updates, ReLU). */
  kernels?: boolean;
  /**
   * Blocked activation layouts between consecutive oneDNN layers in forward and gradient passes
   * (src/chain/layouts.ts; same results bit for bit, fewer reorders). Default: when the addon
   * accepts layouts and oneDNN is used; `CHAINOPT_DNN_LAYOUTS=0` turns them off for the loaded backend.
   */
  layouts?: boolean;
}

/** `[N, C, H, W, F, OH, OW, KH, KW, SH, SW, PH, PW]`, the addon's convolution geometry. */
export function convGeometryArray(g: ConvGeometry): Int32Array {
  return Int32Array.of(g.batch, g.inC, g.inH, g.inW, g.outC, g.outH, g.outW, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw);
}

/** `[N, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW]`, the addon's pooling geometry. */
export function poolGeometryArray(g: PoolWindowGeometry): Int32Array {
  return Int32Array.of(g.batch, g.c, g.h, g.w, g.oh, g.ow, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw);
}

/** `[N, C, S]`, the addon's batch-norm geometry. */
export function batchNormGeometryArray(g: BatchNormGeometry): Int32Array {
  return Int32Array.of(g.batch, g.channels, g.spatial);
}

/** The addon's batch-norm flags: 1 = running statistics (evaluation mode), 2 = affine (γ, β given). */
function batchNormFlags(training: boolean, affine: boolean): number {
  return (training ? 0 : 1) | (affine ? 2 : 0);
}

/**
 * oneDNN requires the last window to end exactly at the padded border: right padding
 * (out − 1)·stride + kernel − in − pad ≥ 0. It is negative when floor mode drops input rows
 * (e.g. a 2-wide window, stride 2, on 5 rows): those geometries stay on the portable kernels.
 */
function rightPaddingOk(input: number, output: number, kernel: number, stride: number, pad: number): boolean {
  return (output - 1) * stride + kernel - input - pad >= 0;
}

/** The oneDNN primitives of an addon built with oneDNN. */
function dnnPrimitives(b: NativeBlasBinding, layouts: boolean): DnnPrimitives | undefined {
  const { dnnConvForward, dnnConvBackwardData, dnnConvBackwardWeights, dnnPoolWorkspaceBytes, dnnPoolForward, dnnPoolBackward } = b;
  if (!b.dnnlVersion || !dnnConvForward || !dnnConvBackwardData || !dnnConvBackwardWeights) return undefined;
  if (!dnnPoolWorkspaceBytes || !dnnPoolForward || !dnnPoolBackward) return undefined;
  const { dnnBatchNormForward: bnForward, dnnBatchNormBackward: bnBackward } = b;
  // Blocked activations between oneDNN layers (src/chain/layouts.ts), when the addon accepts layouts.
  const block = b.dnnActivationBlock && layouts ? b.dnnActivationBlock() : 0;
  const activationBlock: ActivationLayout | 0 = block === 8 || block === 16 ? block : 0;
  // Batch-norm entries: absent from addons built before them (the component then stays on TypeScript).
  const batchNorm: Pick<DnnPrimitives, "batchNormForward" | "batchNormBackward"> =
    bnForward && bnBackward
      ? {
          batchNormForward: (g, training, eps, x, scale, shift, mean, variance, y, layout = 0) =>
            bnForward(batchNormGeometryArray(g), batchNormFlags(training, scale !== null), eps, x, scale, shift, mean, variance, y, layout),
          batchNormBackward: (g, training, eps, x, dy, mean, variance, scale, shift, dx, dscale, dshift, layout = 0) =>
            bnBackward(
              batchNormGeometryArray(g),
              batchNormFlags(training, scale !== null),
              eps,
              x,
              dy,
              mean,
              variance,
              scale,
              shift,
              dx,
              dscale,
              dshift,
              layout,
            ),
        }
      : {};
  return {
    ...batchNorm,
    description: `oneDNN ${b.dnnlVersion}`,
    supportsConv: (g) => g.batch > 0 && rightPaddingOk(g.inH, g.outH, g.kh, g.sh, g.ph) && rightPaddingOk(g.inW, g.outW, g.kw, g.sw, g.pw),
    supportsPool: (g) => g.batch > 0 && rightPaddingOk(g.h, g.oh, g.kh, g.sh, g.ph) && rightPaddingOk(g.w, g.ow, g.kw, g.sw, g.pw),
    ...(activationBlock ? { activationBlock } : {}),
    convForward: (g, x, w, bias, y, xl = 0, yl = 0) => dnnConvForward(convGeometryArray(g), x, w, bias, y, xl, yl),
    convBackwardData: (g, dy, w, dx, xl = 0, yl = 0) => dnnConvBackwardData(convGeometryArray(g), dy, w, dx, xl, yl),
    convBackwardWeights: (g, x, dy, dw, db, xl = 0, yl = 0) => dnnConvBackwardWeights(convGeometryArray(g), x, dy, dw, db, xl, yl),
    poolWorkspaceBytes: (g, max, xl = 0) => dnnPoolWorkspaceBytes(poolGeometryArray(g), max, xl),
    poolForward: (g, max, x, y, ws, xl = 0, yl = 0) => dnnPoolForward(poolGeometryArray(g), max, x, y, ws, xl, yl),
    poolBackward: (g, max, dy, dx, ws, xl = 0, yl = 0) => dnnPoolBackward(poolGeometryArray(g), max, dy, dx, ws, xl, yl),
  };
}

/** The element-wise kernels of an addon that has them. */
function elementwiseKernels(b: NativeBlasBinding): ElementwiseKernels | undefined {
  const {
    adamUpdate,
    rmsUpdate,
    rssUpdate,
    momentumUpdate,
    reluForward,
    reluBackward,
    logisticLoss,
    addFinite,
    allFinite,
    sgdApply,
    clipValue,
    averageUpdate,
    combine,
  } = b;
  if (!adamUpdate || !rmsUpdate || !rssUpdate || !momentumUpdate || !reluForward || !reluBackward) return undefined;
  const kernels: ElementwiseKernels = {
    adam: adamUpdate,
    rms: rmsUpdate,
    rss: rssUpdate,
    momentum: momentumUpdate,
    reluForward,
    reluBackward,
  };
  return {
    ...kernels,
    ...(logisticLoss ? { logistic: logisticLoss } : {}),
    ...(addFinite ? { addFinite } : {}),
    ...(allFinite ? { allFinite } : {}),
    ...(sgdApply ? { sgdApply } : {}),
    ...(clipValue ? { clipValue } : {}),
    ...(averageUpdate ? { averageUpdate } : {}),
    ...(combine ? { combine } : {}),
  };
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
  /** The OpenBLAS library file the addon loaded (null when the addon cannot say). */
  libraryPath: string | null;
  /** OpenMP's thread count (oneDNN, element-wise kernels; and OpenBLAS in its OpenMP build). */
  ompThreads: number | null;
  /** The threading policy in effect (docs/performance.md, "Threading policy"). */
  policy: string;
  /** The instruction set the element-wise kernels run with ("avx2" or "baseline" x86-64; null for an addon without kernels). */
  kernelIsa: "avx2" | "baseline" | null;
  /** Path of the loaded addon. */
  addonPath: string;
}

/**
 * The threading policy for an OpenBLAS build (docs/performance.md, "Threading policy"): one
 * OpenMP pool when OpenBLAS is its OpenMP build; otherwise two pools that never compute at once,
 * with OpenBLAS's level-1/2 calls and small GEMMs on the calling thread and both pools' idle
 * threads sleeping instead of spinning.
 */
export function threadingPolicy(parallel: BlasInfo["parallel"], env: Readonly<Record<string, string | undefined>> = process.env): string {
  const wait = `OMP_WAIT_POLICY=${env.OMP_WAIT_POLICY ?? "(unset)"}${env.GOMP_SPINCOUNT !== undefined ? `, GOMP_SPINCOUNT=${env.GOMP_SPINCOUNT}` : ""}`;
  if (parallel === "openmp")
    return `one OpenMP pool for OpenBLAS, oneDNN and the element-wise kernels (GEMMs under 8e6 multiply-adds, level-1/2 BLAS and element-wise kernels under 2^19 entries on one thread; ${wait})`;
  if (parallel === "pthreads")
    return (
      "two pools, never computing at once: OpenBLAS pthreads (GEMMs under 8e6 multiply-adds and level-1/2 BLAS under 2^19 entries on one thread; " +
      `OPENBLAS_THREAD_TIMEOUT=${env.OPENBLAS_THREAD_TIMEOUT ?? "(unset)"}) and OpenMP for oneDNN and the kernels (${wait}); ` +
      "for one pool install OpenBLAS's OpenMP build (Debian/Ubuntu: libopenblas0-openmp) and rebuild the addon"
    );
  if (parallel === "sequential") return `sequential OpenBLAS; OpenMP threads for oneDNN and the element-wise kernels only (${wait})`;
  return "unknown OpenBLAS threading";
}

/** dpotrf + dpotrs on a full copy of (A + shift·I), A given by the upper triangle of `a`. */
function choleskyOfUpperCopy(n: number, a: Float64Array, shift: number, b: Float64Array, bind: NativeBlasBinding): boolean {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) l[i * n + j] = l[j * n + i] = a[i * n + j] + (i === j ? shift : 0);
  if (bind.dpotrf(n, l) !== 0) return false;
  bind.dpotrs(n, l, b, 1);
  return true;
}

/** Backend over OpenBLAS through the N-API addon: s/dgemm, Cholesky (dpotrf), eigen (dsyevd), LU solve (dgetrf). */
export class NativeBackend implements Backend {
  readonly name = "openblas";
  /** oneDNN's convolution, pooling and batch normalization (float32), when the addon has them and they are not turned off. */
  readonly dnn?: DnnPrimitives;
  /** Multi-threaded element-wise kernels, when the addon has them and they are not turned off. */
  readonly kernels?: ElementwiseKernels;

  constructor(
    private readonly binding: NativeBlasBinding,
    readonly addonPath: string,
    paths: NativePaths = {},
  ) {
    const dnn = paths.dnn === false ? undefined : dnnPrimitives(binding, paths.layouts !== false);
    if (paths.dnn === true && !dnn) throw new Error("oneDNN was requested, but the native addon was built without it");
    if (paths.layouts === true && !dnn?.activationBlock)
      throw new Error("blocked oneDNN layouts were requested, but this addon or CPU has none");
    if (dnn) this.dnn = dnn;
    const kernels = paths.kernels === false ? undefined : elementwiseKernels(binding);
    if (paths.kernels === true && !kernels) throw new Error("native element-wise kernels were requested, but the addon lacks them");
    if (kernels) this.kernels = kernels;
  }

  /** The same addon with other optional paths (tests force each path with this; the thread count is shared). */
  withPaths(paths: NativePaths): NativeBackend {
    return new NativeBackend(this.binding, this.addonPath, paths);
  }

  /** oneDNN's version when the addon was built with it (whether or not this backend uses it), else null. */
  get dnnlVersion(): string | null {
    return this.binding.dnnlVersion ?? null;
  }

  /** The addon's raw binding (benchmarks call the bare oneDNN primitives through it). */
  get raw(): NativeBlasBinding {
    return this.binding;
  }

  get threads(): number {
    return this.binding.getNumThreads();
  }

  setThreads(n: number): void {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`threads must be a positive integer, got ${n}`);
    // OpenBLAS refuses more threads than it was compiled for (MAX_THREADS in its configuration).
    const max = Number(/MAX_THREADS=(\d+)/.exec(this.binding.getConfig())?.[1] ?? Number.NaN);
    if (n > max) throw new RangeError(`threads ${n}: at most ${max} (OpenBLAS was built with MAX_THREADS=${max})`);
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
      libraryPath: this.binding.getBlasLibrary?.() || null,
      ompThreads: this.binding.getThreadCounts?.().openmp ?? this.binding.getOmpThreads?.() ?? null,
      policy: threadingPolicy(parallel),
      kernelIsa: this.binding.kernelIsa?.() ?? null,
      addonPath: this.addonPath,
    };
  }

  describe(): string {
    const i = this.info();
    const what = this.dnn?.batchNormForward ? "convolution, pooling and batch normalization" : "convolution and pooling";
    const dnn = this.dnn ? `; ${this.dnn.description} for ${what}` : "";
    const build = i.parallel === "openmp" ? "OpenMP build, one thread pool" : `${i.parallel} build`;
    return `OpenBLAS ${i.version} via N-API (${i.config}; core ${i.coreName}; ${build}; ${i.threads} thread${i.threads === 1 ? "" : "s"}${dnn})`;
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

  solveSpdShifted(a: Float64Array, n: number, shift: number, b: Float64Array): boolean {
    const bind = this.binding;
    if (bind.spdSolveMixed) return bind.spdSolveMixed(n, a, shift, b).info === 0;
    return choleskyOfUpperCopy(n, a, shift, b, bind); // addons built before spdSolveMixed
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
    const bind = this.binding;
    if (c instanceof Float32Array && bind.ssyrk) bind.ssyrk(upper, trans, n, k, alpha, a as Float32Array, lda, beta, c, ldc);
    else if (c instanceof Float64Array && bind.dsyrk) bind.dsyrk(upper, trans, n, k, alpha, a as Float64Array, lda, beta, c, ldc);
    else portableBackend.syrk?.(upper, trans, n, k, alpha, a, lda, beta, c, ldc); // addons built before ssyrk/dsyrk
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
    const bind = this.binding;
    if (t instanceof Float32Array && bind.sgramHadamard) bind.sgramHadamard(q, cols, batch, bias, t, p as Float32Array, g, accumulate);
    else if (t instanceof Float64Array && bind.dgramHadamard) bind.dgramHadamard(q, cols, batch, bias, t, p as Float64Array, g, accumulate);
    else portableBackend.gramHadamard?.(q, cols, batch, bias, t, p, g, accumulate);
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

/** The environment variables {@link loadNativeBackend} set itself (threading defaults), with their values. */
const setByLoader: Record<string, string> = {};

/**
 * `env` without the threading defaults {@link loadNativeBackend} put into this process's
 * environment, for child processes that must see the user's environment only (e.g. PyTorch in
 * the benchmarks, whose own OpenBLAS and OpenMP would otherwise inherit chainopt's wait policies).
 */
export function userEnvironment(env: Readonly<Record<string, string | undefined>> = process.env): Record<string, string | undefined> {
  const out = { ...env };
  for (const [k, v] of Object.entries(setByLoader)) if (out[k] === v) delete out[k];
  return out;
}

/**
 * The environment of a peer library's benchmark process (PyTorch, numpy) at `threads` threads: the
 * user's environment ({@link userEnvironment}), the thread counts of OpenMP, OpenBLAS and MKL, and
 * passive OpenMP waits unless the user chose how OpenMP waits, so that the peer runs under the
 * policy chainopt runs under. With libgomp's default spinning, PyTorch 1.13's 2-thread MNIST epoch
 * took 12.0 s instead of 3.5 s on the 2-core machine of BENCHMARKS.md (docs/performance.md,
 * "Threading policy").
 */
export function peerEnvironment(threads: number): Record<string, string | undefined> {
  const user = userEnvironment();
  const t = String(threads);
  const wait = user.OMP_WAIT_POLICY === undefined && user.GOMP_SPINCOUNT === undefined ? { OMP_WAIT_POLICY: "PASSIVE" } : {};
  return { ...user, ...wait, OMP_NUM_THREADS: t, OPENBLAS_NUM_THREADS: t, MKL_NUM_THREADS: t };
}

/** How OpenMP waits in {@link peerEnvironment} (`OMP_WAIT_POLICY=…` or `GOMP_SPINCOUNT=…`), for benchmark notes. */
export function peerWaitPolicy(): string {
  const env = peerEnvironment(1);
  return env.GOMP_SPINCOUNT !== undefined ? `GOMP_SPINCOUNT=${env.GOMP_SPINCOUNT}` : `OMP_WAIT_POLICY=${env.OMP_WAIT_POLICY}`;
}

/**
 * Why the last {@link loadNativeBackend} returned null: `not built` or the loader's error
 * (e.g. a missing libopenblas.so.0); null if it loaded.
 */
export function nativeLoadError(): string | null {
  return cached?.error ?? null;
}

/** `CHAINOPT_DNN_LAYOUTS=0` keeps every activation in plain NCHW (for comparisons); anything else leaves the default. */
function layoutsFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): false | undefined {
  return env.CHAINOPT_DNN_LAYOUTS?.trim() === "0" ? false : undefined;
}

/** `CHAINOPT_ONEDNN=0` turns oneDNN off (im2col + OpenBLAS convolutions); anything else leaves the default. */
function dnnFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): false | undefined {
  return env.CHAINOPT_ONEDNN?.trim() === "0" ? false : undefined;
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
 * `CHAINOPT_THREADS` when that is set (otherwise OpenBLAS's own default: `OPENBLAS_NUM_THREADS` or all cores),
 * for OpenBLAS and OpenMP (oneDNN, element-wise kernels) alike.
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
    // OpenMP's idle threads wait passively (docs/performance.md, "Threading policy"; read when
    // libgomp loads, so before the addon). Spinning between parallel regions gains about 10 % on
    // a 2-thread step when the process has the machine to itself, and costs 2–7× when another
    // process computes on the same cores (both measured there). A user's OMP_WAIT_POLICY or
    // GOMP_SPINCOUNT (libgomp: spin that many iterations, then sleep) wins.
    if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined)
      setByLoader.OMP_WAIT_POLICY = process.env.OMP_WAIT_POLICY = "PASSIVE";
    // The same for OpenBLAS's pthreads build: its idle workers sleep after 2^4 cycles instead of
    // spinning for 2^28 (read when libopenblas loads; the OpenMP build ignores it).
    if (process.env.OPENBLAS_THREAD_TIMEOUT === undefined) setByLoader.OPENBLAS_THREAD_TIMEOUT = process.env.OPENBLAS_THREAD_TIMEOUT = "4";
    const binding = createRequire(import.meta.url)(path) as NativeBlasBinding;
    if (binding.abi !== ADDON_ABI)
      throw new Error(`addon interface ${binding.abi}, expected ${ADDON_ABI}: rebuild it with \`npx chainopt build-native\``);
    const backend = new NativeBackend(binding, path, { dnn: dnnFromEnv(), layouts: layoutsFromEnv() });
    // One thread count for OpenBLAS and OpenMP (docs/performance.md): CHAINOPT_THREADS, else OpenBLAS's default.
    backend.setThreads(threads ?? backend.threads);
    cached = { backend, error: null };
  } catch (error) {
    cached = { backend: null, error: error instanceof Error ? error.message : String(error) };
  }
  return cached.backend;
}
