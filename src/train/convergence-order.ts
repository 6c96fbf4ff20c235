// Observed order of convergence of an error sequence e_0, e_1, … → 0 (docs/diagnostics.md).
//
// If e_{k+1} ≈ C e_k^q, then log e_{k+1} = log C + q log e_k, so log e_{k+1}/log e_k → q as e_k → 0
// (the estimate the GGN experiment prints next to the quadratic claim of seed 001, Cai et al.
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
 * Order estimates from an error sequence. Entries that are 0, non-finite, or stop decreasing
 * (rounding floor) end the sequence: estimates there say nothing about the method.
 */
export function convergenceOrders(errors: readonly number[]): ConvergenceOrders {
  const e: number[] = [];
  for (const v of errors) {
    if (!(v > 0 && Number.isFinite(v))) break;
    if (e.length > 0 && !(v < e[e.length - 1])) break;
    e.push(v);
  }
  const logRatio: { k: number; order: number }[] = [];
  for (let k = 0; k + 1 < e.length; k++) if (e[k] < 1) logRatio.push({ k, order: Math.log(e[k + 1]) / Math.log(e[k]) });
  const scaleFree: { k: number; order: number }[] = [];
  for (let k = 1; k + 1 < e.length; k++) scaleFree.push({ k, order: Math.log(e[k + 1] / e[k]) / Math.log(e[k] / e[k - 1]) });
  return { logRatio, scaleFree };
}
