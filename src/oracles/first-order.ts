import { type Chain, type ChainWorkspace, componentContext } from "../chain/chain.js";
import { allocate, type FloatArray } from "../core/dtype.js";
import type { Batch } from "../objectives/batch.js";
import type { Objective } from "../objectives/objective.js";
import { addL2Gradient, l2Value } from "../objectives/objective.js";

// First-order oracles on a chain, as pure functions of (chain, parameters, batch). The forward pass
// stores every intermediate x_t (and each component's tape) in the chain's workspace; the backward
// pass then applies the components' VJPs from the output back to the input: gradient
// back-propagation as dynamic programming over the chain (Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019), Sec. 3, Alg. 1).

/** Options of the forward pass. */
export interface ForwardOptions {
  /** Training mode: batch-norm uses batch statistics (default false for `forward`, true for gradients). */
  training?: boolean;
  /**
   * Non-trainable state (batch-norm running statistics), needed in evaluation mode by chains with
   * state. Updated in place only when `updateState` is true.
   */
  state?: FloatArray;
  /** Update the running statistics in `state` (training steps only; default false). */
  updateState?: boolean;
  /**
   * Keep activations blocked between oneDNN layers where the backend allows it (default true;
   * src/chain/layouts.ts): the same results bit for bit, fewer reorders. Used by `forward`,
   * `objectiveValue` and `valueAndGradient`, whose intermediates nothing but their own backward
   * pass reads; the oracles that read intermediates (VJP, JVP, second order) always run NCHW.
   */
  blockedLayouts?: boolean;
}

/**
 * The chain's output ψ(x, w) for the `batch` samples of x, as a view into the chain's workspace:
 * valid until the next oracle call on a batch of the same size.
 */
export function forward(chain: Chain, w: FloatArray, x: ArrayLike<number>, batch: number, options: ForwardOptions = {}): FloatArray {
  const ws = runForward(
    chain,
    w,
    x,
    batch,
    options.training ?? false,
    options.state,
    options.updateState ?? false,
    options.blockedLayouts ?? true,
  );
  return ws.activations[chain.components.length];
}

/**
 * Runs the forward pass and returns the workspace holding every intermediate. With
 * `blockedLayouts`, activations between oneDNN layers stay in the workspace's layout plan
 * (src/chain/layouts.ts): for passes whose intermediates only their own backward pass reads.
 */
export function runForward(
  chain: Chain,
  w: FloatArray,
  x: ArrayLike<number>,
  batch: number,
  training: boolean,
  state: FloatArray | undefined,
  updateState: boolean,
  blockedLayouts = false,
): ChainWorkspace {
  chain.checkParams(w);
  if (x.length < batch * chain.inputSize) {
    throw new Error(`input: expected ${batch} × ${chain.inputSize} values (input shape [${chain.inputShape.join(", ")}]), got ${x.length}`);
  }
  if (chain.stateSize > 0 && state && state.length !== chain.stateSize) {
    throw new Error(`state: expected ${chain.stateSize} entries, got ${state.length}`);
  }
  const ws = chain.workspace(batch);
  const input = ws.activations[0];
  if (x.length === input.length && (x instanceof Float32Array || x instanceof Float64Array)) input.set(x);
  else for (let i = 0; i < input.length; i++) input[i] = x[i];
  const ctx = componentContext(chain, batch, training, updateState && state !== undefined);
  const empty = input.subarray(0, 0);
  const plan = blockedLayouts ? ws.layoutPlan : null;
  ws.blockedLayouts = plan !== null;
  chain.components.forEach((c, i) => {
    const io = ws.io[i];
    io.params = chain.paramBlock(w, i);
    io.state = state && c.stateSize > 0 ? chain.stateBlock(state, i) : empty;
    io.xLayout = plan ? plan[i] : 0;
    io.yLayout = plan ? plan[i + 1] : 0;
    c.forward(ctx, io);
  });
  return ws;
}

/** Result of {@link valueAndGradient}. */
export interface ValueAndGradient {
  /** F(w) = f(ψ(w)) + r(w). */
  value: number;
  /** f(ψ(w)) alone. */
  loss: number;
  /** ∇F(w) (the `grad` buffer passed in, if any). */
  grad: FloatArray;
  /** The chain's output for the batch (workspace view, valid until the next call). */
  output: FloatArray;
}

/** Options of {@link valueAndGradient}. */
export interface GradientOptions extends ForwardOptions {
  /** Buffer receiving the gradient (allocated when absent). */
  grad?: FloatArray;
}

/**
 * Objective value and gradient by one forward and one backward pass:
 * ∇F(w) = ∇ψ(w) ∇f(ψ(w)) + ∇r(w), the slope ∇f propagated back through the components' VJPs.
 */
export function valueAndGradient(
  chain: Chain,
  objective: Objective,
  w: FloatArray,
  batch: Batch,
  options: GradientOptions = {},
): ValueAndGradient {
  const training = options.training ?? true;
  // Blocked layouts between oneDNN layers (src/chain/layouts.ts): this forward pass is read only by
  // the backward pass below.
  const ws = runForward(
    chain,
    w,
    batch.x,
    batch.size,
    training,
    options.state,
    options.updateState ?? false,
    options.blockedLayouts ?? true,
  );
  const k = chain.components.length;
  const output = ws.activations[k];
  const slope = ws.slopes[0].subarray(0, output.length);
  const loss = objective.loss.evaluate(output, batch, chain.outputSize, slope, chain.backend);
  const grad = options.grad ?? allocate(chain.dtype, chain.paramSize);
  if (grad.length !== chain.paramSize) throw new Error(`grad: expected ${chain.paramSize} entries, got ${grad.length}`);
  backwardFrom(chain, ws, w, batch.size, training, slope, grad, null);
  addL2Gradient(objective.l2, w, grad);
  return { value: loss + l2Value(objective.l2, w), loss, grad, output };
}

/**
 * Back-propagates the output slope `slope` (held in ws.slopes[0]) through the chain after a forward
 * pass: dw ← ∇_w⟨ψ, slope⟩ (parameter-free blocks zeroed) and, when `dx` is given, dx ← ∇_x⟨ψ, slope⟩.
 */
export function backwardFrom(
  chain: Chain,
  ws: ChainWorkspace,
  w: FloatArray,
  batch: number,
  training: boolean,
  slope: FloatArray,
  dw: FloatArray,
  dx: FloatArray | null,
): void {
  if (slope.buffer !== ws.slopes[0].buffer) throw new Error("backwardFrom: the slope must live in ws.slopes[0]");
  const ctx = componentContext(chain, batch, training, false);
  // Without dx, the slope is needed only down to the first component with parameters: the
  // components before it are skipped and it computes no input slope (e.g. the first dense layer of
  // an MLP skips its dy·W product, a fifth of the step's matrix products).
  const stop = dx ? 0 : Math.max(0, firstWithParams(chain));
  let dy = slope;
  let which = 0; // dy lives in ws.slopes[which]; the other buffer receives the next slope.
  for (let i = chain.components.length - 1; i >= stop; i--) {
    const c = chain.components[i];
    const io = ws.io[i];
    io.params = chain.paramBlock(w, i);
    const target = i === 0 ? dx : i === stop ? null : ws.slopes[1 - which].subarray(0, batch * c.inputSize);
    c.backward(ctx, io, dy, target, c.paramSize > 0 ? chain.paramBlock(dw, i) : null);
    if (i > 0 && target) {
      dy = target;
      which = 1 - which;
    }
  }
}

/** Index of the first component with parameters (the chain's length when none has any). */
function firstWithParams(chain: Chain): number {
  const i = chain.components.findIndex((c) => c.paramSize > 0);
  return i < 0 ? chain.components.length : i;
}

/**
 * Vector–Jacobian product of the chain output: given a slope s (`batch × outputSize`), returns
 * dw = (∂ψ/∂w)ᵀ s and, when `withInput`, dx = (∂ψ/∂x)ᵀ s.
 */
export function vjp(
  chain: Chain,
  w: FloatArray,
  x: ArrayLike<number>,
  batch: number,
  slope: ArrayLike<number>,
  options: ForwardOptions & { withInput?: boolean; dw?: FloatArray } = {},
): { dw: FloatArray; dx: FloatArray | null } {
  const training = options.training ?? false;
  const ws = runForward(chain, w, x, batch, training, options.state, false);
  const n = batch * chain.outputSize;
  if (slope.length !== n) throw new Error(`slope: expected ${batch} × ${chain.outputSize} values, got ${slope.length}`);
  const s = ws.slopes[0].subarray(0, n);
  for (let i = 0; i < n; i++) s[i] = slope[i];
  const dw = options.dw ?? allocate(chain.dtype, chain.paramSize);
  const dx = options.withInput ? allocate(chain.dtype, batch * chain.inputSize) : null;
  backwardFrom(chain, ws, w, batch, training, s, dw, dx);
  return { dw, dx };
}

/**
 * Jacobian–vector product of the chain output: (∂ψ/∂w) dw + (∂ψ/∂x) dx, propagated forward
 * through the components' JVPs (a fresh array of `batch × outputSize`).
 */
export function jvp(
  chain: Chain,
  w: FloatArray,
  x: ArrayLike<number>,
  batch: number,
  dw: FloatArray | null,
  dx: ArrayLike<number> | null = null,
  options: ForwardOptions = {},
): FloatArray {
  const training = options.training ?? false;
  const ws = runForward(chain, w, x, batch, training, options.state, false);
  if (dw && dw.length !== chain.paramSize) throw new Error(`dw: expected ${chain.paramSize} entries, got ${dw.length}`);
  const ctx = componentContext(chain, batch, training, false);
  let tangent: FloatArray | null = null;
  if (dx) {
    if (dx.length !== batch * chain.inputSize) throw new Error(`dx: expected ${batch} × ${chain.inputSize} values, got ${dx.length}`);
    tangent = allocate(chain.dtype, dx.length);
    for (let i = 0; i < dx.length; i++) tangent[i] = dx[i];
  }
  for (let i = 0; i < chain.components.length; i++) {
    const c = chain.components[i];
    const dparams = dw && c.paramSize > 0 ? chain.paramBlock(dw, i) : null;
    if (tangent === null && dparams === null) continue; // zero tangent so far
    const out = allocate(chain.dtype, batch * c.outputSize);
    c.jvp(ctx, ws.io[i], tangent, dparams, out);
    tangent = out;
  }
  return tangent ?? allocate(chain.dtype, batch * chain.outputSize);
}

/** F(w) on a batch (evaluation mode unless `training`). */
export function objectiveValue(chain: Chain, objective: Objective, w: FloatArray, batch: Batch, options: ForwardOptions = {}): number {
  const out = forward(chain, w, batch.x, batch.size, options);
  return objective.loss.evaluate(out, batch, chain.outputSize, null, chain.backend) + l2Value(objective.l2, w);
}
