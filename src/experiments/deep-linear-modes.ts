import { Rng } from "../core/rng.js";

// The pure mathematics of the deep-linear experiment (no Node imports, so the browser playground
// can use it): the analytic mode strengths of Saxe, McClelland & Ganguli, "Exact solutions to the
// nonlinear dynamics of learning in deep linear neural networks", ICLR 2014 (arXiv:1312.6120),
// Eq. (8), the whitened task, and the measured mode strengths. The derivation is in the header of
// deep-linear.ts and in docs/experiments.md.

/** Saxe et al.'s Eq. (8): u(t) = s e^{2st} / (e^{2st} − 1 + s/u0), t in units of τ (t = η·steps). */
export function saxeCurve(s: number, u0: number, t: number): number {
  // Written with e^{−2st} to avoid overflow for large st: u = s / (1 + (s/u0 − 1) e^{−2st}).
  return s / (1 + (s / u0 - 1) * Math.exp(-2 * s * t));
}

/** The synthetic task: whitened inputs, targets y = Σ31 x, and Σ31's singular vectors. */
export interface DeepLinearTask {
  n: number;
  m: number;
  samples: number;
  strengths: number[];
  /** Inputs, N × n batch-major, with (1/N) XᵀX = I. */
  x: Float64Array;
  /** Targets, N × m. */
  y: Float64Array;
  /** Left singular vectors u_r, R × m (row r is u_r). */
  u: Float64Array;
  /** Right singular vectors v_r, R × n. */
  v: Float64Array;
}

/** Orthonormalizes the `count` vectors of length `len` stored in rows of `a` (modified Gram–Schmidt, twice). */
function orthonormalizeRows(a: Float64Array, count: number, len: number): void {
  for (let pass = 0; pass < 2; pass++) {
    for (let i = 0; i < count; i++) {
      const ai = a.subarray(i * len, (i + 1) * len);
      for (let j = 0; j < i; j++) {
        const aj = a.subarray(j * len, (j + 1) * len);
        let d = 0;
        for (let t = 0; t < len; t++) d += ai[t] * aj[t];
        for (let t = 0; t < len; t++) ai[t] -= d * aj[t];
      }
      let s = 0;
      for (let t = 0; t < len; t++) s += ai[t] * ai[t];
      const inv = 1 / Math.sqrt(s);
      for (let t = 0; t < len; t++) ai[t] *= inv;
    }
  }
}

/** Builds the task of {@link DeepLinearTask} from a seeded RNG. */
export function makeDeepLinearTask(options: {
  inputs: number;
  outputs: number;
  samples: number;
  strengths: number[];
  seed: number;
}): DeepLinearTask {
  const { inputs: n, outputs: m, samples: N, strengths } = options;
  const R = strengths.length;
  if (R > Math.min(n, m)) throw new Error(`strengths: ${R} modes need inputs and outputs ≥ ${R}`);
  if (N < n) throw new Error(`samples: whitening ${n} inputs needs at least ${n} samples, got ${N}`);
  const rng = new Rng(options.seed);
  // Whitened inputs: n orthonormal vectors of length N (the columns of X), scaled by √N.
  const cols = new Float64Array(n * N);
  for (let i = 0; i < cols.length; i++) cols[i] = rng.normal();
  orthonormalizeRows(cols, n, N);
  const x = new Float64Array(N * n);
  const root = Math.sqrt(N);
  for (let j = 0; j < n; j++) for (let i = 0; i < N; i++) x[i * n + j] = root * cols[j * N + i];
  const u = new Float64Array(R * m);
  const v = new Float64Array(R * n);
  for (let i = 0; i < u.length; i++) u[i] = rng.normal();
  for (let i = 0; i < v.length; i++) v[i] = rng.normal();
  orthonormalizeRows(u, R, m);
  orthonormalizeRows(v, R, n);
  // y_i = Σ_r s_r u_r (v_rᵀ x_i).
  const y = new Float64Array(N * m);
  for (let i = 0; i < N; i++) {
    for (let r = 0; r < R; r++) {
      let p = 0;
      for (let j = 0; j < n; j++) p += v[r * n + j] * x[i * n + j];
      const c = strengths[r] * p;
      for (let a = 0; a < m; a++) y[i * m + a] += c * u[r * m + a];
    }
  }
  return { n, m, samples: N, strengths: [...strengths], x, y, u, v };
}

/**
 * Mode strengths u_rᵀ Σ31_net v_r of a network's outputs `out` (N × m) on the task's inputs, with
 * Σ31_net = (1/N) Σ_i ŷ_i x_iᵀ.
 */
export function modeStrengths(task: DeepLinearTask, out: ArrayLike<number>, target?: Float64Array): Float64Array {
  const { n, m, samples: N, x, u, v } = task;
  const R = task.strengths.length;
  const s = target ?? new Float64Array(R);
  s.fill(0);
  for (let i = 0; i < N; i++) {
    for (let r = 0; r < R; r++) {
      let px = 0;
      for (let j = 0; j < n; j++) px += v[r * n + j] * x[i * n + j];
      let py = 0;
      for (let a = 0; a < m; a++) py += u[r * m + a] * out[i * m + a];
      s[r] += px * py;
    }
  }
  for (let r = 0; r < R; r++) s[r] /= N;
  return s;
}

/**
 * Effective initial strengths u0_r = ‖c_r(0)‖², c_r(0) = (W1 v_r + W2ᵀ u_r)/2 (see the module
 * comment). With `competition` (default true), the components of c_r(0) along the directions
 * c_q(0) of the stronger modes (s_q > s_r) are removed first: those modes are learned earlier along
 * ≈ c_q(0), and their competition terms then make those components of mode r decay.
 */
export function effectiveInitialStrengths(
  task: DeepLinearTask,
  w1: ArrayLike<number>,
  w2: ArrayLike<number>,
  hidden: number,
  options: { competition?: boolean } = {},
): number[] {
  const { n, m, u, v } = task;
  const R = task.strengths.length;
  const c = Array.from({ length: R }, () => new Float64Array(hidden));
  for (let r = 0; r < R; r++) {
    for (let h = 0; h < hidden; h++) {
      let a = 0;
      for (let j = 0; j < n; j++) a += w1[h * n + j] * v[r * n + j];
      let b = 0;
      for (let o = 0; o < m; o++) b += w2[o * hidden + h] * u[r * m + o];
      c[r][h] = (a + b) / 2;
    }
  }
  const dot = (x: Float64Array, y: Float64Array) => x.reduce((acc, xi, i) => acc + xi * y[i], 0);
  return task.strengths.map((s, r) => {
    const x = c[r].slice();
    if (options.competition ?? true) {
      // Orthonormal basis of span{c_q(0) : s_q > s_r} (Gram–Schmidt), then x ← x − Σ (eᵀx) e.
      const basis: Float64Array[] = [];
      for (let q = 0; q < R; q++) {
        if (!(task.strengths[q] > s)) continue;
        const e = c[q].slice();
        for (let pass = 0; pass < 2; pass++) {
          for (const b of basis) {
            const d = dot(e, b);
            for (let h = 0; h < hidden; h++) e[h] -= d * b[h];
          }
        }
        const norm = Math.sqrt(dot(e, e));
        if (norm > 0) basis.push(e.map((z) => z / norm));
      }
      for (const b of basis) {
        const d = dot(x, b);
        for (let h = 0; h < hidden; h++) x[h] -= d * b[h];
      }
    }
    return dot(x, x);
  });
}

/** Time for the analytic curve to reach the fraction q of s: ln((q/(1 − q))(s/u0 − 1))/(2s). */
export function saxeTimeTo(q: number, s: number, u0: number): number {
  return Math.log((q / (1 - q)) * (s / u0 - 1)) / (2 * s);
}
