import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { basename, dirname, extname, join, relative, resolve } from "node:path";
import { type Row, toCsv, type VegaLiteSpec } from "../report/plots.js";
import { readJsonLines, writeFileAtomic } from "./atomic.js";
import type { ReportOptions, ReportResult } from "./report.js";
import { renderSvg } from "./report.js";
import { safeSegment, valueLabel } from "./sweep.js";

// `chainopt report SWEEP_DIR`: aggregates the tasks of a sweep (`chainopt sweep`, docs/distributed.md)
// into mean ± standard deviation over seeds: one table of every configuration (all axes but
// `seed`), and for each grid axis a table and a plot of each metric against the axis' values
// (pooled over seeds and the other axes, as the smoothing paper's Table III pools over μ).

interface Manifest {
  name: string;
  description?: string;
  axes: { name: string; values: unknown[] }[];
  tasks: { index: number; name: string; assignment: Record<string, unknown> }[];
}

/** The metrics of a finished task. */
interface TaskResult {
  assignment: Record<string, unknown>;
  metrics: Record<string, number>;
}

const METRICS = ["test_accuracy", "test_loss", "train_loss", "validation_accuracy"] as const;

/** Whether `dir` is a sweep's output folder (has sweep.json). */
export function isSweepDirectory(dir: string): boolean {
  return existsSync(join(resolve(dir), "sweep.json"));
}

/** Mean and sample standard deviation (n − 1; 0 for one value). */
export function meanStd(xs: number[]): { mean: number; std: number; n: number } {
  const n = xs.length;
  const mean = xs.reduce((s, x) => s + x, 0) / n;
  const v = n > 1 ? xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1) : 0;
  return { mean, std: Math.sqrt(v), n };
}

function readManifest(dir: string): Manifest {
  const file = join(dir, "sweep.json");
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(file, "utf8")) as Manifest;
  } catch (error) {
    throw new Error(`${file}: invalid JSON (${(error as Error).message})`);
  }
  if (!Array.isArray(m.axes) || !Array.isArray(m.tasks)) throw new Error(`${file}: not a sweep manifest (no axes/tasks)`);
  return m;
}

/** The finished tasks' final metrics (test from summary.json, train loss of the last epoch). */
export function loadSweepResults(dir: string): { manifest: Manifest; results: TaskResult[]; unfinished: number[] } {
  const root = resolve(dir);
  const manifest = readManifest(root);
  const results: TaskResult[] = [];
  const unfinished: number[] = [];
  for (const t of manifest.tasks) {
    // The folder name comes from the manifest: keep it a single safe segment inside the sweep folder.
    const name = safeSegment(String(t.name), 120);
    const taskDir = join(root, name);
    const summaryFile = join(taskDir, "summary.json");
    if (name !== t.name || !existsSync(summaryFile)) {
      unfinished.push(t.index);
      continue;
    }
    const summary = JSON.parse(readFileSync(summaryFile, "utf8")) as Record<string, unknown>;
    const metrics: Record<string, number> = {};
    if (typeof summary.testAccuracy === "number") metrics.test_accuracy = summary.testAccuracy;
    if (typeof summary.testLoss === "number") metrics.test_loss = summary.testLoss;
    const epochs = readJsonLines<Record<string, unknown>>(join(taskDir, "metrics.jsonl")).filter((m) => m.type === "epoch");
    const last = epochs.at(-1);
    if (last && typeof last.train_loss === "number") metrics.train_loss = last.train_loss;
    if (last && typeof last.validation_accuracy === "number") metrics.validation_accuracy = last.validation_accuracy;
    results.push({ assignment: t.assignment, metrics });
  }
  return { manifest, results, unfinished };
}

/** Aggregated rows: one per distinct value of the `by` axes, each metric's mean, std and count. */
export function aggregate(results: TaskResult[], axes: Manifest["axes"], by: string[]): Row[] {
  const groups = new Map<string, { labels: Record<string, string>; values: Record<string, number[]> }>();
  for (const r of results) {
    const labels: Record<string, string> = {};
    for (const a of by) {
      const axis = axes.find((x) => x.name === a);
      const vi = axis ? axis.values.findIndex((v) => JSON.stringify(v) === JSON.stringify(r.assignment[a])) : -1;
      labels[a] = valueLabel(r.assignment[a] ?? null, vi);
    }
    const key = JSON.stringify(labels);
    let g = groups.get(key);
    if (!g) {
      g = { labels, values: {} };
      groups.set(key, g);
    }
    for (const [m, v] of Object.entries(r.metrics)) (g.values[m] ??= []).push(v);
  }
  const rows: Row[] = [];
  for (const g of groups.values()) {
    const row: Row = { ...g.labels };
    for (const m of METRICS) {
      const xs = g.values[m];
      if (!xs || xs.length === 0) continue;
      const s = meanStd(xs);
      row[`${m}_mean`] = s.mean;
      row[`${m}_std`] = s.std;
      row.n = s.n;
    }
    rows.push(row);
  }
  return rows;
}

function errorBarSpec(rows: Row[], axis: string, metric: string, title: string): VegaLiteSpec {
  const values = rows
    .filter((r) => typeof r[`${metric}_mean`] === "number")
    .map((r) => ({
      value: r[axis],
      mean: r[`${metric}_mean`],
      lo: (r[`${metric}_mean`] as number) - (r[`${metric}_std`] as number),
      hi: (r[`${metric}_mean`] as number) + (r[`${metric}_std`] as number),
    }));
  const x = { field: "value", type: "nominal", title: axis, sort: null, axis: { labelAngle: 0 } };
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title,
    width: 420,
    height: 240,
    background: "white",
    data: { values },
    layer: [
      {
        mark: { type: "point", filled: true, size: 60 },
        encoding: { x, y: { field: "mean", type: "quantitative", title: metric, scale: { zero: false } } },
      },
      { mark: { type: "errorbar", ticks: true }, encoding: { x, y: { field: "lo", type: "quantitative" }, y2: { field: "hi" } } },
    ],
  };
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const fmt = (x: unknown) => (typeof x === "number" ? (Number.isInteger(x) ? String(x) : x.toPrecision(4)) : String(x ?? ""));

function htmlTable(rows: Row[], keys: string[]): string {
  const metrics = METRICS.filter((m) => rows.some((r) => typeof r[`${m}_mean`] === "number"));
  const head = [...keys, ...metrics.map((m) => `${m} (mean ± std)`), "seeds × runs"].map((h) => `<th>${esc(h)}</th>`).join("");
  const body = rows
    .map((r) => {
      const cells = [
        ...keys.map((k) => esc(fmt(r[k]))),
        ...metrics.map((m) => (typeof r[`${m}_mean`] === "number" ? `${esc(fmt(r[`${m}_mean`]))} ± ${esc(fmt(r[`${m}_std`]))}` : "")),
        esc(fmt(r.n)),
      ];
      return `<tr>${cells.map((c) => `<td>${c}</td>`).join("")}</tr>`;
    })
    .join("\n");
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

/** Renders the sweep report (HTML page, and per-axis SVG/CSV/Vega-Lite files). */
export async function renderSweepReport(dir: string, outFile: string, options: ReportOptions = {}): Promise<ReportResult> {
  const { manifest, results, unfinished } = loadSweepResults(dir);
  const out = resolve(outFile);
  mkdirSync(dirname(out), { recursive: true });
  const plotsDir =
    options.plotsDir === false ? null : resolve(options.plotsDir ?? join(dirname(out), `${basename(out, extname(out))}-plots`));
  const varying = manifest.axes.filter((a) => a.values.length > 1);
  const configAxes = varying.filter((a) => a.name !== "seed").map((a) => a.name);
  const sections: string[] = [];
  const result: ReportResult = { html: out, plots: [] };
  sections.push(
    `<h2>Every configuration (mean ± std over seeds)</h2>\n${htmlTable(aggregate(results, manifest.axes, configAxes), configAxes)}`,
  );
  for (const axis of configAxes) {
    const rows = aggregate(results, manifest.axes, [axis]);
    const figures: string[] = [];
    for (const metric of METRICS) {
      if (!rows.some((r) => typeof r[`${metric}_mean`] === "number")) continue;
      const title = `${metric} by ${axis}`;
      const id = `axis-${safeSegment(axis, 30)}-${metric}`; // file names from data: one safe segment
      const spec = errorBarSpec(rows, axis, metric, title);
      const svg = await renderSvg(spec);
      const entry: ReportResult["plots"][number] = { id, title, points: (spec.data as { values: unknown[] }).values.length };
      if (plotsDir) {
        mkdirSync(plotsDir, { recursive: true });
        const files = { svg: join(plotsDir, `${id}.svg`), csv: join(plotsDir, `${id}.csv`), spec: join(plotsDir, `${id}.vl.json`) };
        for (const f of Object.values(files)) if (relative(plotsDir, f).includes("/")) throw new Error(`${f}: leaves ${plotsDir}`);
        writeFileAtomic(files.svg, svg);
        writeFileAtomic(files.csv, toCsv(rows));
        writeFileAtomic(files.spec, `${JSON.stringify(spec, null, 2)}\n`);
        entry.files = files;
      }
      result.plots.push(entry);
      figures.push(`<figure>${svg.replace(/^<\?xml[^>]*>\s*/, "")}<figcaption>${esc(title)}</figcaption></figure>`);
    }
    sections.push(
      `<h2>By ${esc(axis)} (mean ± std over seeds and the other axes)</h2>\n${htmlTable(rows, [axis])}\n<div class="plots">${figures.join("\n")}</div>`,
    );
  }
  const title = options.title ?? `Sweep ${manifest.name}`;
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; font-size: 0.85rem; } th, td { border: 1px solid #ddd; padding: 0.3rem 0.6rem; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; } figure { margin: 0; } figcaption { font-size: 0.8rem; color: #666; text-align: center; }
</style></head>
<body>
<h1>${esc(title)}</h1>
${manifest.description ? `<p>${esc(manifest.description)}</p>` : ""}
<p>${results.length} of ${manifest.tasks.length} task(s) finished${unfinished.length > 0 ? `; unfinished: ${esc(unfinished.join(", "))}` : ""}. Axes: ${esc(varying.map((a) => `${a.name} (${a.values.length})`).join(", "))}.</p>
${sections.join("\n")}
</body></html>
`;
  writeFileAtomic(out, html);
  return result;
}
