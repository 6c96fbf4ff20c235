// Observed order of convergence of an error sequence e_0, e_1, … → 0 (docs/diagnostics.md).
//
// If e_{k+1} ≈ C e_k^q, then log e_{k+1} = log C + q log e_k, so log e_{k+1}/log e_k → q as e_k → 0
// (the estimate the GGN experiment prints next to the quadratic claim of Cai et al.
// "GRAM-GAUSS-NEWTON METHOD", Thm 1). It depends on the scale of e (log C/log e_k vanishes only
// slowly), so the scale-free estimate log(e_{k+1}/e_k)/log(e_k/e_{k−1}) (Nocedal & Wright,
// Numerical Optimization, Sec. 2.2 "rates of convergence"; also the usual "computational order of
// convergence") is given as well.

/** Per-step order estimates. */
export interface ConvergenceOrders {
  /** log e_{k+1}/log e_k for k with 0 < e_k < 1 and e_{k+1} > 0 (index k of the first term). */
  readonly logRatio: { k: number; order: number }[];
  /** log(e_{k+1}/e_k)/log(e_k/e_{k−1}) for k ≥ 1 with decreasing, positive errors. */
  readonly scaleFree: { k: number; order: number }[];
}

/**
 * Order estimates from an error sequence, on its final phase of strict decrease: the sequence is
 * cut at the first entry that is 0 or non-finite, then at its (first) minimum (beyond it, rounding
 * floor), and the estimates use the longest strictly decreasing run ending there (an early
 * increase, e.g. an undamped first step, is skipped). Indices k refer to the given sequence.
 */
export function convergenceOrders(errors: readonly number[]): ConvergenceOrders {
  const e: number[] = [];
  for (const v of errors) {
    if (!(v > 0 && Number.isFinite(v))) break;
    e.push(v);
  }
  const logRatio: { k: number; order: number }[] = [];
  const scaleFree: { k: number; order: number }[] = [];
  if (e.length === 0) return { logRatio, scaleFree };
  let m = 0;
  for (let k = 1; k < e.length; k++) if (e[k] < e[m]) m = k;
  let s = m;
  while (s > 0 && e[s - 1] > e[s]) s--;
  for (let k = s; k < m; k++) if (e[k] < 1) logRatio.push({ k, order: Math.log(e[k + 1]) / Math.log(e[k]) });
  for (let k = s + 1; k < m; k++) scaleFree.push({ k, order: Math.log(e[k + 1] / e[k]) / Math.log(e[k] / e[k - 1]) });
  return { logRatio, scaleFree };
}
