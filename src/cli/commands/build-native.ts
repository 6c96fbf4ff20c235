import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { packageRoot } from "../../node/native-backend.js";

/**
 * `chainopt build-native`: builds the OpenBLAS addon (native/build/Release/chainopt_blas.node) with
 * node-gyp, for installs where npm skipped chainopt's install script (npm ≥ 11 runs dependencies'
 * install scripts only when allowed). Runs `scripts/build-native.mjs --strict`: fails with the
 * node-gyp output and the packages to install when it cannot build.
 */
export function register(program: Command): void {
  program
    .command("build-native")
    .description("build the native OpenBLAS backend (needs libopenblas-dev, pkg-config and a C++ compiler)")
    .option("--verbose", "show the full node-gyp output")
    .action((options: { verbose?: boolean }) => {
      const script = join(packageRoot(), "scripts", "build-native.mjs");
      if (!existsSync(script)) throw new Error(`build script not found: ${script}`);
      const args = [script, "--strict", ...(options.verbose ? ["--verbose"] : [])];
      const result = spawnSync(process.execPath, args, { stdio: "inherit" });
      if (result.error) throw result.error;
      if (result.status !== 0) process.exitCode = result.status ?? 1;
    });
}
