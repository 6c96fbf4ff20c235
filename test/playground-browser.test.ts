import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { createChain } from "../src/chain/chain.js";
import type { ModelSpecInput } from "../src/chain/spec.js";
import { importTorchSafetensors } from "../src/node/torch-interop.js";
import { chromiumSkip, launchChromium } from "./browser-helpers.js";
import { runCli, startCli } from "./cli-helpers.js";

// The playground page (docs/playground.md) in headless Chromium, driven by playwright-core: served
// by `chainopt playground`, it builds a chain, trains at the certified step and at a large multiple
// of it, moves the ε slider, round-trips its URL state and its exported spec and weights through
// the CLI, and is checked for console errors, foreign requests, labels and keyboard use.
// Screenshots go to test-artifacts/playground/ (to docs/img/ with CHAINOPT_UPDATE_SCREENSHOTS=1).

const ROOT = fileURLToPath(new URL("../../", import.meta.url)); // dist/test → repository root
const DIST = join(ROOT, "playground", "dist");

function newestMtime(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(st.mtimeMs, ...readdirSync(path).map((f) => newestMtime(join(path, f))));
}

/** Builds the page unless playground/dist is newer than its sources (the page, src/, the data script). */
function ensureBuild(): void {
  const index = join(DIST, "index.html");
  const sources = [
    join(ROOT, "playground", "src"),
    join(ROOT, "playground", "index.html"),
    join(ROOT, "src"),
    join(ROOT, "scripts", "build-playground-data.mjs"),
  ];
  if (existsSync(index) && existsSync(join(DIST, "mnist-subset.bin")) && statSync(index).mtimeMs >= Math.max(...sources.map(newestMtime)))
    return;
  const r = spawnSync(process.execPath, [join(ROOT, "scripts", "build-playground.mjs")], { cwd: ROOT, encoding: "utf8" });
  assert.equal(r.status, 0, `build-playground failed:\n${r.stdout}\n${r.stderr}`);
}

interface Results {
  state: Record<string, unknown> & { widths: number[]; epsilon: number; samples: number; radius: number };
  status: "running" | "done";
  certificate?: {
    smoothness: number;
    stepSize: number;
    batch: number;
    maxSampleNorm: number;
    spec: ModelSpecInput;
    rows: { bound: number }[];
  };
  runs?: { name: string; lr: number; losses: number[]; curvature: [number, number][]; diverged: boolean; reason: string }[];
  weights?: Record<string, number>;
  smoothing?: { epsilon: number; certifiedGap: number; measuredGap: number; stepSize: number; layers: { parameters: number[] }[] };
  optimizers?: { name: string; points: { loss: number }[]; note: string }[];
  deepLinear?: { maxDeviation: number; points: unknown[] };
  errors: string[];
}

const QUERY = "data=circles&n=48&widths=6&act=softplus&R=1&lr=0.1&mult=1000&steps=40&proj=1&eps=0.1&budget=0.2&modes=3,1&seed=0";

describe("the playground page in a real browser (headless Chromium)", () => {
  const skip = chromiumSkip;
  it("certifies, trains, flags divergence, smooths, exports and round-trips its state", { skip, timeout: 300_000 }, async () => {
    const t0 = Date.now();
    const log = (what: string) => {
      if (process.env.CHAINOPT_TEST_VERBOSE) process.stderr.write(`playground test: ${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}\n`);
    };
    ensureBuild();
    log("built");
    const server = startCli(["playground", "--port", "0"]);
    // The address it prints (listening from the start: it may print before the browser is up).
    const address = new Promise<string>((resolve, reject) => {
      let out = "";
      server.child.stdout?.on("data", (d: Buffer) => {
        out += d.toString();
        const m = /http:\/\/[^\s]+\//.exec(out);
        if (m) resolve(m[0]);
      });
      server.done.then((r) => reject(new Error(`chainopt playground exited: ${r.stderr}`)), reject);
    });
    address.catch(() => undefined); // awaited below; this only keeps an early exit from being an unhandled rejection
    const tmp = mkdtempSync(join(tmpdir(), "chainopt-playground-"));
    const shots = process.env.CHAINOPT_UPDATE_SCREENSHOTS ? join(ROOT, "docs", "img") : join(ROOT, "test-artifacts", "playground");
    mkdirSync(shots, { recursive: true });
    const browser = await launchChromium();
    try {
      const base = await address;
      const origin = new URL(base).origin;
      const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
      const problems: string[] = [];
      const foreign: string[] = [];
      context.on("request", (req) => {
        const u = req.url();
        if (!u.startsWith(`${origin}/`) && !u.startsWith("blob:") && !u.startsWith("data:")) foreign.push(u);
      });
      const watch = (page: import("playwright-core").Page) => {
        page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
        page.on("console", (m) => {
          if (m.type() === "error") problems.push(`console.error: ${m.text()}`);
        });
      };
      const results = (page: import("playwright-core").Page) =>
        page.evaluate(() => (globalThis as unknown as { playground: Results }).playground) as Promise<Results>;
      const settled = async (page: import("playwright-core").Page) => {
        await page.waitForFunction('window.playground?.status === "done" && document.body.dataset.status.startsWith("done")', undefined, {
          timeout: 90_000,
        });
        return results(page);
      };

      log(`serving ${base}`);
      const page = await context.newPage();
      watch(page);
      await page.goto(`${base}?${QUERY}`);
      log("loaded");
      let r = await settled(page);
      log("first computation");
      assert.deepEqual(r.errors, []);
      const cert = r.certificate;
      assert.ok(cert && cert.stepSize > 0 && Number.isFinite(cert.smoothness), "a certified step for a softplus chain");
      const [certified, user, multiple] = r.runs ?? [];
      assert.equal(certified.lr, cert.stepSize);
      assert.ok(certified.losses.every(Number.isFinite), "no NaN at the certified step");
      for (let k = 1; k < certified.losses.length; k++) {
        assert.ok(certified.losses[k] <= certified.losses[k - 1] + 1e-12, `certified step: loss increased at step ${k}`);
      }
      assert.ok(certified.losses.at(-1)! < certified.losses[0], "the loss decreases at the certified step");
      assert.equal(certified.diverged, false);
      assert.equal(user.lr, 0.1);
      assert.ok(Math.abs(multiple.lr - 1000 * cert.stepSize) <= 1e-12 * multiple.lr);
      assert.equal(multiple.diverged, true, `1000× the certified step should be flagged: ${multiple.reason}`);
      assert.equal(await page.locator('#run-flags li[data-diverged="true"]').count(), 1);
      assert.match((await page.locator("#run-flags").textContent()) ?? "", /DIVERGED/);
      // The certificate bounds the curvature on B_R: |λ|max(∇²F) ≤ L_F along the projected run.
      assert.ok(certified.curvature.length > 1);
      for (const [, lam] of certified.curvature) assert.ok(lam > 0 && lam <= cert.smoothness, `|λ|max ${lam} vs L_F ${cert.smoothness}`);
      assert.ok(r.smoothing && r.smoothing.certifiedGap >= r.smoothing.measuredGap && r.smoothing.measuredGap > 0);
      assert.equal(r.optimizers?.length, 6);
      for (const o of r.optimizers ?? []) assert.ok(o.points.length > 0 || o.note !== "", `${o.name}: neither points nor a note`);
      assert.ok(r.deepLinear && r.deepLinear.points.length > 0);

      // Controls: every one labelled; keyboard reaches them.
      const unlabelled = (await page.evaluate(`[...document.querySelectorAll("input, select, button")]
        .filter((el) => !(el.labels && el.labels.length > 0) && !el.getAttribute("aria-label") && !(el.tagName === "BUTTON" && el.textContent.trim()))
        .map((el) => el.id || el.outerHTML.slice(0, 60))`)) as string[];
      assert.deepEqual(unlabelled, []);
      await page.locator("body").focus();
      await page.keyboard.press("Tab");
      assert.equal(await page.evaluate("document.activeElement && document.activeElement.id"), "dataset");

      await page.screenshot({ path: join(shots, "playground-desktop.png"), fullPage: true });
      await page.setViewportSize({ width: 390, height: 844 }); // a phone
      await page.screenshot({ path: join(shots, "playground-phone.png"), fullPage: true });
      await page.setViewportSize({ width: 1280, height: 900 });
      log("labels and keyboard");
      // Build a chain with the keyboard: widths 6 → 6,4.
      await page.getByLabel("hidden widths (comma-separated)").focus();
      await page.keyboard.press("ControlOrMeta+a");
      await page.keyboard.type("6,4");
      await page.keyboard.press("Tab");
      await page.waitForFunction(() => (globalThis as unknown as { playground: Results }).playground.state.widths.join(",") === "6,4");
      r = await settled(page);
      assert.deepEqual(r.errors, []);
      assert.equal(r.certificate?.rows.length, 3, "input layer + two hidden + output: layers 0..2 with a bi-affine part");
      assert.match(page.url(), /widths=6%2C4/);

      log("chain built");
      // The ε slider, with the keyboard: smaller ε → smaller certified gap; the bound holds.
      const before = r.smoothing!;
      await page.getByLabel("smoothing ε (log₁₀)").focus();
      for (let k = 0; k < 5; k++) await page.keyboard.press("ArrowLeft");
      await page.waitForFunction((e) => (globalThis as unknown as { playground: Results }).playground.state.epsilon < e, before.epsilon);
      r = await settled(page);
      const after = r.smoothing!;
      assert.ok(after.epsilon < before.epsilon);
      assert.ok(after.certifiedGap < before.certifiedGap, `ν ${before.certifiedGap} → ${after.certifiedGap}`);
      assert.ok(after.certifiedGap >= after.measuredGap, `bound ${after.certifiedGap} < measured ${after.measuredGap}`);
      assert.ok(after.stepSize < before.stepSize, "a smaller ε: a less smooth ψ_ε, a smaller certified step");

      log("epsilon moved");
      // URL round trip: a fresh page at the same address computes the same thing.
      const url = page.url();
      const page2 = await context.newPage();
      watch(page2);
      await page2.goto(url);
      const r2 = await settled(page2);
      assert.deepEqual(r2.state, r.state);
      assert.equal(r2.certificate?.smoothness, r.certificate?.smoothness);
      assert.deepEqual(
        r2.runs?.map((x) => x.losses),
        r.runs?.map((x) => x.losses),
      );
      await page2.close();

      log("URL round trip");
      // Exports through the CLI: the spec with the page's own analyze command, the weights as
      // `chainopt train --init` imports them (PyTorch nn.Sequential names).
      await page.bringToFront();
      const save = async (button: string, name: string) => {
        const [dl] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: button }).click()]);
        const file = join(tmp, name);
        await dl.saveAs(file);
        return file;
      };
      const specFile = await save("Model spec (JSON)", "spec.json");
      const weightsFile = await save("Weights of the certified run (safetensors)", "weights.safetensors");
      const csvFile = await save("Metrics (CSV)", "metrics.csv");
      const command = ((await page.locator("#cli-command").textContent()) ?? "").split(" ");
      assert.deepEqual(command.slice(0, 5), ["npx", "chainopt", "analyze", "--model", "spec.json"]);
      const cli = await runCli(["analyze", "--model", specFile, ...command.slice(5)]);
      assert.equal(cli.code, 0, cli.stderr);
      const analyzed = JSON.parse(cli.stdout) as { certificate: { smoothness: number; stepSize: number } };
      const pageCert = r.certificate!;
      assert.ok(
        Math.abs(analyzed.certificate.smoothness - pageCert.smoothness) <= 1e-9 * pageCert.smoothness,
        `CLI L_F ${analyzed.certificate.smoothness} vs page ${pageCert.smoothness}`,
      );
      const spec = JSON.parse(readFileSync(specFile, "utf8")) as ModelSpecInput;
      const chain = createChain(spec, { dtype: "float64" });
      const imported = importTorchSafetensors(chain, weightsFile);
      const w = await page.evaluate(() =>
        Array.from((globalThis as unknown as { playground: { weights: Float64Array } }).playground.weights),
      );
      assert.deepEqual(Array.from(imported.params), w);
      const csv = readFileSync(csvFile, "utf8").trim().split("\n");
      assert.equal(csv[0], "run,lr,step,loss,top_eigenvalue");
      assert.equal(
        csv.length - 1,
        r.runs!.reduce((s, x) => s + x.losses.length, 0),
      );

      log("exports");

      // A CSV file the user picks (10 inputs, a real target: a regression set), then its weights
      // through `chainopt train --init` on a data set of the same shape.
      const rows = Array.from({ length: 40 }, (_, i) => {
        const x = Array.from({ length: 10 }, (_, j) => Math.sin(1.3 * i + 0.7 * j));
        return [...x, Math.cos(i) * 0.5].join(",");
      });
      await page.locator("#file").setInputFiles({
        name: "mine.csv",
        mimeType: "text/csv",
        buffer: Buffer.from(`${["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "y"].join(",")}\n${rows.join("\n")}\n`),
      });
      await page.waitForFunction(() => (globalThis as unknown as { playground: Results }).playground.state.dataset === "file");
      r = await settled(page);
      assert.deepEqual(r.errors, []);
      assert.deepEqual(r.certificate?.spec.input, [10]);
      assert.equal(r.certificate?.batch, 40);
      const fileSpec = await save("Model spec (JSON)", "file-spec.json");
      const fileWeights = await save("Weights of the certified run (safetensors)", "file-weights.safetensors");
      const trained = await runCli([
        "train",
        "--dataset",
        "synthetic-teacher",
        "--model",
        fileSpec,
        "--init",
        fileWeights,
        "--loss",
        "squared",
        "--epochs",
        "1",
        "--limit",
        "200",
        "--validation",
        "20",
        "--out",
        join(tmp, "run"),
        "--json",
      ]);
      assert.equal(trained.code, 0, trained.stderr);
      const config = JSON.parse(readFileSync(join(tmp, "run", "config.json"), "utf8")) as Record<string, unknown>;
      assert.deepEqual(config.init, { file: fileWeights, format: "torch" }, "imported as PyTorch nn.Sequential weights");
      log("file and train --init");

      assert.deepEqual(problems, []);
      assert.deepEqual(foreign, [], "requests outside the page's origin");
    } finally {
      await browser.close();
      server.child.kill();
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
