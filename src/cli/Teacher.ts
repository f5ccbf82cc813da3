/**
 * `sid teacher train`: trains the small image UNet on MNIST with EDM's loss (docs/algorithm.md §2.4) and writes
 * `<run-dir>/teacher.safetensors` (the EMA weights, a `sid-ts-teacher-v1` teacher file for `sid distill --teacher`),
 * checkpoints under `<run-dir>/checkpoints`, `config.json` and a JSONL log.
 *
 * @module
 */
import { engineFlag } from "./EngineOption.js"
import { Command, type Options } from "@effect/cli"
import { access, readFile } from "node:fs/promises"
import { join } from "node:path"
import { Console, Effect, Either, Layer, Option, Stream } from "effect"
import { RunSpecMismatch, settingDifferences } from "../domain/config/RunSpec.js"
import { TEACHER_RUN_SETTINGS } from "../domain/config/RunSettings.js"
import {
  decodeTeacherTrainingConfig,
  encodeTeacherTrainingConfig,
  TEACHER_SETTINGS,
  TeacherTrainingConfig
} from "../domain/config/TeacherTrainingConfig.js"
import { writeFileAtomic } from "../platform/AtomicFile.js"
import * as Engine from "../engine/node/Engine.js"
import * as MnistDataset from "../services/node/Dataset.js"
import { claimRunDirectory, rewindLog } from "../platform/RunDirectory.js"
import * as TeacherCheckpointStore from "../services/node/TeacherCheckpointStore.js"
import { TeacherStartReport, type TeacherStepReport, trainTeacher } from "../pipeline/node/TeacherTraining.js"
import { TeacherCheckpointStore as TeacherCheckpointStoreTag } from "../services/node/TeacherCheckpointStore.js"
import { ConfigFileError } from "./Distill.js"
import {
  docsOf,
  FlagError,
  nameFlags,
  optionsOf,
  settingFlags,
  settingOverrides,
  type SettingValues,
  switchFlag,
  textFlag
} from "./Flags.js"
import type { CliNode } from "./Help.js"
import { appendJsonLine, runLogError, toJsonLine } from "./RunLog.js"

const runFlags = {
  runDir: settingFlags(TEACHER_RUN_SETTINGS).runDir,
  config: textFlag("config", "a JSON file of TeacherTrainingConfig fields; flags given on the command line override it", {
    placeholder: "<file>",
    default: "none"
  }),
  engine: engineFlag,
  overwrite: switchFlag("overwrite", "start afresh where --run-dir holds a run: the old run is moved aside (never deleted)"),
  resume: switchFlag(
    "resume",
    "continue from the newest checkpoint in <run-dir>/checkpoints, exactly where it stopped (settings default to " +
      "<run-dir>/config.json; only --steps and --checkpoint-every may change)"
  )
} as const

const configFlags = settingFlags(TEACHER_SETTINGS)

/** The flags of `sid teacher train`, each with its documentation. */
export const teacherTrainFlags = { ...runFlags, ...configFlags } as const

/** The options of `sid teacher train`. */
export const teacherTrainOptions = optionsOf(teacherTrainFlags)

type Parsed = {
  readonly [K in keyof typeof teacherTrainOptions]: (typeof teacherTrainOptions)[K] extends Options.Options<infer A> ? A : never
}

/** The config fields set by flags (left out when a flag is absent); a value that is not a number names its flag. */
export const teacherFlagOverrides = (o: Parsed): Either.Either<Record<string, unknown>, FlagError> =>
  settingOverrides(TEACHER_SETTINGS, o as SettingValues<typeof TEACHER_SETTINGS>)

const readJson = (path: string) =>
  Effect.tryPromise({
    try: async () => JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>,
    catch: (e) => new ConfigFileError({ path, reason: String(e) })
  })

const fmt = (x: number): string => (Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4 ? x.toFixed(4) : x.toExponential(2))

/** What a resumed teacher run may change: how long it runs and how often it checkpoints. */
const TEACHER_RUN_ONLY: ReadonlyArray<keyof typeof TeacherTrainingConfig.fields> = ["steps", "checkpointEvery"]

/** The `sid teacher train` handler. */
export const runTeacherTrain = (o: Parsed) =>
  Effect.scoped(Effect.gen(function*() {
    if (o.resume && o.overwrite) {
      return yield* new FlagError({ flag: "overwrite", value: "", rule: "cannot be combined with --resume (choose one)" })
    }
    const runDir = Option.getOrElse(o.runDir, () => TEACHER_RUN_SETTINGS.runDir.default)
    const savedConfig = join(runDir, "config.json")
    const recorded = o.resume && (yield* Effect.promise(() => access(savedConfig).then(() => true, () => false)))
      ? yield* Effect.flatMap(readJson(savedConfig), (json) => decodeTeacherTrainingConfig(json))
      : undefined
    const fromFile = Option.isSome(o.config) ? yield* readJson(o.config.value) : {}
    const fromFlags = yield* teacherFlagOverrides(o)
    const config = yield* Either.mapLeft(
      decodeTeacherTrainingConfig({ ...(recorded === undefined ? {} : encodeTeacherTrainingConfig(recorded)), ...fromFile, ...fromFlags }),
      (e) => nameFlags(TEACHER_SETTINGS, e, fromFlags)
    )
    if (recorded !== undefined) {
      const keys = Object.keys(TeacherTrainingConfig.fields) as Array<keyof typeof TeacherTrainingConfig.fields>
      const differences = settingDifferences(recorded, config, keys, TEACHER_RUN_ONLY, (k) => TEACHER_SETTINGS[k].flag)
      if (differences.length > 0) {
        return yield* new RunSpecMismatch({ location: runDir, differences, mayChange: "--steps, --checkpoint-every and --engine" })
      }
    }
    const claim = yield* claimRunDirectory(runDir, o.resume ? "resume" : o.overwrite ? "overwrite" : "fresh")
    for (const note of claim.notes) yield* Console.log(`run directory: ${note}`)
    const logPath = join(runDir, "log.jsonl")
    const teacherFile = join(runDir, "teacher.safetensors")
    const checkpoints = TeacherCheckpointStore.layerDirectory(join(runDir, "checkpoints"))
    const recovered = yield* Effect.flatMap(TeacherCheckpointStoreTag, (s) => s.recover).pipe(Effect.provide(checkpoints))
    if (recovered.removed.length > 0) {
      yield* Console.log(`checkpoints: removed ${recovered.removed.length} file(s) left by an interrupted write: ${recovered.removed.join(", ")}`)
    }
    if (o.resume) {
      const latest = yield* Effect.flatMap(TeacherCheckpointStoreTag, (s) => s.latest).pipe(Effect.provide(checkpoints))
      const dropped = yield* rewindLog(logPath, Option.match(latest, { onNone: () => 0, onSome: (c) => c.manifest.step }))
      if (dropped > 0) yield* Console.log(`run log: ${dropped} record(s) after the checkpoint dropped (the resumed run writes them again)`)
    }
    const every = Math.max(1, Math.floor(config.steps / 50))
    const report = (r: TeacherStartReport | TeacherStepReport) =>
      Effect.gen(function*() {
        yield* appendJsonLine(logPath, r)
        if (r instanceof TeacherStartReport) {
          yield* writeFileAtomic(savedConfig, new TextEncoder().encode(toJsonLine(encodeTeacherTrainingConfig(config)) + "\n")).pipe(
            Effect.mapError((e) => runLogError(savedConfig, e))
          )
          return yield* Console.log(
            `teacher training: ${r.dataset}, ${r.trainImages} images, UNet ${r.parameters.toLocaleString("en-US")} parameters` +
              `${config.conditional ? " (class-conditional)" : ""}; start at step ${r.step}` +
              (r.resumedFrom === undefined ? "" : ` (resumed from ${r.resumedFrom})`)
          )
        }
        if (r.step % every === 0 || r.step === config.steps) {
          yield* Console.log(
            `step ${r.step}/${config.steps}  loss ${fmt(r.loss)}  |∇| ${fmt(r.gradNorm)}  lr ${r.learningRate.toExponential(2)}  ` +
              `${r.imagesPerSecond.toFixed(0)} img/s`
          )
        }
        if (r.checkpoint !== undefined) yield* Console.log(`step ${r.step}: checkpoint ${r.checkpoint}; teacher ${teacherFile}`)
      })
    const services = Layer.mergeAll(MnistDataset.layer({ size: config.resolution }), checkpoints)
    yield* trainTeacher(config, { resume: o.resume, teacherFile }).pipe(
      Stream.runForEach(report),
      Effect.provide(Layer.provideMerge(services, Engine.layer(o.engine)))
    )
    yield* Console.log(`teacher written to ${teacherFile} (use it with: sid distill --teacher ${teacherFile})`)
  }))

const TRAIN_DESCRIPTION =
  "Train the small image UNet denoiser on the MNIST train split with EDM's loss (log-normal σ, λ(σ), Adam, EMA). " +
  "Ctrl-C stops after the current step and writes a final checkpoint and teacher file; --resume continues exactly."

/** `sid teacher train`. */
export const teacherTrainCommand = Command.make("train", teacherTrainOptions, runTeacherTrain).pipe(
  Command.withDescription(TRAIN_DESCRIPTION)
)

const TEACHER_DESCRIPTION = "Teachers for distillation: train one on real images."

/** `sid teacher` and its subcommands. */
export const teacherCommand = Command.make("teacher").pipe(
  Command.withDescription(TEACHER_DESCRIPTION),
  Command.withSubcommands([teacherTrainCommand])
)

/** The help of `sid teacher train`. */
export const teacherTrainHelp: CliNode = {
  path: ["teacher", "train"],
  summary: "train a small image UNet teacher on MNIST with EDM's loss",
  description: TRAIN_DESCRIPTION,
  sections: [
    { title: "Run", flags: docsOf(runFlags) },
    { title: "Settings (the --config file, then these flags)", flags: docsOf(configFlags) }
  ],
  notes: ["The teacher file it writes, <run-dir>/teacher.safetensors, is a teacher for `sid distill --teacher <file>`."]
}

/** The help of `sid teacher`. */
export const teacherHelp: CliNode = {
  path: ["teacher"],
  summary: TEACHER_DESCRIPTION,
  description: TEACHER_DESCRIPTION,
  subcommands: [teacherTrainHelp]
}
