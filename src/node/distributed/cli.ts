import { abortOnError, initMpi, launcherWorldSize } from "./mpi.js";
import type { DistributedTraining } from "./train.js";

/**
 * The data-parallel setting of `chainopt train`: `--distributed`, or a launcher's environment
 * saying that more than one process was started (mpirun sets OMPI_COMM_WORLD_SIZE, Hydra and
 * Slurm PMI_SIZE). Initializes MPI, or throws saying how to get it. Null for a one-process run.
 */
export function distributedFromFlags(
  flags: { distributed?: unknown; deterministicReduce?: unknown },
  env: Readonly<Record<string, string | undefined>> = process.env,
): DistributedTraining | null {
  const launched = launcherWorldSize(env);
  const wanted = flags.distributed === true || (launched !== null && launched > 1);
  if (!wanted) {
    if (flags.deterministicReduce === true) throw new Error("--deterministic-reduce: only with --distributed (an MPI job)");
    return null;
  }
  const collective = initMpi();
  return { collective, deterministic: flags.deterministicReduce === true };
}

/** What a rank does with an error: with more than one rank, print it and abort the whole job. */
export function distributedErrorHandler(d: DistributedTraining | null): (error: unknown) => never {
  if (d && d.collective.size > 1) return abortOnError(d.collective);
  return (error: unknown) => {
    throw error;
  };
}
