import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { serveStatic } from "../../node/static-server.js";

/** The repository root (this file is dist/src/cli/commands/playground.js). */
const ROOT = fileURLToPath(new URL("../../../../", import.meta.url));

/** The built playground page (docs/playground.md). */
export const PLAYGROUND_DIST = join(ROOT, "playground", "dist");

/** Builds the page (scripts/build-playground.mjs) when playground/dist has no index.html. */
export function ensurePlaygroundBuilt(dir: string): void {
  if (existsSync(join(dir, "index.html"))) return;
  const script = join(ROOT, "scripts", "build-playground.mjs");
  if (dir !== PLAYGROUND_DIST || !existsSync(script)) {
    throw new Error(`--dir: ${dir} has no index.html (build the page with npm run build:playground in a clone of the repository)`);
  }
  process.stderr.write("chainopt: building the playground page (first use) ...\n");
  const r = spawnSync(process.execPath, [script], { cwd: ROOT, stdio: ["ignore", "inherit", "inherit"] });
  if (r.status !== 0 || !existsSync(join(dir, "index.html")))
    throw new Error("building the playground failed (see the messages above; npm run build:playground)");
}

/** `chainopt playground`: serves the static playground page on localhost and prints its address. */
export function register(program: Command): void {
  program
    .command("playground")
    .description("serve the browser playground (certified steps, smoothing, second-order steps) on localhost")
    .option("--port <p>", "port (default: a free one)", "0")
    .option("--host <address>", "address to listen on", "127.0.0.1")
    .option("--dir <folder>", "the built page (default playground/dist, built on first use)")
    .action(async (options: { port: string; host: string; dir?: string }) => {
      const port = Number(options.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535)
        throw new Error(`--port: expected an integer in 0..65535, got "${options.port}"`);
      const dir = options.dir ?? PLAYGROUND_DIST;
      ensurePlaygroundBuilt(dir);
      const { url } = await serveStatic(dir, { port, host: options.host });
      process.stdout.write(`chainopt playground: ${url}\n`);
      process.stderr.write("(Ctrl-C stops the server)\n");
    });
}
