import { allocate, type DType, type FloatArray, sizeOf } from "../core/dtype.js";
import { Rng } from "../core/rng.js";
import type { Batch } from "../objectives/batch.js";

// In-memory data sets and mini-batching (portable: no Node imports). The Node readers that fill
// them from files live in src/node/datasets.ts.

/**
 * An in-memory data set of `size` samples. Inputs are stored once, batch-major (`size ×
 * inputSize`, NCHW for images), in float32 (the readers' format) or float64 (data computed in
 * double precision, e.g. an experiment's exactly whitened inputs, which a float64 chain then sees
 * unrounded); the conversion to the chain's precision happens when batching ({@link BatchLoader}). Classification sets carry `labels` in [0, classes), regression
 * sets carry `targets` (`size × targetSize`).
 */
export interface Dataset {
  readonly name: string;
  /** Shape of one sample, e.g. [1, 28, 28] or [13]. */
  readonly inputShape: readonly number[];
  readonly size: number;
  readonly x: Float32Array | Float64Array;
  readonly labels?: Int32Array;
  /** Number of classes (present iff `labels` is). */
  readonly classes?: number;
  readonly targets?: Float32Array | Float64Array;
  /** Values per target (present iff `targets` is). */
  readonly targetSize?: number;
}

/** What {@link createDataset} needs: `size`, `classes` and `targetSize` are inferred when omitted. */
export interface DatasetInit {
  name: string;
  inputShape: readonly number[];
  x: Float32Array | Float64Array;
  size?: number;
  labels?: Int32Array;
  classes?: number;
  targets?: Float32Array | Float64Array;
  targetSize?: number;
  /** Check that every input and target is finite (default true; an O(size × inputSize) pass). */
  checkFinite?: boolean;
}

/** Error for an inconsistent data set (wrong lengths, labels out of range, non-finite values). */
export class DatasetError extends Error {
  override name = "DatasetError";
}

/** A new zeroed array of `length` values in the precision of `like` (a data set keeps its precision). */
function sameKind(like: Float32Array | Float64Array, length: number): Float32Array | Float64Array {
  return like instanceof Float64Array ? new Float64Array(length) : new Float32Array(length);
}

/** Values per sample. */
export function inputSizeOf(ds: Pick<Dataset, "inputShape">): number {
  return sizeOf(ds.inputShape);
}

/** Builds a data set and validates it (see {@link validateDataset}). */
export function createDataset(init: DatasetInit): Dataset {
  const inputSize = sizeOf(init.inputShape);
  const size = init.size ?? (inputSize > 0 ? init.x.length / inputSize : 0);
  let classes = init.classes;
  if (init.labels && classes === undefined) {
    classes = 0;
    for (let i = 0; i < init.labels.length; i++) if (init.labels[i] + 1 > classes) classes = init.labels[i] + 1;
  }
  let targetSize = init.targetSize;
  if (init.targets && targetSize === undefined) targetSize = size > 0 ? init.targets.length / size : 1;
  const ds: Dataset = {
    name: init.name,
    inputShape: [...init.inputShape],
    size,
    x: init.x,
    ...(init.labels ? { labels: init.labels, classes } : {}),
    ...(init.targets ? { targets: init.targets, targetSize } : {}),
  };
  validateDataset(ds, { checkFinite: init.checkFinite ?? true });
  return ds;
}

/**
 * Throws a {@link DatasetError} unless `ds` is consistent: positive integer shape, `x.length =
 * size × inputSize`, integer labels in [0, classes), `targets.length = size × targetSize`, and
 * (with `checkFinite`, default true) finite inputs and targets.
 */
export function validateDataset(ds: Dataset, options: { checkFinite?: boolean } = {}): void {
  const where = `data set ${JSON.stringify(ds.name)}`;
  const fail = (what: string): never => {
    throw new DatasetError(`${where}: ${what}`);
  };
  if (typeof ds.name !== "string" || ds.name === "") fail("name must be a non-empty string");
  if (ds.inputShape.length === 0 || ds.inputShape.some((d) => !Number.isInteger(d) || d <= 0)) {
    fail(`input shape must be positive integers, got [${ds.inputShape.join(", ")}]`);
  }
  if (!Number.isInteger(ds.size) || ds.size < 0) fail(`size must be a non-negative integer, got ${ds.size}`);
  if (!(ds.x instanceof Float32Array || ds.x instanceof Float64Array)) fail("x must be a Float32Array or a Float64Array");
  const inputSize = inputSizeOf(ds);
  if (ds.x.length !== ds.size * inputSize) {
    fail(`x has ${ds.x.length} values, expected size × inputSize = ${ds.size} × ${inputSize} = ${ds.size * inputSize}`);
  }
  if (!ds.labels && !ds.targets) fail("needs labels (classification) or targets (regression)");
  if (ds.labels) {
    if (!(ds.labels instanceof Int32Array)) fail("labels must be an Int32Array");
    const classes = ds.classes ?? -1;
    if (!Number.isInteger(classes) || classes < 1) fail(`classes must be a positive integer, got ${ds.classes}`);
    if (ds.labels.length !== ds.size) fail(`${ds.labels.length} labels for ${ds.size} samples`);
    for (let i = 0; i < ds.labels.length; i++) {
      const l = ds.labels[i];
      if (l < 0 || l >= classes) fail(`label ${l} of sample ${i} is outside [0, ${classes})`);
    }
  } else if (ds.classes !== undefined) fail("classes given without labels");
  if (ds.targets) {
    if (!(ds.targets instanceof Float32Array || ds.targets instanceof Float64Array))
      fail("targets must be a Float32Array or a Float64Array");
    const t = ds.targetSize ?? -1;
    if (!Number.isInteger(t) || t < 1) fail(`targetSize must be a positive integer, got ${ds.targetSize}`);
    if (ds.targets.length !== ds.size * t) fail(`targets have ${ds.targets.length} values, expected ${ds.size} × ${t}`);
  } else if (ds.targetSize !== undefined) fail("targetSize given without targets");
  if (options.checkFinite ?? true) {
    const bad = firstNonFinite(ds.x);
    if (bad >= 0) fail(`input value ${ds.x[bad]} (sample ${Math.floor(bad / inputSize)}, feature ${bad % inputSize}) is not finite`);
    if (ds.targets) {
      const b = firstNonFinite(ds.targets);
      if (b >= 0) fail(`target value ${ds.targets[b]} (sample ${Math.floor(b / ds.targetSize!)}) is not finite`);
    }
  }
}

function firstNonFinite(a: Float32Array | Float64Array): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return i;
  return -1;
}

/**
 * The samples of `ds` at `indices` (in that order, repetitions allowed), copied; or, given a
 * count k, the first k samples (all of them when k ≥ size).
 */
export function subsetDataset(ds: Dataset, selection: ArrayLike<number> | number, name = ds.name): Dataset {
  const d = inputSizeOf(ds);
  const t = ds.targetSize ?? 0;
  if (typeof selection === "number") {
    if (!Number.isInteger(selection) || selection < 0)
      throw new RangeError(`subsetDataset: count must be a non-negative integer, got ${selection}`);
    const k = Math.min(selection, ds.size);
    return {
      ...ds,
      name,
      size: k,
      x: ds.x.slice(0, k * d),
      ...(ds.labels ? { labels: ds.labels.slice(0, k) } : {}),
      ...(ds.targets ? { targets: ds.targets.slice(0, k * t) } : {}),
    };
  }
  const k = selection.length;
  const x = sameKind(ds.x, k * d);
  const labels = ds.labels ? new Int32Array(k) : undefined;
  const targets = ds.targets ? sameKind(ds.targets, k * t) : undefined;
  for (let j = 0; j < k; j++) {
    const i = selection[j];
    if (!Number.isInteger(i) || i < 0 || i >= ds.size) throw new RangeError(`subsetDataset: index ${i} outside [0, ${ds.size})`);
    x.set(ds.x.subarray(i * d, (i + 1) * d), j * d);
    if (labels) labels[j] = ds.labels![i];
    if (targets) targets.set(ds.targets!.subarray(i * t, (i + 1) * t), j * t);
  }
  return { ...ds, name, size: k, x, ...(labels ? { labels } : {}), ...(targets ? { targets } : {}) };
}

/** Options of {@link splitDataset}. */
export interface SplitOptions {
  /** Validation samples: a count (integer ≥ 1) or a fraction in (0, 1) of `ds.size` (rounded). */
  validation: number;
  /** Seed of the random split (default 0): the same seed gives the same split. */
  seed?: number;
}

/**
 * A validation size that cannot be split off `size` samples (not a count or a fraction, or leaving
 * no training samples); callers that know where the size came from (a flag, a configuration
 * field) name it, see src/node/train-guards.ts.
 */
export class ValidationSizeError extends RangeError {
  override name = "ValidationSizeError";
  constructor(
    message: string,
    /** The requested validation size (count or fraction). */
    readonly validation: number,
    /** The samples it was to be split off. */
    readonly size: number,
  ) {
    super(message);
  }
}

/** Number of validation samples asked for by `validation` (count or fraction) out of `size`. */
export function validationCount(validation: number, size: number): number {
  if (!(validation > 0) || !Number.isFinite(validation))
    throw new ValidationSizeError(`validation must be a count ≥ 1 or a fraction in (0, 1), got ${validation}`, validation, size);
  const n = validation < 1 ? Math.round(validation * size) : validation;
  if (!Number.isInteger(n)) throw new ValidationSizeError(`validation count must be an integer, got ${validation}`, validation, size);
  if (n >= size) throw new ValidationSizeError(`validation (${n} samples) must leave training samples out of ${size}`, validation, size);
  return n;
}

/**
 * Random train/validation split: a permutation drawn from `new Rng(seed)` (src/core/rng.ts) puts
 * its first `n` indices in validation; both parts keep the original sample order. Reproducible:
 * the same seed, size and count give the same split.
 */
export function splitDataset(ds: Dataset, options: SplitOptions): { train: Dataset; validation: Dataset } {
  const n = validationCount(options.validation, ds.size);
  const perm = new Rng(options.seed ?? 0).permutation(ds.size);
  const val = perm.slice(0, n).sort();
  const train = perm.slice(n).sort();
  return { train: subsetDataset(ds, train, `${ds.name}/train`), validation: subsetDataset(ds, val, `${ds.name}/validation`) };
}

// ---------------------------------------------------------------------------------------------
// Mini-batches

/** Options of {@link BatchLoader}. */
export interface BatchLoaderOptions {
  batchSize: number;
  /** Precision of the batches' `x` and `targets`: the chain's dtype (default float32). */
  dtype?: DType;
  /** Drop the last partial batch of an epoch (default false: keep it, smaller). */
  dropLast?: boolean;
}

interface MutableBatch {
  x: FloatArray;
  size: number;
  labels?: Int32Array;
  targets?: FloatArray;
}

/**
 * Mini-batches of a data set in the chain's precision, for the training hot loop. The loader owns
 * one set of output buffers (batchSize × inputSize inputs, labels or targets) and REUSES them for
 * every batch: a batch returned by {@link BatchLoader.batch} or yielded by {@link BatchLoader.epoch}
 * is valid only until the next one is requested (copy it to keep it). No allocation happens per
 * batch (the last partial batch is a preallocated view of the same buffers).
 *
 * The order of an epoch is a permutation of 0..size-1 (e.g. `rng.permutation(ds.size)`, src/core/rng.ts)
 * or, when omitted, sequential; any array of sample indices (a subset, repetitions) also works.
 */
export class BatchLoader {
  readonly dataset: Dataset;
  readonly batchSize: number;
  readonly dtype: DType;
  readonly dropLast: boolean;
  readonly inputSize: number;
  private readonly full: MutableBatch;
  private partial: MutableBatch | null = null;

  constructor(dataset: Dataset, options: BatchLoaderOptions) {
    const { batchSize } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
    this.dataset = dataset;
    this.batchSize = batchSize;
    this.dtype = options.dtype ?? "float32";
    this.dropLast = options.dropLast ?? false;
    this.inputSize = inputSizeOf(dataset);
    this.full = {
      x: allocate(this.dtype, batchSize * this.inputSize),
      size: batchSize,
      ...(dataset.labels ? { labels: new Int32Array(batchSize) } : {}),
      ...(dataset.targets ? { targets: allocate(this.dtype, batchSize * dataset.targetSize!) } : {}),
    };
  }

  /** Batches in an epoch over `count` samples (default: the whole data set). */
  batchCount(count = this.dataset.size): number {
    return this.dropLast ? Math.floor(count / this.batchSize) : Math.ceil(count / this.batchSize);
  }

  /**
   * Fills the reused buffers with batch number `index` of the epoch ordered by `order` (sample
   * indices; sequential when null) and returns them. Valid until the next call.
   */
  batch(index: number, order: ArrayLike<number> | null = null): Batch {
    const ds = this.dataset;
    const count = order ? order.length : ds.size;
    const start = index * this.batchSize;
    if (!Number.isInteger(index) || index < 0 || index >= this.batchCount(count)) {
      throw new RangeError(`batch ${index} outside [0, ${this.batchCount(count)})`);
    }
    const n = Math.min(this.batchSize, count - start);
    const out = n === this.batchSize ? this.full : this.partialBatch(n);
    const d = this.inputSize;
    const x = out.x;
    const src = ds.x;
    const t = ds.targetSize ?? 0;
    // One TypedArray.set per row: a memcpy (or, into float64 batches, the engine's exact
    // float32 → float64 conversion loop) instead of a JavaScript loop per element; the row view it
    // needs is one small allocation.
    for (let k = 0; k < n; k++) {
      const i = order ? order[start + k] : start + k;
      if (!(i >= 0 && i < ds.size)) throw new RangeError(`sample index ${i} outside [0, ${ds.size})`);
      const a = i * d;
      const b = k * d;
      x.set(src.subarray(a, a + d), b);
      if (out.labels) out.labels[k] = ds.labels![i];
      if (out.targets) for (let j = 0, a = i * t, b = k * t; j < t; j++) out.targets[b + j] = ds.targets![a + j];
    }
    return out;
  }

  /**
   * The batches of one epoch in the given order (sequential when omitted). Each yielded batch
   * reuses the loader's buffers: it is valid until the next one is yielded.
   */
  *epoch(order: ArrayLike<number> | null = null): Generator<Batch, void, undefined> {
    const count = this.batchCount(order ? order.length : this.dataset.size);
    for (let b = 0; b < count; b++) yield this.batch(b, order);
  }

  private partialBatch(n: number): MutableBatch {
    if (this.partial?.size !== n) {
      const t = this.dataset.targetSize ?? 0;
      this.partial = {
        x: this.full.x.subarray(0, n * this.inputSize),
        size: n,
        ...(this.full.labels ? { labels: this.full.labels.subarray(0, n) } : {}),
        ...(this.full.targets ? { targets: this.full.targets.subarray(0, n * t) } : {}),
      };
    }
    return this.partial;
  }
}

/** One epoch of `ds` in mini-batches (see {@link BatchLoader}; batches reuse one set of buffers). */
export function batches(
  ds: Dataset,
  options: BatchLoaderOptions & { order?: ArrayLike<number> | null },
): Generator<Batch, void, undefined> {
  return new BatchLoader(ds, options).epoch(options.order ?? null);
}

/** The whole data set as one batch in precision `dtype` (for evaluation on small sets). */
export function fullBatch(ds: Dataset, dtype: DType = "float32"): Batch {
  return new BatchLoader(ds, { batchSize: Math.max(1, ds.size), dtype }).batch(0);
}

// ---------------------------------------------------------------------------------------------
// Standardization

/** Per-feature affine normalization z = (v − mean) / std. */
export interface Standardization {
  readonly mean: Float64Array;
  readonly std: Float64Array;
}

/**
 * Fits per-column mean and population standard deviation (divisor n) of a `rows × columns`
 * row-major matrix, in float64 with Welford's update (numerically stable). A column whose std is
 * below `epsilon` (constant, e.g. a border pixel always 0) gets std 1, so it maps to 0 instead of
 * dividing by zero.
 */
export function fitStandardization(values: ArrayLike<number>, columns: number, epsilon = 1e-8): Standardization {
  if (!Number.isInteger(columns) || columns < 1 || values.length % columns !== 0) {
    throw new RangeError(`fitStandardization: ${values.length} values are not rows of ${columns} columns`);
  }
  const rows = values.length / columns;
  if (rows < 1) throw new RangeError("fitStandardization: no samples");
  const mean = new Float64Array(columns);
  const m2 = new Float64Array(columns);
  for (let r = 0; r < rows; r++) {
    const o = r * columns;
    for (let j = 0; j < columns; j++) {
      const v = values[o + j];
      const delta = v - mean[j];
      mean[j] += delta / (r + 1);
      m2[j] += delta * (v - mean[j]);
    }
  }
  const std = new Float64Array(columns);
  for (let j = 0; j < columns; j++) {
    const s = Math.sqrt(m2[j] / rows);
    std[j] = s < epsilon ? 1 : s;
  }
  return { mean, std };
}

/** Applies z = (v − mean) / std column-wise into `out` (may be `values`, in place). */
export function applyStandardization<T extends { [i: number]: number; length: number }>(
  values: ArrayLike<number>,
  s: Standardization,
  out: T,
): T {
  const c = s.mean.length;
  if (values.length % c !== 0 || out.length !== values.length)
    throw new RangeError(`applyStandardization: ${values.length} values for ${c} columns`);
  for (let i = 0; i < values.length; i += c) for (let j = 0; j < c; j++) out[i + j] = (values[i + j] - s.mean[j]) / s.std[j];
  return out;
}

/** Inverse map v = mean + std · z, column-wise, in place (e.g. predictions back to target units). */
export function invertStandardization(values: { [i: number]: number; length: number }, s: Standardization): void {
  const c = s.mean.length;
  if (values.length % c !== 0) throw new RangeError(`invertStandardization: ${values.length} values for ${c} columns`);
  for (let i = 0; i < values.length; i += c) for (let j = 0; j < c; j++) values[i + j] = s.mean[j] + s.std[j] * values[i + j];
}

/** Per-feature mean/std of the inputs (fit on the training set, then apply to every split). */
export function fitInputStandardization(ds: Dataset, epsilon?: number): Standardization {
  return fitStandardization(ds.x, inputSizeOf(ds), epsilon);
}

/** Per-output mean/std of the regression targets. */
export function fitTargetStandardization(ds: Dataset, epsilon?: number): Standardization {
  if (!ds.targets) throw new DatasetError(`data set ${JSON.stringify(ds.name)}: no regression targets to standardize`);
  return fitStandardization(ds.targets, ds.targetSize!, epsilon);
}

/** A copy of `ds` with standardized inputs (`s` from {@link fitInputStandardization} on the training set). */
export function standardizeInputs(ds: Dataset, s: Standardization): Dataset {
  if (s.mean.length !== inputSizeOf(ds))
    throw new DatasetError(`standardization of ${s.mean.length} features for inputs of ${inputSizeOf(ds)}`);
  return { ...ds, x: applyStandardization(ds.x, s, sameKind(ds.x, ds.x.length)) };
}

/** A copy of `ds` with standardized targets (`s` from {@link fitTargetStandardization} on the training set). */
export function standardizeTargets(ds: Dataset, s: Standardization): Dataset {
  if (!ds.targets) throw new DatasetError(`data set ${JSON.stringify(ds.name)}: no regression targets to standardize`);
  if (s.mean.length !== ds.targetSize)
    throw new DatasetError(`standardization of ${s.mean.length} targets for targets of ${ds.targetSize}`);
  return { ...ds, targets: applyStandardization(ds.targets, s, sameKind(ds.targets, ds.targets.length)) };
}

/**
 * Per-channel normalization of NCHW images in place: x[n, c, ·, ·] ← (x − mean[c]) / std[c]
 * (the `transforms.Normalize` of PyTorch examples).
 */
export function normalizeChannels(x: Float32Array, shape: readonly number[], mean: readonly number[], std: readonly number[]): void {
  const channels = shape[0];
  if (mean.length !== channels || std.length !== channels)
    throw new RangeError(`normalizeChannels: ${channels} channels, ${mean.length} means, ${std.length} stds`);
  const plane = sizeOf(shape) / channels;
  for (let o = 0; o < x.length; o += plane * channels) {
    for (let c = 0; c < channels; c++) {
      const m = mean[c];
      const inv = 1 / std[c];
      const base = o + c * plane;
      for (let p = 0; p < plane; p++) x[base + p] = (x[base + p] - m) * inv;
    }
  }
}
