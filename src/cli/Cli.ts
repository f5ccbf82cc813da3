/**
 * The `sid` command line: command definitions only (the runtime wiring is in `bin.ts`).
 *
 * @module
 */
import { Command } from "@effect/cli"
import { distillCommand } from "./Distill.js"
import { exportCommand } from "./Export.js"
import { sampleCommand } from "./Sample.js"
import { teacherCommand } from "./Teacher.js"

/** `sid` and its subcommands. */
export const sid = Command.make("sid").pipe(
  Command.withDescription("Score identity Distillation (SiD): one-step generators from diffusion teachers, data-free."),
  Command.withSubcommands([distillCommand, exportCommand, sampleCommand, teacherCommand])
)

/** Runs the CLI on `process.argv`-style arguments. */
export const run = Command.run(sid, { name: "sid", version: "0.1.0" })
