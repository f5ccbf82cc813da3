/**
 * The `sid` command line: command definitions only (the runtime wiring is in `bin.ts`).
 *
 * @module
 */
import { Command } from "@effect/cli"
import { distillCommand, distillHelp } from "./Distill.js"
import { exportCommand, exportHelp } from "./Export.js"
import type { CliNode } from "./Help.js"
import { sampleCommand, sampleHelp } from "./Sample.js"
import { stateCommand, stateHelp } from "./State.js"
import { teacherCommand, teacherHelp } from "./Teacher.js"

const SID_DESCRIPTION = "Score identity Distillation (SiD): one-step generators from diffusion teachers, data-free."

/** `sid` and its subcommands. */
export const sid = Command.make("sid").pipe(
  Command.withDescription(SID_DESCRIPTION),
  Command.withSubcommands([distillCommand, exportCommand, sampleCommand, stateCommand, teacherCommand])
)

/** Runs the CLI on `process.argv`-style arguments. */
export const run = Command.run(sid, { name: "sid", version: "0.1.0" })

/** The help of `sid` and of every command under it (rendered by `Help.ts`, checked against the flags by `Argv.ts`). */
export const sidHelp: CliNode = {
  path: [],
  summary: SID_DESCRIPTION,
  description: SID_DESCRIPTION,
  subcommands: [distillHelp, teacherHelp, sampleHelp, exportHelp, stateHelp],
  sections: [{
    title: "Flags",
    flags: [
      { name: "version", value: "switch", description: "print the version" },
      {
        name: "completions",
        value: "text",
        placeholder: "<sh|bash|fish|zsh>",
        description: "print a completion script for the shell",
        choices: ["sh", "bash", "fish", "zsh"]
      }
    ]
  }]
}
