import { Rng } from "../core/rng.js";
import { type ClusterEdge, clusterAssignments, solveConvexClustering } from "../objectives/clustering.js";

// Clustering evaluation: the adjusted Rand index, k-means (the baseline), and the convex
// clustering path searched for a number of clusters (docs/unsupervised.md).

/**
 * Adjusted Rand index of two labelings (Hubert & Arabie, "Comparing partitions", J. Classif. 1985):
 * ARI = (Σ_ij C(n_ij,2) − t₃)/(½(t₁ + t₂) − t₃) with t₁ = Σ_i C(a_i,2), t₂ = Σ_j C(b_j,2),
 * t₃ = t₁t₂/C(n,2), n_ij the contingency table, a, b its margins. 1 for identical partitions,
 * 0 in expectation for random ones.
 */
export function adjustedRandIndex(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  if (b.length !== n) throw new Error(`adjustedRandIndex: ${n} and ${b.length} labels`);
  const c2 = (x: number) => (x * (x - 1)) / 2;
  const table = new Map<string, number>();
  const ra = new Map<number, number>();
  const rb = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const key = `${a[i]},${b[i]}`;
    table.set(key, (table.get(key) ?? 0) + 1);
    ra.set(a[i], (ra.get(a[i]) ?? 0) + 1);
    rb.set(b[i], (rb.get(b[i]) ?? 0) + 1);
  }
  let index = 0;
  for (const v of table.values()) index += c2(v);
  let t1 = 0;
  for (const v of ra.values()) t1 += c2(v);
  let t2 = 0;
  for (const v of rb.values()) t2 += c2(v);
  const t3 = (t1 * t2) / c2(n);
  const denom = 0.5 * (t1 + t2) - t3;
  return denom === 0 ? (index === t3 ? 1 : 0) : (index - t3) / denom;
}

/**
 * k-means (Lloyd's algorithm) with k-means++ seeding (Arthur & Vassilvitskii, SODA 2007), the best
 * of `restarts` runs by inertia. x is `n × d`, row-major. Returns labels and the inertia.
 */
export function kMeans(
  x: ArrayLike<number>,
  n: number,
  d: number,
  k: number,
  options: { restarts?: number; seed?: number; maxIterations?: number } = {},
): { labels: Int32Array; inertia: number } {
  const rng = new Rng(options.seed ?? 0);
  const restarts = options.restarts ?? 10;
  const maxIt = options.maxIterations ?? 300;
  let best = { labels: new Int32Array(n), inertia: Infinity };
  const dist2 = (i: number, c: Float64Array, j: number) => {
    let s = 0;
    for (let t = 0; t < d; t++) s += (x[i * d + t] - c[j * d + t]) ** 2;
    return s;
  };
  for (let r = 0; r < restarts; r++) {
    const c = new Float64Array(k * d);
    const first = Math.floor(rng.uniform() * n);
    for (let t = 0; t < d; t++) c[t] = x[first * d + t];
    const dmin = new Float64Array(n).fill(Infinity);
    for (let j = 1; j < k; j++) {
      let total = 0;
      for (let i = 0; i < n; i++) {
        dmin[i] = Math.min(dmin[i], dist2(i, c, j - 1));
        total += dmin[i];
      }
      let u = rng.uniform() * total;
      let pick = n - 1;
      for (let i = 0; i < n; i++) {
        u -= dmin[i];
        if (u <= 0) {
          pick = i;
          break;
        }
      }
      for (let t = 0; t < d; t++) c[j * d + t] = x[pick * d + t];
    }
    const labels = new Int32Array(n).fill(-1);
    let inertia = 0;
    for (let it = 0; it < maxIt; it++) {
      let changed = false;
      inertia = 0;
      for (let i = 0; i < n; i++) {
        let bj = 0;
        let bd = Infinity;
        for (let j = 0; j < k; j++) {
          const v = dist2(i, c, j);
          if (v < bd) {
            bd = v;
            bj = j;
          }
        }
        inertia += bd;
        if (labels[i] !== bj) {
          labels[i] = bj;
          changed = true;
        }
      }
      if (!changed) break;
      const counts = new Float64Array(k);
      c.fill(0);
      for (let i = 0; i < n; i++) {
        counts[labels[i]]++;
        for (let t = 0; t < d; t++) c[labels[i] * d + t] += x[i * d + t];
      }
      for (let j = 0; j < k; j++) {
        if (counts[j] === 0) {
          const i = Math.floor(rng.uniform() * n); // re-seed an empty cluster
          for (let t = 0; t < d; t++) c[j * d + t] = x[i * d + t];
        } else for (let t = 0; t < d; t++) c[j * d + t] /= counts[j];
      }
    }
    if (inertia < best.inertia) best = { labels: Int32Array.from(labels), inertia };
  }
  return best;
}

/** Result of {@link convexClusteringWithCount}. */
export interface ClusterPathPoint {
  readonly lambda: number;
  readonly clusters: number;
  readonly labels: Int32Array;
}

/**
 * Searches the fusion strength γ for which convex clustering of the points (n × q) has `k`
 * clusters (bisection on log γ in [lo, hi], the number of clusters read from the fused Ỹ with
 * tau = 2·accuracy + 1e-9·‖Ψ‖); returns the γ whose count is closest to k (ties: smaller γ). Each
 * solve stops at `tolerance` (relative, default 1e-5) or `maxIterations` (default 50 000).
 */
export function convexClusteringWithCount(
  points: ArrayLike<number>,
  n: number,
  q: number,
  edges: readonly ClusterEdge[],
  k: number,
  options: { lo?: number; hi?: number; steps?: number; tolerance?: number; maxIterations?: number } = {},
): ClusterPathPoint {
  let lo = Math.log(options.lo ?? 1e-3);
  let hi = Math.log(options.hi ?? 1e2);
  const steps = options.steps ?? 24;
  let norm = 0;
  for (let t = 0; t < n * q; t++) norm += points[t] * points[t];
  norm = Math.sqrt(norm);
  let warm: Float64Array | undefined;
  const at = (lambda: number): ClusterPathPoint => {
    const s = solveConvexClustering(points, n, q, edges, lambda, {
      tolerance: options.tolerance ?? 1e-5,
      maxIterations: options.maxIterations ?? 50000,
      warmStart: warm,
    });
    warm = s.dual;
    const labels = clusterAssignments(s.y, n, q, edges, 2 * s.accuracy + 1e-9 * norm);
    return { lambda, clusters: new Set(labels).size, labels };
  };
  let best = at(Math.exp(hi));
  for (let it = 0; it < steps; it++) {
    const mid = (lo + hi) / 2;
    const p = at(Math.exp(mid));
    if (
      Math.abs(p.clusters - k) < Math.abs(best.clusters - k) ||
      (Math.abs(p.clusters - k) === Math.abs(best.clusters - k) && p.lambda < best.lambda)
    )
      best = p;
    if (p.clusters === k) break;
    if (p.clusters > k) lo = mid;
    else hi = mid;
  }
  return best;
}
