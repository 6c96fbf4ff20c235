import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mpiAddonPath } from "../src/node/distributed/mpi.js";
import { CLI, type CliResult } from "./cli-helpers.js";

// Helpers of the tests that launch chainopt under mpirun (Open MPI; MPICH's mpiexec also works).

/** The launcher: mpirun, or Debian's mpirun.openmpi when the alternatives are not configured. */
export const MPIRUN =
  ["mpirun", "mpirun.openmpi", "mpiexec"].find((c) => spawnSync(c, ["--version"], { encoding: "utf8" }).status === 0) ?? null;

/** Why the MPI tests are skipped, or false when they run. */
export const MPI_SKIP: string | false =
  MPIRUN === null
    ? "mpirun not found (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev)"
    : !existsSync(mpiAddonPath())
      ? `the MPI addon is not built (${mpiAddonPath()}; node scripts/build-mpi.mjs --strict)`
      : false;

/** What Open MPI needs in CI: run as root, more ranks than cores, shared-memory transport only (no network probing). */
export const MPI_ENV: Record<string, string> = {
  OMPI_ALLOW_RUN_AS_ROOT: "1",
  OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1",
  OMPI_MCA_rmaps_base_oversubscribe: "1",
  OMPI_MCA_btl: "self,vader",
  OMPI_MCA_pml: "ob1",
  OMPI_MCA_mtl: "^ofi,psm,psm2",
  CHAINOPT_THREADS: "1",
};

/** Starts `mpirun -np N node CLI ARGS` (or an MPMD command line: one `args` list per rank). */
export function startMpi(np: number, args: readonly string[] | readonly (readonly string[])[]) {
  const perRank = Array.isArray(args[0]);
  const argv: string[] = ["--oversubscribe"];
  if (perRank) {
    (args as readonly (readonly string[])[]).forEach((a, i) => {
      if (i > 0) argv.push(":");
      argv.push("-np", "1", process.execPath, CLI, ...a);
    });
  } else argv.push("-np", String(np), process.execPath, CLI, ...(args as readonly string[]));
  const child = spawn(MPIRUN as string, argv, { env: { ...process.env, ...MPI_ENV }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString("utf8");
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString("utf8");
  });
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

/** Runs `mpirun -np N chainopt ARGS` to completion. */
export function runMpi(np: number, args: readonly string[] | readonly (readonly string[])[]): Promise<CliResult> {
  return startMpi(np, args).done;
}
