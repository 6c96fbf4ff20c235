import { Chain } from "../chain/chain.js";
import { parseModelSpec } from "../chain/spec.js";
import type { Component } from "../components/component.js";
import type { Backend } from "../core/backend.js";
import { allocate, type DType, type FloatArray } from "../core/dtype.js";
import type { RngState } from "../core/rng.js";
import {
  readSafetensors,
  readSafetensorsHeader,
  SafetensorsError,
  type Tensor,
  type TensorInput,
  tensorToNumbers,
  writeSafetensors,
} from "./safetensors.js";

/**
 * Checkpoints of a chain in safetensors format.
 *
 * ## Tensor names (chainopt layout)
 * Parameters are named as {@link Chain.namedParams} names them, `<i>.<type>.<param>` with `i` the
 * index of the component in the model spec's `layers` list:
 *   - dense:      `<i>.dense.weight` (units × inputs), `<i>.dense.bias` (units)
 *   - conv2d:     `<i>.conv2d.weight` (filters × inChannels × kh × kw), `<i>.conv2d.bias` (filters)
 *   - batchNorm:  its parameters (if affine) as `<i>.batchNorm.<param>`, and its running
 *                 statistics (the chain's *state* vector) as `<i>.batchNorm.running_mean` and
 *                 `<i>.batchNorm.running_var` (each `channels` long, mean first, as stored in the
 *                 state block); any other component with state: `<i>.<type>.state`.
 *   A component may name its state blocks itself by exposing `stateParams: ParamSpec[]`.
 * Optimizer state tensors are stored as `optimizer.<key>` (keys as given, e.g. by
 * `stateToTensors`); optimizer scalars go to metadata.
 *
 * ## Metadata (`__metadata__`, all strings)
 *   format = "chainopt.checkpoint", format_version = "1", dtype = "float32" | "float64",
 *   spec = the model spec (JSON), step, epoch (decimal integers), rng = JSON object name → RngState
 *   (`spareNormal` null when none is cached), optimizer_scalars = JSON object (non-finite numbers
 *   as the strings "NaN", "Infinity", "-Infinity"), optimizer_info = JSON (free form, e.g. the
 *   optimizer's name and hyper-parameters), extra = JSON (free form).
 *
 * Float values are written in the chain's precision and read back byte for byte, so a save/load
 * round trip is bit-exact for float32 and float64 (NaN payloads included).
 */

/** One named tensor of a chain's layout. */
export interface ChainTensorInfo {
  /** Name in the file (chainopt layout). */
  readonly name: string;
  /** `param`: a block of the parameter vector; `state`: a block of the state vector. */
  readonly kind: "param" | "state";
  readonly component: number;
  /** Parameter name within the component (`weight`, `bias`, `running_mean`…). */
  readonly local: string;
  readonly shape: readonly number[];
  /** Offset in the flat parameter (or state) vector. */
  readonly offset: number;
  readonly size: number;
}

/** Names of a component's state blocks (see the module documentation). */
function stateBlocks(c: Component): { name: string; shape: number[]; size: number }[] {
  if (c.stateSize === 0) return [];
  const own = (c as { stateParams?: readonly { name: string; shape: readonly number[]; size: number }[] }).stateParams;
  if (own) return own.map((p) => ({ name: p.name, shape: [...p.shape], size: p.size }));
  if (c.type === "batchNorm" && c.stateSize % 2 === 0) {
    const h = c.stateSize / 2;
    return [
      { name: "running_mean", shape: [h], size: h },
      { name: "running_var", shape: [h], size: h },
    ];
  }
  return [{ name: "state", shape: [c.stateSize], size: c.stateSize }];
}

/** The chain's tensors (parameters then state), with names, shapes and offsets in the flat vectors. */
export function chainTensorLayout(chain: Chain): ChainTensorInfo[] {
  const out: ChainTensorInfo[] = [];
  chain.components.forEach((c, i) => {
    let o = chain.paramOffsets[i];
    for (const p of c.params) {
      out.push({ name: `${i}.${c.type}.${p.name}`, kind: "param", component: i, local: p.name, shape: p.shape, offset: o, size: p.size });
      o += p.size;
    }
  });
  chain.components.forEach((c, i) => {
    let o = chain.stateOffsets[i];
    for (const s of stateBlocks(c)) {
      out.push({ name: `${i}.${c.type}.${s.name}`, kind: "state", component: i, local: s.name, shape: s.shape, offset: o, size: s.size });
      o += s.size;
    }
  });
  return out;
}

/** Optimizer state as produced by the optimizers' `stateToTensors`. */
export interface OptimizerRecord {
  tensors: Record<string, FloatArray>;
  scalars?: Record<string, number>;
  /** Free-form JSON (e.g. the optimizer's name and hyper-parameters). */
  info?: unknown;
}

/** What a checkpoint holds. */
export interface CheckpointData {
  /** The flat parameter vector (length chain.paramSize, chain precision). */
  params: FloatArray;
  /** The flat state vector (batch-norm running statistics; length chain.stateSize). */
  state?: FloatArray;
  optimizer?: OptimizerRecord;
  /** Generator states by role, e.g. `{ data: rng.getState() }`. */
  rng?: Record<string, RngState>;
  /** Optimizer steps taken so far. */
  step?: number;
  /** Epochs completed so far. */
  epoch?: number;
  /** Free-form JSON (e.g. best validation metric, data-loader position). */
  extra?: Record<string, unknown>;
}

/** A loaded checkpoint. */
export interface LoadedCheckpoint extends CheckpointData {
  state: FloatArray;
  rng: Record<string, RngState>;
  step: number;
  epoch: number;
  extra: Record<string, unknown>;
  /** The raw `__metadata__` map. */
  metadata: Record<string, string>;
}

export const CHECKPOINT_FORMAT = "chainopt.checkpoint";
export const CHECKPOINT_FORMAT_VERSION = "1";

const safetensorsDType = (dtype: DType) => (dtype === "float32" ? "F32" : "F64");

/** Encodes a number map as JSON, keeping NaN and ±Infinity as strings. */
export function numbersToJson(values: Record<string, number>): string {
  const out: Record<string, number | string> = {};
  for (const [k, v] of Object.entries(values)) out[k] = Number.isFinite(v) ? v : String(v);
  return JSON.stringify(out);
}

/** Inverse of {@link numbersToJson}. */
export function numbersFromJson(text: string): Record<string, number> {
  const raw = JSON.parse(text) as Record<string, number | string>;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(raw)) out[k] = typeof v === "number" ? v : Number(v);
  return out;
}

/** The tensors and metadata of a checkpoint, ready for {@link writeSafetensors}. */
export function checkpointTensors(
  chain: Chain,
  data: CheckpointData,
): { tensors: Map<string, TensorInput>; metadata: Record<string, string> } {
  chain.checkParams(data.params, "checkpoint params");
  if (data.state && data.state.length !== chain.stateSize) {
    throw new Error(`checkpoint state: expected ${chain.stateSize} entries, got ${data.state.length}`);
  }
  const tensors = new Map<string, TensorInput>();
  for (const t of chainTensorLayout(chain)) {
    const source = t.kind === "param" ? data.params : data.state;
    if (!source) continue;
    tensors.set(t.name, { data: source.subarray(t.offset, t.offset + t.size), shape: t.shape, dtype: safetensorsDType(chain.dtype) });
  }
  if (data.optimizer) {
    for (const [k, v] of Object.entries(data.optimizer.tensors)) tensors.set(`optimizer.${k}`, { data: v });
  }
  const metadata: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    format_version: CHECKPOINT_FORMAT_VERSION,
    dtype: chain.dtype,
    spec: JSON.stringify(chain.spec),
    step: String(data.step ?? 0),
    epoch: String(data.epoch ?? 0),
    has_state: data.state ? "true" : "false",
  };
  if (data.rng) {
    const rng: Record<string, { words: number[]; spareNormal: number | null }> = {};
    for (const [k, s] of Object.entries(data.rng)) {
      const spare = s.spareNormal;
      rng[k] = { words: [...s.words], spareNormal: spare === undefined || Number.isNaN(spare) ? null : spare };
    }
    metadata.rng = JSON.stringify(rng);
  }
  if (data.optimizer) {
    metadata.optimizer_scalars = numbersToJson(data.optimizer.scalars ?? {});
    if (data.optimizer.info !== undefined) metadata.optimizer_info = JSON.stringify(data.optimizer.info);
  }
  if (data.extra) metadata.extra = JSON.stringify(data.extra);
  return { tensors, metadata };
}

/** Saves a checkpoint atomically (temporary file + rename): a crash leaves the previous one intact. */
export function saveCheckpoint(file: string, chain: Chain, data: CheckpointData): void {
  const { tensors, metadata } = checkpointTensors(chain, data);
  writeSafetensors(file, tensors, metadata);
}

/** Options of {@link loadCheckpoint}. */
/**
 * The chain a chainopt model or checkpoint file was saved from (its spec and precision are in the
 * file's metadata; only the header is read), on `backend`; null when the file has no chainopt
 * model spec (e.g. PyTorch weights).
 */
export function chainOfModelFile(file: string, backend: Backend): Chain | null {
  const { metadata } = readSafetensorsHeader(file);
  if (metadata.format !== "chainopt.checkpoint" || metadata.spec === undefined) return null;
  return new Chain(parseModelSpec(JSON.parse(metadata.spec), file), {
    dtype: metadata.dtype === "float64" ? "float64" : "float32",
    backend,
  });
}

export interface LoadCheckpointOptions {
  /** Require the file's model spec to equal the chain's (default true). */
  checkSpec?: boolean;
}

/**
 * Loads a checkpoint written by {@link saveCheckpoint} for `chain`. Checks the format, the
 * precision (must equal the chain's: resuming must be exact), every tensor's presence and shape.
 * Errors name the file and the tensor.
 */
export function loadCheckpoint(file: string, chain: Chain, options: LoadCheckpointOptions = {}): LoadedCheckpoint {
  const { tensors, metadata } = readSafetensors(file);
  if (metadata.format !== CHECKPOINT_FORMAT) {
    throw new SafetensorsError(
      file,
      `not a chainopt checkpoint (metadata format=${JSON.stringify(metadata.format)}); for PyTorch weights use importTorchSafetensors`,
    );
  }
  if (metadata.format_version !== CHECKPOINT_FORMAT_VERSION) {
    throw new SafetensorsError(file, `unsupported checkpoint format_version ${JSON.stringify(metadata.format_version)}`);
  }
  if (metadata.dtype !== chain.dtype)
    throw new SafetensorsError(file, `checkpoint precision is ${metadata.dtype}, the chain's is ${chain.dtype}`);
  if ((options.checkSpec ?? true) && metadata.spec !== undefined && metadata.spec !== JSON.stringify(chain.spec)) {
    throw new SafetensorsError(
      file,
      `model spec differs from the chain's:\n  file:  ${metadata.spec}\n  chain: ${JSON.stringify(chain.spec)}`,
    );
  }
  const params = allocate(chain.dtype, chain.paramSize);
  const state = chain.initState();
  const hasState = metadata.has_state !== "false";
  for (const t of chainTensorLayout(chain)) {
    if (t.kind === "state" && !hasState) continue;
    const target = (t.kind === "param" ? params : state).subarray(t.offset, t.offset + t.size);
    copyTensor(file, t.name, tensors.get(t.name), t.shape, safetensorsDType(chain.dtype), target);
  }
  let optimizer: OptimizerRecord | undefined;
  const optTensors: Record<string, FloatArray> = {};
  let anyOpt = false;
  for (const [name, t] of tensors) {
    if (!name.startsWith("optimizer.")) continue;
    if (!(t.data instanceof Float32Array || t.data instanceof Float64Array) || t.dtype === "F16" || t.dtype === "BF16") {
      throw new SafetensorsError(file, `optimizer tensors must be F32 or F64, got ${t.dtype}`, name);
    }
    optTensors[name.slice("optimizer.".length)] = t.data;
    anyOpt = true;
  }
  if (anyOpt || metadata.optimizer_scalars !== undefined) {
    optimizer = { tensors: optTensors, scalars: numbersFromJson(metadata.optimizer_scalars ?? "{}") };
    if (metadata.optimizer_info !== undefined) optimizer.info = JSON.parse(metadata.optimizer_info);
  }
  const rng: Record<string, RngState> = {};
  if (metadata.rng) {
    const raw = JSON.parse(metadata.rng) as Record<string, { words: number[]; spareNormal: number | null }>;
    for (const [k, s] of Object.entries(raw)) rng[k] = { words: s.words, spareNormal: s.spareNormal ?? Number.NaN };
  }
  return {
    params,
    state,
    optimizer,
    rng,
    step: Number(metadata.step ?? 0),
    epoch: Number(metadata.epoch ?? 0),
    extra: metadata.extra ? (JSON.parse(metadata.extra) as Record<string, unknown>) : {},
    metadata,
  };
}

/** Copies a tensor into `target`, checking presence, shape and (when given) dtype. */
export function copyTensor(
  file: string,
  name: string,
  t: Tensor | undefined,
  shape: readonly number[],
  dtype: "F32" | "F64" | undefined,
  target: FloatArray,
): void {
  if (!t) throw new SafetensorsError(file, "missing", name);
  if (t.shape.length !== shape.length || t.shape.some((d, k) => d !== shape[k])) {
    throw new SafetensorsError(file, `shape [${t.shape.join(", ")}] does not match the chain's [${shape.join(", ")}]`, name);
  }
  if (dtype !== undefined && t.dtype !== dtype) throw new SafetensorsError(file, `dtype ${t.dtype}, expected ${dtype}`, name);
  if (t.data instanceof Float32Array || t.data instanceof Float64Array) target.set(t.data);
  else target.set(tensorToNumbers(t, target instanceof Float32Array ? "float32" : "float64", file, name));
}
