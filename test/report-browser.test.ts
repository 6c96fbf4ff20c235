import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { plotLines, renderReport } from "../src/node/report.js";
import { toCsv } from "../src/report/plots.js";
import { chromiumSkip, launchChromium } from "./browser-helpers.js";

// Two small synthetic run directories, metrics.jsonl written by hand as a training run would.
const root = mkdtempSync(join(tmpdir(), "chainopt-report-"));
after(() => rmSync(root, { recursive: true, force: true }));
const ARTIFACTS = process.env.CHAINOPT_TEST_ARTIFACTS ?? fileURLToPath(new URL("../../test-artifacts/", import.meta.url));

function writeRun(name: string, lr: number, scale: number): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, "config.json"),
    JSON.stringify({
      name,
      model: { input: [4], layers: [{ type: "dense", units: 2 }] },
      optimizer: { name: "sgd", lr },
      seed: 1,
      library: { name: "chainopt", version: "0.1.0" },
    }),
  );
  const lines: string[] = [];
  let step = 0;
  for (let epoch = 1; epoch <= 6; epoch++) {
    for (let k = 0; k < 4; k++) {
      step++;
      lines.push(
        JSON.stringify({
          type: "step",
          step,
          epoch: epoch - 1,
          wall: step * 0.05 * scale,
          loss: 2 / (1 + step * lr),
          lr: lr * 0.9 ** epoch,
          grad_norm: 1 / Math.sqrt(step),
        }),
      );
    }
    const loss = 2 / (1 + step * lr);
    lines.push(
      JSON.stringify({
        type: "epoch",
        step,
        epoch,
        wall: step * 0.05 * scale,
        train_loss: loss,
        train_accuracy: 1 - loss / 3,
        validation_loss: loss * 1.1,
        validation_accuracy: 1 - loss / 2.8,
        test_loss: epoch === 6 ? loss * 1.15 : "NaN",
        test_accuracy: epoch === 6 ? 1 - loss / 2.7 : undefined,
        mu: 1 / epoch,
      }),
    );
  }
  writeFileSync(join(dir, "metrics.jsonl"), `${lines.join("\n")}\n{"type":"step","step":99,"lo`); // torn last line
  writeFileSync(
    join(dir, "certificate.json"),
    JSON.stringify({
      title: "Smoothness certificate",
      layers: ["1 dense", "3 dense"],
      quantities: { lipschitz: [1.5 * scale, 2.5], smoothness: [3, 4 * scale] },
      log: true,
    }),
  );
  writeFileSync(join(dir, "smoothing.json"), JSON.stringify({ quantities: { mu: [0.1, 0.01 * scale] } }));
  return dir;
}

let runA = "";
let runB = "";
let html = "";
let plotIds: string[] = [];
let expectedPoints = new Map<string, number>();

before(async () => {
  runA = writeRun("sgd-fast", 0.5, 1);
  runB = writeRun("sgd-slow", 0.1, 1.3);
  const result = await renderReport([runA, runB], join(root, "out", "report.html"));
  html = result.html;
  plotIds = result.plots.map((p) => p.id);
  expectedPoints = new Map(result.plots.map((p) => [p.id, p.points]));
});

describe("report (Node)", () => {
  it("writes one self-contained page and SVG/CSV/Vega-Lite/PNG files per plot", () => {
    const page = readFileSync(html, "utf8");
    for (const id of [
      "loss-epoch",
      "accuracy-epoch",
      "loss-wall",
      "accuracy-wall",
      "loss-step",
      "lr-step",
      "grad-norm-step",
      "epoch-mu",
      "certificate-lipschitz",
      "certificate-smoothness",
      "smoothing-mu",
    ]) {
      assert.ok(plotIds.includes(id), `plot ${id} (have ${plotIds.join(", ")})`);
      const base = join(root, "out", "report-plots", id);
      assert.ok(readFileSync(`${base}.svg`, "utf8").startsWith("<svg"), id);
      assert.ok(existsSync(`${base}.csv`) && existsSync(`${base}.vl.json`), id);
    }
    // No external resources: no http(s) URLs in src/href attributes, no external scripts or styles.
    assert.doesNotMatch(page, /(src|href)="https?:/);
    assert.doesNotMatch(page, /<script(?![^>]*application\/json)/);
    // Loss vs epoch: 2 runs × (6 train + 6 validation + 1 test) points; the "NaN" test losses are left out.
    assert.equal(expectedPoints.get("loss-epoch"), 26);
    assert.equal(expectedPoints.get("certificate-lipschitz"), 4);
    const png = join(root, "out", "report-plots", "loss-epoch.png");
    if (existsSync(png)) assert.deepEqual([...readFileSync(png).subarray(1, 4)], [0x50, 0x4e, 0x47]);
  });

  it("plotLines writes SVG, CSV and the spec into a folder", async () => {
    const dir = join(root, "plots");
    const rows = [1, 2, 3, 4].flatMap((t) => [
      { t, value: 1 / t, method: "gd" },
      { t, value: 1 / (t * t), method: "nesterov" },
    ]);
    const files = await plotLines(rows, {
      x: "t",
      y: "value",
      color: "method",
      title: "Deep linear: suboptimality",
      logY: true,
      dir,
      png: false,
    });
    assert.equal(files.svg, join(dir, "deep-linear-suboptimality.svg"));
    const svg = readFileSync(files.svg, "utf8");
    assert.equal((svg.match(/class="mark-symbol role-mark/g) ?? []).length, 1);
    assert.equal(readFileSync(files.csv, "utf8"), toCsv(rows));
    assert.equal(files.png, undefined);
  });
});

describe("report in a real browser (headless Chromium)", () => {
  const skip = chromiumSkip;
  it("loads without console errors and every plot shows its data points", { skip, timeout: 120_000 }, async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      const problems: string[] = [];
      page.on("console", (m) => {
        if (m.type() === "error" || m.type() === "warning") problems.push(`console.${m.type()}: ${m.text()}`);
      });
      page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
      page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()}`));
      page.on("request", (r) => {
        if (!r.url().startsWith("file:") && !r.url().startsWith("data:")) problems.push(`network request: ${r.url()}`);
      });
      await page.goto(pathToFileURL(html).href, { waitUntil: "load" });
      const figures = await page.$$eval("figure.plot", (els) =>
        els.map((el) => {
          const svg = el.querySelector("svg");
          const box = svg?.getBoundingClientRect();
          // Marks actually drawn: a finite path with a non-empty bounding box.
          const count = (sel: string) =>
            [...el.querySelectorAll(sel)].filter((p) => {
              const b = (p as unknown as { getBBox(): { width: number; height: number } }).getBBox();
              const d = p.getAttribute("d") ?? "";
              return d !== "" && !d.includes("NaN") && Number.isFinite(b.width + b.height) && b.width + b.height > 0;
            }).length;
          return {
            id: el.getAttribute("data-plot") ?? "",
            points: Number(el.getAttribute("data-points")),
            mark: el.getAttribute("data-mark"),
            symbols: el.getAttribute("data-symbols") === "true",
            width: box?.width ?? 0,
            height: box?.height ?? 0,
            symbolMarks: count("g.mark-symbol.role-mark > path"),
            lineMarks: count("g.mark-line.role-mark > path"),
            barMarks: count("g.mark-rect.role-mark > path"),
          };
        }),
      );
      assert.deepEqual(
        figures.map((f) => f.id),
        plotIds,
      );
      for (const f of figures) {
        assert.ok(f.width > 100 && f.height > 100, `${f.id}: SVG rendered at ${f.width}×${f.height}`);
        assert.ok(f.points > 0, `${f.id}: no data`);
        if (f.mark === "bar") assert.equal(f.barMarks, f.points, `${f.id}: bars`);
        else {
          assert.ok(f.lineMarks > 0, `${f.id}: no line`);
          if (f.symbols) assert.equal(f.symbolMarks, f.points, `${f.id}: one symbol per data point`);
        }
      }
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, "report.png"), fullPage: true });
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
  });
});
