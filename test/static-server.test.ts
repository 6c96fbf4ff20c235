import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { resolveStaticPath, serveStatic } from "../src/node/static-server.js";

// The playground's static server (src/node/static-server.ts): only files inside its folder.

/** Sends a raw request path (no client-side normalization of "..") and returns status and body. */
function get(url: string, path: string, method = "GET"): Promise<{ status: number; body: string; type?: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => {
        body += d.toString();
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, type: res.headers["content-type"] }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("static server of the playground", () => {
  it("serves files inside its folder and nothing outside it", async () => {
    const base = mkdtempSync(join(tmpdir(), "chainopt-static-"));
    const site = join(base, "site");
    mkdirSync(join(site, "assets"), { recursive: true });
    writeFileSync(join(site, "index.html"), "<p>home</p>");
    writeFileSync(join(site, "assets", "app.js"), "export {};");
    writeFileSync(join(base, "secret.txt"), "secret");
    symlinkSync(join(base, "secret.txt"), join(site, "link.txt"));
    const { server, url } = await serveStatic(site);
    try {
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
      const home = await get(url, "/");
      assert.equal(home.status, 200);
      assert.equal(home.body, "<p>home</p>");
      assert.match(home.type ?? "", /text\/html/);
      const js = await get(url, "/assets/app.js?v=1");
      assert.equal(js.status, 200);
      assert.match(js.type ?? "", /javascript/);
      for (const path of [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/..%2f..%2fsecret.txt",
        "/%2e%2e%5csecret.txt",
        "/link.txt",
        "/a%00b",
        "/missing.js",
        "/%E0%A4%A",
      ]) {
        const r = await get(url, path);
        assert.equal(r.status, 404, path);
        assert.ok(!r.body.includes("secret"), path);
      }
      assert.equal((await get(url, "/", "POST")).status, 405);
      assert.equal((await get(url, "/assets/app.js", "HEAD")).status, 200);
      assert.equal(resolveStaticPath(site, "/assets"), null, "a folder without index.html");
    } finally {
      server.close();
      rmSync(base, { recursive: true, force: true });
    }
  });
});
