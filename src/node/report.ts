import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { basename, dirname, extname, join, resolve } from "node:path";
import { barPlot, type LineOptions, linePlot, type PlotSpec, type Row, reportPlots, toCsv, type VegaLiteSpec } from "../report/plots.js";
import { type MetricRow, type PerLayerRecord, parsePerLayerRecord, type RunData } from "../report/schema.js";
import { readJsonLines, writeFileAtomic } from "./atomic.js";
import { libraryVersion } from "./run-dir.js";
import { safeJoin, uniqueSafeNames } from "./safe-path.js";
import { isSweepDirectory, renderSweepReport } from "./sweep-report.js";

/**
 * Rendering of reports and plots (Node): Vega-Lite specs (src/report/plots.ts) are compiled with
 * `vega-lite` and rendered to SVG by a headless `vega` View (renderer "none": no canvas needed);
 * PNG files come from the SVG through `@resvg/resvg-js` (prebuilt binaries in its npm packages)
 * and are skipped when it cannot load.
 */

/** Renders a Vega-Lite spec to an SVG document. */
export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  const [vega, vl] = await Promise.all([import("vega"), import("vega-lite")]);
  const compiled = vl.compile(spec as unknown as Parameters<typeof vl.compile>[0]).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Renders an SVG to PNG (scale 2 by default), or null when @resvg/resvg-js is unavailable. */
export async function renderPng(svg: string, scale = 2): Promise<Uint8Array | null> {
  let Resvg: typeof import("@resvg/resvg-js").Resvg;
  try {
    ({ Resvg } = await import("@resvg/resvg-js"));
  } catch {
    return null;
  }
  const r = new Resvg(svg, {
    background: "white",
    fitTo: { mode: "zoom", value: scale },
    font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans" },
  });
  return r.render().asPng();
}

/** Files written for one plot. */
export interface PlotFiles {
  svg: string;
  csv: string;
  spec: string;
  png?: string;
}

/**
 * Writes one plot's files into `dir`. `fileName` (default: the plot's id) comes from data (metric
 * keys, per-layer names): it is sanitized and checked to stay inside `dir` (src/node/safe-path.ts).
 */
async function writePlotFiles(dir: string, plot: PlotSpec, svg: string, png: boolean, fileName = plot.id): Promise<PlotFiles> {
  mkdirSync(dir, { recursive: true });
  const files: PlotFiles = {
    svg: safeJoin(dir, fileName, ".svg", "plot"),
    csv: safeJoin(dir, fileName, ".csv", "plot"),
    spec: safeJoin(dir, fileName, ".vl.json", "plot"),
  };
  writeFileAtomic(files.svg, svg);
  writeFileAtomic(files.csv, toCsv(plot.rows));
  writeFileAtomic(files.spec, `${JSON.stringify(plot.spec, null, 2)}\n`);
  if (png) {
    const bytes = await renderPng(svg);
    if (bytes) {
      files.png = safeJoin(dir, fileName, ".png", "plot");
      writeFileAtomic(files.png, bytes);
    }
  }
  return files;
}

/** Options of {@link plotLines}. */
export interface PlotLinesOptions extends Omit<LineOptions, "x" | "y"> {
  x: string;
  y: string;
  /** Output folder (e.g. `run.plotsDir`); created when missing. */
  dir: string;
  /** File base name (default: derived from the title). */
  name?: string;
  /** Also write a PNG (default true; skipped when resvg is unavailable). */
  png?: boolean;
  /** Bar chart (x nominal) instead of lines. */
  bar?: boolean;
}

/**
 * Plots rows as lines (y against x, one line per `color` value) and writes `<name>.svg`,
 * `<name>.csv` (the rows), `<name>.vl.json` (the Vega-Lite spec) and `<name>.png` into `dir`.
 * Experiments call this for their curves (optimizer comparisons, deep-linear curves, smoothing).
 */
export async function plotLines(data: Row[], options: PlotLinesOptions): Promise<PlotFiles> {
  const name = options.name ?? slug(options.title ?? `${options.y}-vs-${options.x}`);
  const plot = options.bar ? barPlot(name, data, options) : linePlot(name, data, options);
  const svg = await renderSvg(plot.spec);
  return writePlotFiles(options.dir, plot, svg, options.png ?? true);
}

function slug(s: string): string {
  return (
    s
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-|-$/g, "")
      .slice(0, 60) || "plot"
  );
}

/** Per-layer result files looked for in run directories (base names, `.json` added). */
export const PER_LAYER_FILES = ["certificate", "smoothing"];

/** Loads a run directory for the report: metrics.jsonl, and config/summary/per-layer files if present. */
export function loadRunData(dir: string, options: { name?: string; perLayerFiles?: string[] } = {}): RunData {
  const abs = resolve(dir);
  const metricsPath = join(abs, "metrics.jsonl");
  if (!existsSync(abs)) throw new Error(`${abs}: no such run directory`);
  if (!existsSync(metricsPath) && !existsSync(join(abs, "config.json")))
    throw new Error(`${abs}: not a run directory (no metrics.jsonl, no config.json)`);
  const readJson = (f: string): Record<string, unknown> | undefined => {
    const p = join(abs, f);
    if (!existsSync(p)) return undefined;
    try {
      return JSON.parse(readFileSync(p, "utf8")) as Record<string, unknown>;
    } catch (error) {
      throw new Error(`${p}: invalid JSON (${(error as Error).message})`);
    }
  };
  const perLayer: Record<string, PerLayerRecord> = {};
  for (const f of options.perLayerFiles ?? PER_LAYER_FILES) {
    const v = readJson(`${f}.json`);
    if (v !== undefined) perLayer[f] = parsePerLayerRecord(v, join(abs, `${f}.json`));
  }
  const config = readJson("config.json");
  return {
    name: options.name ?? (typeof config?.name === "string" && config.name !== "" ? config.name : basename(abs)),
    dir: abs,
    config,
    metrics: readJsonLines<MetricRow>(metricsPath),
    summary: readJson("summary.json"),
    perLayer,
  };
}

/** Options of {@link renderReport}. */
export interface ReportOptions {
  title?: string;
  /** Folder for the SVG/CSV/PNG files of each plot (default `<out>-plots` beside the page; false: none). */
  plotsDir?: string | false;
  /** Write PNG files too (default true when resvg loads). */
  png?: boolean;
  /** Per-layer files to look for (default certificate, smoothing). */
  perLayerFiles?: string[];
}

/** What {@link renderReport} wrote. */
export interface ReportResult {
  html: string;
  plots: { id: string; title: string; points: number; files?: PlotFiles }[];
}

/**
 * Renders one self-contained HTML page comparing the runs (inline SVG plots and styles, no
 * scripts or network resources), plus each plot as SVG/CSV/Vega-Lite (and PNG) files.
 */
export async function renderReport(runDirs: string[], outFile: string, options: ReportOptions = {}): Promise<ReportResult> {
  if (runDirs.length === 0) throw new Error("report: no run directory given");
  // --- sweep (src/node/sweep-report.ts): a sweep's output folder is aggregated over seeds ---
  if (runDirs.length === 1 && isSweepDirectory(runDirs[0])) return renderSweepReport(runDirs[0], outFile, options);
  // --- end sweep ---
  const runs = runDirs.map((d) => loadRunData(d, { perLayerFiles: options.perLayerFiles }));
  const seen = new Map<string, number>();
  for (const r of runs) {
    const k = seen.get(r.name) ?? 0;
    seen.set(r.name, k + 1);
    if (k > 0) r.name = `${r.name} (${k + 1})`;
  }
  return renderReportFromData(runs, outFile, options);
}

/** {@link renderReport} from runs already loaded (or built in memory). */
export async function renderReportFromData(runs: RunData[], outFile: string, options: ReportOptions = {}): Promise<ReportResult> {
  const out = resolve(outFile);
  mkdirSync(dirname(out), { recursive: true });
  const plotsDir =
    options.plotsDir === false ? null : resolve(options.plotsDir ?? join(dirname(out), `${basename(out, extname(out))}-plots`));
  const plots = reportPlots(runs);
  // Plot ids hold metric keys read from the runs: distinct safe file names for them.
  const fileNames = uniqueSafeNames(
    plots.map((p) => p.id),
    "plot",
  );
  const figures: string[] = [];
  const result: ReportResult = { html: out, plots: [] };
  for (const [k, plot] of plots.entries()) {
    const svg = await renderSvg(plot.spec);
    const files = plotsDir ? await writePlotFiles(plotsDir, plot, svg, options.png ?? true, fileNames[k]) : undefined;
    result.plots.push({ id: plot.id, title: plot.title, points: plot.points, files });
    figures.push(
      `<figure class="plot" id="plot-${esc(plot.id)}" data-plot="${esc(plot.id)}" data-points="${plot.points}" data-mark="${plot.mark}" data-symbols="${plot.symbols}">` +
        `${uniqueIds(stripXmlDecl(svg), `p${k}-`)}<figcaption>${esc(plot.title)} — ${plot.points} points</figcaption></figure>`,
    );
  }
  const title = options.title ?? `chainopt report: ${runs.map((r) => r.name).join(", ")}`;
  const specs = Object.fromEntries(plots.map((p) => [p.id, p.spec]));
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="chainopt ${esc(libraryVersion())}">
<link rel="icon" href="data:,">
<title>${esc(title)}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem; color: #222; background: #fafafa; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 0.85rem; background: white; }
th, td { border: 1px solid #ddd; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }
td code { white-space: pre-wrap; word-break: break-all; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; }
figure.plot { margin: 0; padding: 0.5rem; background: white; border: 1px solid #ddd; border-radius: 4px; }
figcaption { font-size: 0.8rem; color: #666; text-align: center; }
.empty { color: #a00; }
</style>
</head>
<body>
<h1>${esc(title)}</h1>
<p>Generated ${esc(new Date().toISOString())} by chainopt ${esc(libraryVersion())}. Each plot is also saved as SVG, CSV and Vega-Lite files${plotsDir ? ` in <code>${esc(plotsDir)}</code>` : ""}.</p>
<h2>Runs</h2>
${runTable(runs)}
<h2>Plots</h2>
${figures.length > 0 ? `<div class="plots">\n${figures.join("\n")}\n</div>` : `<p class="empty">No metrics to plot.</p>`}
<script type="application/json" id="chainopt-plot-specs">${JSON.stringify(specs).replace(/</g, "\\u003c")}</script>
</body>
</html>
`;
  writeFileAtomic(out, html);
  return result;
}

function runTable(runs: RunData[]): string {
  const short = (v: unknown) => {
    if (v === undefined) return "";
    const s = typeof v === "string" ? v : JSON.stringify(v);
    return s.length > 300 ? `${s.slice(0, 300)}…` : s;
  };
  const lastEpoch = (r: RunData) => [...r.metrics].reverse().find((m) => m.type === "epoch");
  const rows = runs.map((r) => {
    const c = r.config ?? {};
    const library = c.library as { version?: string } | undefined;
    const last = lastEpoch(r);
    const final =
      r.summary ?? (last ? Object.fromEntries(Object.entries(last).filter(([k]) => /_(loss|accuracy)$/.test(k) || k === "epoch")) : {});
    const finalText = Object.entries(final)
      .filter(([, v]) => v !== null && typeof v !== "object")
      .map(([k, v]) => `${k}: ${typeof v === "number" && !Number.isInteger(v) ? v.toPrecision(4) : String(v)}`)
      .join("\n");
    return `<tr><td>${esc(r.name)}</td><td><code>${esc(short(c.model))}</code></td><td><code>${esc(short(c.optimizer))}</code></td><td>${esc(short(c.seed))}</td><td><code>${esc(short(c.backend))}</code></td><td>${esc(library?.version ?? "")}</td><td><code>${esc(finalText)}</code></td></tr>`;
  });
  return `<table class="runs"><thead><tr><th>run</th><th>model</th><th>optimizer</th><th>seed</th><th>backend</th><th>version</th><th>final</th></tr></thead><tbody>\n${rows.join("\n")}\n</tbody></table>`;
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function stripXmlDecl(svg: string): string {
  return svg.replace(/^<\?xml[^>]*>\s*/, "");
}

/** Prefixes the ids of an SVG (and their references) so that several SVGs can share one page. */
function uniqueIds(svg: string, prefix: string): string {
  return svg
    .replace(/\bid="([^"]+)"/g, (_, id: string) => `id="${prefix}${id}"`)
    .replace(/url\(#([^)]+)\)/g, (_, id: string) => `url(#${prefix}${id})`)
    .replace(/href="#([^"]+)"/g, (_, id: string) => `href="#${prefix}${id}"`);
}
