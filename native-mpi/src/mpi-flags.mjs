#!/usr/bin/env node
// Compiler and linker flags of the MPI installation, for binding.gyp:
//   node mpi-flags.mjs cflags | libs | which
// Sources, in order: $CHAINOPT_MPICC (a compiler wrapper), the wrappers mpicc / mpicxx (C bindings only) and their
// Debian-suffixed names (Open MPI: `--showme:compile`, `--showme:link`; MPICH: `-compile_info`,
// `-link_info`), then pkg-config (ompi, ompi-cxx, mpich). Prints nothing and exits 1 when MPI is
// not found. Plain JavaScript: it runs before TypeScript is compiled.
import { spawnSync } from "node:child_process";

const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return r.status === 0 && !r.error ? r.stdout.trim() : null;
};

/** Drops the wrapper's compiler name and source-file arguments, keeping -I/-D/-L/-l/-Wl/-pthread. */
const keep = (line, kinds) =>
  line
    .split(/\s+/)
    .filter((t) => kinds.some((k) => t.startsWith(k)))
    .join(" ");

export function findMpi() {
  const wrappers = [process.env.CHAINOPT_MPICC, "mpicc", "mpicc.openmpi", "mpicc.mpich", "mpicxx", "mpicxx.openmpi", "mpicxx.mpich"].filter(
    Boolean,
  );
  for (const w of wrappers) {
    const ompiC = run(w, ["--showme:compile"]);
    const ompiL = run(w, ["--showme:link"]);
    if (ompiC !== null && ompiL !== null) return { via: `${w} (Open MPI)`, cflags: keep(ompiC, ["-I", "-D", "-pthread"]), libs: keep(ompiL, ["-L", "-l", "-Wl", "-pthread"]) };
    const mpichC = run(w, ["-compile_info"]);
    const mpichL = run(w, ["-link_info"]);
    if (mpichC !== null && mpichL !== null)
      return { via: `${w} (MPICH)`, cflags: keep(mpichC, ["-I", "-D", "-pthread"]), libs: keep(mpichL, ["-L", "-l", "-Wl", "-pthread"]) };
  }
  for (const pc of ["ompi-cxx", "ompi", "mpich"]) {
    const cflags = run("pkg-config", ["--cflags", pc]);
    const libs = run("pkg-config", ["--libs", pc]);
    if (cflags !== null && libs !== null) return { via: `pkg-config ${pc}`, cflags, libs };
  }
  return null;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop())) {
  const what = process.argv[2];
  const found = findMpi();
  if (!found) process.exit(1);
  process.stdout.write(`${what === "libs" ? found.libs : what === "which" ? found.via : found.cflags}\n`);
}
