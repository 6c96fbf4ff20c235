import { spawnSync } from "node:child_process";
import { type BenchModel, type BenchOptions, formatBenchMarkdown, runBenchmarks } from "./side-by-side.js";

/** Options of the benchmark command, as parsed from its arguments. */
export interface BenchArgs extends BenchOptions {
  json: boolean;
  unsetCoretype: boolean;
}

const USAGE =
  "usage: bench [--threads 1,2] [--models mlp,convnet] [--rounds 2] [--python PATH] [--skip portable,torch,tfjs,gemm,mnist] [--quick] [--json] [--unset-coretype]";

/** Parses the arguments of `npm run bench` / `chainopt bench`. */
export function parseBenchArgs(argv: string[]): BenchArgs {
  const out: BenchArgs = { json: false, unsetCoretype: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    const list = (v: string) =>
      v
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
    if (a === "--threads") {
      out.threads = list(next()).map(Number);
      if (out.threads.some((t) => !Number.isInteger(t) || t < 1)) throw new Error("--threads: positive integers, e.g. 1,2");
    } else if (a === "--models") {
      const models = list(next());
      for (const m of models) if (m !== "mlp" && m !== "convnet") throw new Error(`--models: mlp or convnet, got ${m}`);
      out.models = models as BenchModel[];
    } else if (a === "--rounds") {
      out.rounds = Number(next());
      if (!Number.isInteger(out.rounds) || out.rounds < 1) throw new Error("--rounds: a positive integer");
    } else if (a === "--batch") {
      out.batch = Number(next());
      if (!Number.isInteger(out.batch) || out.batch < 1) throw new Error("--batch: a positive integer");
    } else if (a === "--python") out.python = next();
    else if (a === "--skip") out.skip = list(next());
    else if (a === "--quick") out.quick = true;
    else if (a === "--json") out.json = true;
    else if (a === "--unset-coretype") out.unsetCoretype = true;
    else if (a === "--help" || a === "-h") throw new Error(USAGE);
    else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  return out;
}

/**
 * Runs the benchmarks and prints Markdown (or JSON); returns the exit code. With
 * `--unset-coretype`, when OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE is set, the command runs itself
 * again without both (OpenBLAS reads them once, when it is loaded), so that every side (chainopt,
 * PyTorch, numpy) gets OpenBLAS's own choice of kernels; the output says which kernel each used.
 */
export async function runBenchCommand(argv: string[]): Promise<number> {
  let args: BenchArgs;
  try {
    args = parseBenchArgs(argv);
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    return 2;
  }
  if (args.unsetCoretype && (process.env.OPENBLAS_CORETYPE !== undefined || process.env.OPENBLAS_L2_SIZE !== undefined)) {
    const env = { ...process.env };
    delete env.OPENBLAS_CORETYPE;
    delete env.OPENBLAS_L2_SIZE;
    process.stderr.write("bench: running again without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE\n");
    const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { env, stdio: "inherit" });
    return r.status ?? 1;
  }
  const result = await runBenchmarks({ ...args, log: (line) => process.stderr.write(`bench: ${line}\n`) });
  process.stdout.write(args.json ? `${JSON.stringify(result, null, 2)}\n` : formatBenchMarkdown(result));
  return 0;
}
