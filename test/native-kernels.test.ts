import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type Backend,
  convert,
  createChain,
  createOptimizer,
  forward,
  type ModelSpecInput,
  OPTIMIZER_NAMES,
  PortableBackend,
  Rng,
  vjp,
} from "../src/index.js";
import { loadNativeBackend, nativeLoadError } from "../src/node/index.js";
import { randomArray } from "./helpers.js";

const native = loadNativeBackend();
const kernels = native?.kernels ? native.withPaths({ kernels: true, dnn: false }) : null;
const skip = kernels ? false : native ? "native addon without element-wise kernels (rebuild it)" : `no native addon (${nativeLoadError()})`;
const portable = new PortableBackend();
/** The portable backend with only the native element-wise kernels added: any difference is theirs. */
const portableWithKernels: Backend | null = kernels ? (Object.create(portable, { kernels: { value: kernels.kernels } }) as Backend) : null;

/** Same values entry by entry (Object.is: NaN equals NaN, −0 differs from +0), the first mismatch reported. */
function assertSame(got: number[][], want: number[][], what: string): void {
  assert.equal(got.length, want.length, `${what}: number of tensors`);
  for (let t = 0; t < want.length; t++) {
    assert.equal(got[t].length, want[t].length, `${what}: tensor ${t} length`);
    for (let i = 0; i < want[t].length; i++) {
      if (!Object.is(got[t][i], want[t][i])) assert.fail(`${what}: tensor ${t} entry ${i}: ${got[t][i]} vs ${want[t][i]}`);
    }
  }
}

/** Runs `steps` updates of an optimizer on fixed random gradients, returning the final updates and state tensors. */
function run(name: string, options: object, backend: Backend, dtype: "float32" | "float64", n: number): number[][] {
  const opt = createOptimizer(name, options);
  const rng = new Rng(9);
  const params = convert(randomArray(n, rng), dtype);
  let state = opt.init(params);
  const out: number[][] = [];
  for (let step = 0; step < 4; step++) {
    const u = convert(randomArray(n, rng, step === 2 ? 1e-3 : 1), dtype);
    if (step === 3) {
      u[1] = Number.NaN; // NaNs propagate the same way
      u[2] = -0;
    }
    state = opt.update(u, state, params, { step, backend });
    out.push(Array.from(u));
  }
  out.push(...collect(state));
  return out;
}

function collect(state: unknown): number[][] {
  if (state instanceof Float32Array || state instanceof Float64Array) return [Array.from(state)];
  if (typeof state === "number") return [[state]];
  if (state && typeof state === "object") return Object.values(state).flatMap(collect);
  return [];
}

describe("native element-wise kernels equal the portable loops bit for bit", { skip }, () => {
  // Above and below the size from which the kernels split the work across threads (2^15).
  for (const n of [1000, 70_001]) {
    for (const dtype of ["float32", "float64"] as const) {
      for (const name of OPTIMIZER_NAMES) {
        const extra = name === "rmsprop" ? [{}, { centered: true }] : name === "momentum" ? [{ dampening: 0.3 }, {}] : [{}];
        for (const options of extra) {
          it(`${name} ${JSON.stringify(options)} ${dtype} n = ${n}: same updates and state, at 1 and 2 threads`, () => {
            const want = run(name, { lr: 0.1, ...options }, portable, dtype, n);
            const threads = native!.threads;
            try {
              for (const t of [1, 2]) {
                native!.setThreads(t);
                assertSame(run(name, { lr: 0.1, ...options }, portableWithKernels!, dtype, n), want, `${t} threads`);
              }
            } finally {
              native!.setThreads(threads);
            }
          });
        }
      }
    }
  }

  it("ReLU forward, backward and JVP (float32 and float64, NaN and −0 included)", () => {
    const spec: ModelSpecInput = { input: [50_000], layers: [{ type: "relu" }] };
    for (const dtype of ["float32", "float64"] as const) {
      const rng = new Rng(3);
      const x = randomArray(2 * 50_000, rng);
      x[0] = Number.NaN;
      x[1] = -0;
      x[2] = Number.POSITIVE_INFINITY;
      x[3] = Number.NEGATIVE_INFINITY;
      const s = randomArray(x.length, rng);
      const results = [portable, portableWithKernels!].map((backend) => {
        const chain = createChain(spec, { dtype, backend });
        const w = chain.initParams(0);
        const y = Array.from(forward(chain, w, x, 2));
        const { dx } = vjp(chain, w, x, 2, s, { withInput: true });
        return [y, Array.from(dx!)];
      });
      assertSame(results[1], results[0], dtype);
      assert.ok(Object.is(results[1][0][1], 0), "relu(−0) is +0");
    }
  });

  it("rejects arrays of mixed precision or too short, naming the argument", () => {
    const k = kernels!.kernels!;
    assert.throws(() => k.reluForward(4, new Float32Array(4), new Float64Array(4)), /argument 'y' must have the precision/);
    assert.throws(
      () => k.adam(5, new Float32Array(5), new Float32Array(4), new Float32Array(5), null, 0.9, 0.1, 0.999, 0.001, 1, 1, 1e-8),
      /argument 'm' has 4 elements/,
    );
  });
});
