#!/usr/bin/env node
import { Command } from "commander";
import { commands } from "./commands/index.js";

/** Entry point of the `chainopt` command. Each subcommand lives in `src/cli/commands/<name>.ts`. */
async function main(): Promise<void> {
  const program = new Command();
  program.name("chainopt").description("Principled optimization of deep networks as chains of computations").showHelpAfterError();
  for (const register of commands) register(program);
  await program.parseAsync(process.argv);
}

// A reader that closes our stdout early (`chainopt train --json | head -3`) is not an error of the
// job: the rest of its output is dropped and the job runs to its end (its run directory is written
// as usual). Without this handler Node would crash with an unhandled EPIPE error event.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE" || error.code === "ERR_STREAM_DESTROYED") return;
  throw error;
});

main().catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`chainopt: ${message}\n`);
  if (process.env.CHAINOPT_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  process.exit(1);
});
