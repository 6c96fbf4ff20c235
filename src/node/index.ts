// chainopt/node: the Node-only edges of chainopt (native BLAS backend, file readers, ...).

import type { Backend } from "../core/backend.js";
import { portableBackend } from "../core/portable.js";
import { loadNativeBackend, nativeLoadError } from "./native-backend.js";

export { type GemmTiming, type GemmTimingOptions, timeGemm } from "./gemm-timing.js";
export {
  type BlasInfo,
  type DnnLayoutBenchResult,
  loadNativeBackend,
  NativeBackend,
  type NativeBlasBinding,
  type NativePaths,
  nativeAddonPath,
  nativeLoadError,
  packageRoot,
  threadingPolicy,
  threadsFromEnv,
  userEnvironment,
} from "./native-backend.js";

/** Options of {@link bestBackend}. */
export interface BestBackendOptions {
  /** Thread count of the native backend (default: `CHAINOPT_THREADS`, else OpenBLAS's default). */
  threads?: number;
  /** Do not print the notice about the portable backend. */
  quiet?: boolean;
}

let noticePrinted = false;

/** How to get the fast backend, for messages. */
export const NATIVE_HOW_TO =
  "for the fast OpenBLAS backend install OpenBLAS (Debian/Ubuntu: sudo apt-get install libopenblas-dev pkg-config g++), then run `npx chainopt build-native`";

/** How to get oneDNN's convolution and pooling kernels, for messages. */
export const DNNL_HOW_TO =
  "for oneDNN's convolution and pooling kernels install oneDNN 2.x (Debian/Ubuntu: sudo apt-get install libdnnl-dev), then run `npx chainopt build-native`";

/**
 * The fastest available backend, to pass to `createChain(spec, { backend })`: the native OpenBLAS
 * backend when its addon is built and loads, the portable TypeScript backend otherwise (then says
 * so once on stderr, with how to get the fast one, unless `quiet`; likewise once when the addon was
 * built without oneDNN). Nothing is registered
 * globally: the chain carries the backend, and every oracle, optimizer update and training loop on
 * that chain uses it. `CHAINOPT_BACKEND=portable` forces the portable backend (for comparisons).
 */
export function bestBackend(options: BestBackendOptions = {}): Backend {
  const choice = backendFromEnv();
  const forcePortable = choice === "portable";
  const native = forcePortable ? null : loadNativeBackend();
  if (native) {
    if (options.threads !== undefined) native.setThreads(options.threads);
    // oneDNN notice (docs/performance.md) ------------------------------------------------------
    if (!options.quiet && !noticePrinted && native.dnnlVersion === null) {
      noticePrinted = true;
      process.stderr.write(`chainopt: native backend without oneDNN (float32 convolutions use im2col + OpenBLAS); ${DNNL_HOW_TO}.\n`);
    }
    // end oneDNN notice -------------------------------------------------------------------------
    return native;
  }
  if (choice === "openblas") {
    throw new Error(`CHAINOPT_BACKEND=openblas: the native addon ${nativeLoadError() ?? "is unavailable"}; ${NATIVE_HOW_TO}`);
  }
  if (!options.quiet && !noticePrinted) {
    noticePrinted = true;
    // Asked for by name: no advice to install what the user chose not to use.
    if (forcePortable) process.stderr.write("chainopt: using the portable TypeScript backend (CHAINOPT_BACKEND=portable).\n");
    else
      process.stderr.write(
        `chainopt: using the portable TypeScript backend (native addon ${nativeLoadError() ?? "unavailable"}); ${NATIVE_HOW_TO}.\n`,
      );
  }
  return portableBackend;
}

/** Values of `CHAINOPT_BACKEND`: auto (the default: native when it loads), openblas (native or an error), portable. */
export const BACKEND_CHOICES = ["auto", "openblas", "portable"] as const;

/** Parses `CHAINOPT_BACKEND` (unset or empty: auto); an unknown value is an error naming the variable and the choices. */
export function backendFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): (typeof BACKEND_CHOICES)[number] {
  const raw = env.CHAINOPT_BACKEND?.trim().toLowerCase();
  if (!raw) return "auto";
  if (raw === "native") return "openblas";
  if ((BACKEND_CHOICES as readonly string[]).includes(raw)) return raw as (typeof BACKEND_CHOICES)[number];
  throw new Error(`CHAINOPT_BACKEND=${env.CHAINOPT_BACKEND}: unknown backend; allowed values: ${BACKEND_CHOICES.join(", ")} (or unset)`);
}

export * from "./atomic.js";
export * from "./checkpoint.js";
export * from "./datasets.js";
export * from "./fit-run.js";
export * from "./idx.js";
export * from "./report.js";
export * from "./run-dir.js";
export * from "./safetensors.js";
export * from "./torch-interop.js";
