import type { FloatArray } from "./dtype.js";

/**
 * Collective communication among the `size` processes (ranks) of a data-parallel job, in the
 * vocabulary of MPI (MPI Forum, "MPI: A Message-Passing Interface Standard", version 4.0, ch. 6
 * "Collective Communication"). Every rank must call the same collectives in the same order with
 * arrays of the same length and type. Portable: this interface imports nothing Node-only; the MPI
 * implementation lives in `src/node/distributed/mpi.ts`, {@link SingleProcessCollective} is the
 * one-process case (every collective is the identity).
 */
export interface Collective {
  /** This process's index, 0 ≤ rank < size. */
  readonly rank: number;
  /** Number of processes. */
  readonly size: number;
  /** A short description (the MPI library, or "single process"). */
  readonly name: string;
  /** x ← Σ_ranks x, in place (MPI_Allreduce with MPI_SUM; the order of the sum is the library's). */
  allreduceSum(x: FloatArray): void;
  /** x ← x of rank `root`, in place (MPI_Bcast). */
  broadcast(x: FloatArray, root?: number): void;
  /** recv[r·n, (r+1)·n) ← send of rank r, with n = send.length and recv.length = size·n (MPI_Allgather). */
  allgather(send: FloatArray, recv: FloatArray): void;
  /** Returns when every rank has called it (MPI_Barrier). */
  barrier(): void;
  /** Ends every rank of the job with a non-zero exit status (MPI_Abort); does not return. */
  abort(code: number): never;
}

/** The one-process {@link Collective}: rank 0 of 1, every collective is the identity. */
export class SingleProcessCollective implements Collective {
  readonly rank = 0;
  readonly size = 1;
  readonly name = "single process";
  allreduceSum(_x: FloatArray): void {}
  broadcast(_x: FloatArray, root = 0): void {
    if (root !== 0) throw new RangeError(`broadcast: root ${root} is not a rank of 1`);
  }
  allgather(send: FloatArray, recv: FloatArray): void {
    if (recv.length !== send.length) throw new RangeError(`allgather: recv has ${recv.length} elements, expected ${send.length}`);
    recv.set(send);
  }
  barrier(): void {}
  abort(code: number): never {
    throw new Error(`abort(${code}) in a single-process job`);
  }
}

/**
 * Sum in rank order: x ← x_0 + x_1 + … + x_{size−1}, each rank adding the same terms in the same
 * order, so that the result is bit-identical across runs with the same number of ranks (unlike
 * MPI_Allreduce, whose summation order the standard leaves to the implementation: MPI 4.0,
 * §6.9.1, "advice to implementors" on reproducibility). Costs an all-gather of size·n entries
 * (`scratch` holds them; pass one to reuse it).
 */
export function allreduceSumOrdered(c: Collective, x: FloatArray, scratch?: FloatArray): FloatArray {
  const n = x.length;
  const all = scratch && scratch.length === n * c.size && scratch.constructor === x.constructor ? scratch : makeLike(x, n * c.size);
  c.allgather(x, all);
  x.set(all.subarray(0, n));
  for (let r = 1; r < c.size; r++) {
    const off = r * n;
    for (let i = 0; i < n; i++) x[i] += all[off + i];
  }
  return all;
}

/**
 * The contiguous share of rank `rank` of `size` ranks in a batch of `total` samples: rows
 * [⌊rank·total/size⌋, ⌊(rank+1)·total/size⌋). The shares partition [0, total) and differ in
 * length by at most one (empty when total < size).
 */
export function shareOf(rank: number, size: number, total: number): { lo: number; hi: number } {
  return { lo: Math.floor((rank * total) / size), hi: Math.floor(((rank + 1) * total) / size) };
}

function makeLike(x: FloatArray, n: number): FloatArray {
  return x instanceof Float32Array ? new Float32Array(n) : new Float64Array(n);
}
