import type { FloatArray } from "../core/dtype.js";

/**
 * A mini-batch: `size` samples, inputs batch-major (`size × inputSize`), with class labels
 * (classification) or real targets (`size × outputSize`, regression).
 */
export interface Batch {
  readonly x: FloatArray;
  readonly size: number;
  readonly labels?: Int32Array;
  readonly targets?: FloatArray;
}
