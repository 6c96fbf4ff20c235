import type { Command } from "commander";

/** A subcommand: registers itself on the program. */
export type RegisterCommand = (program: Command) => void;

// One line per subcommand; each file exports `register`.
export const commands: RegisterCommand[] = [];
