// Prints compiler or linker flags for OpenBLAS, for binding.gyp (`node src/openblas-flags.mjs cflags|libs|found`).
//
// Which OpenBLAS build (docs/performance.md, "Threading policy"): Debian/Ubuntu ship OpenBLAS
// three times with the same soname libopenblas.so.0: pthreads (libopenblas0-pthread, the
// default of the alternatives system and of `pkg-config openblas`), OpenMP (libopenblas0-openmp,
// /usr/lib/<triplet>/openblas-openmp/) and serial. The addon prefers the OpenMP build: then
// OpenBLAS, oneDNN and chainopt's element-wise kernels run on ONE OpenMP thread pool instead of
// two pools whose idle threads spin against each other. The OpenMP library is linked by its
// directory with an rpath to it, so the addon loads that build whatever the alternatives point at.
//   CHAINOPT_OPENBLAS=pthreads   link the default (pkg-config) build even when the OpenMP one is present
//   CHAINOPT_OPENBLAS=openmp     fail (exit 1) when the OpenMP build is not found
//   CHAINOPT_OPENBLAS_OPENMP_DIR a directory holding an OpenMP build's libopenblas.so.0 (non-Debian layouts)
// Headers come from pkg-config (libopenblas-dev): the API of the three builds is the same.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

function pkgConfig(...args) {
  try {
    return execFileSync("pkg-config", [...args, "openblas"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return null;
  }
}

/** The multiarch triplets to look under (the compiler's own first). */
function triplets() {
  const list = [];
  try {
    const t = execFileSync("gcc", ["-print-multiarch"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    if (t) list.push(t);
  } catch {
    // No gcc: the usual triplets below.
  }
  return [...new Set([...list, "x86_64-linux-gnu", "aarch64-linux-gnu", "powerpc64le-linux-gnu", "s390x-linux-gnu"])];
}

/** The directory of an OpenMP build of OpenBLAS (holding libopenblas.so.0), or null (then the reason). */
export function findOpenMpOpenBlas(env = process.env) {
  const choice = (env.CHAINOPT_OPENBLAS ?? "").trim().toLowerCase();
  if (choice === "pthreads" || choice === "pthread") return { dir: null, reason: "CHAINOPT_OPENBLAS=pthreads" };
  const dirs = env.CHAINOPT_OPENBLAS_OPENMP_DIR
    ? [env.CHAINOPT_OPENBLAS_OPENMP_DIR]
    : triplets().flatMap((t) => [`/usr/lib/${t}/openblas-openmp`, `/lib/${t}/openblas-openmp`]);
  const dir = dirs.find((d) => existsSync(join(d, "libopenblas.so.0"))) ?? null;
  return dir ? { dir, reason: null } : { dir: null, reason: "no OpenMP build of OpenBLAS (Debian/Ubuntu: libopenblas0-openmp)" };
}

// Command-line use only (binding.gyp, build-native.mjs's checks); importing the module prints nothing.
const main = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
const what = main ? process.argv[2] : undefined;
if (what === "cflags") {
  process.stdout.write(`${pkgConfig("--cflags") ?? ""}\n`);
} else if (what === "libs") {
  const omp = findOpenMpOpenBlas();
  if (omp.dir) {
    // By directory and file name (-l:), with an rpath to it: the loader resolves the soname
    // libopenblas.so.0 there first, before any directory of the other libraries' rpaths.
    process.stdout.write(`-L${omp.dir} -l:libopenblas.so.0 -Wl,-rpath,${omp.dir}\n`);
  } else {
    if ((process.env.CHAINOPT_OPENBLAS ?? "").trim().toLowerCase() === "openmp") {
      process.stderr.write(`CHAINOPT_OPENBLAS=openmp: ${omp.reason}\n`);
      process.exit(1);
    }
    const libs = pkgConfig("--libs");
    const libdir = pkgConfig("--variable=libdir");
    // An rpath to the directory pkg-config named, so that the addon finds the same library at run time.
    const rpath = libdir ? ` -Wl,-rpath,${libdir}` : "";
    process.stdout.write(`${libs ?? "-lopenblas"}${rpath}\n`);
  }
} else if (what === "found") {
  const omp = findOpenMpOpenBlas();
  process.stdout.write(omp.dir ? `openmp ${omp.dir}\n` : `default: ${omp.reason}\n`);
} else if (what !== undefined) {
  process.stderr.write("usage: node openblas-flags.mjs cflags|libs|found\n");
  process.exit(2);
}
