// GEMM GFLOP/s side by side: chainopt native (OpenBLAS through the N-API binding), chainopt
// portable (TypeScript, small shapes only) and numpy (a child python3, same environment), float32,
// at each thread count. Shapes are m×k×n: C(m×n) = A(m×k)·B(k×n), row-major, no transposes.
//
//   node dist/bench/gemm.js [--threads 1,2] [--shapes 128x784x256,512x512x512] [--min-time 200] [--rounds 2]
//                           [--python python3] [--json]
//   (python: --python, else CHAINOPT_PYTHON, else python3)
//
// Method (the same on both sides): one warm-up product, then repetitions until at least 5 and at
// least --min-time ms; the table shows the median (best in parentheses). Rounds alternate numpy and
// native and each side keeps its faster round (shared cores: a neighbour's burst should not decide). numpy gets its thread
// count from OPENBLAS_NUM_THREADS/OMP_NUM_THREADS at start-up, so one child runs per thread count.
// OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are left as they are for both sides and reported.
import { spawnSync } from "node:child_process";
import { cpus } from "node:os";
import { portableBackend } from "../src/core/portable.js";
import { type GemmTiming, timeGemm } from "../src/node/gemm-timing.js";
import { loadNativeBackend } from "../src/node/native-backend.js";

type Shape = [number, number, number];

interface NumpyResult {
  python: string;
  numpy: string;
  blasConfig: string | null;
  coreName: string | null;
  threads?: number;
  timings: { m: number; k: number; n: number; reps: number; bestMs: number; medianMs: number }[];
}

const DEFAULT_SHAPES: Shape[] = [
  [128, 784, 256],
  [512, 512, 512],
  [1024, 1024, 1024],
];
/** The portable backend (~1–3 GFLOP/s) only runs shapes up to this many flops. */
const PORTABLE_MAX_FLOPS = 2 * 512 ** 3;

const NUMPY_SCRIPT = `
import ctypes, json, sys, time
import numpy as np
cfg = json.loads(sys.argv[1])
out = {"python": sys.executable, "numpy": np.__version__, "blasConfig": None, "coreName": None, "timings": []}
try:
    paths = set()
    with open("/proc/self/maps") as f:
        for line in f:
            p = line.split()[-1]
            if p.startswith("/") and ("openblas" in p.lower() or "libblas" in p.lower()):
                paths.add(p)
    for p in sorted(paths):
        lib = ctypes.CDLL(p)
        for prefix, suffix in (("", ""), ("scipy_", "64_"), ("", "64_")):
            cfg_name = prefix + "openblas_get_config" + suffix
            if hasattr(lib, cfg_name):
                getattr(lib, cfg_name).restype = ctypes.c_char_p
                getattr(lib, prefix + "openblas_get_corename" + suffix).restype = ctypes.c_char_p
                out["blasConfig"] = getattr(lib, cfg_name)().decode()
                out["coreName"] = getattr(lib, prefix + "openblas_get_corename" + suffix)().decode()
                out["threads"] = getattr(lib, prefix + "openblas_get_num_threads" + suffix)()
                break
        if out["blasConfig"]:
            break
except Exception:
    pass
rng = np.random.default_rng(0)
for m, k, n in cfg["shapes"]:
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    c = np.empty((m, n), dtype=np.float32)
    np.matmul(a, b, out=c)
    times = []
    total = 0.0
    while len(times) < cfg["maxReps"] and (len(times) < cfg["minReps"] or total < cfg["minTimeMs"]):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        dt = (time.perf_counter() - t0) * 1e3
        times.append(dt)
        total += dt
    times.sort()
    h = len(times) // 2
    med = times[h] if len(times) % 2 else (times[h - 1] + times[h]) / 2
    out["timings"].append({"m": m, "k": k, "n": n, "reps": len(times), "bestMs": times[0], "medianMs": med})
print(json.dumps(out))
`;

interface Options {
  threads: number[];
  shapes: Shape[];
  minTimeMs: number;
  rounds: number;
  python: string;
  json: boolean;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = {
    threads: [1, 2],
    shapes: DEFAULT_SHAPES,
    minTimeMs: 200,
    rounds: 2,
    python: process.env.CHAINOPT_PYTHON ?? "python3",
    json: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--threads") opts.threads = next().split(",").map(Number);
    else if (a === "--shapes")
      opts.shapes = next()
        .split(",")
        .map((s) => s.split("x").map(Number) as Shape);
    else if (a === "--min-time") opts.minTimeMs = Number(next());
    else if (a === "--rounds") opts.rounds = Number(next());
    else if (a === "--python") opts.python = next();
    else if (a === "--json") opts.json = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!Number.isInteger(opts.rounds) || opts.rounds < 1) throw new Error("--rounds: a positive integer");
  if (opts.threads.some((t) => !Number.isInteger(t) || t < 1)) throw new Error("--threads: positive integers, e.g. 1,2");
  if (opts.shapes.some((s) => s.length !== 3 || s.some((d) => !Number.isInteger(d) || d < 1)))
    throw new Error("--shapes: e.g. 128x784x256");
  return opts;
}

function runNumpy(python: string, threads: number, shapes: Shape[], minTimeMs: number): NumpyResult | string {
  const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  const cfg = JSON.stringify({ shapes, minReps: 5, maxReps: 500, minTimeMs });
  const r = spawnSync(python, ["-c", NUMPY_SCRIPT, cfg], { env, encoding: "utf8" });
  if (r.error) return `${python}: ${r.error.message}`;
  if (r.status !== 0) return `${python} failed: ${(r.stderr ?? "").trim().split("\n").slice(-1)[0]}`;
  return JSON.parse(r.stdout) as NumpyResult;
}

const gflops = (m: number, k: number, n: number, ms: number) => (2 * m * k * n) / ms / 1e6;
const fmt = (x: number | undefined) => (x === undefined ? "—" : x.toFixed(1));

function main(): void {
  const opts = parseArgs(process.argv.slice(2));
  const native = loadNativeBackend();
  const envShown = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"].map((k) => `${k}=${process.env[k] ?? "(unset)"}`).join(" ");
  const rows: Record<string, unknown>[] = [];
  const lines: string[] = [];
  lines.push(`CPU: ${cpus()[0]?.model ?? "?"} (${cpus().length} logical cores); Node ${process.version}; ${envShown}`);
  lines.push(`chainopt native: ${native ? native.describe() : "not available (npx chainopt build-native)"}`);
  const numpyInfo = new Set<string>();
  const header = `${"threads".padEnd(8)}${"shape m×k×n".padEnd(17)}${"native".padStart(16)}${"portable".padStart(16)}${"numpy".padStart(16)}${"native/numpy".padStart(16)}`;
  const table: string[] = [header, "-".repeat(header.length)];
  type Side = { medianMs: number; bestMs: number; reps: number };
  // The faster round of each side: on shared cores a neighbour's burst should not decide the ratio.
  const better = (x: Side | undefined, y: Side | undefined) => (!x ? y : !y ? x : y.medianMs < x.medianMs ? y : x);
  for (const t of opts.threads) {
    if (native) native.setThreads(t);
    const nat = new Map<string, Side>();
    const npy = new Map<string, Side>();
    // Rounds alternate numpy (one child for all shapes) and native, so that both see the same load.
    for (let round = 0; round < opts.rounds; round++) {
      const np = runNumpy(opts.python, t, opts.shapes, opts.minTimeMs);
      if (typeof np === "string") numpyInfo.add(`numpy: not available (${np})`);
      else {
        const threads = np.threads === undefined ? "" : `; ${np.threads} thread${np.threads === 1 ? "" : "s"}`;
        numpyInfo.add(`numpy ${np.numpy} (${np.python}): ${np.blasConfig ?? "BLAS unknown"}; core ${np.coreName ?? "?"}${threads}`);
        for (const x of np.timings) npy.set(`${x.m}x${x.k}x${x.n}`, better(npy.get(`${x.m}x${x.k}x${x.n}`), x)!);
      }
      if (native)
        for (const [m, k, n] of opts.shapes) {
          const g = timeGemm(native, m, k, n, "float32", { minTimeMs: opts.minTimeMs, maxReps: 500 });
          nat.set(`${m}x${k}x${n}`, better(nat.get(`${m}x${k}x${n}`), g)!);
        }
    }
    for (const [m, k, n] of opts.shapes) {
      const key = `${m}x${k}x${n}`;
      const por: GemmTiming | undefined =
        t === 1 && 2 * m * k * n <= PORTABLE_MAX_FLOPS
          ? timeGemm(portableBackend, m, k, n, "float32", { minReps: 3, maxReps: 3, minTimeMs: 0 })
          : undefined;
      const gf = (x: Side | undefined, which: "medianMs" | "bestMs") => (x ? gflops(m, k, n, x[which]) : undefined);
      const natMed = gf(nat.get(key), "medianMs");
      const npMed = gf(npy.get(key), "medianMs");
      const ratio = natMed && npMed ? natMed / npMed : undefined;
      const natBest = gf(nat.get(key), "bestMs");
      const npBest = gf(npy.get(key), "bestMs");
      const bestRatio = natBest && npBest ? natBest / npBest : undefined;
      const cell = (x: Side | undefined) => (x ? `${fmt(gf(x, "medianMs"))} (${fmt(gf(x, "bestMs"))})` : "—");
      table.push(
        `${String(t).padEnd(8)}${key.padEnd(17)}${cell(nat.get(key)).padStart(16)}${cell(por).padStart(16)}${cell(npy.get(key)).padStart(16)}${(ratio === undefined || bestRatio === undefined ? "—" : `${ratio.toFixed(2)} (${bestRatio.toFixed(2)})`).padStart(16)}`,
      );
      rows.push({
        threads: t,
        m,
        k,
        n,
        nativeGflops: natMed ?? null,
        portableGflops: gf(por, "medianMs") ?? null,
        numpyGflops: npMed ?? null,
        nativeOverNumpy: ratio ?? null,
        nativeOverNumpyBest: bestRatio ?? null,
      });
    }
  }
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ environment: lines, numpy: [...numpyInfo], rows }, null, 2)}\n`);
    return;
  }
  process.stdout.write(
    `${[...lines, ...numpyInfo, "", "float32 GEMM, GFLOP/s: median (best); ratio of medians (of bests)", ...table].join("\n")}\n`,
  );
  if (!process.env.OPENBLAS_CORETYPE) return;
  process.stdout.write("note: OPENBLAS_CORETYPE is set; it forces that kernel set on both sides.\n");
}

main();
