import { type Component, type ComponentContext, type LayerIO, SpecError } from "../components/component.js";
import { createComponent } from "../components/registry.js";
import type { ActivationLayout, Backend } from "../core/backend.js";
import { allocate, type DType, type FloatArray } from "../core/dtype.js";
import { portableBackend } from "../core/portable.js";
import { Rng } from "../core/rng.js";
import { planLayouts } from "./layouts.js";
import { type ModelSpec, type ModelSpecInput, parseModelSpec } from "./spec.js";

/**
 * A layer of the chain in the sense of the papers: x_t = a_t(b_t(x_{t−1}, u_t)) with b_t the
 * bi-affine component at `biaffine` and a_t the composition of the components `nonlinear`
 * (in order). Components before the first bi-affine one (e.g. a leading flatten) form layer 0,
 * with no bi-affine part.
 */
export interface ChainLayer {
  /** Index of the bi-affine component in {@link Chain.components}, or −1 for layer 0. */
  readonly biaffine: number;
  /** Indices of the components a_{t,1}, …, a_{t,k} after it. */
  readonly nonlinear: readonly number[];
}

/** Options of {@link createChain}. */
export interface ChainOptions {
  /** Element precision of parameters and activations (default float32). */
  dtype?: DType;
  /**
   * Kernels to compute with: chosen once here and used by every oracle, optimizer update and
   * training loop that runs on this chain (default: the portable TypeScript backend; in Node,
   * `bestBackend()` of `chainopt/node` gives the native one when it is built).
   */
  backend?: Backend;
}

/**
 * A chain of computations ψ(x, w) (Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021), Def. 1): components applied in order,
 * parameters w = (u_1; …; u_k) stored in one flat vector with each component's block at
 * {@link Chain.paramOffsets}. The chain holds no parameter values: oracles take them as arguments.
 */
export class Chain {
  readonly spec: ModelSpec;
  readonly dtype: DType;
  readonly components: readonly Component[];
  readonly inputShape: readonly number[];
  readonly outputShape: readonly number[];
  readonly inputSize: number;
  readonly outputSize: number;
  /** Length of the flat parameter vector. */
  readonly paramSize: number;
  /** Offset of each component's parameter block in the flat vector. */
  readonly paramOffsets: readonly number[];
  /** Length of the flat state vector (batch-norm running statistics). */
  readonly stateSize: number;
  readonly stateOffsets: readonly number[];
  /** The chain grouped into layers x_t = a_t(b_t(x_{t−1}, u_t)). */
  readonly layers: readonly ChainLayer[];
  /** The kernels every computation on this chain uses (see {@link ChainOptions.backend}). */
  readonly backend: Backend;
  private readonly workspaces = new Map<string, ChainWorkspace>();

  constructor(spec: ModelSpec, options: ChainOptions = {}) {
    this.spec = spec;
    this.dtype = options.dtype ?? "float32";
    this.backend = options.backend ?? portableBackend;
    const components: Component[] = [];
    let shape: readonly number[] = spec.input;
    spec.layers.forEach((layer, i) => {
      const c = createComponent(layer, shape, `layers[${i}]`);
      components.push(c);
      shape = c.outputShape;
    });
    this.components = components;
    this.inputShape = spec.input;
    this.inputSize = spec.input.reduce((a, b) => a * b, 1);
    this.outputShape = shape;
    this.outputSize = shape.reduce((a, b) => a * b, 1);
    const paramOffsets: number[] = [];
    const stateOffsets: number[] = [];
    let p = 0;
    let s = 0;
    for (const c of components) {
      paramOffsets.push(p);
      stateOffsets.push(s);
      p += c.paramSize;
      s += c.stateSize;
    }
    this.paramSize = p;
    this.paramOffsets = paramOffsets;
    this.stateSize = s;
    this.stateOffsets = stateOffsets;
    const layers: { biaffine: number; nonlinear: number[] }[] = [];
    components.forEach((c, i) => {
      if (c.role === "biaffine") layers.push({ biaffine: i, nonlinear: [] });
      else {
        if (layers.length === 0) layers.push({ biaffine: -1, nonlinear: [] });
        layers[layers.length - 1].nonlinear.push(i);
      }
    });
    this.layers = layers;
  }

  /** Fresh parameters, initialized from `seed` (reproducible across runs and backends). */
  initParams(seed: number | Rng = 0): FloatArray {
    const rng = typeof seed === "number" ? new Rng(seed) : seed;
    const w = allocate(this.dtype, this.paramSize);
    this.components.forEach((c, i) => {
      c.initParams(this.paramBlock(w, i), rng);
    });
    return w;
  }

  /** Fresh state (batch-norm running mean 0, variance 1). */
  initState(): FloatArray {
    const s = allocate(this.dtype, this.stateSize);
    this.components.forEach((c, i) => {
      c.initState(this.stateBlock(s, i));
    });
    return s;
  }

  /** The parameter block of component i within a flat vector of length {@link Chain.paramSize}. */
  paramBlock(w: FloatArray, i: number): FloatArray {
    return w.subarray(this.paramOffsets[i], this.paramOffsets[i] + this.components[i].paramSize);
  }

  /** The state block of component i. */
  stateBlock(state: FloatArray, i: number): FloatArray {
    return state.subarray(this.stateOffsets[i], this.stateOffsets[i] + this.components[i].stateSize);
  }

  /** The parameters u_t of layer t (its bi-affine block; empty for layer 0). */
  layerParams(w: FloatArray, t: number): FloatArray {
    const b = this.layers[t].biaffine;
    return b < 0 ? w.subarray(0, 0) : this.paramBlock(w, b);
  }

  /** Named parameter tensors, `<index>.<type>.<name>` → view, in storage order. */
  namedParams(w: FloatArray): { name: string; shape: readonly number[]; value: FloatArray }[] {
    const out: { name: string; shape: readonly number[]; value: FloatArray }[] = [];
    this.components.forEach((c, i) => {
      let o = this.paramOffsets[i];
      for (const p of c.params) {
        out.push({ name: `${i}.${c.type}.${p.name}`, shape: p.shape, value: w.subarray(o, o + p.size) });
        o += p.size;
      }
    });
    return out;
  }

  /**
   * Buffers for calls on batches of `batch` samples: activations, tapes, gradient buffers. Cached
   * per batch size and reused across calls, so that training steps allocate nothing.
   */
  workspace(batch: number): ChainWorkspace {
    const key = `${batch}`;
    let ws = this.workspaces.get(key);
    if (!ws) {
      ws = new ChainWorkspace(this, batch);
      this.workspaces.set(key, ws);
    }
    return ws;
  }

  /** Drops cached workspaces (e.g. after evaluating on an unusual batch size). */
  releaseWorkspaces(): void {
    this.workspaces.clear();
  }

  /** Checks that a parameter vector fits this chain. */
  checkParams(w: FloatArray, field = "parameters"): void {
    if (w.length !== this.paramSize) throw new SpecError(field, `expected ${this.paramSize} entries, got ${w.length}`);
    const expected = this.dtype === "float32" ? Float32Array : Float64Array;
    if (!(w instanceof expected)) throw new SpecError(field, `expected a ${this.dtype} array for this chain`);
  }
}

/**
 * Reusable buffers of a chain for one batch size: `activations[i]` is the input of component i
 * (activations[K] the output), `slopes` two ping-pong buffers for backward/JVP passes.
 */
export class ChainWorkspace {
  readonly activations: FloatArray[];
  readonly io: LayerIO<unknown>[];
  readonly slopes: [FloatArray, FloatArray];
  readonly batch: number;
  /**
   * The activations' layouts a forward or gradient pass may use (src/chain/layouts.ts; index i: input of
   * component i), or null when every one stays plain.
   */
  readonly layoutPlan: readonly ActivationLayout[] | null;
  /**
   * Whether the last forward pass left blocked activations (and tapes) here: only a backward pass
   * (backwardFrom) may read them; readers of activations run their own forward pass.
   */
  blockedLayouts = false;
  private readonly emptyState: FloatArray;

  constructor(chain: Chain, batch: number) {
    this.batch = batch;
    this.layoutPlan = planLayouts(chain.components, chain.backend, batch, chain.dtype);
    const dtype = chain.dtype;
    this.activations = [allocate(dtype, batch * chain.inputSize)];
    let maxSize = chain.inputSize;
    for (const c of chain.components) {
      this.activations.push(allocate(dtype, batch * c.outputSize));
      maxSize = Math.max(maxSize, c.outputSize);
    }
    this.slopes = [allocate(dtype, batch * maxSize), allocate(dtype, batch * maxSize)];
    this.emptyState = allocate(dtype, 0);
    this.io = chain.components.map((c, i) => ({
      x: this.activations[i],
      y: this.activations[i + 1],
      params: this.emptyState,
      state: this.emptyState,
      tape: c.createTape(batch, dtype),
    }));
  }
}

/** Builds a chain from a model spec (validated first; errors name the field at fault). */
export function createChain(spec: ModelSpecInput | ModelSpec, options: ChainOptions = {}): Chain {
  return new Chain(parseModelSpec(spec), options);
}

/** The context object components read. */
export function componentContext(chain: Chain, batch: number, training: boolean, updateState: boolean): ComponentContext {
  return { backend: chain.backend, batch, training, updateState };
}
