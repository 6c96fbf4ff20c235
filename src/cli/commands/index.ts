import type { Command } from "commander";

/** A subcommand: registers itself on the program. */
export type RegisterCommand = (program: Command) => void;

// One line per subcommand; each file exports `register`.
export const commands: RegisterCommand[] = [];
commands.push((await import("./analyze.js")).register);
commands.push((await import("./build-native.js")).register);
commands.push((await import("./doctor.js")).register);
commands.push((await import("./report.js")).register);
commands.push((await import("./train.js")).register);
commands.push((await import("./experiment.js")).register);
commands.push((await import("./smooth.js")).register);
commands.push((await import("./bench.js")).register);
commands.push((await import("./attack.js")).register); // adversarial attacks (docs/adversarial.md)
commands.push((await import("./evaluate.js")).register);
commands.push((await import("./ntk.js")).register);
commands.push((await import("./sweep.js")).register);
commands.push((await import("./playground.js")).register);
