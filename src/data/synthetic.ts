import { Rng } from "../core/rng.js";
import { createDataset, type Dataset } from "./dataset.js";

// Teacher–student regression: inputs x ~ N(0, I_d), targets y = f(x) + σ ε with f a fixed random
// MLP (the "teacher") and ε ~ N(0, I). A student chain of the teacher's architecture can reach
// zero training loss when σ = 0, which makes it a controlled test bed for optimizers.

/** Options of {@link syntheticTeacher}. */
export interface SyntheticTeacherOptions {
  /** Input dimension d (default 10). */
  inputDim?: number;
  /** Hidden widths of the teacher (tanh after each); default [32]. */
  widths?: readonly number[];
  /** Output dimension (default 1). */
  outputDim?: number;
  /** Standard deviation σ of the Gaussian label noise (default 0). */
  noise?: number;
  /** Training samples (default 1000). */
  trainSize?: number;
  /** Test samples (default 1000). */
  testSize?: number;
  /** Seed of the teacher, the inputs and the noise (default 0). */
  seed?: number;
}

/** A dense tanh MLP: weights `out × in` then bias per layer (the chain's layout). */
export interface TeacherMlp {
  readonly dims: readonly number[];
  /** Per layer: weights (out × in, row-major) followed by the bias. */
  readonly params: readonly Float64Array[];
}

/**
 * Draws a teacher with dims [d, h_1, …, h_k, m]: weights W_l ~ N(0, 1/fan_in) (LeCun scaling,
 * so that pre-activations have unit variance for unit-variance inputs, keeping tanh out of
 * saturation), biases ~ N(0, 0.1²).
 */
export function randomTeacher(dims: readonly number[], rng: Rng): TeacherMlp {
  if (dims.length < 2 || dims.some((d) => !Number.isInteger(d) || d < 1))
    throw new RangeError(`teacher dims must be positive integers, got [${dims.join(", ")}]`);
  const params: Float64Array[] = [];
  for (let l = 1; l < dims.length; l++) {
    const fanIn = dims[l - 1];
    const out = dims[l];
    const p = new Float64Array(out * fanIn + out);
    const scale = 1 / Math.sqrt(fanIn);
    for (let i = 0; i < out * fanIn; i++) p[i] = scale * rng.normal();
    for (let i = 0; i < out; i++) p[out * fanIn + i] = 0.1 * rng.normal();
    params.push(p);
  }
  return { dims: [...dims], params };
}

/** Evaluates the teacher on one input (tanh after every layer but the last, which is linear). */
export function evaluateTeacher(
  teacher: TeacherMlp,
  x: ArrayLike<number>,
  out: { [i: number]: number } = new Float64Array(teacher.dims.at(-1)!),
) {
  const { dims, params } = teacher;
  let h: ArrayLike<number> = x;
  for (let l = 1; l < dims.length; l++) {
    const fanIn = dims[l - 1];
    const o = dims[l];
    const p = params[l - 1];
    const next = new Float64Array(o);
    for (let i = 0; i < o; i++) {
      let s = p[o * fanIn + i];
      for (let j = 0; j < fanIn; j++) s += p[i * fanIn + j] * h[j];
      next[i] = l < dims.length - 1 ? Math.tanh(s) : s;
    }
    h = next;
  }
  for (let i = 0; i < h.length; i++) out[i] = h[i];
  return out;
}

/**
 * Seeded teacher–student regression set: one teacher drawn from `new Rng(seed)`, then the
 * training inputs and noise, then the test inputs and noise, from the same stream (so the same
 * options give the same data, and train/test share the teacher).
 */
export function syntheticTeacher(options: SyntheticTeacherOptions = {}): { train: Dataset; test: Dataset; teacher: TeacherMlp } {
  const d = options.inputDim ?? 10;
  const m = options.outputDim ?? 1;
  const noise = options.noise ?? 0;
  if (!(noise >= 0)) throw new RangeError(`noise must be ≥ 0, got ${noise}`);
  const rng = new Rng(options.seed ?? 0);
  const teacher = randomTeacher([d, ...(options.widths ?? [32]), m], rng);
  const make = (name: string, n: number): Dataset => {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`${name} size must be a non-negative integer, got ${n}`);
    const x = new Float32Array(n * d);
    const targets = new Float32Array(n * m);
    const xi = new Float64Array(d);
    const yi = new Float64Array(m);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < d; j++) {
        // Round through float32 first so the stored input is exactly the one the teacher saw.
        x[i * d + j] = rng.normal();
        xi[j] = x[i * d + j];
      }
      evaluateTeacher(teacher, xi, yi);
      for (let k = 0; k < m; k++) targets[i * m + k] = yi[k] + (noise > 0 ? noise * rng.normal() : 0);
    }
    return createDataset({ name, inputShape: [d], x, targets, targetSize: m, size: n });
  };
  const train = make("synthetic-teacher/train", options.trainSize ?? 1000);
  const test = make("synthetic-teacher/test", options.testSize ?? 1000);
  return { train, test, teacher };
}
