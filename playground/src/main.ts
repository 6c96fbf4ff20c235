import embed from "vega-embed";
import type { TopLevelSpec } from "vega-lite";
import { type PageData, parseCsvData } from "./data.js";
import { download, encodeSafetensors, metricsCsv } from "./exports.js";
import type { FromWorker, RunView, ToWorker } from "./protocol.js";
import { fieldText, type PlaygroundState, parseField, stateFromQuery, stateToQuery } from "./state.js";

// The playground page: controls ↔ URL state, one Web Worker per state, panels drawn with
// vega-lite (vega-embed). Nothing leaves the page's origin.

type Key = keyof PlaygroundState;
const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const initial = stateFromQuery(location.search);
let state: PlaygroundState = initial.state;
let worker: Worker | null = null;
let mnist: ArrayBuffer | null = null;
let fileData: PageData | null = null;
let generation = 0;
/** Names the invalid fields of the address the page was opened with (they fell back to defaults). */
const urlNote = initial.problems.length > 0 ? `; ignored invalid address fields: ${initial.problems.join(", ")}` : "";

/** What the page computed last (read by the browser test and the export buttons). */
const results: {
  state: PlaygroundState;
  status: "running" | "done";
  certificate?: Extract<FromWorker, { kind: "certificate" }>["view"];
  runs?: RunView[];
  weights?: Float64Array;
  tensors?: { name: string; shape: number[]; offset: number; size: number }[];
  smoothing?: Extract<FromWorker, { kind: "smoothing" }>["view"];
  optimizers?: Extract<FromWorker, { kind: "optimizers" }>["curves"];
  deepLinear?: Extract<FromWorker, { kind: "deepLinear" }>["view"];
  errors: string[];
} = { state, status: "running", errors: [] };
(globalThis as unknown as { playground: typeof results }).playground = results;

const FIELDS: Key[] = ["dataset", "samples", "seed", "widths", "activation", "mu", "pool", "radius", "lr", "multiple", "steps", "budget", "strengths"];

function fmt(v: number): string {
  if (v === Infinity) return "∞";
  if (v === 0) return "0";
  if (!Number.isFinite(v)) return String(v);
  return Math.abs(v) >= 1e-3 && Math.abs(v) < 1e4 ? v.toPrecision(4) : v.toExponential(3);
}

function writeControls(): void {
  for (const key of FIELDS) ($(key) as HTMLInputElement).value = fieldText(key, state);
  ($("project") as HTMLInputElement).checked = state.project;
  ($("epsilon") as HTMLInputElement).value = String(Math.round(Math.log10(state.epsilon) * 10) / 10);
  $("epsilon-value").textContent = `ε = ${fmt(state.epsilon)}`;
  ($("mu") as HTMLInputElement).disabled = state.activation !== "smoothRelu";
}

function setStatus(text: string, status: "running" | "done" | "error"): void {
  $("status").textContent = text;
  document.body.dataset.status = status;
}

function readControl(key: Key): boolean {
  const el = $(key) as HTMLInputElement;
  const v = parseField(key, el.value);
  if (v === null) {
    el.setAttribute("aria-invalid", "true");
    setStatus(`${el.labels?.[0]?.textContent ?? key}: "${el.value}" is not valid`, "error");
    return false;
  }
  el.removeAttribute("aria-invalid");
  (state as unknown as Record<Key, unknown>)[key] = v;
  return true;
}

let timer: ReturnType<typeof setTimeout> | undefined;
function changed(): void {
  clearTimeout(timer);
  timer = setTimeout(() => {
    history.replaceState(null, "", `?${stateToQuery(state)}`);
    writeControls();
    void compute();
  }, 250);
}

async function compute(): Promise<void> {
  const gen = ++generation;
  worker?.terminate();
  worker = null;
  Object.assign(results, { state: { ...state }, status: "running", certificate: undefined, runs: undefined, weights: undefined, smoothing: undefined, optimizers: undefined, deepLinear: undefined, errors: [] });
  setStatus("computing…", "running");
  if (state.dataset === "mnist" && !mnist) {
    const res = await fetch(new URL("./mnist-subset.bin", location.href));
    if (!res.ok) {
      setStatus(`mnist-subset.bin: HTTP ${res.status} (build the page with npm run build:playground)`, "error");
      return;
    }
    mnist = await res.arrayBuffer();
    if (gen !== generation) return;
  }
  const w = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
  worker = w;
  w.onmessage = (e: MessageEvent<FromWorker>) => {
    if (gen !== generation) return;
    show(e.data);
  };
  w.onerror = (e) => {
    results.errors.push(`worker: ${e.message}`);
    setStatus(`worker failed: ${e.message}`, "error");
  };
  const msg: ToWorker = { kind: "compute", state: { ...state }, mnist: mnist ? mnist.slice(0) : null, file: fileData };
  w.postMessage(msg);
}

function plot(id: string, spec: TopLevelSpec, title: string): void {
  const el = $(id);
  el.setAttribute("role", "img");
  el.setAttribute("aria-label", title);
  const config = { legend: { orient: "bottom", columns: 3 } };
  void embed(el, { width: "container", height: 220, config, ...spec } as TopLevelSpec, { actions: false, renderer: "svg" }).catch((e: Error) => {
    results.errors.push(`plot ${id}: ${e.message}`);
  });
}

function table(headers: string[], rows: (string | number)[][]): string {
  const esc = (s: string | number) => String(s).replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<table><thead><tr>${headers.map((h) => `<th scope="col">${esc(h)}</th>`).join("")}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join("")}</tr>`)
    .join("")}</tbody></table>`;
}

function show(m: FromWorker): void {
  switch (m.kind) {
    case "data": {
      $("data-info").textContent = `${m.size} samples, input ${m.inputShape.join("×")}, ${m.task}.`;
      if (m.points.length > 0) {
        plot("plot-data", {
          data: { values: m.points },
          mark: { type: "point", filled: true },
          encoding: { x: { field: "x1", type: "quantitative" }, y: { field: "x2", type: "quantitative" }, color: { field: "label", type: "nominal" } },
        }, "scatter plot of the data set");
      } else $("plot-data").replaceChildren();
      break;
    }
    case "certificate": {
      const v = m.view;
      results.certificate = v;
      $("cert-table").innerHTML = table(
        ["t", "layer", "R_t", "m_t", "ℓ_t", "L_t"],
        v.rows.map((r) => [r.layer, r.types, r.layer === 0 ? "–" : fmt(r.radius), fmt(r.bound), fmt(r.lipschitz), fmt(r.smoothness)]),
      );
      $("cert-summary").textContent =
        `loss on ‖ŷ‖ ≤ m_τ: ℓ_f = ${fmt(v.lossLipschitz)}, L_f = ${fmt(v.lossSmoothness)}; objective: ℓ_F = ${fmt(v.lipschitz)}, L_F = ${fmt(v.smoothness)}; ` +
        (v.stepSize > 0 ? `certified step 1/L_F = ${fmt(v.stepSize)}, your rate ${fmt(state.lr)} = ${fmt(state.lr / v.stepSize)} × certified.` : "no certified step: the chain is not smooth (relu or max-pool); see the smoothing panel.");
      const loss = results.state.dataset === "sine" || (results.state.dataset === "file" && fileData?.targets) ? "squared" : "logistic";
      $("cli-command").textContent = `npx chainopt analyze --model spec.json --batch ${v.batch} --radius ${state.radius} --max-sample-norm ${v.maxSampleNorm} --loss ${loss} --json`;
      break;
    }
    case "training": {
      results.runs = m.runs;
      results.weights = m.weights;
      results.tensors = m.tensors;
      $("run-flags").innerHTML = "";
      for (const r of m.runs) {
        const li = document.createElement("li");
        li.dataset.run = r.name;
        li.dataset.diverged = String(r.diverged);
        li.className = r.diverged ? "flag-bad" : "flag-ok";
        li.textContent = `${r.name} (η = ${fmt(r.lr)}): ${r.diverged ? "DIVERGED — " : ""}${r.reason}`;
        $("run-flags").append(li);
      }
      const values = m.runs.flatMap((r) => r.losses.map((loss, step) => ({ run: r.name, step, loss: Number.isFinite(loss) ? loss : null })));
      plot("plot-loss", {
        data: { values },
        mark: { type: "line", clip: true },
        encoding: {
          x: { field: "step", type: "quantitative" },
          y: { field: "loss", type: "quantitative", scale: { zero: false } },
          color: { field: "run", type: "nominal" },
        },
      }, "training loss against steps for the three step sizes");
      const cert = results.certificate;
      const curv = m.runs.flatMap((r) => r.curvature.map(([step, value]) => ({ run: r.name, step, value })));
      plot("plot-curvature", {
        layer: [
          { data: { values: curv }, mark: { type: "line", point: true }, encoding: { x: { field: "step", type: "quantitative" }, y: { field: "value", type: "quantitative", scale: { type: "log" }, title: `top |eigenvalue| (${m.runs[0]?.curvatureKind ?? "hessian"})` }, color: { field: "run", type: "nominal" } } },
          ...(cert && cert.smoothness < Infinity ? [{ data: { values: [{ bound: cert.smoothness, label: "L_F (certified bound)" }] }, mark: { type: "rule" as const, strokeDash: [6, 4], color: "black" }, encoding: { y: { field: "bound", type: "quantitative" as const } } }] : []),
        ],
      } as TopLevelSpec, "top Hessian eigenvalue along the runs against the certified bound L_F");
      break;
    }
    case "smoothing": {
      const v = m.view;
      results.smoothing = v;
      $("smooth-table").innerHTML = table(
        ["t", "layer", "μ of the smoothed parts"],
        v.layers.map((l) => [l.layer, l.types, l.parameters.length ? l.parameters.map(fmt).join(", ") : "–"]),
      );
      $("smooth-summary").textContent = `ε = ${fmt(v.epsilon)}: certified gap ν = ${fmt(v.certifiedGap)} ≥ measured gap ${fmt(v.measuredGap)} (${v.certifiedGap >= v.measuredGap ? "bound holds" : "BOUND VIOLATED"}); smoothed net: L_F = ${fmt(v.smoothness)}, certified step ${fmt(v.stepSize)}.`;
      break;
    }
    case "optimizers": {
      results.optimizers = m.curves;
      const values = m.curves.flatMap((c) => c.points.map((p) => ({ optimizer: c.name, step: p.step, ms: p.ms, loss: Number.isFinite(p.loss) ? p.loss : null })));
      $("opt-notes").textContent = m.curves.filter((c) => c.note).map((c) => `${c.name}: ${c.note}`).join(" · ");
      const enc = (x: string, title: string) => ({
        data: { values },
        mark: { type: "line" as const, point: true, clip: true },
        encoding: { x: { field: x, type: "quantitative" as const, title }, y: { field: "loss", type: "quantitative" as const, scale: { type: "log" as const } }, color: { field: "optimizer", type: "nominal" as const } },
      });
      plot("plot-opt-steps", enc("step", "step"), "loss against steps for six optimizers");
      plot("plot-opt-time", enc("ms", "wall time (ms)"), "loss against wall time for six optimizers");
      break;
    }
    case "deepLinear": {
      results.deepLinear = m.view;
      $("dl-summary").textContent = `gradient descent, η = ${m.view.lr}, ${m.view.steps} steps; largest |simulated − analytic| = ${fmt(m.view.maxDeviation)}.`;
      plot("plot-dl", {
        data: { values: m.view.points },
        mark: "line",
        encoding: {
          x: { field: "t", type: "quantitative", title: "t = η·step" },
          y: { field: "strength", type: "quantitative" },
          color: { field: "mode", type: "nominal" },
          strokeDash: { field: "curve", type: "nominal" },
        },
      }, "deep linear network mode strengths, analytic against simulated");
      break;
    }
    case "error":
      results.errors.push(`${m.stage}: ${m.message}`);
      setStatus(`${m.stage}: ${m.message}`, "error");
      break;
    case "done":
      results.status = "done";
      if (results.errors.length === 0) setStatus(`done in ${(m.ms / 1000).toFixed(1)} s${urlNote}`, "done");
      else document.body.dataset.status = "done-with-errors";
      break;
  }
}

function init(): void {
  writeControls();
  for (const key of FIELDS) {
    $(key).addEventListener("change", () => {
      if (readControl(key)) changed();
    });
  }
  $("project").addEventListener("change", () => {
    state.project = ($("project") as HTMLInputElement).checked;
    changed();
  });
  $("epsilon").addEventListener("input", () => {
    state.epsilon = Number((10 ** Number(($("epsilon") as HTMLInputElement).value)).toPrecision(3));
    $("epsilon-value").textContent = `ε = ${fmt(state.epsilon)}`;
    changed();
  });
  $("file").addEventListener("change", async () => {
    const f = ($("file") as HTMLInputElement).files?.[0];
    if (!f) return;
    try {
      fileData = parseCsvData(await f.text(), f.name, 1000);
      state.dataset = "file";
      changed();
    } catch (e) {
      setStatus((e as Error).message, "error");
    }
  });
  $("export-spec").addEventListener("click", () => {
    if (results.certificate) download("spec.json", `${JSON.stringify(results.certificate.spec, null, 2)}\n`, "application/json");
  });
  $("export-weights").addEventListener("click", () => {
    const { weights, tensors, certificate } = results;
    if (!weights || !tensors || !certificate) return;
    const bytes = encodeSafetensors(
      tensors.map((t) => ({ name: t.name, shape: t.shape, data: weights.slice(t.offset, t.offset + t.size) })),
      { format: "pt", source: "chainopt playground", spec: JSON.stringify(certificate.spec) },
    );
    download("weights.safetensors", bytes, "application/octet-stream");
  });
  $("export-csv").addEventListener("click", () => {
    if (results.runs) download("metrics.csv", metricsCsv(results.runs), "text/csv");
  });
  history.replaceState(null, "", `?${stateToQuery(state)}`);
  void compute();
}

init();
