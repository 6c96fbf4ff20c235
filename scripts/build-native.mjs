#!/usr/bin/env node
// Builds the native BLAS addon (native/build/Release/chainopt_blas.node) with node-gyp.
//
//   node scripts/build-native.mjs            install mode: never fails (exit 0), says what happened
//   node scripts/build-native.mjs --strict   exit 1 when the addon cannot be built (`chainopt build-native`)
//   options: --quiet (only errors), --verbose (node-gyp output even on success),
//            --force (rebuild even when the addon is newer than its sources and loads; implied by --strict)
//   CHAINOPT_SKIP_NATIVE=1 skips the build (install mode).
//
// Plain JavaScript on purpose: it runs at `npm install`, before TypeScript is compiled.
// node-gyp is taken from, in order: npm's own copy (npm_config_node_gyp, set inside npm scripts),
// a local node_modules, the copy bundled with the npm next to this Node, and last `npx node-gyp`.
// Node's headers come from the installation (`<prefix>/include/node`) when present, so no
// download from nodejs.org is needed.
import { existsSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { findOpenMpOpenBlas } from "../native/src/openblas-flags.mjs";
import { addonUpToDate, findNodeGyp, nodeDirArgs, run, tail } from "./addon-build.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const nativeDir = join(root, "native");
const addon = join(nativeDir, "build", "Release", "chainopt_blas.node");
const args = new Set(process.argv.slice(2));
const strict = args.has("--strict");
const quiet = args.has("--quiet");
const verbose = args.has("--verbose");
const force = strict || args.has("--force");

const HOW_TO =
  "Install OpenBLAS and a C++ toolchain (Debian/Ubuntu: sudo apt-get install -y libopenblas-dev pkg-config g++ make python3),\n" +
  "then run `npx chainopt build-native`. Until then chainopt uses its portable TypeScript backend (much slower GEMM).";

function say(message) {
  if (!quiet) process.stderr.write(`chainopt: ${message}\n`);
}

function fail(message, detail) {
  process.stderr.write(`chainopt: ${message}\n`);
  if (detail) process.stderr.write(`${detail}\n`);
  process.stderr.write(`${HOW_TO}\n`);
  process.exit(strict ? 1 : 0);
}

/** Whether OpenBLAS's headers and library can be found (pkg-config, or cblas.h + libopenblas in the default paths). */
function findOpenBlas() {
  const pc = run("pkg-config", ["--exists", "openblas"]);
  if (pc.status === 0) return "pkg-config openblas";
  if (process.platform === "linux") {
    const dirs = [
      "/usr/include",
      "/usr/local/include",
      "/usr/include/openblas",
      "/usr/include/x86_64-linux-gnu",
      "/usr/include/aarch64-linux-gnu",
    ];
    if (dirs.some((d) => existsSync(join(d, "cblas.h")))) return "cblas.h in the default include path (-lopenblas)";
    return null;
  }
  return "default paths (-lopenblas)"; // Let the compiler decide on other platforms.
}

/** The addon's check line (config, core, threads, OpenBLAS build) and openblas_get_parallel(), or ok: false when it does not load. */
function probe() {
  const check = run(process.execPath, [
    "-e",
    `const b = require(${JSON.stringify(addon)}); const p = b.getParallel(); console.log(p + " " + b.getConfig() + " (core " + b.getCorename() + ", " + b.getNumThreads() + " threads, " + (["sequential", "pthreads", "OpenMP"][p] ?? "unknown") + " build" + (b.getBlasLibrary ? " " + b.getBlasLibrary() : "") + ")" + (b.dnnlVersion ? "; oneDNN " + b.dnnlVersion : "; without oneDNN"))`,
  ]);
  if (check.status !== 0) return { ok: false, line: tail(check.stderr ?? "") };
  const out = check.stdout.trim();
  const space = out.indexOf(" ");
  return { ok: true, parallel: Number(out.slice(0, space)), line: out.slice(space + 1) };
}

/** Whether the built addon is newer than its sources. */
function upToDate() {
  return addonUpToDate(addon, nativeDir, [
    "binding.gyp",
    "src/chainopt_blas.cc",
    "src/chainopt_kernels.cc",
    "src/chainopt_dnn.cc",
    "src/chainopt_dnn.h",
    "src/openblas-flags.mjs",
    "src/dnnl-flags.mjs",
  ]);
}

if (!strict && process.env.CHAINOPT_SKIP_NATIVE) {
  say("CHAINOPT_SKIP_NATIVE is set: not building the native BLAS backend.");
  process.exit(0);
}
// The OpenMP build of OpenBLAS is preferred (native/src/openblas-flags.mjs, docs/performance.md):
// an addon linked to another build is rebuilt once that one is installed.
const wantOpenMp = findOpenMpOpenBlas().dir !== null;
if (!force && upToDate()) {
  const p = probe();
  if (p.ok && (!wantOpenMp || p.parallel === 2)) {
    say(`native BLAS backend up to date: ${p.line}`);
    process.exit(0);
  }
}
if (!existsSync(join(nativeDir, "binding.gyp"))) fail(`native sources not found in ${nativeDir}.`);
const found = findOpenBlas();
if (!found) fail("OpenBLAS not found (pkg-config openblas fails, no cblas.h): the native BLAS backend was not built.");

// oneDNN is optional (convolution and pooling primitives): say once whether it is used and how to get it.
const dnnl = run(process.execPath, [join(nativeDir, "src", "dnnl-flags.mjs"), "found"]).stdout?.trim() ?? "";
if (dnnl.startsWith("oneDNN")) say(`using ${dnnl} for convolution and pooling`);
else
  say(
    `building without oneDNN (${dnnl.replace(/^no: /, "")}): convolutions use im2col + OpenBLAS. ` +
      "For oneDNN's kernels: sudo apt-get install -y libdnnl-dev, then `npx chainopt build-native`.",
  );

const gyp = findNodeGyp(root);
const gypArgs = [...gyp.slice(1), "rebuild", ...nodeDirArgs()];
say(
  wantOpenMp
    ? `building the native BLAS backend (OpenBLAS's OpenMP build in ${findOpenMpOpenBlas().dir}: one thread pool with oneDNN) ...`
    : `building the native BLAS backend (OpenBLAS via ${found}; for one OpenMP thread pool: sudo apt-get install -y libopenblas0-openmp) ...`,
);
const result = run(gyp[0], gypArgs, { cwd: nativeDir, stdio: verbose ? "inherit" : "pipe" });
if (result.error || result.status !== 0) {
  // node-gyp's "gyp info" lines only echo its arguments: keep the compiler's and gyp's errors.
  const output = `${result.stdout ?? ""}${result.stderr ?? ""}`
    .split("\n")
    .filter((line) => !line.startsWith("gyp info"))
    .join("\n");
  fail(
    `building the native BLAS backend failed (${result.error ? result.error.message : `node-gyp exited with ${result.status}`}).`,
    output ? `--- last lines of the node-gyp output ---\n${tail(output)}\n---` : undefined,
  );
}
// Check that the addon loads (a missing shared library shows up here, not at link time).
const loaded = probe();
if (!loaded.ok) {
  rmSync(addon, { force: true });
  fail("the native BLAS addon was built but does not load; removed it.", loaded.line);
}
say(`native BLAS backend ready: ${loaded.line}`);
