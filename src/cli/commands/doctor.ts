import { availableParallelism, cpus } from "node:os";
import type { Command } from "commander";
import type { Backend } from "../../core/backend.js";
import { portableBackend } from "../../core/portable.js";
import { type GemmTiming, timeGemm } from "../../node/gemm-timing.js";
import { backendFromEnv } from "../../node/index.js";
import { type BlasInfo, loadNativeBackend, nativeAddonPath, nativeLoadError } from "../../node/native-backend.js";

/** What `chainopt doctor --json` prints. */
export interface DoctorReport {
  backend: string;
  description: string;
  native: { available: boolean; addon: string; error: string | null };
  blas: BlasInfo | null;
  /**
   * oneDNN (float32 convolution, pooling, batch normalization): whether this backend uses it, the
   * version the addon was built with (null: built without), why it is not used, the convolution
   * kernel it picks for the ConvNet preset's second layer (e.g. `jit:avx2`), and whether batch-norm
   * runs on it too (false for addons built before that binding).
   */
  onednn: {
    used: boolean;
    version: string | null;
    reason: string | null;
    convImpl: string | null;
    batchNorm: boolean;
    /** Channel block of the activations kept blocked between oneDNN layers (16 nChw16c, 8 nChw8c); 0: NCHW throughout. */
    activationBlock: number;
  };
  /** Native multi-threaded element-wise kernels (optimizer updates, ReLU) and their OpenMP thread count. */
  kernels: { used: boolean; threads: number | null };
  threads: number;
  environment: Record<string, string>;
  cpu: { model: string; logicalCores: number; availableParallelism: number };
  node: string;
  gemm: GemmTiming[];
  advice: string | null;
}

const ENV_VARS = [
  "OPENBLAS_CORETYPE",
  "OPENBLAS_L2_SIZE",
  "OPENBLAS_NUM_THREADS",
  "OMP_NUM_THREADS",
  "OMP_WAIT_POLICY",
  "GOMP_SPINCOUNT",
  "OPENBLAS_THREAD_TIMEOUT",
  "CHAINOPT_OPENBLAS",
  "CHAINOPT_THREADS",
  "CHAINOPT_ONEDNN",
  "CHAINOPT_BACKEND",
];

/** Collects the report; `bench` false skips the GEMM timings. */
export function doctorReport(options: { threads?: number; bench?: boolean } = {}): DoctorReport {
  // CHAINOPT_BACKEND: auto, openblas or portable; another value is an error naming the choices.
  const forcePortable = backendFromEnv() === "portable";
  const native = forcePortable ? null : loadNativeBackend();
  if (native && options.threads !== undefined) native.setThreads(options.threads);
  const backend: Backend = native ?? portableBackend;
  const environment: Record<string, string> = {};
  for (const name of ENV_VARS) {
    const value = process.env[name];
    if (value !== undefined) environment[name] = value;
  }
  const gemm: GemmTiming[] = [];
  if (options.bench !== false) {
    // float32, square; the portable backend (~1–3 GFLOP/s) only gets the smaller size.
    const sizes = native ? [512, 1024] : [512];
    for (const s of sizes)
      gemm.push(timeGemm(backend, s, s, s, "float32", { minReps: native ? 5 : 2, maxReps: native ? 20 : 2, minTimeMs: 0 }));
  }
  const cpuList = cpus();
  const dnnlVersion = native?.dnnlVersion ?? null;
  let convImpl: string | null = null;
  if (native?.dnn && native.raw.dnnConvImpl) {
    try {
      // The ConvNet preset's second convolution (32 → 64 channels, 3×3, 16×16) at batch 128.
      convImpl = native.raw.dnnConvImpl(Int32Array.of(128, 32, 16, 16, 64, 16, 16, 3, 3, 1, 1, 1, 1), 0);
    } catch {
      convImpl = null;
    }
  }
  const onednn = {
    used: native?.dnn !== undefined && native !== null,
    version: dnnlVersion,
    reason: !native
      ? "no native backend"
      : native.dnn
        ? null
        : dnnlVersion
          ? "turned off (CHAINOPT_ONEDNN=0)"
          : "the native addon was built without oneDNN",
    convImpl,
    batchNorm: native?.dnn?.batchNormForward !== undefined,
    activationBlock: native?.dnn?.activationBlock ?? 0,
  };
  return {
    backend: backend.name,
    description: backend.describe(),
    native: {
      available: native !== null,
      addon: nativeAddonPath(),
      error: forcePortable ? "CHAINOPT_BACKEND=portable" : nativeLoadError(),
    },
    blas: native ? native.info() : null,
    onednn,
    kernels: { used: native?.kernels !== undefined && native !== null, threads: native?.raw.getOmpThreads?.() ?? null },
    threads: backend.threads,
    environment,
    cpu: { model: cpuList[0]?.model ?? "unknown", logicalCores: cpuList.length, availableParallelism: availableParallelism() },
    node: process.version,
    gemm,
    // No install advice when the portable backend was chosen by name.
    advice: forcePortable
      ? null
      : !native
        ? "install OpenBLAS (Debian/Ubuntu: sudo apt-get install libopenblas-dev pkg-config g++), then run `npx chainopt build-native`"
        : !dnnlVersion
          ? "for oneDNN's convolution and pooling kernels install oneDNN 2.x (Debian/Ubuntu: sudo apt-get install libdnnl-dev), then run `npx chainopt build-native`"
          : null,
  };
}

function formatReport(r: DoctorReport): string {
  const lines: string[] = [];
  const row = (k: string, v: string) => lines.push(`${`${k}:`.padEnd(Math.max(20, k.length + 2))}${v}`);
  row("backend", r.backend);
  row("description", r.description);
  row("native addon", r.native.available ? r.native.addon : `not available: ${r.native.error ?? "unknown"}`);
  if (r.blas) {
    row(
      "BLAS library",
      `${r.blas.library} ${r.blas.version} (${r.blas.parallel} build${r.blas.libraryPath ? `, ${r.blas.libraryPath}` : ""})`,
    );
    row("threading", r.blas.policy);
    row("thread counts", `OpenBLAS ${r.blas.threads}, OpenMP ${r.blas.ompThreads ?? "n/a"}`);
    row(
      "element-wise kernels",
      r.blas.kernelIsa === null
        ? "none (addon without kernels; rebuild it)"
        : `${r.blas.kernelIsa === "avx2" ? "AVX2" : "x86-64 baseline"} loops`,
    );
    row("BLAS config", r.blas.config);
    row("BLAS core", r.blas.coreName);
  }
  row(
    "oneDNN",
    r.onednn.used
      ? `${r.onednn.version} (convolution, pooling${r.onednn.batchNorm ? ", batch normalization" : ""}; float32${r.onednn.convImpl ? `; conv kernel ${r.onednn.convImpl}` : ""}; ${r.onednn.activationBlock ? `activations nChw${r.onednn.activationBlock}c between oneDNN layers` : "activations NCHW"})`
      : `not used: ${r.onednn.reason ?? "unknown"}${r.onednn.version ? ` (addon built with ${r.onednn.version})` : ""}`,
  );
  row("native kernels", r.kernels.used ? `element-wise, OpenMP, ${r.kernels.threads} threads` : "not used");
  row("threads", String(r.threads));
  row("OPENBLAS_CORETYPE", r.environment.OPENBLAS_CORETYPE ?? "(not set)");
  for (const [k, v] of Object.entries(r.environment)) if (k !== "OPENBLAS_CORETYPE") row(k, v);
  row("CPU", `${r.cpu.model} (${r.cpu.logicalCores} logical cores, ${r.cpu.availableParallelism} available)`);
  row("Node", r.node);
  for (const g of r.gemm) {
    row(
      `sgemm ${g.m}³`,
      `${g.bestGflops.toFixed(1)} GFLOP/s (best of ${g.reps}, ${g.bestMs.toFixed(2)} ms; median ${g.medianGflops.toFixed(1)})`,
    );
  }
  if (r.advice) lines.push("", `${r.native.available ? "For faster convolutions" : "For the fast backend"}: ${r.advice}.`);
  return lines.join("\n");
}

/** `chainopt doctor`: which backend is active, the BLAS behind it, threads, and a quick GEMM GFLOP/s figure. */
export function register(program: Command): void {
  program
    .command("doctor")
    .description("show the compute backend, BLAS library and threads, and measure GEMM GFLOP/s")
    .option("--json", "print the report as JSON")
    .option("--threads <n>", "BLAS threads (default: CHAINOPT_THREADS, else OpenBLAS's default)", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new Error(`--threads must be a positive integer, got '${v}'`);
      return n;
    })
    .option("--no-bench", "skip the GEMM timing")
    .action((options: { json?: boolean; threads?: number; bench: boolean }) => {
      const report = doctorReport({ threads: options.threads, bench: options.bench });
      process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatReport(report)}\n`);
    });
}
