#!/usr/bin/env node
// Builds the optional MPI addon (native-mpi/build/Release/chainopt_mpi.node) with node-gyp, for
// data-parallel training (`chainopt train --distributed`, docs/distributed.md).
//
//   node scripts/build-mpi.mjs            install mode: never fails (exit 0), says what happened
//   node scripts/build-mpi.mjs --strict   exit 1 when the addon cannot be built
//   options: --quiet (only errors), --verbose (node-gyp output), --force (rebuild even when up to date)
//   CHAINOPT_SKIP_MPI=1 skips the build (install mode). CHAINOPT_MPICC names the MPI compiler wrapper.
//
// MPI is found through its compiler wrapper (mpicc, mpicc.openmpi, mpicc.mpich, mpicxx ...) or
// pkg-config (ompi, mpich): see native-mpi/src/mpi-flags.mjs. Without MPI nothing is built and
// everything but `--distributed` works. Plain JavaScript: it runs at `npm install`.
import { existsSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { addonUpToDate, findNodeGyp, nodeDirArgs, run, tail } from "./addon-build.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const dir = join(root, "native-mpi");
const addon = join(dir, "build", "Release", "chainopt_mpi.node");
const args = new Set(process.argv.slice(2));
const strict = args.has("--strict");
const quiet = args.has("--quiet");
const verbose = args.has("--verbose");
const force = strict || args.has("--force");

const HOW_TO =
  "Install MPI and a C++ toolchain (Debian/Ubuntu: sudo apt-get install -y openmpi-bin libopenmpi-dev g++ make python3),\n" +
  "then run `node scripts/build-mpi.mjs --strict`. Until then `chainopt train --distributed` is unavailable; everything else works.";

const say = (m) => {
  if (!quiet) process.stderr.write(`chainopt: ${m}\n`);
};
function fail(message, detail) {
  process.stderr.write(`chainopt: ${message}\n`);
  if (detail) process.stderr.write(`${detail}\n`);
  process.stderr.write(`${HOW_TO}\n`);
  process.exit(strict ? 1 : 0);
}
/** Loads the addon in a child process (without initializing MPI) and prints its MPI library. */
function probe() {
  const r = run(process.execPath, ["-e", `const b = require(${JSON.stringify(addon)}); console.log(b.libraryVersion())`]);
  return r.status === 0 ? { ok: true, line: r.stdout.trim() } : { ok: false, line: tail(r.stderr ?? "") };
}

function upToDate() {
  return addonUpToDate(addon, dir, ["binding.gyp", "src/chainopt_mpi.cc", "src/mpi-flags.mjs"]);
}

if (!strict && process.env.CHAINOPT_SKIP_MPI) {
  say("CHAINOPT_SKIP_MPI is set: not building the MPI addon.");
  process.exit(0);
}
if (!force && upToDate()) {
  const p = probe();
  if (p.ok) {
    say(`MPI addon up to date: ${p.line}`);
    process.exit(0);
  }
}
if (!existsSync(join(dir, "binding.gyp"))) fail(`MPI addon sources not found in ${dir}.`);
const which = run(process.execPath, [join(dir, "src", "mpi-flags.mjs"), "which"]);
if (which.status !== 0) fail("MPI not found (no mpicc/mpicxx wrapper, pkg-config ompi/mpich fails): the MPI addon was not built.");
const gyp = findNodeGyp(root);
say(`building the MPI addon (${which.stdout.trim()}) ...`);
const result = run(gyp[0], [...gyp.slice(1), "rebuild", ...nodeDirArgs()], { cwd: dir, stdio: verbose ? "inherit" : "pipe" });
if (result.error || result.status !== 0) {
  const output = `${result.stdout ?? ""}${result.stderr ?? ""}`
    .split("\n")
    .filter((l) => !l.startsWith("gyp info"))
    .join("\n");
  fail(
    `building the MPI addon failed (${result.error ? result.error.message : `node-gyp exited with ${result.status}`}).`,
    output ? `--- last lines of the node-gyp output ---\n${tail(output)}\n---` : undefined,
  );
}
const loaded = probe();
if (!loaded.ok) {
  rmSync(addon, { force: true });
  fail("the MPI addon was built but does not load; removed it.", loaded.line);
}
say(`MPI addon ready: ${loaded.line}`);
