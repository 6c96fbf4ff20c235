import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { chromiumSkip, launchChromium } from "./browser-helpers.js";

// The core (tensors, chain, oracles, optimizers, certificates, smoothing) is meant to run in a
// browser on the portable backend. This test proves it: it serves the compiled ES modules of
// dist/src over loopback, imports `dist/src/index.js` in headless Chromium (zod, the core's one
// dependency, through an import map), builds a chain, checks a gradient against central finite
// differences, takes optimizer steps and computes a certificate — all inside the page.

const ROOT = fileURLToPath(new URL("../../", import.meta.url)); // dist/test → repository root
const TYPES: Record<string, string> = { ".js": "text/javascript", ".html": "text/html", ".json": "application/json" };

const PAGE = `<!doctype html><html><head>
<script type="importmap">{"imports": {"zod": "/node_modules/zod/index.js"}}</script>
</head><body><script type="module">
import * as co from "/dist/src/index.js";
try {
  const chain = co.createChain(co.presets.mlp({ input: [6], widths: [5], activation: "softplus", classes: 3 }), { dtype: "float64" });
  const w = chain.initParams(1);
  const rng = new co.Rng(2);
  const x = new Float64Array(4 * 6).map(() => rng.normal());
  const batch = { x, size: 4, labels: Int32Array.from([0, 1, 2, 1]) };
  const objective = co.objectives.createObjective("logistic", 0.01);
  const { value, grad } = co.oracles.valueAndGradient(chain, objective, w, batch);
  let err = 0, scale = 0;
  for (let i = 0; i < w.length; i++) {
    const old = w[i];
    w[i] = old + 1e-6; const fp = co.oracles.objectiveValue(chain, objective, w, batch, { training: true });
    w[i] = old - 1e-6; const fm = co.oracles.objectiveValue(chain, objective, w, batch, { training: true });
    w[i] = old;
    err += ((fp - fm) / 2e-6 - grad[i]) ** 2; scale += grad[i] ** 2;
  }
  const opt = co.optim.adam({ lr: 0.05 });
  let state = opt.init(w);
  const g = new Float64Array(w.length);
  for (let t = 0; t < 30; t++) {
    co.oracles.valueAndGradient(chain, objective, w, batch, { grad: g });
    state = opt.update(g, state, w, { step: t, backend: chain.backend });
    co.optim.applyUpdates(w, g, chain.backend);
  }
  const after = co.oracles.objectiveValue(chain, objective, w, batch, { training: true });
  const cert = co.certify.certifyObjective(chain, objective, { radii: 1, batch: 4, inputNorm: 1 });
  window.result = { backend: chain.backend.name, value, after, gradError: Math.sqrt(err / scale), stepSize: cert.stepSize };
} catch (e) {
  window.result = { error: String(e && e.stack || e) };
}
</script></body></html>`;

function serve(): Promise<Server> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname === "/favicon.ico") {
      res.writeHead(204).end();
      return;
    }
    if (url.pathname === "/") {
      res.writeHead(200, { "content-type": "text/html" }).end(PAGE);
      return;
    }
    const file = normalize(join(ROOT, decodeURIComponent(url.pathname)));
    const allowed = [join(ROOT, "dist", "src"), join(ROOT, "node_modules", "zod")].some((d) => file.startsWith(d));
    if (!allowed || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(readFileSync(file));
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

describe("the portable core in a real browser (headless Chromium)", () => {
  const skip = chromiumSkip;
  it("imports chainopt, checks a gradient, trains and certifies without Node", { skip, timeout: 120_000 }, async () => {
    const server = await serve();
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
      page.on("console", (m) => {
        if (m.type() === "error") problems.push(`console.error: ${m.text()}`);
      });
      const { port } = server.address() as AddressInfo;
      await page.goto(`http://127.0.0.1:${port}/`);
      await page.waitForFunction(() => (globalThis as unknown as { result?: unknown }).result !== undefined, undefined, {
        timeout: 60_000,
      });
      const result = (await page.evaluate(() => (globalThis as unknown as { result: unknown }).result)) as {
        error?: string;
        backend: string;
        value: number;
        after: number;
        gradError: number;
        stepSize: number;
      };
      assert.equal(result.error, undefined, String(result.error));
      assert.deepEqual(problems, []);
      assert.equal(result.backend, "portable");
      assert.ok(result.gradError < 1e-7, `gradient error ${result.gradError}`);
      assert.ok(result.after < result.value, `loss ${result.value} → ${result.after}`);
      assert.ok(result.stepSize > 0 && Number.isFinite(result.stepSize), `certified step ${result.stepSize}`);
    } finally {
      await browser.close();
      server.close();
    }
  });
});
