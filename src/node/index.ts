// chainopt/node: the Node-only edges of chainopt (native BLAS backend, file readers, ...).

import type { Backend } from "../core/backend.js";
import { portableBackend } from "../core/portable.js";
import { loadNativeBackend, nativeLoadError } from "./native-backend.js";

export { type GemmTiming, type GemmTimingOptions, timeGemm } from "./gemm-timing.js";
export {
  type BlasInfo,
  loadNativeBackend,
  NativeBackend,
  type NativeBlasBinding,
  type NativePaths,
  nativeAddonPath,
  nativeLoadError,
  packageRoot,
  threadsFromEnv,
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
  const forcePortable = process.env.CHAINOPT_BACKEND?.trim().toLowerCase() === "portable";
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
  if (!options.quiet && !noticePrinted) {
    noticePrinted = true;
    const why = forcePortable ? "CHAINOPT_BACKEND=portable" : `native addon ${nativeLoadError() ?? "unavailable"}`;
    process.stderr.write(`chainopt: using the portable TypeScript backend (${why}); ${NATIVE_HOW_TO}.\n`);
  }
  return portableBackend;
}

export * from "./atomic.js";
export * from "./checkpoint.js";
export * from "./datasets.js";
export * from "./idx.js";
export * from "./report.js";
export * from "./run-dir.js";
export * from "./safetensors.js";
export * from "./torch-interop.js";
