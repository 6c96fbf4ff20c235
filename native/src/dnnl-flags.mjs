// Prints compiler or linker flags for oneDNN, for binding.gyp (`node src/dnnl-flags.mjs cflags|libs|found`).
// oneDNN is optional: when it is not found (or CHAINOPT_NO_DNNL=1), both flag sets are empty and the
// addon is built without its convolution and pooling primitives (chainopt_dnn.cc compiles to nothing).
// Found by pkg-config (`dnnl`), else by the header in the default include paths
// (Debian/Ubuntu libdnnl-dev: /usr/include/oneapi/dnnl/dnnl.hpp). Only the v2 API is accepted
// (DNNL_VERSION_MAJOR 2 in dnnl_version.h): chainopt_dnn.cc uses the operation descriptors v3 removed.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

function pkgConfig(...args) {
  try {
    return execFileSync("pkg-config", [...args, "dnnl"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return null;
  }
}

/** The include directory holding oneapi/dnnl/dnnl.hpp, or null. */
function headerDir() {
  const fromPc = pkgConfig("--variable=includedir");
  const dirs = [fromPc, "/usr/include", "/usr/local/include", "/opt/homebrew/include"].filter(Boolean);
  return dirs.find((d) => existsSync(join(d, "oneapi", "dnnl", "dnnl.hpp"))) ?? null;
}

/** oneDNN's version from its header ("2.6.3"), or null. */
export function dnnlHeaderVersion(dir) {
  try {
    const text = readFileSync(join(dir, "oneapi", "dnnl", "dnnl_version.h"), "utf8");
    const get = (name) => text.match(new RegExp(`#define\\s+DNNL_VERSION_${name}\\s+(\\d+)`))?.[1];
    const [major, minor, patch] = ["MAJOR", "MINOR", "PATCH"].map(get);
    return major ? `${major}.${minor}.${patch}` : null;
  } catch {
    return null;
  }
}

/** { dir, version } when a usable (v2) oneDNN is present, else { reason }. */
export function findDnnl() {
  if (process.env.CHAINOPT_NO_DNNL === "1") return { reason: "CHAINOPT_NO_DNNL=1" };
  const dir = headerDir();
  if (!dir) return { reason: "oneDNN not found (no oneapi/dnnl/dnnl.hpp, no pkg-config dnnl)" };
  const version = dnnlHeaderVersion(dir);
  if (!version?.startsWith("2.")) return { reason: `oneDNN ${version ?? "of unknown version"} found, but chainopt needs the v2 API (2.x)` };
  return { dir, version };
}

const what = process.argv[2];
if (what === "cflags" || what === "libs" || what === "found") {
  const found = findDnnl();
  if (what === "found") {
    process.stdout.write(found.dir ? `oneDNN ${found.version} (${found.dir})\n` : `no: ${found.reason}\n`);
  } else if (!found.dir) {
    process.stdout.write("\n");
  } else if (what === "cflags") {
    process.stdout.write(`-DCHAINOPT_HAVE_DNNL ${pkgConfig("--cflags") ?? ""}\n`);
  } else {
    const libdir = pkgConfig("--variable=libdir");
    const rpath = libdir ? ` -Wl,-rpath,${libdir}` : "";
    process.stdout.write(`${pkgConfig("--libs") ?? "-ldnnl"}${rpath}\n`);
  }
} else if (what !== undefined) {
  process.stderr.write("usage: node dnnl-flags.mjs cflags|libs|found\n");
  process.exit(2);
}
