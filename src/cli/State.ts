/**
 * `sid state export` and `sid state import`: a run's whole training state (G, G_ema, ψ, both Adam states, step,
 * images seen, settings, random streams) as one safetensors file, and back into a run directory that
 * `sid distill --resume` continues (docs/training-state.md). `tools/sid_training_state.py` turns the file into SiD's
 * PyTorch `training-state-*.pt` and back.
 *
 * @module
 */
import { Command } from "@effect/cli"
import { join } from "node:path"
import { Console, Effect, Option } from "effect"
import { DISTILL_RUN_SETTINGS } from "../domain/config/RunSettings.js"
import * as CheckpointStore from "../services/node/CheckpointStore.js"
import { CheckpointError, CheckpointStore as CheckpointStoreTag } from "../services/node/CheckpointStore.js"
import { importTrainingState, writeTrainingState } from "../pipeline/node/TrainingState.js"
import { docsOf, optionalIntegerFlag, optionsOf, pathFlag, requiredTextFlag, switchFlag } from "./Flags.js"
import type { CliNode } from "./Help.js"

const exportFlags = {
  runDir: pathFlag("run-dir", "<dir>", "the run whose checkpoint to export", DISTILL_RUN_SETTINGS.runDir.default),
  out: requiredTextFlag("out", "<file>", "the safetensors file to write (docs/training-state.md)"),
  step: optionalIntegerFlag("step", "the step of the checkpoint to export", "the newest"),
  overwrite: switchFlag("overwrite", "replace --out if it exists")
} as const

const importFlags = {
  file: requiredTextFlag("file", "<file>", "a training-state file (`sid state export`, or tools/sid_training_state.py to-sid-ts)"),
  runDir: pathFlag("run-dir", "<dir>", "the run directory to make", DISTILL_RUN_SETTINGS.runDir.default),
  overwrite: switchFlag("overwrite", "where --run-dir holds a run, move it aside (never deleted) and import in its place")
} as const

/** The options of `sid state export`. */
export const stateExportOptions = optionsOf(exportFlags)
/** The options of `sid state import`. */
export const stateImportOptions = optionsOf(importFlags)

const EXPORT_DESCRIPTION = "Write a run's whole training state (G, G_ema, fake score, both Adam states, step, images seen, " +
  "settings, random streams) as one safetensors file (docs/training-state.md); tools/sid_training_state.py converts it " +
  "for SiD's PyTorch training loop (--resume)."
const IMPORT_DESCRIPTION = "Make a run directory from a training-state file, so that `sid distill --resume --run-dir <dir>` " +
  "continues the run exactly."
const STATE_DESCRIPTION = "A run's whole training state as one file: export it, or import it as a run directory."

/** `sid state export`. */
export const stateExportCommand = Command.make("export", stateExportOptions, (o) =>
  Effect.gen(function*() {
    const store = yield* CheckpointStoreTag
    const checkpoint = Option.isSome(o.step) ? yield* store.load(o.step.value) : yield* store.latest.pipe(
      Effect.flatMap(Option.match({
        onNone: () => new CheckpointError({ path: store.location, reason: "there is no checkpoint to export; run `sid distill` first" }),
        onSome: Effect.succeed
      }))
    )
    const written = yield* writeTrainingState(checkpoint, o.out, { overwrite: o.overwrite })
    yield* Console.log(
      `wrote ${written.path} (training state of a ${written.kind} run at step ${written.step}, ${written.imagesSeen} images seen, ` +
        `${written.layout} layout, ${(written.bytes / 2 ** 20).toFixed(1)} MiB)`
    )
  }).pipe(Effect.provide(CheckpointStore.layerDirectory(join(o.runDir, "checkpoints"))))).pipe(
  Command.withDescription(EXPORT_DESCRIPTION)
)

/** `sid state import`. */
export const stateImportCommand = Command.make("import", stateImportOptions, (o) =>
  Effect.scoped(Effect.gen(function*() {
    const imported = yield* importTrainingState(o.file, o.runDir, { overwrite: o.overwrite, command: "sid state import" })
    for (const note of imported.notes) yield* Console.log(note)
    yield* Console.log(
      `made ${imported.runDir} from ${o.file} (a ${imported.kind} run at step ${imported.step}, ${imported.imagesSeen} images seen); ` +
        `continue it with: sid distill --resume --run-dir ${imported.runDir} --steps <n>`
    )
  }))).pipe(Command.withDescription(IMPORT_DESCRIPTION))

/** `sid state` and its subcommands. */
export const stateCommand = Command.make("state").pipe(
  Command.withDescription(STATE_DESCRIPTION),
  Command.withSubcommands([stateExportCommand, stateImportCommand])
)

/** The help of `sid state export`. */
export const stateExportHelp: CliNode = {
  path: ["state", "export"],
  summary: "write a run's whole training state as one safetensors file",
  description: EXPORT_DESCRIPTION,
  sections: [{ title: "Flags", flags: docsOf(exportFlags) }]
}

/** The help of `sid state import`. */
export const stateImportHelp: CliNode = {
  path: ["state", "import"],
  summary: "make a run directory from a training-state file",
  description: IMPORT_DESCRIPTION,
  sections: [{ title: "Flags", flags: docsOf(importFlags) }]
}

/** The help of `sid state`. */
export const stateHelp: CliNode = {
  path: ["state"],
  summary: STATE_DESCRIPTION,
  description: STATE_DESCRIPTION,
  subcommands: [stateExportHelp, stateImportHelp]
}
