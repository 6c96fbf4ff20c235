import { constants } from "node:buffer";
import { totalmem } from "node:os";
import type { Chain } from "../chain/chain.js";

/**
 * Memory estimate of a training run, from the model's per-layer shapes, before anything is
 * allocated: a model spec such as `{"type":"dense","units":200000000}` is refused with a message
 * naming the layer and the size instead of growing until the machine swaps (or failing with
 * `Invalid typed array length`).
 *
 * What is counted, per layer t with ρ_t parameters and n_t outputs per sample (bytes per number
 * b = 4 for float32, 8 for float64):
 *   parameters  ρ_t · b · (copies): the parameters, their gradient, the optimizer's state slots
 *               (momentum 1, adam 2, amsgrad 3, …), the copy kept to undo a step (`--on-nan skip`),
 *               the averaged iterate (`--average`), the best parameters (`--early-stopping`) and
 *               the checkpoint's snapshot;
 *   activations N · n_t · b for the training batch N (the forward pass keeps every layer's
 *               output for the backward pass) and the evaluation batch;
 *   workspace   2 · N · max_t n_t · b (the backward pass's two slope buffers, src/chain/chain.ts).
 * The data set itself is already in memory when the estimate is made and is not counted.
 */

/** Bytes of one layer. */
export interface LayerMemory {
  /** `layers[i]`. */
  index: number;
  type: string;
  /** e.g. `dense 200000000 units` or `conv2d 64 filters`. */
  describe: string;
  params: number;
  paramBytes: number;
  activationBytes: number;
  bytes: number;
}

/** The estimate of {@link estimateTrainingMemory}. */
export interface MemoryEstimate {
  layers: LayerMemory[];
  paramBytes: number;
  activationBytes: number;
  workspaceBytes: number;
  total: number;
}

/** What the estimate depends on besides the chain. */
export interface MemoryOptions {
  batchSize: number;
  evalBatchSize?: number;
  /** Number of parameter-sized state slots of the optimizer (see {@link optimizerSlots}). */
  optimizerSlots?: number;
  /** Extra parameter-sized copies (undo copy, averaged iterate, best parameters). */
  extraCopies?: number;
}

/** Parameter-sized state vectors kept by each first-order optimizer (Optax-style state, src/optim). */
export function optimizerSlots(name: string, options: { momentum?: number } = {}): number {
  switch (name) {
    case "sgd":
      return options.momentum ? 1 : 0;
    case "momentum":
    case "nesterov":
    case "adagrad":
      return 1;
    case "rmsprop":
      return options.momentum ? 2 : 1;
    case "adam":
    case "adamw":
      return 2;
    case "amsgrad":
      return 3;
    default:
      return 0;
  }
}

function describeLayer(c: Chain["components"][number]): string {
  const spec = c.spec as { type: string; units?: number; filters?: number };
  if (spec.type === "dense") return `dense, ${spec.units} units`;
  if (spec.type === "conv2d") return `conv2d, ${spec.filters} filters`;
  return spec.type;
}

/** Estimates the bytes a training run of `chain` needs (see the module documentation). */
export function estimateTrainingMemory(chain: Chain, options: MemoryOptions): MemoryEstimate {
  const b = chain.dtype === "float64" ? 8 : 4;
  const n = options.batchSize;
  const evalN = options.evalBatchSize ?? n;
  // Parameters, gradient, optimizer slots, checkpoint snapshot, extra copies.
  const copies = 3 + (options.optimizerSlots ?? 0) + (options.extraCopies ?? 0);
  const layers: LayerMemory[] = chain.components.map((c, index) => {
    const paramBytes = c.paramSize * b * copies + c.stateSize * b * 3;
    const activationBytes = (n + evalN) * c.outputSize * b;
    return {
      index,
      type: c.type,
      describe: describeLayer(c),
      params: c.paramSize,
      paramBytes,
      activationBytes,
      bytes: paramBytes + activationBytes,
    };
  });
  const maxSize = Math.max(chain.inputSize, ...chain.components.map((c) => c.outputSize));
  const workspaceBytes = 2 * n * maxSize * b + (n + evalN) * chain.inputSize * b;
  const paramBytes = layers.reduce((s, l) => s + l.paramBytes, 0);
  const activationBytes = layers.reduce((s, l) => s + l.activationBytes, 0);
  return { layers, paramBytes, activationBytes, workspaceBytes, total: paramBytes + activationBytes + workspaceBytes };
}

/** Fraction of the machine's memory (os.totalmem()) a run may plan to use without `--max-memory`. */
export const DEFAULT_MEMORY_FRACTION = 0.8;

/** Human-readable bytes: `3.0 GiB`, `512.0 MiB`, `12.0 KiB`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

/**
 * Parses a memory size: bytes (`1073741824`), or a number with a unit `K`, `M`, `G`, `T`
 * (powers of 1024; `KB`/`KiB`… accepted). Errors name `field`.
 */
export function parseMemorySize(value: string | number, field = "--max-memory"): number {
  if (typeof value === "number") {
    if (!(value > 0) || !Number.isFinite(value)) throw new Error(`${field}: expected a positive size, got ${value}`);
    return value;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(value);
  if (!m) throw new Error(`${field}: expected a size such as 512M, 8G or a number of bytes, got "${value}"`);
  const scale = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2].toLowerCase() as "" | "k" | "m" | "g" | "t"];
  const bytes = Number(m[1]) * scale;
  if (!(bytes > 0)) throw new Error(`${field}: expected a positive size, got "${value}"`);
  return bytes;
}

/**
 * Refuses a run whose estimate exceeds `maxBytes` (default {@link DEFAULT_MEMORY_FRACTION} of
 * os.totalmem()), or one whose single layer cannot even be allocated as one typed array, naming
 * the largest layer and its size. Returns the estimate.
 */
export function checkTrainingMemory(chain: Chain, options: MemoryOptions & { maxBytes?: number }): MemoryEstimate {
  const e = estimateTrainingMemory(chain, options);
  const largest = e.layers.reduce((a, l) => (l.bytes > a.bytes ? l : a), e.layers[0]);
  const where = largest
    ? `layers[${largest.index}] (${largest.describe}) alone needs ${formatBytes(largest.bytes)} (${largest.params} parameters: ${formatBytes(largest.paramBytes)} with gradient and optimizer state; activations ${formatBytes(largest.activationBytes)})`
    : "";
  // The parameters live in one typed array: its byte length is bounded by Node's buffer limit.
  const bytesPerNumber = chain.dtype === "float64" ? 8 : 4;
  if (chain.paramSize * bytesPerNumber > constants.MAX_LENGTH) {
    throw new Error(
      `model: ${chain.paramSize} parameters exceed the largest array Node can allocate (${formatBytes(constants.MAX_LENGTH)}); ${where}`,
    );
  }
  const limit = options.maxBytes ?? DEFAULT_MEMORY_FRACTION * totalmem();
  if (e.total > limit) {
    const what =
      options.maxBytes !== undefined
        ? `--max-memory ${formatBytes(limit)}`
        : `${Math.round(DEFAULT_MEMORY_FRACTION * 100)}% of this machine's ${formatBytes(totalmem())} (raise it with --max-memory)`;
    throw new Error(
      `model: training needs about ${formatBytes(e.total)} (parameters ${formatBytes(e.paramBytes)}, activations ${formatBytes(e.activationBytes)}, workspace ${formatBytes(e.workspaceBytes)} at batch ${options.batchSize}), more than ${what}; ${where}`,
    );
  }
  return e;
}
