import type { FloatArray } from "../core/dtype.js";
import type { Batch } from "./batch.js";
import type { Loss, LossBounds, LossConstants } from "./loss.js";

// Convex clustering of the chain's outputs (Roulet & Harchaoui, "An Elementary Approach…" (Allerton 2019), Sec. 2.2 "Unsupervised
// learning"; Hocking, Joulin, Bach & Vert, "Clusterpath", ICML 2011), solved by the (fast)
// alternating minimization algorithm of Chi & Lange, "Splitting Methods for Convex Clustering",
// J. Comput. Graph. Stat. 2015, arXiv:1304.0499. Formulas and derivations: docs/unsupervised.md.

/** An edge (i, j), i < j, of the weight graph with weight w > 0. */
export interface ClusterEdge {
  readonly i: number;
  readonly j: number;
  readonly w: number;
}

/**
 * k-nearest-neighbour Gaussian weights (Chi & Lange 2015, Sec. 2 and 7; Hocking et al. 2011):
 * w_ij = exp(−φ‖x_i − x_j‖²) when j is among the k nearest neighbours of i or i among those of
 * j, else 0 (no edge). `phi` defaults to 1/median of the squared k-NN distances (a scale-free
 * choice; Chi & Lange use a fixed φ on standardized data). x is `n × d`, row-major.
 */
export function knnGaussianWeights(x: ArrayLike<number>, n: number, d: number, k: number, phi?: number): ClusterEdge[] {
  if (!(Number.isInteger(k) && k >= 1)) throw new Error(`clustering: neighbors must be an integer ≥ 1, got ${k}`);
  const kk = Math.min(k, n - 1);
  const dist = (a: number, b: number) => {
    let s = 0;
    for (let t = 0; t < d; t++) {
      const z = x[a * d + t] - x[b * d + t];
      s += z * z;
    }
    return s;
  };
  const pairs = new Map<number, number>(); // key i·n + j (i < j) → squared distance
  const order: number[] = [];
  for (let i = 0; i < n; i++) {
    const ds: [number, number][] = [];
    for (let j = 0; j < n; j++) if (j !== i) ds.push([dist(i, j), j]);
    ds.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    for (let t = 0; t < kk; t++) {
      const [s, j] = ds[t];
      const key = Math.min(i, j) * n + Math.max(i, j);
      if (!pairs.has(key)) {
        pairs.set(key, s);
        order.push(key);
      }
    }
  }
  let p = phi;
  if (p === undefined) {
    const sq = [...pairs.values()].sort((a, b) => a - b);
    const med = sq.length > 0 ? sq[Math.floor(sq.length / 2)] : 0;
    p = med > 0 ? 1 / med : 1;
  }
  if (!(p >= 0 && Number.isFinite(p))) throw new Error(`clustering: phi must be a finite number ≥ 0, got ${p}`);
  return order
    .sort((a, b) => a - b)
    .map((key) => ({ i: Math.floor(key / n), j: key % n, w: Math.exp(-(p as number) * (pairs.get(key) as number)) }));
}

/** Options of {@link solveConvexClustering}. */
export interface ConvexClusteringSolveOptions {
  /**
   * Stated accuracy: iterate until √(2·gap) ≤ tolerance·max(‖Ψ‖_F, 1), which bounds ‖Ỹ − Y*‖_F
   * (default 1e-6).
   */
  tolerance?: number;
  /** Iteration cap (default 20 000); the reached accuracy is returned either way. */
  maxIterations?: number;
  /** Dual variables to start from (E × q, e.g. the last solve's), when of the right size. */
  warmStart?: Float64Array;
}

/** Result of {@link solveConvexClustering}. */
export interface ConvexClusteringSolution {
  /** Ỹ (n × q), the approximate minimizer. */
  readonly y: Float64Array;
  /** Dual variables λ (E × q), ‖λ_l‖ ≤ γ w_l. */
  readonly dual: Float64Array;
  /** Primal value P(Ỹ) = ½‖Ỹ − Ψ‖² + γ Σ_l w_l ‖ỹ_i − ỹ_j‖ (≥ the minimum, by at most `gap`). */
  readonly value: number;
  /** Duality gap P(Ỹ) − D(λ) ≥ P(Ỹ) − P*. */
  readonly gap: number;
  /** √(2·gap) ≥ ‖Ỹ − Y*‖_F (P is 1-strongly convex). */
  readonly accuracy: number;
  readonly iterations: number;
  /** Momentum restarts (O'Donoghue & Candès 2015 gradient test) during the solve. */
  readonly restarts: number;
  readonly converged: boolean;
}

/**
 * Solves min_Y ½‖Y − Ψ‖²_F + γ Σ_{(i,j)∈E} w_ij ‖y_i − y_j‖₂ (Ψ: n × q, row-major) by the fast
 * alternating minimization algorithm (Chi & Lange 2015, Sec. 3.2–3.3, AMA = projected gradient
 * ascent on the dual, accelerated as in Goldstein, O'Donoghue, Setzer & Baraniuk, SIAM J. Imaging
 * Sci. 2014). With Δ_i = Σ_{l=(i,·)} λ_l − Σ_{l=(·,i)} λ_l:
 *   dual   D(λ) = −½‖Δ‖² − Σ_l ⟨λ_l, ψ_i − ψ_j⟩ on ‖λ_l‖ ≤ γ w_l,   primal Y(λ) = Ψ + Δ,
 *   step   λ_l ← P_{‖·‖≤γw_l}(λ_l − ν (y_i − y_j)),  ν = 1/ρ̄ with ρ̄ = max_{(i,j)∈E}(deg i + deg j)
 * ≥ ρ(graph Laplacian) (Anderson & Morley 1985), the Lipschitz constant of ∇D (Chi & Lange require
 * ν < 2/ρ); the momentum is restarted by the gradient test of O'Donoghue & Candès 2015. Stops on
 * the duality gap (derivation in docs/unsupervised.md). Cost: O(E·q) per iteration.
 */
export function solveConvexClustering(
  psi: ArrayLike<number>,
  n: number,
  q: number,
  edges: readonly ClusterEdge[],
  gamma: number,
  options: ConvexClusteringSolveOptions = {},
): ConvexClusteringSolution {
  if (!(gamma >= 0 && Number.isFinite(gamma))) throw new Error(`clustering: lambda must be a finite number ≥ 0, got ${gamma}`);
  const tol = options.tolerance ?? 1e-6;
  const maxIt = options.maxIterations ?? 20000;
  const E = edges.length;
  const nq = n * q;
  const eq = E * q;
  // Dense copies for the hot loops: Ψ as float64, the edges as index arrays (row offsets i·q, j·q)
  // and the radii γ·w_l. Each iteration is O(E·q) with E = |edges| (O(n·k) for k-NN weights).
  const ps = psi instanceof Float64Array && psi.length === nq ? psi : Float64Array.from({ length: nq }, (_, t) => psi[t]);
  let psiNorm = 0;
  for (let t = 0; t < nq; t++) psiNorm += ps[t] * ps[t];
  psiNorm = Math.sqrt(psiNorm);
  const target = tol * Math.max(psiNorm, 1);
  const ei = new Int32Array(E);
  const ej = new Int32Array(E);
  const radius = new Float64Array(E);
  const weight = new Float64Array(E);
  const deg = new Int32Array(n);
  for (let l = 0; l < E; l++) {
    const e = edges[l];
    ei[l] = e.i * q;
    ej[l] = e.j * q;
    weight[l] = e.w;
    radius[l] = gamma * e.w;
    deg[e.i]++;
    deg[e.j]++;
  }
  let rho = 1;
  for (const e of edges) rho = Math.max(rho, deg[e.i] + deg[e.j]);
  const nu = 1 / rho;
  let lam = options.warmStart && options.warmStart.length === eq ? Float64Array.from(options.warmStart) : new Float64Array(eq);
  const y = new Float64Array(nq);
  // λ_l ← P_{‖·‖≤γw_l}(λ_l).
  for (let l = 0, o = 0; l < E; l++, o += q) {
    let s = 0;
    for (let t = 0; t < q; t++) s += lam[o + t] * lam[o + t];
    const r = radius[l];
    if (s > r * r) {
      const f = r / Math.sqrt(s);
      for (let t = 0; t < q; t++) lam[o + t] *= f;
    }
  }
  let prev = Float64Array.from(lam);
  const extra = new Float64Array(eq);
  // y ← Ψ + Δ(λ).
  const primal = (l: Float64Array) => {
    y.set(ps);
    for (let e = 0, o = 0; e < E; e++, o += q) {
      const a = ei[e];
      const b = ej[e];
      for (let t = 0; t < q; t++) {
        const v = l[o + t];
        y[a + t] += v;
        y[b + t] -= v;
      }
    }
  };
  const gapAt = (l: Float64Array): { value: number; gap: number } => {
    primal(l);
    let fit = 0;
    let dualLin = 0;
    for (let t = 0; t < nq; t++) fit += (y[t] - ps[t]) ** 2; // ‖Δ‖²
    let pen = 0;
    for (let e = 0, o = 0; e < E; e++, o += q) {
      const a = ei[e];
      const b = ej[e];
      let s = 0;
      for (let t = 0; t < q; t++) {
        const z = y[a + t] - y[b + t];
        s += z * z;
        dualLin += l[o + t] * (ps[a + t] - ps[b + t]);
      }
      pen += weight[e] * Math.sqrt(s);
    }
    const value = 0.5 * fit + gamma * pen;
    const dual = -0.5 * fit - dualLin;
    return { value, gap: Math.max(0, value - dual) };
  };
  let tk = 1;
  let it = 0;
  let restarts = 0;
  let check = gapAt(lam);
  let converged = Math.sqrt(2 * check.gap) <= target;
  while (!converged && it < maxIt) {
    // Extrapolated point λ̃ = λ + ((t_k − 1)/t_{k+1})(λ − λ_prev).
    const tn = (1 + Math.sqrt(1 + 4 * tk * tk)) / 2;
    const beta = (tk - 1) / tn;
    for (let t = 0; t < eq; t++) extra[t] = lam[t] + beta * (lam[t] - prev[t]);
    tk = tn;
    primal(extra);
    const next = prev; // reuse the buffer
    // Projected step, and the gradient restart test of O'Donoghue & Candès, "Adaptive restart for
    // accelerated gradient schemes", Found. Comput. Math. 2015 (Sec. 3.2): the momentum is reset
    // (t_k ← 1) when ⟨λ̃ − λ⁺, λ⁺ − λ⟩ > 0, i.e. when the step turns against the momentum.
    let turn = 0;
    for (let e = 0, o = 0; e < E; e++, o += q) {
      const a = ei[e];
      const b = ej[e];
      let s = 0;
      for (let t = 0; t < q; t++) {
        const v = extra[o + t] - nu * (y[a + t] - y[b + t]);
        next[o + t] = v;
        s += v * v;
      }
      const r = radius[e];
      if (s > r * r) {
        const f = r / Math.sqrt(s);
        for (let t = 0; t < q; t++) next[o + t] *= f;
      }
      for (let t = 0; t < q; t++) turn += (extra[o + t] - next[o + t]) * (next[o + t] - lam[o + t]);
    }
    if (turn > 0) {
      tk = 1;
      restarts++;
    }
    prev = lam;
    lam = next;
    it++;
    if (it % 10 === 0 || it === maxIt) {
      check = gapAt(lam);
      converged = Math.sqrt(2 * check.gap) <= target;
    }
  }
  check = gapAt(lam);
  return {
    y: Float64Array.from(y),
    dual: lam,
    value: check.value,
    gap: check.gap,
    accuracy: Math.sqrt(2 * check.gap),
    iterations: it,
    restarts,
    converged: Math.sqrt(2 * check.gap) <= target,
  };
}

/**
 * Cluster labels read from the fused Ỹ (Chi & Lange 2015, Sec. 2: clusters are the connected
 * components of the edges whose centroids coincide, ‖y_i − y_j‖ = 0): connected components of the
 * edges with ‖ỹ_i − ỹ_j‖ ≤ tau. With ‖Ỹ − Y*‖ ≤ a, pairs fused in Y* are within 2a in Ỹ, so
 * tau ≥ 2a finds every fused edge. Labels 0, 1, … in order of first appearance.
 */
export function clusterAssignments(y: ArrayLike<number>, n: number, q: number, edges: readonly ClusterEdge[], tau: number): Int32Array {
  const parent = Int32Array.from({ length: n }, (_, i) => i);
  const find = (a: number): number => {
    while (parent[a] !== a) {
      parent[a] = parent[parent[a]];
      a = parent[a];
    }
    return a;
  };
  for (const { i, j } of edges) {
    let s = 0;
    for (let t = 0; t < q; t++) s += (y[i * q + t] - y[j * q + t]) ** 2;
    if (Math.sqrt(s) <= tau) parent[find(i)] = find(j);
  }
  const label = new Int32Array(n);
  const ids = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const r = find(i);
    if (!ids.has(r)) ids.set(r, ids.size);
    label[i] = ids.get(r) as number;
  }
  return label;
}

/** Options of {@link ConvexClusteringLoss}. */
export interface ConvexClusteringOptions {
  /** Fusion strength γ ≥ 0 (default 1). */
  lambda?: number;
  /** k of the k-NN weight graph (default 5). */
  neighbors?: number;
  /** φ of the Gaussian weights (default: 1/median squared k-NN distance of the batch). */
  phi?: number;
  /** Relative accuracy of the inner solve (see {@link ConvexClusteringSolveOptions.tolerance}; default 1e-6). */
  tolerance?: number;
  maxIterations?: number;
}

/** Whether two arrays hold the same values. */
function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Two numbers that tell batches apart (Σ x_t and Σ t·x_t), to match a restored warm start with its batch. */
function fingerprint(x: ArrayLike<number>): [number, number] {
  let a = 0;
  let b = 0;
  for (let t = 0; t < x.length; t++) {
    a += x[t];
    b += t * x[t];
  }
  return [a, b];
}

/**
 * The convex clustering objective on the chain's outputs Ψ = (ψ_1; …; ψ_N) (Roulet & Harchaoui, Allerton 2019,
 * Sec. 2.2; Hocking et al. 2011), averaged over the batch like the other losses:
 *
 *   f(Ψ) = (1/N) min_Y [ Σ_i ½‖y_i − ψ_i‖² + γ Σ_{i<j} w_ij ‖y_i − y_j‖₂ ],
 *
 * with k-NN Gaussian weights w_ij computed on the batch's INPUTS x (so that f depends on w only
 * through Ψ). f is N⁻¹ times the Moreau envelope (parameter 1) of h(Y) = γ Σ w_ij‖y_i − y_j‖, so
 * ∇f(Ψ) = (Ψ − Y*(Ψ))/N with Y* = prox_h(Ψ) (Moreau 1965; Bauschke & Combettes, Convex Analysis
 * and Monotone Operator Theory, Prop. 12.30), 1/N-Lipschitz. Y* is computed to the stated accuracy
 * ‖Ỹ − Y*‖ ≤ tolerance·max(‖Ψ‖, 1), so the returned gradient is within that/N of the exact one and
 * the value within gap/N. The last solve is kept in {@link ConvexClusteringLoss.last} (for the
 * cluster assignment). Second derivatives are not provided: `hessianVector` throws (use first-order
 * optimizers).
 */
export class ConvexClusteringLoss implements Loss {
  readonly type = "clustering";
  readonly lambda: number;
  readonly neighbors: number;
  readonly phi: number | undefined;
  readonly tolerance: number;
  readonly maxIterations: number;
  /** The last solve: its batch size, edges and solution. */
  last: { n: number; edges: ClusterEdge[]; solution: ConvexClusteringSolution } | null = null;
  /** The last batch's inputs (a copy: batch buffers are reused) and its graph. */
  private cache: { x: Float64Array; n: number; edges: ClusterEdge[] } | null = null;
  /** A warm start restored from a snapshot ({@link restoreState}): its batch's fingerprint and dual. */
  private restored: { key: [number, number]; dual: Float64Array } | null = null;

  constructor(options: ConvexClusteringOptions = {}) {
    this.lambda = options.lambda ?? 1;
    this.neighbors = options.neighbors ?? 5;
    this.phi = options.phi;
    this.tolerance = options.tolerance ?? 1e-6;
    this.maxIterations = options.maxIterations ?? 20000;
    if (!(this.lambda >= 0 && Number.isFinite(this.lambda)))
      throw new Error(`clustering: lambda must be a finite number ≥ 0, got ${this.lambda}`);
    if (!(Number.isInteger(this.neighbors) && this.neighbors >= 1))
      throw new Error(`clustering: neighbors must be an integer ≥ 1, got ${this.neighbors}`);
    if (!(this.tolerance > 0)) throw new Error(`clustering: tolerance must be > 0, got ${this.tolerance}`);
  }

  /**
   * The k-NN Gaussian weight graph of a batch, cached for the same inputs: compared by value (an
   * O(N·d) pass beside the O(N²·d) graph), since a batch loader refills one buffer with each batch.
   */
  edgesOf(batch: Batch): ClusterEdge[] {
    const n = batch.size;
    const x = batch.x;
    if (this.cache && this.cache.n === n && sameValues(this.cache.x, x)) return this.cache.edges;
    const d = x.length / n;
    const edges = knnGaussianWeights(x, n, d, this.neighbors, this.phi);
    this.cache = { x: Float64Array.from(x), n, edges };
    return edges;
  }

  evaluate(output: FloatArray, batch: Batch, outputSize: number, grad: FloatArray | null): number {
    const n = batch.size;
    const edges = this.edgesOf(batch);
    let warm = this.last && this.last.edges === edges ? this.last.solution.dual : undefined;
    // A restored warm start applies to the batch it was saved for (as it would have without the interruption).
    const key = this.restored?.key;
    if (key && this.cache && fingerprint(this.cache.x).every((v, i) => v === key[i])) warm = this.restored?.dual;
    this.restored = null;
    const sol = solveConvexClustering(output.subarray(0, n * outputSize), n, outputSize, edges, this.lambda, {
      tolerance: this.tolerance,
      maxIterations: this.maxIterations,
      warmStart: warm,
    });
    this.last = { n, edges, solution: sol };
    if (grad) for (let t = 0; t < n * outputSize; t++) grad[t] = (output[t] - sol.y[t]) / n;
    return sol.value / n;
  }

  /**
   * The next solve's warm start, for snapshots: a fingerprint of the last batch's inputs (two
   * numbers), then the last solve's dual; null before the first solve.
   */
  saveState(): Float64Array | null {
    if (!this.last || !this.cache) return null;
    const dual = this.last.solution.dual;
    const out = new Float64Array(2 + dual.length);
    out.set(fingerprint(this.cache.x));
    out.set(dual, 2);
    return out;
  }

  /** Restores what {@link saveState} returned: the next solve on that same batch starts from its dual. */
  restoreState(state: FloatArray): void {
    this.last = null;
    this.restored = state.length >= 2 ? { key: [state[0], state[1]], dual: Float64Array.from(state.subarray(2)) } : null;
  }

  hessianVector(): void {
    throw new Error("clustering: the objective's second derivatives are not provided (a Moreau envelope); use a first-order optimizer");
  }

  /**
   * Constants on ‖Ψ‖_F ≤ m (docs/unsupervised.md): the fused point Y = 1ψ̄ᵀ (h = 0) gives
   * N f ≤ ½‖Ψ − 1ψ̄ᵀ‖² ≤ ½m² and ½‖Ψ − Y*‖² ≤ ½m², so sup f ≤ m²/(2N) and
   * ‖∇f‖ = ‖Ψ − Y*‖/N ≤ min(m, γ√N(N − 1))/N (Ψ − Y* ∈ ∂h(Y*), whose row i has norm ≤ γ Σ_j w_ij ≤
   * γ(N − 1) since w ≤ 1); ∇f = (I − prox_h)/N with I − prox_h firmly nonexpansive, so L_f = 1/N.
   */
  smoothness(bounds: LossBounds): LossConstants {
    const n = bounds.batch;
    const m = bounds.norm;
    return {
      bound: (m * m) / (2 * n),
      lipschitz: Math.min(m, this.lambda * Math.sqrt(n) * (n - 1)) / n,
      smoothness: 1 / n,
    };
  }
}
