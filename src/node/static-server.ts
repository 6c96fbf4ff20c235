import { createReadStream, realpathSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, isAbsolute, join, relative, resolve } from "node:path";

// A small static file server for the playground page (`chainopt playground`): GET and HEAD only,
// files inside one folder only (no path built from the request ever leaves it: "..", encoded
// separators, NUL bytes and symbolic links pointing outside are refused), no directory listings.

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".wasm": "application/wasm",
  ".bin": "application/octet-stream",
  ".map": "application/json",
};

/**
 * The file of `root` a URL path names, or null when it is not a regular file inside `root`
 * ("/" and folders map to their index.html). `root` must be a real (symlink-free) absolute path.
 */
export function resolveStaticPath(root: string, urlPath: string): string | null {
  let path: string;
  try {
    path = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (path.includes("\0") || path.includes("\\")) return null;
  let file = resolve(root, `.${path.startsWith("/") ? path : `/${path}`}`);
  const inside = (p: string) => {
    const rel = relative(root, p);
    return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
  };
  if (!inside(file)) return null;
  try {
    if (statSync(file).isDirectory()) file = join(file, "index.html");
    const real = realpathSync(file);
    if (!inside(real) || !statSync(real).isFile()) return null;
    return real;
  } catch {
    return null;
  }
}

/** Options of {@link serveStatic}. */
export interface StaticServerOptions {
  /** Port (default 0: any free port). */
  port?: number;
  /** Address to listen on (default 127.0.0.1: this machine only). */
  host?: string;
}

/** Serves the files of `folder` over HTTP; resolves once listening, with the page's address. */
export function serveStatic(folder: string, options: StaticServerOptions = {}): Promise<{ server: Server; url: string }> {
  const root = realpathSync(folder);
  const server = createServer((req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    const url = new URL(req.url ?? "/", "http://localhost");
    const file = resolveStaticPath(root, url.pathname);
    if (!file) {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found\n");
      return;
    }
    res.writeHead(200, {
      "content-type": TYPES[extname(file)] ?? "application/octet-stream",
      "content-length": statSync(file).size,
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
    });
    if (req.method === "HEAD") res.end();
    else createReadStream(file).pipe(res);
  });
  const host = options.host ?? "127.0.0.1";
  return new Promise((resolvePromise, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      const { port } = server.address() as AddressInfo;
      const shown = host.includes(":") ? `[${host}]` : host;
      resolvePromise({ server, url: `http://${shown}:${port}/` });
    });
  });
}
