import { type MetricRow, type RunData, toNumber } from "./schema.js";

/**
 * Vega-Lite specifications of the report's plots (portable: plain JSON objects). They are
 * compiled with `vega-lite` and rendered to SVG by `vega` in src/node/report.ts, or can be
 * embedded with vega-embed anywhere else.
 */

/** A Vega-Lite specification (plain JSON). */
export type VegaLiteSpec = Record<string, unknown>;

/** A data row of a plot. */
export type Row = Record<string, string | number | null>;

/** One plot: its id (file base name), title, spec, and the data rows it shows (for CSV). */
export interface PlotSpec {
  id: string;
  title: string;
  spec: VegaLiteSpec;
  rows: Row[];
  /** Number of data points drawn (rows with a finite y). */
  points: number;
  /** Which marks carry the data: `line` (with point symbols when `symbols`), or `bar`. */
  mark: "line" | "bar";
  symbols: boolean;
}

/** Options of {@link lineSpec}. */
export interface LineOptions {
  x: string;
  y: string;
  /** Field whose values get one colour each (e.g. the run). */
  color?: string;
  /** Field whose values get one dash pattern each (e.g. the split). */
  dash?: string;
  title?: string;
  xTitle?: string;
  yTitle?: string;
  /** Logarithmic y axis (non-positive values are then left out). */
  logY?: boolean;
  logX?: boolean;
  /** Draw a symbol at every point (default: when there are at most 300 points). */
  points?: boolean;
  width?: number;
  height?: number;
}

/** Rows with a finite y (and, for log axes, positive values). */
function plottable(rows: Row[], o: { x: string; y: string; logX?: boolean; logY?: boolean }): Row[] {
  return rows.filter((r) => {
    const x = toNumber(r[o.x]);
    const y = toNumber(r[o.y]);
    return x !== null && y !== null && (!o.logY || y > 0) && (!o.logX || x > 0);
  });
}

/** A line chart: y against x, one line per (color, dash) value. */
export function lineSpec(rows: Row[], o: LineOptions): VegaLiteSpec {
  const data = plottable(rows, o);
  const points = o.points ?? data.length <= 300;
  const encoding: Record<string, unknown> = {
    x: { field: o.x, type: "quantitative", title: o.xTitle ?? o.x, scale: o.logX ? { type: "log" } : { zero: false } },
    y: { field: o.y, type: "quantitative", title: o.yTitle ?? o.y, scale: o.logY ? { type: "log" } : { zero: false } },
  };
  if (o.color) encoding.color = { field: o.color, type: "nominal", title: o.color };
  if (o.dash)
    encoding.strokeDash = {
      field: o.dash,
      type: "nominal",
      title: o.dash,
      legend: {
        symbolType: "stroke",
        symbolSize: 400,
        encode: { symbols: { update: { stroke: { value: "#444" }, strokeWidth: { value: 2 } } } },
      },
    };
  const detail = [o.color, o.dash].filter((f): f is string => f !== undefined);
  if (detail.length > 0) encoding.order = { field: o.x, type: "quantitative" };
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: o.title ?? `${o.y} vs ${o.x}`,
    width: o.width ?? 420,
    height: o.height ?? 260,
    background: "white",
    data: { values: data },
    mark: { type: "line", point: points ? { filled: true, size: 24 } : false, strokeWidth: 1.5, clip: true },
    encoding,
  };
}

/** Options of {@link barSpec}. */
export interface BarOptions {
  x: string;
  y: string;
  color?: string;
  title?: string;
  xTitle?: string;
  yTitle?: string;
  logY?: boolean;
  width?: number;
  height?: number;
}

/** A grouped bar chart: one group per x value (e.g. the layer), one bar per colour (e.g. the run). */
export function barSpec(rows: Row[], o: BarOptions): VegaLiteSpec {
  const data = rows.filter((r) => {
    const y = toNumber(r[o.y]);
    return y !== null && (!o.logY || y > 0);
  });
  const encoding: Record<string, unknown> = {
    x: { field: o.x, type: "nominal", title: o.xTitle ?? o.x, sort: null, axis: { labelAngle: 0 } },
    y: { field: o.y, type: "quantitative", title: o.yTitle ?? o.y, scale: o.logY ? { type: "log" } : {} },
  };
  if (o.color) {
    encoding.color = { field: o.color, type: "nominal", title: o.color };
    encoding.xOffset = { field: o.color, type: "nominal" };
  }
  if (o.logY && data.length > 0) {
    // Bars on a log axis cannot start at 0: start them at the power of ten below the smallest value.
    const min = Math.min(...data.map((r) => toNumber(r[o.y]) as number));
    encoding.y2 = { datum: 10 ** Math.floor(Math.log10(min)) };
  }
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: o.title ?? `${o.y} by ${o.x}`,
    width: o.width ?? 420,
    height: o.height ?? 260,
    background: "white",
    data: { values: data },
    mark: { type: "bar" },
    encoding,
  };
}

function finiteCount(rows: Row[], y: string): number {
  return rows.filter((r) => toNumber(r[y]) !== null).length;
}

/** A line plot built from rows, with its CSV rows and point count. */
export function linePlot(id: string, rows: Row[], o: LineOptions): PlotSpec {
  const spec = lineSpec(rows, o);
  const data = (spec.data as { values: Row[] }).values;
  const symbols = (spec.mark as { point: unknown }).point !== false;
  return { id, title: String(spec.title), spec, rows, points: data.length, mark: "line", symbols };
}

/** A bar plot built from rows. */
export function barPlot(id: string, rows: Row[], o: BarOptions): PlotSpec {
  const spec = barSpec(rows, o);
  return {
    id,
    title: String(spec.title),
    spec,
    rows,
    points: finiteCount((spec.data as { values: Row[] }).values, o.y),
    mark: "bar",
    symbols: false,
  };
}

const SPLITS = ["train", "validation", "test"] as const;
const KNOWN_EPOCH_KEYS = new Set(["type", "step", "epoch", "wall", "lr", "grad_norm", "loss", "time"]);

/** Epoch records in long form: one row per (run, epoch, split) with `loss`, `accuracy`. */
export function splitRows(runs: RunData[], metric: "loss" | "accuracy"): Row[] {
  const rows: Row[] = [];
  for (const run of runs) {
    for (const r of run.metrics) {
      if (r.type !== "epoch") continue;
      for (const split of SPLITS) {
        const v = toNumber(r[`${split}_${metric}`]);
        if (v === null) continue;
        rows.push({ run: run.name, split, epoch: toNumber(r.epoch), step: toNumber(r.step), wall: toNumber(r.wall), [metric]: v });
      }
    }
  }
  return rows;
}

function recordRows(runs: RunData[], type: string, key: string): Row[] {
  const rows: Row[] = [];
  for (const run of runs) {
    for (const r of run.metrics as MetricRow[]) {
      if (r.type !== type) continue;
      const v = toNumber(r[key]);
      if (v === null) continue;
      rows.push({ run: run.name, epoch: toNumber(r.epoch), step: toNumber(r.step), wall: toNumber(r.wall), [key]: v });
    }
  }
  return rows;
}

/**
 * The plots of a report comparing runs: loss and accuracy (train/validation/test) against the
 * epoch and against wall time, per-step loss, learning rate, gradient norm, extra epoch metrics,
 * and per-layer bar charts of certificate/smoothing files. Plots without data are left out.
 */
export function reportPlots(runs: RunData[]): PlotSpec[] {
  const plots: PlotSpec[] = [];
  const add = (p: PlotSpec) => {
    if (p.points > 0) plots.push(p);
  };
  const multi = runs.length > 1;
  for (const metric of ["loss", "accuracy"] as const) {
    const rows = splitRows(runs, metric);
    const logY = metric === "loss" && rows.every((r) => (r[metric] as number) > 0);
    const title = metric === "loss" ? "Loss" : "Accuracy";
    add(linePlot(`${metric}-epoch`, rows, { x: "epoch", y: metric, color: "run", dash: "split", title: `${title} vs epoch`, logY }));
    add(
      linePlot(`${metric}-wall`, rows, {
        x: "wall",
        y: metric,
        color: "run",
        dash: "split",
        title: `${title} vs wall time`,
        xTitle: "wall time (s)",
        logY,
      }),
    );
  }
  const stepLoss = recordRows(runs, "step", "loss");
  add(
    linePlot("loss-step", stepLoss, {
      x: "step",
      y: "loss",
      color: multi ? "run" : undefined,
      title: "Training loss per step",
      logY: stepLoss.every((r) => (r.loss as number) > 0),
    }),
  );
  for (const [key, title, log] of [
    ["lr", "Learning rate", true],
    ["grad_norm", "Gradient norm", true],
  ] as const) {
    const steps = recordRows(runs, "step", key);
    const rows = steps.length > 0 ? steps : recordRows(runs, "epoch", key);
    const x = steps.length > 0 ? "step" : "epoch";
    const logY = log && rows.every((r) => (r[key] as number) > 0) && rows.some((r) => r[key] !== rows[0][key]);
    add(linePlot(`${key.replace("_", "-")}-${x}`, rows, { x, y: key, color: "run", title: `${title} vs ${x}`, logY }));
  }
  // Extra numeric epoch metrics.
  const extra = new Set<string>();
  for (const run of runs) {
    for (const r of run.metrics) {
      if (r.type !== "epoch") continue;
      for (const [k, v] of Object.entries(r)) {
        if (KNOWN_EPOCH_KEYS.has(k) || SPLITS.some((s) => k === `${s}_loss` || k === `${s}_accuracy`)) continue;
        if (typeof v === "number" || (typeof v === "string" && toNumber(v) !== null)) extra.add(k);
      }
    }
  }
  for (const k of [...extra].sort().slice(0, 16)) {
    add(linePlot(`epoch-${k}`, recordRows(runs, "epoch", k), { x: "epoch", y: k, color: "run", title: `${k} vs epoch` }));
  }
  // Per-layer files.
  const files = new Set<string>();
  for (const run of runs) for (const f of Object.keys(run.perLayer ?? {})) files.add(f);
  for (const file of [...files].sort()) {
    const quantities = new Set<string>();
    for (const run of runs) for (const q of Object.keys(run.perLayer?.[file]?.quantities ?? {})) quantities.add(q);
    for (const q of quantities) {
      const rows: Row[] = [];
      let log = false;
      let title = file;
      for (const run of runs) {
        const rec = run.perLayer?.[file];
        const values = rec?.quantities[q];
        if (!rec || !values) continue;
        log ||= rec.log === true;
        title = rec.title ?? title;
        values.forEach((v, i) => {
          rows.push({ run: run.name, layer: rec.layers?.[i] ?? String(i + 1), [q]: v });
        });
      }
      const logY = log && rows.every((r) => r[q] === null || (r[q] as number) > 0);
      add(barPlot(`${file}-${q}`, rows, { x: "layer", y: q, color: "run", title: `${title}: ${q} per layer`, logY }));
    }
  }
  return plots;
}

/** CSV text of rows (columns: union of keys in first-seen order; RFC 4180 quoting). */
export function toCsv(rows: Row[]): string {
  const cols: string[] = [];
  const seen = new Set<string>();
  for (const r of rows) {
    for (const k of Object.keys(r)) {
      if (!seen.has(k)) {
        seen.add(k);
        cols.push(k);
      }
    }
  }
  const cell = (v: unknown) => {
    if (v === null || v === undefined) return "";
    const s = String(v);
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return `${[cols.map(cell).join(","), ...rows.map((r) => cols.map((c) => cell(r[c])).join(","))].join("\n")}\n`;
}
