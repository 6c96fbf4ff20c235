import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { LoadDatasetOptions } from "./types.js";

// Where the data sets fetched or decoded once (CIFAR-10, the sklearn CSVs) are kept.

/** The data cache: `options.dataDir`, else $CHAINOPT_DATA, else `data-cache/` under the project root. */
export function dataCacheDir(options: Pick<LoadDatasetOptions, "dataDir"> = {}): string {
  if (options.dataDir) return resolve(options.dataDir);
  if (process.env.CHAINOPT_DATA) return resolve(process.env.CHAINOPT_DATA);
  return join(projectRoot(), "data-cache");
}

/** The nearest ancestor of this module holding chainopt's package.json (else the working directory). */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "chainopt") return dir;
      } catch {
        // Not a readable package.json: keep going up.
      }
    }
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}
