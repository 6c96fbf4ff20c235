import type { Chain } from "../chain/chain.js";
import { allocate, type FloatArray } from "../core/dtype.js";
import { chainTensorLayout } from "./checkpoint.js";
import { readSafetensors, SafetensorsError, type TensorInput, writeSafetensors } from "./safetensors.js";

/**
 * PyTorch interop: weights of an `nn.Sequential` saved as safetensors (`state_dict()` keys).
 *
 * ## Name mapping
 * A PyTorch `nn.Sequential` names each parameter `<module index>.<name>`. When the Sequential
 * mirrors the chainopt model spec module for module — spec layer i ↔ torch module i, including the
 * parameter-free ones (ReLU, MaxPool2d, Flatten each count as one module on both sides) — the rule is:
 *
 *   | chainopt (spec layer i)                | PyTorch module i            | keys                                   |
 *   |----------------------------------------|-----------------------------|----------------------------------------|
 *   | `dense` (units, bias)                  | `nn.Linear(in, units)`      | `i.weight` [units, in], `i.bias`       |
 *   | `conv2d` (filters, kernel, …)          | `nn.Conv2d(inC, filters, …)`| `i.weight` [filters, inC, kh, kw], `i.bias` |
 *   | `batchNorm` (affine)                   | `nn.BatchNorm1d/2d`         | `i.weight`, `i.bias` (if affine), `i.running_mean`, `i.running_var` |
 *   | `relu`, `maxPool2d`, `flatten`, …      | `nn.ReLU`, `nn.MaxPool2d`, `nn.Flatten` | none                        |
 *
 * `num_batches_tracked` (an integer counter of BatchNorm) is ignored on import and written as 0 on
 * export only when `numBatchesTracked` is set. Layouts agree without transposition: chainopt stores
 * dense weights out × in and conv weights outC × inC × kh × kw, as PyTorch does, and images NCHW,
 * so `nn.Flatten` after a conv stack orders features as chainopt's `flatten` does.
 * When the Sequential does not mirror the spec (e.g. it sits inside a bigger module, or has extra
 * modules such as Dropout), pass `prefix` (e.g. `"features."`) and/or `moduleIndex` (chainopt
 * component index → torch module index).
 * Values are converted to the chain's precision (float32 → float64 is exact; float64 → float32
 * rounds to nearest). Extra tensors in the file are an error unless `allowExtra` is set.
 */
export interface TorchMappingOptions {
  /** Prefix of every key, e.g. `"model."` (default none). */
  prefix?: string;
  /** Torch module index of chainopt component i (default: i). */
  moduleIndex?: (component: number) => number;
}

export interface TorchImportOptions extends TorchMappingOptions {
  /** Ignore tensors of the file that the chain does not use (default false). */
  allowExtra?: boolean;
}

export interface TorchExportOptions extends TorchMappingOptions {
  /** Write `<i>.num_batches_tracked` (I64) for batch-norm layers with this value. */
  numBatchesTracked?: number;
  /** Extra string metadata (the file always carries `format: "pt"` and the chainopt spec). */
  metadata?: Record<string, string>;
}

/** The PyTorch key of each chain tensor: chainopt name → torch name. */
export function torchNameMap(chain: Chain, options: TorchMappingOptions = {}): Map<string, string> {
  const prefix = options.prefix ?? "";
  const index = options.moduleIndex ?? ((i: number) => i);
  const out = new Map<string, string>();
  for (const t of chainTensorLayout(chain)) out.set(t.name, `${prefix}${index(t.component)}.${t.local}`);
  return out;
}

/** Loaded PyTorch weights: the flat parameter vector and state vector of the chain. */
export interface TorchImport {
  params: FloatArray;
  state: FloatArray;
  metadata: Record<string, string>;
}

/** Reads a PyTorch `nn.Sequential` state_dict saved as safetensors into the chain's layout. */
export function importTorchSafetensors(chain: Chain, file: string, options: TorchImportOptions = {}): TorchImport {
  const { tensors, metadata } = readSafetensors(file);
  const params = allocate(chain.dtype, chain.paramSize);
  const state = chain.initState();
  const names = torchNameMap(chain, options);
  const used = new Set<string>();
  for (const t of chainTensorLayout(chain)) {
    const key = names.get(t.name) as string;
    const tensor = tensors.get(key);
    if (!tensor) {
      const available = [...tensors.keys()].slice(0, 20).join(", ");
      throw new SafetensorsError(file, `missing (chainopt ${t.name}, shape [${t.shape.join(", ")}]); the file has: ${available}`, key);
    }
    if (tensor.shape.length !== t.shape.length || tensor.shape.some((d, k) => d !== t.shape[k])) {
      throw new SafetensorsError(file, `shape [${tensor.shape.join(", ")}] does not match chainopt ${t.name} [${t.shape.join(", ")}]`, key);
    }
    const d = tensor.data;
    if (!(d instanceof Float32Array || d instanceof Float64Array))
      throw new SafetensorsError(file, `expected a floating-point tensor, got ${tensor.dtype}`, key);
    (t.kind === "param" ? params : state).subarray(t.offset, t.offset + t.size).set(d);
    used.add(key);
  }
  if (!options.allowExtra) {
    const extra = [...tensors.keys()].filter((k) => !used.has(k) && !k.endsWith("num_batches_tracked"));
    if (extra.length > 0) {
      throw new SafetensorsError(
        file,
        `tensors not used by the chain: ${extra.join(", ")} (does the nn.Sequential mirror the model spec? see allowExtra, prefix, moduleIndex)`,
      );
    }
  }
  return { params, state, metadata };
}

/** Writes chain parameters (and batch-norm statistics) under PyTorch `nn.Sequential` names. */
export function exportTorchSafetensors(
  chain: Chain,
  w: FloatArray,
  state: FloatArray | null,
  file: string,
  options: TorchExportOptions = {},
): void {
  chain.checkParams(w);
  const names = torchNameMap(chain, options);
  const tensors = new Map<string, TensorInput>();
  for (const t of chainTensorLayout(chain)) {
    if (t.kind === "state" && !state) continue;
    const source = t.kind === "param" ? w : (state as FloatArray);
    tensors.set(names.get(t.name) as string, { data: source.subarray(t.offset, t.offset + t.size), shape: t.shape });
  }
  if (options.numBatchesTracked !== undefined) {
    const prefix = options.prefix ?? "";
    const index = options.moduleIndex ?? ((i: number) => i);
    chain.components.forEach((c, i) => {
      if (c.type === "batchNorm") {
        tensors.set(`${prefix}${index(i)}.num_batches_tracked`, {
          data: new BigInt64Array([BigInt(options.numBatchesTracked as number)]),
          shape: [],
        });
      }
    });
  }
  writeSafetensors(file, tensors, { format: "pt", "chainopt.spec": JSON.stringify(chain.spec), ...options.metadata });
}
