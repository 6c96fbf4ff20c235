// Where splitting work across threads starts to pay (docs/performance.md, "Threading policy").
//
//   node dist/bench/thresholds.js [--threads 2] [--reps 5]
//
// The native backend runs small calls on the calling thread: element-wise kernels under
// `elementwise` entries, level-1/2 BLAS under `level12` entries, GEMMs under `gemm` multiply-adds
// (serialThresholds in native/src/chainopt_blas.cc). For each kind and size this measures the call
// on one thread and on `--threads` threads with the threshold set to 0 (always split), in
// alternation, and prints the ratio; the size from which the split is faster (ratio > 1.05 from
// there on) is where the threshold belongs on this machine. Representatives: the fused
// update-and-check `addFinite` (element-wise, memory-bound), saxpy (level-1), and row-major SGEMMs
// of the shapes of a dense layer's forward pass at batch 128 (128 × k by k × n).
import { cpus } from "node:os";
import { loadNativeBackend } from "../src/node/native-backend.js";

const args = process.argv.slice(2);
const arg = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const threads = Number(arg("threads", "2"));
const reps = Number(arg("reps", "5"));
if (!Number.isInteger(threads) || threads < 2) throw new Error("--threads must be an integer ≥ 2");
if (!Number.isInteger(reps) || reps < 1) throw new Error("--reps must be a positive integer");

const native = loadNativeBackend();
if (!native) throw new Error("the native backend is not built: run `npx chainopt build-native`");
const raw = native.raw;
const kernels = native.kernels;
if (!raw.serialThresholds || !kernels?.addFinite)
  throw new Error("addon without serialThresholds/addFinite: rebuild it with `node scripts/build-native.mjs --force`");
const setThresholds = raw.serialThresholds.bind(raw);
const addFinite = kernels.addFinite.bind(kernels);
const defaults = setThresholds();

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
};

/** µs per call of f: blocks of calls lasting ≥ 20 ms, after a warm-up block. */
function perCallUs(f: () => void): number {
  let block = 1;
  for (;;) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < block; i++) f();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (ms >= 20) return (ms * 1000) / block;
    block *= 2;
  }
}

/** One thread vs `threads` threads with every split forced, alternating; medians and the median ratio. */
function compare(f: () => void): { one: number; many: number; ratio: number } {
  const ones: number[] = [];
  const manys: number[] = [];
  const ratios: number[] = [];
  for (let r = 0; r <= reps; r++) {
    native!.setThreads(1);
    const one = perCallUs(f);
    native!.setThreads(threads);
    setThresholds([0, 0, 0]);
    const many = perCallUs(f);
    setThresholds(defaults);
    if (r === 0) continue; // warm-up round
    ones.push(one);
    manys.push(many);
    ratios.push(one / many);
  }
  return { one: median(ones), many: median(manys), ratio: median(ratios) };
}

interface Row {
  kind: string;
  size: number;
  unit: string;
  one: number;
  many: number;
  ratio: number;
}
const rows: Row[] = [];
const fill = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 1e-3);

for (let e = 11; e <= 20; e++) {
  const n = 2 ** e;
  const w = fill(n);
  const u = fill(n);
  rows.push({ kind: "element-wise (addFinite)", size: n, unit: "entries", ...compare(() => addFinite(n, w, u)) });
}
for (let e = 12; e <= 21; e++) {
  const n = 2 ** e;
  const x = fill(n);
  const y = fill(n);
  rows.push({ kind: "level-1 BLAS (saxpy)", size: n, unit: "entries", ...compare(() => native.axpy(n, 1e-3, x, y)) });
}
for (const [k, n] of [
  [16, 16],
  [32, 32],
  [64, 64],
  [128, 128],
  [256, 128],
  [288, 256],
  [512, 256],
  [512, 512],
  [784, 512],
] as const) {
  const m = 128;
  const a = fill(m * k);
  const b = fill(n * k);
  const c = new Float32Array(m * n);
  rows.push({
    kind: `GEMM 128×${k} by ${k}×${n}`,
    size: m * n * k,
    unit: "multiply-adds",
    ...compare(() => native.gemm(false, true, m, n, k, 1, a, k, b, k, 0, c, n)),
  });
}

/** The smallest size of a kind from which every larger size splits faster (ratio > 1.05), or null. */
function crossover(kind: string): number | null {
  const rs = rows.filter((r) => r.kind.startsWith(kind));
  for (let i = 0; i < rs.length; i++) if (rs.slice(i).every((r) => r.ratio > 1.05)) return rs[i].size;
  return null;
}

const lines = [
  `CPU: ${cpus()[0]?.model ?? "unknown"} (${cpus().length} logical cores); ${native.describe()}`,
  `threading: ${native.info().policy}`,
  `thresholds now: GEMM ${defaults[0].toExponential(1)} multiply-adds, level-1/2 ${defaults[1]} entries, element-wise ${defaults[2]} entries`,
  "",
  `| kind | size | 1 thread (µs) | ${threads} threads, split forced (µs) | 1 / ${threads} threads |`,
  "|---|---:|---:|---:|---:|",
  ...rows.map((r) => `| ${r.kind} | ${r.size} ${r.unit} | ${r.one.toFixed(1)} | ${r.many.toFixed(1)} | ${r.ratio.toFixed(2)} |`),
  "",
  ...["element-wise", "level-1", "GEMM"].map((k) => `${k}: the split pays from ${crossover(k) ?? "no size measured"} on`),
];
process.stdout.write(`${lines.join("\n")}\n`);
