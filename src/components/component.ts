import type { ActivationLayout, Backend } from "../core/backend.js";
import type { DType, FloatArray } from "../core/dtype.js";
import type { Rng } from "../core/rng.js";
import type { ComponentConstants, InputBounds, SmoothingRule } from "./smoothness.js";

export type { BiaffineConstants, ComponentConstants, InputBounds, NonlinearConstants, SmoothingRule } from "./smoothness.js";

/**
 * How a component enters the chain x_t = a_t(b_t(x_{t−1}, u_t)) (Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), Sec. II):
 * `biaffine` components (dense, convolution) are the b_t and start a new layer t; `nonlinear`
 * components are the parts a_{t,j} of a_t; `reshape` components (flatten) are linear, parameter-free
 * re-indexings that change neither values nor norms.
 */
export type ComponentRole = "biaffine" | "nonlinear" | "reshape";

/** What every layer spec has: its type (each component file exports the schema of its own spec). */
export interface ComponentSpec {
  readonly type: string;
}

/** Per-call facts every component may read. */
export interface ComponentContext {
  /** Kernels (matrix products) to compute with. */
  readonly backend: Backend;
  /** Number of samples in the batch; tensors are batch-major, `batch × size`. */
  readonly batch: number;
  /** Training mode: batch-norm uses batch statistics (evaluation mode uses running statistics). */
  readonly training: boolean;
  /** When true (training steps only), components with state (batch-norm) update it. */
  readonly updateState: boolean;
}

/** A named parameter block of a component, stored contiguously in the chain's flat vector. */
export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly size: number;
}

/**
 * The buffers of one component for one call: its input `x` and output `y` (batch-major), its
 * parameter block and state block (views into the chain's flat vectors; empty when it has none),
 * and its `tape`, the intermediates the forward pass keeps for the backward and JVP passes.
 */
export interface LayerIO<Tape> {
  x: FloatArray;
  y: FloatArray;
  params: FloatArray;
  state: FloatArray;
  tape: Tape;
  /**
   * Layouts of x (and of the slope dx) and of y (and dy) when the chain keeps them blocked between
   * oneDNN layers (src/chain/layouts.ts); absent or 0: plain. Only components with a oneDNN path
   * (convolution, pooling) read them; element-wise components are layout-blind, and the chain sets
   * them only around those.
   */
  xLayout?: ActivationLayout;
  yLayout?: ActivationLayout;
}

/**
 * A component of a chain. One file per component holds its forward pass, its vector–Jacobian
 * product (backward) and its Jacobian–vector product. Shapes are per sample; all buffers hold
 * `batch` samples one after the other.
 */
export interface Component<Tape = unknown> {
  /** The layer type as written in model specs, e.g. `dense`. */
  readonly type: string;
  readonly role: ComponentRole;
  readonly inputShape: readonly number[];
  readonly outputShape: readonly number[];
  readonly inputSize: number;
  readonly outputSize: number;
  /** Parameter blocks, in the order they are stored in the flat parameter vector. */
  /**
   * Whether forward and backward of this component at `batch` run on the backend's oneDNN
   * primitives and take activation layouts (convolution and pooling on float32): the chain may then
   * keep its input and output blocked (src/chain/layouts.ts). Absent: never.
   */
  acceptsBlockedLayouts?(backend: Backend, batch: number, dtype: DType): boolean;
  /** True for element-wise maps y_i = α(x_i), which work on any layout of x and y alike. */
  readonly layoutBlind?: boolean;
  /** True when a component that takes blocked layouts needs x and y in the same one (batch norm). */
  readonly layoutTied?: boolean;
  readonly params: readonly ParamSpec[];
  /** Total number of parameters. */
  readonly paramSize: number;
  /** Number of non-trainable state entries (batch-norm running statistics). */
  readonly stateSize: number;
  /** The normalized spec this component was built from (for saving a model; its type is the file's `…Spec`). */
  readonly spec: ComponentSpec;
  /** Initializes the parameter block (a view of length `paramSize`). */
  initParams(params: FloatArray, rng: Rng): void;
  /** Initializes the state block (a view of length `stateSize`). */
  initState(state: FloatArray): void;
  /** Allocates the intermediates and scratch of one call with `batch` samples. */
  createTape(batch: number, dtype: DType): Tape;
  /** y ← component(x; params). Keeps on the tape what backward/jvp need. */
  forward(ctx: ComponentContext, io: LayerIO<Tape>): void;
  /**
   * Vector–Jacobian product: given the slope dy on the output, dx ← (∂y/∂x)ᵀ dy and
   * dparams ← (∂y/∂params)ᵀ dy (each skipped when null; both overwritten, not accumulated).
   * Must follow a forward call with the same io.
   */
  backward(ctx: ComponentContext, io: LayerIO<Tape>, dy: FloatArray, dx: FloatArray | null, dparams: FloatArray | null): void;
  /**
   * Jacobian–vector product: dy ← (∂y/∂x) dx + (∂y/∂params) dparams, a null direction counting
   * as zero. Must follow a forward call with the same io.
   */
  jvp(ctx: ComponentContext, io: LayerIO<Tape>, dx: FloatArray | null, dparams: FloatArray | null, dy: FloatArray): void;
  /**
   * Optional second-order backward, the directional derivative of {@link Component.backward}
   * (forward-over-reverse; used by Hessian-vector products and the Newton step, see
   * `src/second-order/`). With the point (x, u) of the last forward call, the output slope dy,
   * a direction (dx, dparams) of the input and parameters and a direction ddy of the slope:
   *   ddx      ← d/dε [(∂y/∂x)(x+ε dx, u+ε dparams)ᵀ (dy + ε ddy)] at ε = 0
   *            = (∂y/∂x)ᵀ ddy + ∇²_xx⟨y, dy⟩ dx + ∇²_xu⟨y, dy⟩ dparams,
   *   ddparams ← (∂y/∂u)ᵀ ddy + ∇²_ux⟨y, dy⟩ dx + ∇²_uu⟨y, dy⟩ dparams.
   * A null direction counts as zero; a null output is skipped; outputs are overwritten. Must follow
   * a forward call with the same io. Components without it make Hessian-vector products throw.
   */
  backwardTangent?(
    ctx: ComponentContext,
    io: LayerIO<Tape>,
    dy: FloatArray,
    ddy: FloatArray,
    dx: FloatArray | null,
    dparams: FloatArray | null,
    ddx: FloatArray | null,
    ddparams: FloatArray | null,
  ): void;
  /**
   * Smoothness constants of this component on a batch of inputs bounded as in `input`
   * (Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), Algorithm 1, inputs 2–3; used by `src/certify/`). Optional: a chain with a
   * component lacking it cannot be certified. Bi-affine components return
   * {@link BiaffineConstants}, the others {@link NonlinearConstants}; see `smoothness.ts`.
   */
  smoothness?(input: InputBounds): ComponentConstants;
  /**
   * How this non-smooth component is smoothed (docs/smoothing.md; Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), Def. 5 and Algorithm 2):
   * its (ℓ, L, K) constants and its δ-accurate smooth replacement on a batch of `input.batch`
   * samples (`input.norm` is not used: the accuracy holds for every input). Only non-smooth
   * components (relu, maxPool2d) declare it; `src/smoothing/` treats the others as K = 0.
   */
  smoothing?(input: InputBounds): SmoothingRule;
}

/** Error raised when a model spec or a shape is invalid; names the field at fault. */
export class SpecError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = "SpecError";
  }
}

/** Builds the parameter-block table of a component from (name, shape) pairs. */
export function paramTable(blocks: ReadonlyArray<readonly [string, readonly number[]]>): ParamSpec[] {
  return blocks.map(([name, shape]) => ({ name, shape, size: shape.reduce((a, b) => a * b, 1) }));
}

/**
 * Throws unless x and y of `io` are plain: for a component's paths that read NCHW themselves (a
 * chain sets blocked layouts only where that component runs on oneDNN, so this is a broken plan).
 */
export function plainLayouts(io: LayerIO<unknown>, type: string): void {
  if (io.xLayout || io.yLayout) throw new Error(`${type}: blocked activation layouts reached a path without oneDNN`);
}
