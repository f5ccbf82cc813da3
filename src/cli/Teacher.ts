/**
 * `sid teacher train`: trains the small image UNet on MNIST with EDM's loss (docs/algorithm.md §2.4) and writes
 * `<run-dir>/teacher.safetensors` (the EMA weights, a `sid-ts-teacher-v1` teacher file for `sid distill --teacher`),
 * checkpoints under `<run-dir>/checkpoints`, `config.json` and a JSONL log.
 *
 * @module
 */
import { engineOption } from "./EngineOption.js"
import { Command, Options } from "@effect/cli"
import { access, readFile } from "node:fs/promises"
import { join } from "node:path"
import { Console, Effect, Either, Layer, Option, Stream } from "effect"
import { RunSpecMismatch, settingDifferences } from "../domain/config/RunSpec.js"
import { decodeTeacherTrainingConfig, encodeTeacherTrainingConfig, TeacherTrainingConfig } from "../domain/config/TeacherTrainingConfig.js"
import { writeFileAtomic } from "../platform/AtomicFile.js"
import * as Engine from "../engine/Engine.js"
import * as MnistDataset from "../services/Dataset.js"
import { claimRunDirectory, rewindLog } from "../platform/RunDirectory.js"
import * as TeacherCheckpointStore from "../services/TeacherCheckpointStore.js"
import { TeacherStartReport, type TeacherStepReport, trainTeacher } from "../pipeline/TeacherTraining.js"
import { TeacherCheckpointStore as TeacherCheckpointStoreTag } from "../services/TeacherCheckpointStore.js"
import { ConfigFileError } from "./Distill.js"
import { FlagError } from "./Flags.js"
import { appendJsonLine, runLogError, toJsonLine } from "./RunLog.js"

const optionalNumber = (name: string, description: string, integer = false) =>
  (integer ? Options.integer(name) : Options.float(name)).pipe(Options.withDescription(description), Options.optional)

/** The options of `sid teacher train`. */
export const teacherTrainOptions = {
  runDir: Options.directory("run-dir").pipe(
    Options.withDefault("runs/teacher"),
    Options.withDescription("where teacher.safetensors, the checkpoints, config.json and log.jsonl go")
  ),
  config: Options.file("config", { exists: "yes" }).pipe(
    Options.withDescription("a JSON file of TeacherTrainingConfig fields; flags given on the command line override it"),
    Options.optional
  ),
  steps: optionalNumber("steps", "optimiser steps in total, counting resumed ones (default 3000)", true),
  batch: optionalNumber("batch", "images per step (default 32)", true),
  resolution: Options.choice("resolution", ["16", "28", "32"] as const).pipe(
    Options.withDescription("MNIST image side: 16 (downsampled, default), 28 (native) or 32 (padded)"),
    Options.optional
  ),
  conditional: Options.boolean("conditional").pipe(
    Options.withDescription("train a class-conditional UNet (labelDim 10) on one-hot digit labels")
  ),
  lr: optionalNumber("lr", "Adam learning rate after the warm-up (default 2e-3)"),
  lrRampup: optionalNumber("lr-rampup", "linear learning-rate warm-up in thousands of images (default 3.2)"),
  emaHalfLife: optionalNumber("ema-half-life", "EMA half-life in thousands of images (default 10; rampup ratio 0.05)"),
  baseChannels: optionalNumber("base-channels", "UNet base channels (default 32)", true),
  channelMult: Options.text("channel-mult").pipe(
    Options.withDescription("UNet channel multipliers per resolution, comma-separated (default 1,2,2)"),
    Options.optional
  ),
  blocks: optionalNumber("blocks", "residual blocks per resolution (default 1)", true),
  checkpointEvery: optionalNumber("checkpoint-every", "write a checkpoint and the teacher file every N steps (default 500)", true),
  seed: optionalNumber("seed", "random seed (default 0)", true),
  engine: engineOption,
  overwrite: Options.boolean("overwrite").pipe(
    Options.withDescription("start afresh where --run-dir holds a run: the old run is moved aside (never deleted)")
  ),
  resume: Options.boolean("resume").pipe(
    Options.withDescription(
      "continue from the newest checkpoint in <run-dir>/checkpoints, exactly where it stopped (settings default to " +
        "<run-dir>/config.json; only --steps and --checkpoint-every may change)"
    )
  )
} as const

type Parsed = {
  readonly [K in keyof typeof teacherTrainOptions]: (typeof teacherTrainOptions)[K] extends Options.Options<infer A> ? A : never
}

/** The config fields set by flags (left out when a flag is absent). */
export const teacherFlagOverrides = (o: Parsed): Record<string, unknown> => {
  const pairs: ReadonlyArray<readonly [string, Option.Option<unknown>]> = [
    ["steps", o.steps],
    ["batchSize", o.batch],
    ["resolution", Option.map(o.resolution, Number)],
    ["learningRate", o.lr],
    ["learningRateRampupKimg", o.lrRampup],
    ["emaHalfLifeKimg", o.emaHalfLife],
    ["baseChannels", o.baseChannels],
    ["channelMult", Option.map(o.channelMult, (t) => t.split(",").map((s) => (s.trim() === "" ? Number.NaN : Number(s))))],
    ["blocksPerResolution", o.blocks],
    ["checkpointEvery", o.checkpointEvery],
    ["seed", o.seed],
    ["conditional", o.conditional ? Option.some(true) : Option.none()]
  ]
  return Object.fromEntries(pairs.flatMap(([k, v]) => (Option.isSome(v) ? [[k, v.value] as const] : [])))
}

const readJson = (path: string) =>
  Effect.tryPromise({
    try: async () => JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>,
    catch: (e) => new ConfigFileError({ path, reason: String(e) })
  })

const fmt = (x: number): string => (Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4 ? x.toFixed(4) : x.toExponential(2))

/** The flag of each teacher-training setting. */
const TEACHER_FLAGS: Partial<Record<keyof typeof TeacherTrainingConfig.fields, string>> = {
  steps: "steps",
  batchSize: "batch",
  resolution: "resolution",
  learningRate: "lr",
  learningRateRampupKimg: "lr-rampup",
  emaHalfLifeKimg: "ema-half-life",
  baseChannels: "base-channels",
  channelMult: "channel-mult",
  blocksPerResolution: "blocks",
  checkpointEvery: "checkpoint-every",
  seed: "seed",
  conditional: "conditional"
}

/** What a resumed teacher run may change: how long it runs and how often it checkpoints. */
const TEACHER_RUN_ONLY: ReadonlyArray<keyof typeof TeacherTrainingConfig.fields> = ["steps", "checkpointEvery"]

/** The `sid teacher train` handler. */
export const runTeacherTrain = (o: Parsed) =>
  Effect.scoped(Effect.gen(function*() {
    if (o.resume && o.overwrite) {
      return yield* new FlagError({ flag: "overwrite", value: "", rule: "cannot be combined with --resume (choose one)" })
    }
    const savedConfig = join(o.runDir, "config.json")
    const recorded = o.resume && (yield* Effect.promise(() => access(savedConfig).then(() => true, () => false)))
      ? yield* Effect.flatMap(readJson(savedConfig), (json) => decodeTeacherTrainingConfig(json))
      : undefined
    const fromFile = Option.isSome(o.config) ? yield* readJson(o.config.value) : {}
    const config = yield* Either.match(
      decodeTeacherTrainingConfig({ ...(recorded === undefined ? {} : encodeTeacherTrainingConfig(recorded)), ...fromFile, ...teacherFlagOverrides(o) }),
      { onLeft: Effect.fail, onRight: Effect.succeed }
    )
    if (recorded !== undefined) {
      const keys = Object.keys(TeacherTrainingConfig.fields) as Array<keyof typeof TeacherTrainingConfig.fields>
      const differences = settingDifferences(recorded, config, keys, TEACHER_RUN_ONLY, (k) => TEACHER_FLAGS[k])
      if (differences.length > 0) {
        return yield* new RunSpecMismatch({ location: o.runDir, differences, mayChange: "--steps, --checkpoint-every and --engine" })
      }
    }
    const claim = yield* claimRunDirectory(o.runDir, o.resume ? "resume" : o.overwrite ? "overwrite" : "fresh")
    for (const note of claim.notes) yield* Console.log(`run directory: ${note}`)
    const logPath = join(o.runDir, "log.jsonl")
    const teacherFile = join(o.runDir, "teacher.safetensors")
    const checkpoints = TeacherCheckpointStore.layerDirectory(join(o.runDir, "checkpoints"))
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

/** `sid teacher train`. */
export const teacherTrainCommand = Command.make("train", teacherTrainOptions, runTeacherTrain).pipe(
  Command.withDescription(
    "Train the small image UNet denoiser on the MNIST train split with EDM's loss (log-normal σ, λ(σ), Adam, EMA). " +
      "Ctrl-C stops after the current step and writes a final checkpoint and teacher file; --resume continues exactly."
  )
)

/** `sid teacher` and its subcommands. */
export const teacherCommand = Command.make("teacher").pipe(
  Command.withDescription("Teachers for distillation: train one on real images."),
  Command.withSubcommands([teacherTrainCommand])
)
