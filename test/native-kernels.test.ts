import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { loadNativeBackend, nativeLoadError } from "../src/node/index.js";
import {
  applyUpdatesFinite,
  type Backend,
  chain as chainTransforms,
  convert,
  createAverage,
  createChain,
  createDataset,
  createObjective,
  createOptimizer,
  type FloatArray,
  forward,
  fullBatch,
  type GradientTransformation,
  type ModelSpecInput,
  NumericalFaultError,
  OPTIMIZER_NAMES,
  PortableBackend,
  Rng,
  Trainer,
  vjp,
} from "./flat.js";
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
  // The kernels split loops from 2^15 entries in these tests, so that 70 001 entries take the
  // multi-threaded path (the default threshold, 2^19, would keep them on one thread).
  let thresholds: [number, number, number] | undefined;
  before(() => {
    thresholds = native?.raw.serialThresholds?.();
    if (thresholds) native!.raw.serialThresholds!([thresholds[0], thresholds[1], 1 << 15]);
  });
  after(() => {
    if (thresholds) native!.raw.serialThresholds!(thresholds);
  });

  // Above and below the size from which the kernels split the work across threads, lowered to 2^15
  // for these tests (the default, 2^19, is tuned for speed; see the before hook).
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

  const isa = native?.raw.kernelIsa;
  const bothIsas = isa && isa() === "avx2";
  it("the AVX2 and x86-64 baseline copies of the loops give the same bits", {
    skip: bothIsas ? false : "CPU without AVX2 or addon without kernelIsa",
  }, () => {
    const setIsa = isa!;
    const n = 70_001;
    try {
      for (const dtype of ["float32", "float64"] as const) {
        for (const [name, options] of [
          ["adam", {}],
          ["amsgrad", {}],
          ["rmsprop", { centered: true }],
          ["adagrad", {}],
          ["momentum", {}],
          ["nesterov", {}],
        ] as const) {
          setIsa("avx2");
          const wide = run(name, { lr: 0.1, ...options }, portableWithKernels!, dtype, n);
          setIsa("baseline");
          assert.equal(setIsa(), "baseline");
          assertSame(
            run(name, { lr: 0.1, ...options }, portableWithKernels!, dtype, n),
            wide,
            `${name} ${JSON.stringify(options)} ${dtype}`,
          );
        }
      }
      assert.throws(() => setIsa("sse9" as "avx2"), /argument 'name' must be "avx2" or "baseline", got "sse9"/);
    } finally {
      setIsa("avx2");
    }
  });

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

  it("addFinite equals w + u of the portable loop and flags any ±∞ or NaN; allFinite agrees, at every ISA and thread count", () => {
    const k = kernels!.kernels!;
    assert.ok(k.addFinite && k.allFinite, "addon has addFinite and allFinite");
    const isas = native!.raw.kernelIsa?.() === "avx2" ? (["avx2", "baseline"] as const) : ([null] as const);
    const threads = native!.threads;
    try {
      for (const n of [1000, 70_001]) {
        for (const dtype of ["float32", "float64"] as const) {
          const rng = new Rng(5);
          const w0 = convert(randomArray(n, rng), dtype);
          const u = convert(randomArray(n, rng), dtype);
          const want = convert(Array.from(w0), dtype);
          for (let i = 0; i < n; i++) want[i] += u[i];
          for (const isa of isas) {
            if (isa) native!.raw.kernelIsa!(isa);
            for (const t of [1, 2]) {
              native!.setThreads(t);
              const w = w0.slice();
              assert.equal(k.addFinite!(n, w, u), true, `${dtype} n=${n} ${isa} ${t}T: finite`);
              assertSame([Array.from(w)], [Array.from(want)], `${dtype} n=${n} ${isa} ${t}T`);
              assert.equal(k.allFinite!(n, w), true);
              // One bad entry anywhere (first, middle, last block) is found, by both kernels.
              for (const [at, bad] of [
                [0, Number.NaN],
                [n >> 1, Number.POSITIVE_INFINITY],
                [n - 1, Number.NEGATIVE_INFINITY],
              ] as const) {
                const x = w0.slice();
                x[at] = bad;
                assert.equal(k.allFinite!(n, x), false, `allFinite misses ${bad} at ${at}`);
                assert.equal(k.addFinite!(n, x, u), false, `addFinite misses ${bad} at ${at}`);
              }
              // Overflow of the sum itself (float32: 3e38 + 3e38 = ∞).
              const big = convert([dtype === "float32" ? 3e38 : 1.7e308, 1], dtype);
              assert.equal(k.addFinite!(2, big, big.slice()), false, "overflow to ∞");
            }
          }
        }
      }
    } finally {
      native!.setThreads(threads);
      if (isas[0]) native!.raw.kernelIsa!("avx2");
    }
  });

  it("clipping by value and iterate averaging (Polyak, EMA) equal the portable loops bit for bit, at every ISA and thread count", () => {
    const isas = native!.raw.kernelIsa?.() === "avx2" ? (["avx2", "baseline"] as const) : ([null] as const);
    const threads = native!.threads;
    /** Three clipping steps and five averaging steps on fixed random iterates; the outputs. */
    const runAll = (backend: Backend, dtype: "float32" | "float64", n: number): number[][] => {
      const rng = new Rng(8);
      const out: number[][] = [];
      const clip = createOptimizer("sgd", { lr: 1, clipValue: 0.7 });
      let s = clip.init(convert(randomArray(n, rng), dtype));
      for (let step = 0; step < 3; step++) {
        const u = convert(randomArray(n, rng, 2), dtype);
        u[3] = Number.NaN;
        s = clip.update(u, s, u, { step, backend });
        out.push(Array.from(u));
      }
      for (const kind of ["polyak", "ema"] as const) {
        const w = convert(randomArray(n, rng), dtype);
        const avg = createAverage(kind, w, { decay: 0.9, backend });
        for (let step = 0; step < 5; step++) {
          for (let i = 0; i < n; i += 7) w[i] += 0.1 * (step + 1);
          avg.update(w);
        }
        out.push(Array.from(avg.averaged));
      }
      return out;
    };
    try {
      for (const n of [5000, 70_001]) {
        for (const dtype of ["float32", "float64"] as const) {
          const want = runAll(portable, dtype, n);
          for (const isa of isas) {
            if (isa) native!.raw.kernelIsa!(isa);
            for (const t of [1, 2]) {
              native!.setThreads(t);
              assertSame(runAll(portableWithKernels!, dtype, n), want, `${dtype} n=${n} ${isa} ${t}T`);
            }
          }
        }
      }
    } finally {
      native!.setThreads(threads);
      if (isas[0]) native!.raw.kernelIsa!("avx2");
    }
  });

  it("combine (α·x + β·y across precisions) equals the portable loop bit for bit for every precision mix, in place too, at every ISA and thread count", () => {
    const k = kernels!.kernels!;
    assert.ok(k.combine, "addon has combine");
    const isas = native!.raw.kernelIsa?.() === "avx2" ? (["avx2", "baseline"] as const) : ([null] as const);
    const threads = native!.threads;
    const kinds = ["float32", "float64"] as const;
    try {
      for (const n of [3000, 70_001]) {
        const rng = new Rng(21);
        const xs = randomArray(n, rng, 3);
        const ys = randomArray(n, rng, 1e-3);
        xs[1] = Number.NaN;
        ys[2] = Number.POSITIVE_INFINITY;
        xs[3] = -0;
        ys[3] = -0;
        xs[4] = 3e38; // float32 out overflows to ∞ below, as the loop's store does
        for (const [alpha, beta] of [
          [1, 1e-4],
          [-1 / 3, 1 / 3],
          [1, 0],
        ]) {
          for (const kx of kinds)
            for (const ky of kinds)
              for (const ko of kinds) {
                const x = convert(xs, kx);
                const y = convert(ys, ky);
                const want = convert(new Array<number>(n).fill(7), ko);
                for (let i = 0; i < n; i++) want[i] = alpha * x[i] + beta * y[i];
                for (const isa of isas) {
                  if (isa) native!.raw.kernelIsa!(isa);
                  for (const t of [1, 2]) {
                    native!.setThreads(t);
                    const what = `${kx}·${ky}→${ko} α=${alpha} β=${beta} n=${n} ${isa} ${t}T`;
                    const out = convert(new Array<number>(n).fill(7), ko);
                    k.combine!(n, alpha, x, beta, y, out);
                    assertSame([Array.from(out)], [Array.from(want)], what);
                    if (ko === kx) {
                      // In place: out is x itself.
                      const xi = x.slice();
                      k.combine!(n, alpha, xi, beta, y, xi);
                      assertSame([Array.from(xi)], [Array.from(want)], `${what} in place`);
                    }
                  }
                }
              }
        }
      }
      assert.throws(
        () => k.combine!(5, 1, new Float32Array(5), 1, new Float64Array(4), new Float32Array(5)),
        /argument 'y' has 4 elements/,
      );
      assert.throws(
        () => k.combine!(5, 1, new Float32Array(5), 1, new Float32Array(5), new Int32Array(5) as unknown as Float32Array),
        /argument 'out' must be a Float32Array/,
      );
    } finally {
      native!.setThreads(threads);
      if (isas[0]) native!.raw.kernelIsa!("avx2");
    }
  });

  it("the fused SGD step (sgdApply) leaves the parameters and state of update + apply bit for bit, at every ISA and thread count", () => {
    const isas = native!.raw.kernelIsa?.() === "avx2" ? (["avx2", "baseline"] as const) : ([null] as const);
    const threads = native!.threads;
    const backend = kernels!;
    const zeroAtTwo = (t: number) => (t === 2 ? 0 : 0.05 * (t + 1));
    const cases: [string, object][] = [
      ["sgd", {}],
      ["sgd", { momentum: 0.9, dampening: 0.3 }],
      ["momentum", {}],
      ["nesterov", {}],
      ["momentum", { lr: zeroAtTwo }],
    ];
    /** Five steps on fixed random gradients (a NaN in the last), fused or not: w, state and the finiteness flags. */
    const runSteps = (name: string, options: object, dtype: "float32" | "float64", n: number, fused: boolean): number[][] => {
      const opt = createOptimizer(name, { lr: 0.1, ...options });
      const rng = new Rng(11);
      const w = convert(randomArray(n, rng), dtype);
      let state = opt.init(w);
      const flags: number[] = [];
      for (let step = 0; step < 5; step++) {
        const g = convert(randomArray(n, rng), dtype);
        if (step === 4) g[n - 2] = Number.NaN;
        const ctx = { step, backend };
        if (fused) {
          const finite = opt.applyFused!(g, state, w, ctx);
          assert.notEqual(finite, null, "the fused path applies");
          flags.push(finite ? 1 : 0);
        } else {
          state = opt.update(g, state, w, ctx);
          flags.push(applyUpdatesFinite(w, g, backend) ? 1 : 0);
        }
      }
      return [Array.from(w), flags, ...collect(state)];
    };
    try {
      for (const dtype of ["float32", "float64"] as const) {
        for (const [name, options] of cases) {
          const want = runSteps(name, options, dtype, 70_001, false);
          assert.deepEqual(want[1], [1, 1, 1, 1, 0], "the NaN step is flagged");
          for (const isa of isas) {
            if (isa) native!.raw.kernelIsa!(isa);
            for (const t of [1, 2]) {
              native!.setThreads(t);
              assertSame(runSteps(name, options, dtype, 70_001, true), want, `${name} ${JSON.stringify(options)} ${dtype} ${isa} ${t}T`);
            }
          }
        }
      }
      // Not fused: with clipping or weight decay (other passes in the chain), or short vectors.
      assert.equal(createOptimizer("sgd", { lr: 0.1, weightDecay: 1e-4 }).applyFused, undefined);
      assert.equal(createOptimizer("momentum", { lr: 0.1, clipNorm: 1 }).applyFused, undefined);
      const short = createOptimizer("sgd", { lr: 0.1 });
      assert.equal(
        short.applyFused!(new Float32Array(10), short.init(new Float32Array(10)), new Float32Array(10), { step: 0, backend }),
        null,
      );
      assert.equal(
        short.applyFused!(new Float32Array(5000), short.init(new Float32Array(5000)), new Float32Array(5000), {
          step: 0,
          backend: portable,
        }),
        null,
      );
    } finally {
      native!.setThreads(threads);
      if (isas[0]) native!.raw.kernelIsa!("avx2");
    }
  });

  it("the trainer takes the fused SGD step and trains exactly as without it", () => {
    const spec: ModelSpecInput = { input: [20], layers: [{ type: "dense", units: 200 }, { type: "relu" }, { type: "dense", units: 3 }] };
    const rng = new Rng(6);
    const x = new Float32Array(32 * 20).map(() => rng.normal());
    const labels = new Int32Array(32).map((_, i) => i % 3);
    const batch = fullBatch(createDataset({ name: "toy", inputShape: [20], x, labels, classes: 3 }), "float32");
    const k = kernels!.kernels!;
    let calls = 0;
    const counted = {
      ...k,
      sgdApply: (...a: Parameters<NonNullable<typeof k.sgdApply>>) => {
        calls++;
        return k.sgdApply!(...a);
      },
    };
    const { sgdApply: _, ...without } = k;
    const train = (elementwise: typeof k) => {
      const backend = Object.create(kernels!, { kernels: { value: elementwise } }) as Backend;
      const chain = createChain(spec, { dtype: "float32", backend });
      const t = new Trainer(
        { chain, objective: createObjective("logistic"), optimizer: createOptimizer("nesterov", { lr: 0.05 }), batchSize: 32, seed: 0 },
        { params: chain.initParams(0) },
      );
      for (let s = 0; s < 6; s++) t.trainStep(batch);
      return [Array.from(t.w), ...collect(t.snapshot().optimizerState)];
    };
    const fused = train(counted);
    assert.equal(calls, 6, "every step fused");
    assertSame(fused, train(without), "fused vs unfused training");
  });

  it("the trainer's fused update-and-check stops at, or undoes, a step that makes a parameter infinite", () => {
    // A transformation that sends the last parameter to +∞ on the third step: the loss and gradient
    // stay finite, so only the check of w after the update (addFinite on this backend) can see it.
    const poison: GradientTransformation = {
      name: "poison",
      init: () => ({}),
      update(u, state, _w, ctx) {
        if (ctx.step === 2) u[u.length - 1] = Number.POSITIVE_INFINITY;
        return state;
      },
    };
    const spec: ModelSpecInput = { input: [20], layers: [{ type: "dense", units: 200 }, { type: "tanh" }, { type: "dense", units: 3 }] };
    const rng = new Rng(4);
    const x = new Float32Array(32 * 20).map(() => rng.normal());
    const labels = new Int32Array(32).map((_, i) => i % 3);
    const batch = fullBatch(createDataset({ name: "toy", inputShape: [20], x, labels, classes: 3 }), "float32");
    let fused = 0;
    const k = kernels!.kernels!;
    const spied = {
      ...k,
      addFinite: (n: number, w: FloatArray, u: FloatArray) => {
        fused++;
        return k.addFinite!(n, w, u);
      },
    };
    const backend = Object.create(kernels!, { kernels: { value: spied } }) as Backend;
    for (const onNaN of ["stop", "skip"] as const) {
      const chain = createChain(spec, { dtype: "float32", backend });
      assert.ok(chain.paramSize >= 2048, "large enough for the native kernel");
      const optimizer = chainTransforms(createOptimizer("sgd", { lr: 0.1 }), poison);
      const t = new Trainer(
        { chain, objective: createObjective("logistic"), optimizer, batchSize: 32, seed: 0, onNaN },
        { params: chain.initParams(0) },
      );
      t.trainStep(batch);
      t.trainStep(batch);
      const before = t.w.slice();
      if (onNaN === "stop")
        assert.throws(
          () => t.trainStep(batch),
          (e: unknown) => e instanceof NumericalFaultError && /^non-finite parameters at step 3 /.test(e.message),
        );
      else {
        assert.equal(t.trainStep(batch).skipped, true);
        assertSame([Array.from(t.w)], [Array.from(before)], "skip restores w");
      }
    }
    assert.equal(fused, 6, "every step applied its update through addFinite");
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
