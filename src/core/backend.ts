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
  /**
   * Solves (A + shift·I) x = b in place of b (one right-hand side, float64) for the symmetric n×n A
   * given by its upper triangle (row-major, column ≥ row, diagonal included), A + shift·I positive
   * definite. The upper triangle and the diagonal are unchanged on return; the strictly lower
   * triangle is workspace (may be overwritten). The native backend uses LAPACK dsposv's algorithm:
   * single-precision Cholesky and double-precision iterative refinement to a backward error at
   * double-precision level, falling back to double-precision Cholesky. Returns false if
   * A + shift·I is not positive definite.
   */
  solveSpdShifted?(a: Float64Array, n: number, shift: number, b: Float64Array): boolean;
  /**
   * C ← α·op(A)·op(A)ᵀ + β·C on one triangle of the row-major n×n C (the upper one, column ≥ row,
   * when `upper`; the other triangle is not touched); op(A) = A (stored n×k) or Aᵀ (stored k×n).
   */
  syrk?(
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
  ): void;
  /**
   * g[r, c] ← (accumulate ? g[r, c] : 0) + t[r, c]·(p[⌊r/cols⌋, ⌊c/cols⌋] + bias) on the upper
   * triangle (r ≤ c) of the row-major q×q matrices t (chain precision) and g (float64), p
   * batch×batch (batch·cols = q), products and sums in float64: one dense layer's term of a
   * structured Gram matrix (src/second-order/gram.ts). The strictly lower triangle of g is not touched.
   */
  gramHadamard?(
    q: number,
    cols: number,
    batch: number,
    bias: number,
    t: FloatArray,
    p: FloatArray,
    g: Float64Array,
    accumulate: boolean,
  ): void;
  /** Eigenvalues (ascending) and, if wanted, eigenvectors (rows of `a` on return) of a symmetric n×n matrix. */
  symmetricEigen?(a: Float64Array, n: number, vectors: boolean): Float64Array;
  /** Solves A X = B for general square A (n×n) in place of B (n×nrhs); returns false if singular. */
  solve?(a: Float64Array, n: number, b: Float64Array, nrhs: number): boolean;
  /**
   * Optional float32 convolution, pooling and batch-norm primitives (the native backend's oneDNN binding).
   * Components use them when present and their data is float32, else their im2col + GEMM and
   * scalar loops (float64 always takes those).
   */
  readonly dnn?: DnnPrimitives;
  /**
   * Optional multi-threaded element-wise kernels (optimizer updates, ReLU, logistic loss). Each
   * computes exactly what the portable loop it replaces computes (same operations, same roundings),
   * entry by entry; the logistic loss up to the last bit of exp/log (see {@link ElementwiseKernels.logistic}).
   */
  readonly kernels?: ElementwiseKernels;
}

/** Geometry of a 2-D convolution on a batch of NCHW samples (weights OIHW), floor-mode output extents. */
export interface ConvGeometry {
  readonly batch: number;
  readonly inC: number;
  readonly inH: number;
  readonly inW: number;
  readonly outC: number;
  readonly outH: number;
  readonly outW: number;
  readonly kh: number;
  readonly kw: number;
  readonly sh: number;
  readonly sw: number;
  readonly ph: number;
  readonly pw: number;
}

/** Geometry of a 2-D pooling on a batch of NCHW samples (window kh×kw, stride, zero/−∞ padding). */
export interface PoolWindowGeometry {
  readonly batch: number;
  readonly c: number;
  readonly h: number;
  readonly w: number;
  readonly oh: number;
  readonly ow: number;
  readonly kh: number;
  readonly kw: number;
  readonly sh: number;
  readonly sw: number;
  readonly ph: number;
  readonly pw: number;
}

/**
 * Geometry of a batch normalization: `batch` samples of `channels` channels with `spatial` entries
 * each (H·W after a convolution, 1 after a dense layer), stored NCHW (N×C for flat samples).
 */
export interface BatchNormGeometry {
  readonly batch: number;
  readonly channels: number;
  readonly spatial: number;
}

/**
 * The memory layout of a 4-D activation tensor N × C × H × W: 0 is plain NCHW; 8 and 16 are
 * oneDNN's blocked nChw8c and nChw16c (channels in blocks of 8 or 16, innermost; oneDNN Developer
 * Guide, "Understanding Memory Formats"), used between consecutive oneDNN layers
 * (src/chain/layouts.ts). A blocked tensor with C a multiple of the block has the plain one's size.
 */
export type ActivationLayout = 0 | 8 | 16;

/**
 * float32 convolution, pooling and batch-normalization primitives on NCHW tensors (oneDNN: convolution_forward,
 * convolution_backward_data/_weights, pooling_forward/_backward). Outputs are overwritten. The
 * optional `xLayout` / `yLayout` give the layout of the input-side (x, dx) and output-side (y, dy)
 * activations (default plain); the results are the same bits in every layout.
 */
export interface DnnPrimitives {
  /** Library and version, e.g. `oneDNN 2.6.3`. */
  readonly description: string;
  /**
   * The blocked layout the convolutions pick on this CPU (16 with AVX-512, 8 with AVX2), in which a
   * chain keeps activations between oneDNN layers; 0 or absent: plain layouts only (also for addons
   * built before layouts were accepted).
   */
  readonly activationBlock?: ActivationLayout;
  /** Whether the geometry is supported (the window must fit the padded input without right-side cropping). */
  supportsConv(g: ConvGeometry): boolean;
  supportsPool(g: PoolWindowGeometry): boolean;
  /** y = conv(x, w) + b (b optional). */
  convForward(
    g: ConvGeometry,
    x: Float32Array,
    w: Float32Array,
    b: Float32Array | null,
    y: Float32Array,
    xLayout?: ActivationLayout,
    yLayout?: ActivationLayout,
  ): void;
  /** dx = ∂⟨dy, conv(x, w)⟩/∂x. */
  convBackwardData(
    g: ConvGeometry,
    dy: Float32Array,
    w: Float32Array,
    dx: Float32Array,
    xLayout?: ActivationLayout,
    yLayout?: ActivationLayout,
  ): void;
  /** dw, db = ∂⟨dy, conv(x, w) + b⟩/∂(w, b) (db optional). */
  convBackwardWeights(
    g: ConvGeometry,
    x: Float32Array,
    dy: Float32Array,
    dw: Float32Array,
    db: Float32Array | null,
    xLayout?: ActivationLayout,
    yLayout?: ActivationLayout,
  ): void;
  /** Bytes of the workspace max pooling's forward leaves for its backward (0 for average pooling), for an input in `xLayout`. */
  poolWorkspaceBytes(g: PoolWindowGeometry, max: boolean, xLayout?: ActivationLayout): number;
  /**
   * Max pooling (padding −∞, workspace written) or average pooling (padding counted as zeros,
   * divisor kh·kw), computed in x's layout and written in y's.
   */
  poolForward(
    g: PoolWindowGeometry,
    max: boolean,
    x: Float32Array,
    y: Float32Array,
    workspace: Uint8Array | null,
    xLayout?: ActivationLayout,
    yLayout?: ActivationLayout,
  ): void;
  /** dx = Aᵀ dy, the adjoint of the pooling (max pooling: through the forward's workspace, of the same layouts). */
  poolBackward(
    g: PoolWindowGeometry,
    max: boolean,
    dy: Float32Array,
    dx: Float32Array,
    workspace: Uint8Array | null,
    xLayout?: ActivationLayout,
    yLayout?: ActivationLayout,
  ): void;
  /**
   * Batch normalization y = γ ⊙ (x − μ)/√(σ² + ε) + β per channel (γ = `scale`, β = `shift`, both
   * null for y = x̂; see src/components/batch-norm.ts). `training`: μ and the biased σ² of the batch
   * are written to `mean` and `variance`; else they are read from them (running statistics).
   * `layout`: of x and y (and dy, dx), for N × C × H × W activations (plain for N × C). Absent from
   * addons built before it (components then keep their TypeScript loops).
   */
  batchNormForward?(
    g: BatchNormGeometry,
    training: boolean,
    epsilon: number,
    x: Float32Array,
    scale: Float32Array | null,
    shift: Float32Array | null,
    mean: Float32Array,
    variance: Float32Array,
    y: Float32Array,
    layout?: ActivationLayout,
  ): void;
  /**
   * The VJP of {@link DnnPrimitives.batchNormForward} with the statistics of that call: dx (through
   * μ and σ² in training mode), dγ = Σ dy ⊙ x̂ and dβ = Σ dy. Null outputs are not returned; `scale`
   * and `shift` are given together (affine) or both null.
   */
  batchNormBackward?(
    g: BatchNormGeometry,
    training: boolean,
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
    layout?: ActivationLayout,
  ): void;
}

/**
 * Element-wise kernels over the first n entries (arrays of one precision), each the exact
 * equivalent of a portable loop: see src/optim/adaptive.ts, src/optim/momentum.ts and
 * src/components/relu.ts for the formulas.
 */
export interface ElementwiseKernels {
  /** Adam/AMSGrad scaling (scaleByAdam): updates m, v (and vmax) and overwrites u. */
  adam(
    n: number,
    u: FloatArray,
    m: FloatArray,
    v: FloatArray,
    vmax: FloatArray | null,
    b1: number,
    c1: number,
    b2: number,
    c2: number,
    bc1: number,
    bc2Sqrt: number,
    eps: number,
  ): void;
  /** RMSprop scaling (scaleByRms), centered when mu is given. */
  rms(n: number, u: FloatArray, nu: FloatArray, mu: FloatArray | null, rho: number, one: number, eps: number): void;
  /** AdaGrad scaling (scaleByRss). */
  rss(n: number, u: FloatArray, s: FloatArray, eps: number): void;
  /** Heavy-ball / Nesterov momentum (traceMomentum). */
  momentum(n: number, u: FloatArray, v: FloatArray, mu: number, keep: number, first: boolean, nesterov: boolean): void;
  /** y = max(x, 0) (NaN → 0, as the portable kernel). */
  reluForward(n: number, x: FloatArray, y: FloatArray): void;
  /** out = x > 0 ? v : 0. */
  reluBackward(n: number, x: FloatArray, v: FloatArray, out: FloatArray): void;
  /**
   * Softmax cross-entropy of `n` rows of `k` outputs with integer labels (src/objectives/logistic.ts):
   * returns the mean loss and, when `grad` is given, overwrites it with the gradient. The one kernel
   * here that is *not* bit-identical to its portable loop: the C library's exp/log and JavaScript's
   * Math.exp/log differ in the last bit for some arguments. Deterministic and independent of the
   * thread count. Absent from addons built before it.
   */
  logistic?(n: number, k: number, output: FloatArray, labels: Int32Array, grad: FloatArray | null): number;
  /**
   * w ← w + u (one rounding per entry, the bits of axpy with α = 1), returning whether every entry
   * of the new w is finite: applying an update and checking the parameters in one pass. Absent from
   * addons built before it.
   */
  addFinite?(n: number, w: FloatArray, u: FloatArray): boolean;
  /**
   * A whole SGD step in one pass (the chain [traceMomentum?, scaleByLearningRate], then w ← w + u):
   * with v, v ← momentum of g as {@link ElementwiseKernels.momentum} and d = v (or g + μv with
   * nesterov), else d = g; w ← w + α·d with the product rounded as BLAS scal rounds it (α = 0
   * gives +0). Returns whether every entry of the new w is finite; g is left unchanged. Same bits
   * as the passes it replaces. Absent from addons built before it.
   */
  sgdApply?(
    n: number,
    w: FloatArray,
    g: FloatArray,
    v: FloatArray | null,
    mu: number,
    keep: number,
    first: boolean,
    nesterov: boolean,
    alpha: number,
  ): boolean;
  /** Whether every one of the first n entries of x is finite. Absent from addons built before it. */
  allFinite?(n: number, x: FloatArray): boolean;
  /** Clipping by value (clipByValue): u ← max(−c, min(c, u)), NaN kept. Absent from addons built before it. */
  clipValue?(n: number, u: FloatArray, c: number): void;
  /**
   * Iterate averaging (src/optim/averaging.ts): kind 0 Polyak, a ← a + (w − a)·p with p = 1/n;
   * kind 1 EMA, a ← p·a + q·w with p = β, q = 1 − β. Absent from addons built before it.
   */
  averageUpdate?(n: number, a: FloatArray, w: FloatArray, kind: 0 | 1, p: number, q: number): void;
  /**
   * out ← α·x + β·y across precisions (x, y and out each float32 or float64, possibly the same
   * array): each entry formed in float64 and rounded once to out's precision, the bits of the
   * portable loop of combineInto (src/core/kernels.ts). Absent from addons built before it.
   */
  combine?(n: number, alpha: number, x: FloatArray, beta: number, y: FloatArray, out: FloatArray): void;
}
