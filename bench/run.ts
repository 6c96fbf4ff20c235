// Side-by-side training benchmarks (`npm run bench`; the same as `npx chainopt bench`): chainopt
// native and portable, PyTorch, TensorFlow.js wasm, GEMM against numpy, one MNIST epoch. See
// bench/side-by-side.ts for the method; BENCHMARKS.md for results.
//
//   node dist/bench/run.js [--threads 1,2] [--models mlp,convnet] [--rounds 2] [--python PATH]
//                          [--skip portable,torch,tfjs,gemm,mnist] [--quick] [--json] [--unset-coretype]
import { runBenchCommand } from "./cli.js";

process.exitCode = await runBenchCommand(process.argv.slice(2));
