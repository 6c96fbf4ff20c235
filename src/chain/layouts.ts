import type { Component } from "../components/component.js";
import type { ActivationLayout, Backend } from "../core/backend.js";
import type { DType } from "../core/dtype.js";

// Blocked activation layouts between consecutive oneDNN layers.
//
// oneDNN's convolutions compute in a blocked layout (nChw16c with AVX-512, nChw8c with AVX2:
// channels in blocks of 16 or 8, innermost; oneDNN Developer Guide, "Understanding Memory
// Formats") and its pooling is 2–3× faster on it than on NCHW. With every tensor in NCHW each
// convolution call reorders its activations in and out: measured on the ConvNet preset (batch
// 128), reorders and NCHW pooling were 20–27 % of the training step (BENCHMARKS.md, "oneDNN
// layouts"). A chain therefore keeps an activation blocked when both the component that writes it
// and the one that reads it take blocked layouts: convolution, pooling and batch normalization on
// oneDNN (Component.acceptsBlockedLayouts; batch norm keeps its input's layout,
// Component.layoutTied), or element-wise maps between them (Component.layoutBlind: y_i = α(x_i) is
// the same computation in any layout, so one block of them shares the layout of its input and
// output). The chain's input and output stay NCHW, and so does every tensor a TypeScript
// component reads (flatten, dense, softmax, …).
//
// Layouts are used by the passes whose intermediates only their own backward pass reads
// (forward, objectiveValue, valueAndGradient); JVP, VJP and the second-order oracles, which read
// the intermediates, run on NCHW. Blocked tensors are a permutation of the plain one (no
// padding: the plan requires C to be a multiple of the block), the convolution and pooling
// primitives are the same, so their results are the same bits in both layouts; oneDNN's blocked
// batch normalization sums its statistics in another order than its NCHW kernel (differences at
// float32 rounding, ~1e-6 relative; deterministic). test/chain-layouts.test.ts checks both.

/**
 * The layout of each activation of a chain for a forward or gradient pass at `batch` (index i: the input of
 * component i; index K: the output), or null when none is blocked (no oneDNN layouts on this
 * backend, float64, or no two adjacent layout-taking components).
 */
export function planLayouts(components: readonly Component[], backend: Backend, batch: number, dtype: DType): ActivationLayout[] | null {
  const block = backend.dnn?.activationBlock ?? 0;
  if (!block || dtype !== "float32") return null;
  const K = components.length;
  // kind: 2 = takes layouts (oneDNN), 1 = layout-blind (element-wise), 0 = NCHW only.
  const kind = components.map((c) => (c.acceptsBlockedLayouts?.(backend, batch, dtype) ? 2 : c.layoutBlind ? 1 : 0));
  const blockable = (shape: readonly number[]): boolean => shape.length === 3 && shape[0] % block === 0;
  const plan: ActivationLayout[] = new Array<ActivationLayout>(K + 1).fill(0);
  for (let j = 1; j < K; j++) {
    if (kind[j - 1] > 0 && kind[j] > 0 && blockable(components[j - 1].outputShape)) plan[j] = block;
  }
  // An element-wise component's input and output share one layout, and so do batch norm's
  // (Component.layoutTied): where they differ, both go plain, until no such component sits between
  // two layouts (each pass only clears entries).
  const tied = components.map((c, i) => kind[i] === 1 || (kind[i] === 2 && c.layoutTied === true));
  for (let changed = true; changed; ) {
    changed = false;
    for (let i = 0; i < K; i++) {
      if (tied[i] && plan[i] !== plan[i + 1]) {
        plan[i] = 0;
        plan[i + 1] = 0;
        changed = true;
      }
    }
  }
  return plan.some((l) => l !== 0) ? plan : null;
}
