import type { Command } from "commander";
import { runBenchCommand } from "../../../bench/cli.js";

/**
 * `chainopt bench`: the side-by-side training benchmarks of `npm run bench` (chainopt native and
 * portable, PyTorch, TensorFlow.js wasm, GEMM against numpy, one MNIST epoch); see bench/side-by-side.ts.
 */
export function register(program: Command): void {
  program
    .command("bench")
    .description("benchmark training steps side by side: chainopt native/portable, PyTorch, TensorFlow.js wasm; GEMM vs numpy")
    .option("--threads <list>", "thread counts, e.g. 1,2", "1,2")
    .option("--models <list>", "mlp, convnet", "mlp,convnet")
    .option("--rounds <n>", "rounds of (PyTorch, chainopt native); each keeps its faster round", "2")
    .option("--python <path>", "python with torch (default: $CHAINOPT_PYTHON, else /usr/bin/python3)")
    .option("--skip <list>", "sides to skip: portable, torch, tfjs, gemm, mnist")
    .option("--quick", "fewer repetitions")
    .option("--json", "print the results as JSON")
    .option("--unset-coretype", "run without OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE (every side)")
    .action(
      async (o: {
        threads: string;
        models: string;
        rounds: string;
        python?: string;
        skip?: string;
        quick?: boolean;
        json?: boolean;
        unsetCoretype?: boolean;
      }) => {
        const argv = ["--threads", o.threads, "--models", o.models, "--rounds", o.rounds];
        if (o.python) argv.push("--python", o.python);
        if (o.skip) argv.push("--skip", o.skip);
        if (o.quick) argv.push("--quick");
        if (o.json) argv.push("--json");
        if (o.unsetCoretype) argv.push("--unset-coretype");
        const code = await runBenchCommand(argv);
        if (code !== 0) process.exitCode = code;
      },
    );
}
