/**
 * `sid export`: the distilled one-step generator of a run as a generator file that `loadGenerator` and
 * `sid-ts/browser` read: EDM safetensors for EDM networks (EDM `state_dict` names and layouts, EDMPrecond arguments
 * in the metadata; readable by the EDM/SiD Python code and by `sid distill --teacher edm:<file>`), the sid-ts
 * generator format for the MLP and the small UNet (docs/generator-format.md). Both record σ_init, σ_data, the label
 * dimension and the provenance (run directory, step, teacher).
 *
 * @module
 */
import { Command } from "@effect/cli"
import { join } from "node:path"
import { Console, Effect, Option } from "effect"
import * as CheckpointStore from "../services/node/CheckpointStore.js"
import * as Engine from "../engine/node/Engine.js"
import { exportGenerator } from "../services/node/Generator.js"
import { CheckpointError, CheckpointStore as CheckpointStoreTag } from "../services/node/CheckpointStore.js"
import { DISTILL_RUN_SETTINGS } from "../domain/config/RunSettings.js"
import { choiceFlag, docsOf, optionsOf, pathFlag, requiredTextFlag } from "./Flags.js"
import { generatorStepsFlag } from "./GeneratorStepsOption.js"
import type { CliNode } from "./Help.js"

const exportFlags = {
  runDir: pathFlag("run-dir", "<dir>", "the run whose newest checkpoint to export", DISTILL_RUN_SETTINGS.runDir.default),
  out: requiredTextFlag("out", "<file>", "the safetensors file to write"),
  weights: choiceFlag("weights", ["ema", "live"] as const, "the EMA weights (docs/algorithm.md §9.1) or the live θ", "ema"),
  generatorSteps: generatorStepsFlag
} as const

/** The options of `sid export`. */
export const exportOptions = optionsOf(exportFlags)

const EXPORT_DESCRIPTION = "Export the distilled one-step generator: EDM safetensors for EDM networks, the sid-ts generator " +
  "format (docs/generator-format.md) for the others; `loadGenerator` and sid-ts/browser read both."

/** The help of `sid export`. */
export const exportHelp: CliNode = {
  path: ["export"],
  summary: "export a run's one-step generator as a file",
  description: EXPORT_DESCRIPTION,
  sections: [{ title: "Flags", flags: docsOf(exportFlags) }]
}

/** `sid export`. */
export const exportCommand = Command.make("export", exportOptions, (o) =>
  Effect.gen(function*() {
    const store = yield* CheckpointStoreTag
    const latest = yield* store.latest
    if (Option.isNone(latest)) {
      return yield* new CheckpointError({ path: store.location, reason: "there is no checkpoint to export; run `sid distill` first" })
    }
    const written = yield* exportGenerator(latest.value, o.out, {
      weights: o.weights,
      runDir: o.runDir,
      ...(Option.isSome(o.generatorSteps) ? { generatorSteps: o.generatorSteps.value } : {})
    })
    yield* Console.log(
      `wrote ${written.path} (${written.kind} generator, ${written.weights} weights at step ${written.step}, ` +
        `${written.generatorSteps === 1 ? "" : `${written.generatorSteps} generator steps, `}format ${written.format})`
    )
  }).pipe(Effect.provide(CheckpointStore.layerDirectory(join(o.runDir, "checkpoints"))), Effect.provide(Engine.cpu))).pipe(
  Command.withDescription(EXPORT_DESCRIPTION)
)
