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

main().catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`chainopt: ${message}\n`);
  if (process.env.CHAINOPT_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  process.exit(1);
});
