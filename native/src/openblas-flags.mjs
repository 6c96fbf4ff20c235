// Prints compiler or linker flags for OpenBLAS, for binding.gyp (`node src/openblas-flags.mjs cflags|libs`).
// pkg-config first (Debian/Ubuntu libopenblas-dev, Homebrew with PKG_CONFIG_PATH, conda); if that
// fails, plain `-lopenblas` with the compiler's default search paths.
import { execFileSync } from "node:child_process";

function pkgConfig(...args) {
  try {
    return execFileSync("pkg-config", [...args, "openblas"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return null;
  }
}

const what = process.argv[2];
if (what === "cflags") {
  process.stdout.write(`${pkgConfig("--cflags") ?? ""}\n`);
} else if (what === "libs") {
  const libs = pkgConfig("--libs");
  const libdir = pkgConfig("--variable=libdir");
  // An rpath to the directory pkg-config named, so that the addon finds the same library at run time.
  const rpath = libdir ? ` -Wl,-rpath,${libdir}` : "";
  process.stdout.write(`${libs ?? "-lopenblas"}${rpath}\n`);
} else {
  process.stderr.write("usage: node openblas-flags.mjs cflags|libs\n");
  process.exit(2);
}
