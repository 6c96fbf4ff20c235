import { Rng } from "../../src/core/rng.js";
import type { PlaygroundState } from "./state.js";

// Data sets of the playground, generated in the page from the seed (toy sets), read from the
// shipped MNIST subset (built by scripts/build-playground-data.mjs), or parsed from a CSV file the
// user picks.

/** A data set in the page: inputs batch-major in float64, labels (classification) or targets. */
export interface PageData {
  name: string;
  inputShape: number[];
  size: number;
  x: Float64Array;
  labels?: Int32Array;
  classes?: number;
  targets?: Float64Array;
  targetSize?: number;
}

/**
 * 2-D toy sets: two concentric circles, XOR quadrants, two moons, two spirals (binary
 * classification, 2-D inputs of norm ≲ 1.5), and a regression set y = sin(2x₁)cos(x₂).
 */
export function toyData(name: "circles" | "xor" | "moons" | "spirals" | "sine", samples: number, seed: number): PageData {
  const rng = new Rng(seed + 1000);
  const x = new Float64Array(samples * 2);
  const labels = new Int32Array(samples);
  const noise = 0.08;
  for (let i = 0; i < samples; i++) {
    const c = i % 2;
    let a = 0;
    let b = 0;
    if (name === "circles") {
      const r = c === 0 ? 0.35 : 1;
      const t = rng.uniform() * 2 * Math.PI;
      a = r * Math.cos(t);
      b = r * Math.sin(t);
    } else if (name === "xor") {
      a = rng.uniformIn(-1, 1);
      b = rng.uniformIn(-1, 1);
      labels[i] = a * b > 0 ? 0 : 1;
    } else if (name === "moons") {
      const t = rng.uniform() * Math.PI;
      a = c === 0 ? Math.cos(t) - 0.5 : 0.5 - Math.cos(t);
      b = c === 0 ? Math.sin(t) - 0.25 : 0.25 - Math.sin(t);
    } else if (name === "spirals") {
      const t = 0.25 + rng.uniform() * 2.5 * Math.PI;
      const r = t / (2.75 * Math.PI);
      const s = c === 0 ? 1 : -1;
      a = s * r * Math.cos(t);
      b = s * r * Math.sin(t);
    } else {
      a = rng.uniformIn(-1.2, 1.2);
      b = rng.uniformIn(-1.2, 1.2);
    }
    x[2 * i] = a + noise * rng.normal();
    x[2 * i + 1] = b + noise * rng.normal();
    if (name !== "xor") labels[i] = c;
  }
  if (name === "sine") {
    const targets = new Float64Array(samples);
    for (let i = 0; i < samples; i++) targets[i] = Math.sin(2 * x[2 * i]) * Math.cos(x[2 * i + 1]);
    return { name, inputShape: [2], size: samples, x, targets, targetSize: 1 };
  }
  return { name, inputShape: [2], size: samples, x, labels, classes: 2 };
}

/** Magic bytes of the MNIST subset file ("CPMN"). */
export const MNIST_MAGIC = 0x4e4d5043;

/**
 * Decodes the MNIST subset file: uint32 LE magic "CPMN", count, rows, cols, then `count` label
 * bytes and `count·rows·cols` pixel bytes (pixels scaled to [0, 1]); keeps the first `samples`.
 */
export function decodeMnistSubset(bytes: ArrayBuffer, samples: number): PageData {
  const view = new DataView(bytes);
  if (bytes.byteLength < 16 || view.getUint32(0, true) !== MNIST_MAGIC) throw new Error("mnist-subset.bin: not a chainopt MNIST subset file");
  const count = view.getUint32(4, true);
  const rows = view.getUint32(8, true);
  const cols = view.getUint32(12, true);
  const d = rows * cols;
  if (bytes.byteLength !== 16 + count * (1 + d)) throw new Error(`mnist-subset.bin: expected ${16 + count * (1 + d)} bytes, got ${bytes.byteLength}`);
  const n = Math.min(samples, count);
  const raw = new Uint8Array(bytes, 16);
  const labels = Int32Array.from(raw.subarray(0, n));
  const x = new Float64Array(n * d);
  for (let i = 0; i < n * d; i++) x[i] = raw[count + i] / 255;
  return { name: "mnist", inputShape: [1, rows, cols], size: n, x, labels, classes: 10 };
}

/**
 * Parses a CSV file the user picks: numeric columns, the last one the target. An optional header
 * line (any non-numeric cell) is skipped. Integer targets 0..K−1 with K ≤ 20 make a classification
 * set; anything else a regression set. Inputs are standardized column by column (zero mean, unit
 * variance on the file) so the certificate's input bound stays moderate.
 */
export function parseCsvData(text: string, fileName: string, samples: number): PageData {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  const rows: number[][] = [];
  lines.forEach((line, i) => {
    const cells = line.split(/[,;\t]/).map((c) => c.trim());
    const nums = cells.map(Number);
    if (nums.some((v) => !Number.isFinite(v))) {
      if (i === 0) return; // header
      throw new Error(`${fileName}: line ${i + 1}: expected numbers, got "${line.slice(0, 60)}"`);
    }
    rows.push(nums);
  });
  if (rows.length < 2) throw new Error(`${fileName}: expected at least 2 data rows, got ${rows.length}`);
  const width = rows[0].length;
  if (width < 2) throw new Error(`${fileName}: expected at least 2 columns (inputs, then the target), got ${width}`);
  rows.forEach((r, i) => {
    if (r.length !== width) throw new Error(`${fileName}: data row ${i + 1} has ${r.length} columns, the first has ${width}`);
  });
  const n = Math.min(samples, rows.length);
  const d = width - 1;
  const x = new Float64Array(n * d);
  for (let j = 0; j < d; j++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += rows[i][j] / n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (rows[i][j] - mean) ** 2 / n;
    const sd = Math.sqrt(v) || 1;
    for (let i = 0; i < n; i++) x[i * d + j] = (rows[i][j] - mean) / sd;
  }
  const t = rows.slice(0, n).map((r) => r[d]);
  const classes = Math.max(...t) + 1;
  if (t.every((v) => Number.isInteger(v) && v >= 0) && classes >= 2 && classes <= 20) {
    return { name: fileName, inputShape: [d], size: n, x, labels: Int32Array.from(t), classes };
  }
  return { name: fileName, inputShape: [d], size: n, x, targets: Float64Array.from(t), targetSize: 1 };
}

/** The data of a state (the MNIST bytes and a picked file's data are passed in when needed). */
export function dataFor(state: PlaygroundState, mnist: ArrayBuffer | null, file: PageData | null): PageData {
  switch (state.dataset) {
    case "mnist":
      if (!mnist) throw new Error("the MNIST subset is not loaded");
      return decodeMnistSubset(mnist, state.samples);
    case "file":
      if (!file) throw new Error("no file picked: choose a CSV file (inputs, then the target per line)");
      return sliceData(file, state.samples);
    default:
      return toyData(state.dataset, state.samples, state.seed);
  }
}

/** The first `samples` samples of a data set. */
export function sliceData(data: PageData, samples: number): PageData {
  const n = Math.min(samples, data.size);
  const d = data.inputShape.reduce((a, b) => a * b, 1);
  return {
    ...data,
    size: n,
    x: data.x.slice(0, n * d),
    ...(data.labels ? { labels: data.labels.slice(0, n) } : {}),
    ...(data.targets ? { targets: data.targets.slice(0, n * (data.targetSize ?? 1)) } : {}),
  };
}
