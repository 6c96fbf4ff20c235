import type { LayerWitnessReport, WitnessCell } from "../../certify/witness-report.js";

const fmt = (v: number): string => (v === Infinity ? "∞" : v === 0 ? "0" : v.toExponential(3));
const ratio = (v: number): string => (v === Infinity ? "∞" : v.toPrecision(3));

/** The tightness report of `analyze --witness` as a table: certificate, witness, ratio per layer. */
export function formatWitnessReport(r: LayerWitnessReport): string {
  const head = ["t", "layer", "m_t", "witness", "ratio", "ℓ_t", "witness", "ratio", "L_t", "witness", "ratio"];
  const cells = (c: WitnessCell) => [fmt(c.certificate), fmt(c.witness), ratio(c.ratio)];
  const rows = [
    head,
    ...r.layers.map((l) => [String(l.layer), l.types.join("→"), ...cells(l.bound), ...cells(l.lipschitz), ...cells(l.smoothness)]),
  ];
  const widths = head.map((_, j) => Math.max(...rows.map((row) => row[j].length)));
  const line = (row: string[]) => row.map((c, j) => (j === 1 ? c.padEnd(widths[j]) : c.padStart(widths[j]))).join("  ");
  return [
    "tightness: certificate / witness (witness = lower bound found by search; ratio ≥ 1 for a valid certificate)",
    line(head),
    ...rows.slice(1).map(line),
    `objective: ℓ_F ${fmt(r.objective.lipschitz.certificate)} / ${fmt(r.objective.lipschitz.witness)} = ${ratio(r.objective.lipschitz.ratio)},` +
      ` L_F ${fmt(r.objective.smoothness.certificate)} / ${fmt(r.objective.smoothness.witness)} = ${ratio(r.objective.smoothness.ratio)}` +
      ` (top Hessian |λ| found: ${fmt(r.objective.hessianEigenvalue)})`,
  ].join("\n");
}
