import { allocate, dtypeOf, type FloatArray } from "../core/dtype.js";
import type { StateTree } from "./transform.js";

// Checkpointing of optimizer state. Every transformation's state is a plain tree of typed arrays
// and numbers, so it flattens to named tensors and scalars; names are paths of keys joined by ".",
// e.g. a chain's Adam moments are "1.mu" and "1.nu" and its step count "1.count". The names depend
// only on the optimizer and its options, so a state saved by one run restores into the template
// `init(params)` of another run with the same configuration, which then continues bit-identically
// (all arithmetic is deterministic given the state, the parameters, the gradient and the step).

/** A flattened optimizer state. */
export interface SavedState {
  tensors: Record<string, FloatArray>;
  scalars: Record<string, number>;
}

function isFloatArray(x: unknown): x is FloatArray {
  return x instanceof Float32Array || x instanceof Float64Array;
}

function walk(tree: StateTree, path: string, visit: (path: string, leaf: FloatArray | number) => void): void {
  if (typeof tree === "number" || isFloatArray(tree)) {
    visit(path, tree);
    return;
  }
  if (Array.isArray(tree)) {
    tree.forEach((t, i) => {
      walk(t, path === "" ? String(i) : `${path}.${i}`, visit);
    });
    return;
  }
  if (typeof tree === "object" && tree !== null) {
    for (const key of Object.keys(tree).sort()) {
      if (key.includes(".")) throw new Error(`optimizer state: key "${key}" at "${path}" contains "."`);
      const child = (tree as Record<string, StateTree>)[key];
      if (child === undefined) continue;
      walk(child, path === "" ? key : `${path}.${key}`, visit);
    }
    return;
  }
  throw new Error(`optimizer state: unsupported value at "${path || "(root)"}": ${String(tree)}`);
}

/**
 * Flattens an optimizer state to named tensors and scalars. Tensors are copies unless
 * `copy: false` (then they are the live buffers, valid until the next update).
 */
export function stateToTensors(state: StateTree, options: { copy?: boolean } = {}): SavedState {
  const copy = options.copy ?? true;
  const tensors: Record<string, FloatArray> = {};
  const scalars: Record<string, number> = {};
  walk(state, "", (path, leaf) => {
    const name = path === "" ? "value" : path;
    if (typeof leaf === "number") scalars[name] = leaf;
    else tensors[name] = copy ? (leaf.slice() as FloatArray) : leaf;
  });
  return { tensors, scalars };
}

function rebuild(template: StateTree, path: string, saved: SavedState, used: Set<string>): StateTree {
  const name = path === "" ? "value" : path;
  if (typeof template === "number") {
    const v = saved.scalars[name];
    if (typeof v !== "number") throw new Error(`optimizer state: scalar "${name}" is missing from the checkpoint`);
    used.add(`s:${name}`);
    return v;
  }
  if (isFloatArray(template)) {
    const src = saved.tensors[name] as ArrayLike<number> | undefined;
    if (src === undefined) throw new Error(`optimizer state: tensor "${name}" is missing from the checkpoint`);
    if (src.length !== template.length) {
      throw new Error(`optimizer state: tensor "${name}" has ${src.length} entries, expected ${template.length}`);
    }
    used.add(`t:${name}`);
    const out = allocate(dtypeOf(template), template.length);
    if (isFloatArray(src) && dtypeOf(src) === dtypeOf(template)) out.set(src);
    else for (let i = 0; i < out.length; i++) out[i] = src[i];
    return out;
  }
  if (Array.isArray(template)) return template.map((t, i) => rebuild(t, path === "" ? String(i) : `${path}.${i}`, saved, used));
  const out: Record<string, StateTree> = {};
  for (const key of Object.keys(template)) {
    const child = (template as Record<string, StateTree>)[key];
    if (child === undefined) continue;
    out[key] = rebuild(child, path === "" ? key : `${path}.${key}`, saved, used);
  }
  return out;
}

/**
 * Restores a state saved by {@link stateToTensors} into a fresh tree shaped like `template` (usually
 * `optimizer.init(params)`; it is not modified). Tensors may come back as plain number arrays (e.g.
 * from JSON); they are converted to the template's precision. Throws, naming the entry, when an
 * entry is missing, has the wrong length, or is left over (the checkpoint is of another optimizer).
 */
export function stateFromTensors<S extends StateTree>(
  template: S,
  saved: { tensors: Record<string, ArrayLike<number>>; scalars?: Record<string, number> },
): S {
  const used = new Set<string>();
  const normalized = { tensors: saved.tensors, scalars: saved.scalars ?? {} } as SavedState;
  const out = rebuild(template, "", normalized, used) as S;
  for (const name of Object.keys(saved.tensors)) {
    if (!used.has(`t:${name}`)) throw new Error(`optimizer state: the checkpoint has tensor "${name}", which this optimizer does not`);
  }
  for (const name of Object.keys(normalized.scalars)) {
    if (!used.has(`s:${name}`)) throw new Error(`optimizer state: the checkpoint has scalar "${name}", which this optimizer does not`);
  }
  return out;
}
