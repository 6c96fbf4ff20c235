import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { Collective } from "../../core/collective.js";
import type { FloatArray } from "../../core/dtype.js";
import { packageRoot } from "../native-backend.js";

/** The functions of the N-API addon `native-mpi/src/chainopt_mpi.cc` (see the comments there). */
export interface MpiBinding {
  readonly abi: number;
  init(): { rank: number; size: number };
  finalize(): void;
  initialized(): boolean;
  rank(): number;
  size(): number;
  allreduceSum(x: FloatArray): void;
  broadcast(x: FloatArray, root: number): void;
  allgather(send: FloatArray, recv: FloatArray): void;
  barrier(): void;
  abort(code: number): void;
  libraryVersion(): string;
}

/** The interface version this code was written for (`kAbi` in chainopt_mpi.cc). */
const MPI_ADDON_ABI = 1;

/** How to get the MPI addon, for error messages. */
export const MPI_HOW_TO =
  "install Open MPI (Debian/Ubuntu: sudo apt-get install -y openmpi-bin libopenmpi-dev; MPICH works too), then build the addon with `node scripts/build-mpi.mjs --strict` (or `npm run build:mpi`), and launch with `mpirun -np N npx chainopt train ... --distributed` (docs/distributed.md)";

/** Where the addon is expected: `native-mpi/build/Release/chainopt_mpi.node` under the package root. */
export function mpiAddonPath(): string {
  return process.env.CHAINOPT_MPI_ADDON ?? join(packageRoot(), "native-mpi", "build", "Release", "chainopt_mpi.node");
}

let cached: { binding: MpiBinding | null; error: string | null } | undefined;

/** Loads the addon (does not initialize MPI), or returns null; {@link mpiLoadError} says why. */
export function loadMpiBinding(): MpiBinding | null {
  if (cached) return cached.binding;
  const path = mpiAddonPath();
  try {
    if (!existsSync(path)) throw new Error(`the MPI addon is not built (${path} missing)`);
    const binding = createRequire(import.meta.url)(path) as MpiBinding;
    if (binding.abi !== MPI_ADDON_ABI)
      throw new Error(
        `MPI addon interface ${binding.abi}, expected ${MPI_ADDON_ABI}: rebuild it with \`node scripts/build-mpi.mjs --strict\``,
      );
    cached = { binding, error: null };
  } catch (error) {
    cached = { binding: null, error: error instanceof Error ? error.message : String(error) };
  }
  return cached.binding;
}

/** Why {@link loadMpiBinding} returned null (null when it loaded or was not tried). */
export function mpiLoadError(): string | null {
  return cached?.error ?? null;
}

/**
 * The number of processes the launcher started, from its environment (Open MPI's
 * OMPI_COMM_WORLD_SIZE, the PMI_SIZE of MPICH/Hydra and Slurm's PMI), or null outside a launcher.
 */
export function launcherWorldSize(env: Readonly<Record<string, string | undefined>> = process.env): number | null {
  for (const k of ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"]) {
    const v = env[k];
    if (v !== undefined && /^\d+$/.test(v)) return Number(v);
  }
  return null;
}

/** {@link Collective} over MPI_COMM_WORLD through the addon. */
export class MpiCollective implements Collective {
  readonly rank: number;
  readonly size: number;
  readonly name: string;
  private finalized = false;

  constructor(private readonly binding: MpiBinding) {
    const { rank, size } = binding.init();
    this.rank = rank;
    this.size = size;
    this.name = binding.libraryVersion();
  }
  allreduceSum(x: FloatArray): void {
    if (this.size > 1) this.binding.allreduceSum(x);
  }
  broadcast(x: FloatArray, root = 0): void {
    if (this.size > 1) this.binding.broadcast(x, root);
  }
  allgather(send: FloatArray, recv: FloatArray): void {
    this.binding.allgather(send, recv);
  }
  barrier(): void {
    if (this.size > 1) this.binding.barrier();
  }
  abort(code: number): never {
    this.binding.abort(code);
    // MPI_Abort does not return; if the library did, leave anyway.
    process.exit(code === 0 ? 1 : code);
  }
  /** MPI_Finalize (once). */
  finalize(): void {
    if (this.finalized) return;
    this.finalized = true;
    this.binding.finalize();
  }
}

let world: MpiCollective | null = null;

/**
 * Initializes MPI once per process and returns the world communicator. Throws, saying how to get
 * it, when the addon is not available. Registers MPI_Finalize at normal exit.
 */
export function initMpi(): MpiCollective {
  if (world) return world;
  const binding = loadMpiBinding();
  if (!binding) throw new Error(`--distributed needs the MPI addon: ${mpiLoadError()}. To get it, ${MPI_HOW_TO}`);
  world = new MpiCollective(binding);
  const w = world;
  process.once("exit", (code) => {
    if (code === 0) w.finalize();
  });
  return world;
}

/**
 * Makes a failure on one rank end the whole job: prints the error (prefixed by the rank) and calls
 * MPI_Abort, which has the launcher kill every rank, instead of leaving the others blocked in
 * their next collective. Returns the function to call with a caught error.
 */
export function abortOnError(c: Collective): (error: unknown) => never {
  return (error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`chainopt: rank ${c.rank} of ${c.size}: ${message}\n`);
    if (process.env.CHAINOPT_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
    return c.abort(1);
  };
}
