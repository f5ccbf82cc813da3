/**
 * `sid distill`: the distillation run as a command.
 *
 * @module
 */
import { engineOption } from "./EngineOption.js"
import { Command, Options } from "@effect/cli"
import { mkdir, readFile, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { Effect, Either, Layer, Option, Schema, Stream } from "effect"
import { decodeDistillConfig, type DistillConfig, encodeDistillConfig } from "../domain/DistillConfig.js"
import { dmdLoss, type GeneratorLoss, l1Loss, l2Loss, sidLoss } from "../domain/GeneratorLoss.js"
import * as CheckpointStore from "../layers/CheckpointStore.js"
import * as Distillation from "../layers/Distillation.js"
import * as DistillationLoss from "../layers/DistillationLoss.js"
import * as Engine from "../layers/Engine.js"
import * as ReferenceSpec from "../layers/ReferenceSpec.js"
import * as TeacherSpec from "../layers/TeacherSpec.js"
import { distill } from "../pipeline/Distill.js"
import { evaluateTeacher } from "../pipeline/Evaluation.js"
import { Metrics as MetricsTag } from "../services/Metrics.js"
import { makeRunArtifacts, plottedValue } from "./RunArtifacts.js"
import { describeEvaluation, makeRunLog, toJsonLine } from "./RunLog.js"

/** A `--config` file could not be read or parsed. */
export class ConfigFileError extends Schema.TaggedError<ConfigFileError>()("ConfigFileError", {
  path: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `--config ${this.path}: cannot read it as JSON (${this.reason}). Pass a JSON object of DistillConfig fields.`
  }
}

const optionalNumber = (name: string, description: string, integer = false) =>
  (integer ? Options.integer(name) : Options.float(name)).pipe(Options.withDescription(description), Options.optional)

/** The options of `sid distill`. */
export const distillOptions = {
  teacher: Options.text("teacher").pipe(
    Options.withDefault("gmm:ring8"),
    Options.withDescription(
      "teacher: gmm:<preset> (exact mixture: ring8, grid25, gauss1d), gmm-dsm:<preset> (an MLP trained in process on " +
        "the mixture's samples) or the path of a teacher file"
    )
  ),
  reference: Options.text("reference").pipe(
    Options.withDefault("auto"),
    Options.withDescription(
      "reference set for metrics: gmm:<preset>, mnist (MNIST-FID, IS, precision/recall in LeNet features), none, or " +
        "auto (default: the teacher's mixture, or MNIST for one-channel 16/28/32-pixel image teachers)"
    )
  ),
  baselineSamples: Options.integer("baseline-samples").pipe(
    Options.withDescription("samples of the teacher's Heun-35 baseline evaluation (default: --eval-samples; 0 skips it)"),
    Options.optional
  ),
  engine: engineOption,
  config: Options.file("config", { exists: "yes" }).pipe(
    Options.withDescription("a JSON file of DistillConfig fields; flags given on the command line override it"),
    Options.optional
  ),
  alpha: optionalNumber("alpha", "α of the SiD loss L² − α·L¹ (default 1.2; spec §4.1)"),
  tmax: optionalNumber("tmax", "upper end of the generator-loss time in thousandths, 0 < tmax ≤ 1000 (default 800)"),
  sigmaInit: optionalNumber("sigma-init", "σ_init of the one-step generator (default 2.5)"),
  lr: optionalNumber("lr", "fake-score learning rate (default 3e-4)"),
  glr: optionalNumber("glr", "generator learning rate (default 3e-4)"),
  batch: optionalNumber("batch", "batch size (default 512)", true),
  steps: optionalNumber("steps", "SiD iterations in total, counting resumed ones (default 20000)", true),
  evalEvery: optionalNumber("eval-every", "evaluate the EMA generator every N iterations (default 1000)", true),
  checkpointEvery: optionalNumber("checkpoint-every", "write a checkpoint every N iterations (default 5000)", true),
  emaHalfLife: optionalNumber("ema-half-life", "EMA half-life in thousands of samples (default 500)"),
  seed: optionalNumber("seed", "random seed (default 0)", true),
  dropout: optionalNumber(
    "dropout",
    "train-mode dropout probability of the generator (generator step) and the fake score (fake step), 0 ≤ p < 1 " +
      "(default: the teacher network's own, e.g. 0.13 for EDM's CIFAR-10 DDPM++, 0 for the built-in networks; spec §5.1)"
  ),
  loss: Options.choice("loss", ["sid", "dmd", "l1", "l2"] as const).pipe(
    Options.withDefault("sid" as const),
    Options.withDescription(
      "generator loss: sid (L² − α·L¹, spec §4.1), dmd (the Diff-Instruct/DMD direction, no network Jacobians, spec " +
        "§4.4), or the l1 / l2 term alone (spec §4.2)"
    )
  ),
  noNormalizer: Options.boolean("no-normalizer").pipe(
    Options.withDescription("drop the per-sample normaliser w = sg(mean|x_g − f_φ|) (w = 1; the ablation of spec §10.3)")
  ),
  evalSamples: Options.integer("eval-samples").pipe(
    Options.withDefault(10_000),
    Options.withDescription("samples per evaluation")
  ),
  teacherFitSteps: Options.integer("teacher-fit-steps").pipe(
    Options.withDefault(3000),
    Options.withDescription("steps of the in-process MLP fit for gmm:/gmm-dsm: teachers")
  ),
  runDir: Options.directory("run-dir").pipe(
    Options.withDefault("runs/distill"),
    Options.withDescription("where the config, the JSONL log and the checkpoints go")
  ),
  resume: Options.boolean("resume").pipe(
    Options.withDescription("continue from the newest checkpoint in <run-dir>/checkpoints (exactly where it stopped)")
  ),
  lowMemory: Options.boolean("low-memory").pipe(
    Options.withDescription(
      "keep Adam's moments and the EMA generator in host memory and run the generator's backward pass in two stages " +
        "(same updates, lower peak engine memory: what EDM's 56M-parameter CIFAR-10 networks need on the wasm engines; " +
        "the generator step costs one more forward of G). Checkpoints are the same, so a run may resume either way"
    )
  )
} as const

type Parsed = {
  readonly [K in keyof typeof distillOptions]: (typeof distillOptions)[K] extends Options.Options<infer A> ? A : never
}

const flagOverrides = (o: Parsed): Record<string, number | boolean> => {
  const pairs: ReadonlyArray<readonly [string, Option.Option<number>]> = [
    ["alpha", o.alpha],
    ["tmax", o.tmax],
    ["sigmaInit", o.sigmaInit],
    ["fakeLr", o.lr],
    ["generatorLr", o.glr],
    ["batchSize", o.batch],
    ["steps", o.steps],
    ["evalEvery", o.evalEvery],
    ["checkpointEvery", o.checkpointEvery],
    ["emaHalfLifeKimg", o.emaHalfLife],
    ["seed", o.seed],
    ["dropout", o.dropout]
  ]
  return {
    ...Object.fromEntries(pairs.flatMap(([k, v]) => (Option.isSome(v) ? [[k, v.value] as const] : []))),
    ...(o.lowMemory ? { lowMemory: true } : {})
  }
}

/** The generator loss a `--loss` choice names, with the config's α and loss scale. */
export const generatorLoss = (name: "sid" | "dmd" | "l1" | "l2", config: DistillConfig, normalize: boolean): GeneratorLoss => {
  const options = { lossScale: config.generatorLossScale, normalize }
  switch (name) {
    case "sid":
      return sidLoss({ ...options, alpha: config.alpha })
    case "dmd":
      return dmdLoss(options)
    case "l1":
      return l1Loss(options)
    case "l2":
      return l2Loss(options)
  }
}

/** The `sid distill` handler. */
export const runDistill = (o: Parsed) =>
  Effect.gen(function*() {
    const fromFile = yield* Option.match(o.config, {
      onNone: () => Effect.succeed({}),
      onSome: (path) =>
        Effect.tryPromise({
          try: async () => JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>,
          catch: (e) => new ConfigFileError({ path, reason: String(e) })
        })
    })
    const config = yield* Either.match(decodeDistillConfig({ ...fromFile, ...flagOverrides(o) }), {
      onLeft: Effect.fail,
      onRight: Effect.succeed
    })
    const spec = TeacherSpec.parseTeacherSpec(o.teacher)
    const reference = yield* ReferenceSpec.parseReferenceSpec(o.reference)
    const metrics = ReferenceSpec.layerFromReference(reference, spec, { name: o.teacher })
    const runDir = o.runDir
    yield* Effect.promise(async () => {
      await mkdir(runDir, { recursive: true })
      await writeFile(join(runDir, "config.json"), toJsonLine(encodeDistillConfig(config)) + "\n")
    })
    const logPath = join(runDir, "log.jsonl")
    const log = yield* makeRunLog({ totalSteps: config.steps, logPath })
    const artifacts = yield* makeRunArtifacts({ runDir, logPath, seed: config.seed + 104_729 })
    const fitEvery = Math.max(1, Math.floor(o.teacherFitSteps / 5))
    const services = Distillation.layer(config, {
      teacher: TeacherSpec.layerFromSpec(spec, {
        steps: o.teacherFitSteps,
        seed: config.seed,
        onProgress: (step, loss) => {
          if (step % fitEvery === 0 || step === o.teacherFitSteps - 1) {
            console.log(`fitting the teacher's network: step ${step + 1}/${o.teacherFitSteps}  loss ${loss.toFixed(4)}`)
          }
        }
      }),
      metrics,
      checkpoints: CheckpointStore.layerDirectory(join(runDir, "checkpoints")),
      loss: DistillationLoss.layer(generatorLoss(o.loss, config, !o.noNormalizer))
    })
    const baselineSamples = Option.getOrElse(o.baselineSamples, () => o.evalSamples)
    const run = Effect.gen(function*() {
      const evaluating = ReferenceSpec.hasReference(yield* MetricsTag)
      if (!evaluating) yield* log.note("no reference set for this teacher: evaluations are skipped (see --reference)", {})
      if (evaluating && !o.resume && baselineSamples > 0) {
        const t = yield* evaluateTeacher(baselineSamples, config.seed + 7919)
        yield* log.note(`teacher, Heun sampler (${t.evaluations} evaluations): ${describeEvaluation(t.metrics)}`, {
          teacherSampler: { evaluations: t.evaluations, samples: baselineSamples, metrics: t.metrics }
        })
        yield* artifacts.setBaseline(plottedValue(t.metrics), t.evaluations)
      }
      yield* distill(config, { resume: o.resume, evaluate: evaluating, evalSamples: o.evalSamples }).pipe(
        Stream.runForEach((r) => Effect.zipRight(log.report(r), artifacts.onReport(r)))
      )
    })
    yield* run.pipe(
      Effect.ensuring(log.close),
      Effect.provide(Layer.provide(services, Engine.layer(o.engine)))
    )
  })

/** `sid distill`. */
export const distillCommand = Command.make("distill", distillOptions, runDistill).pipe(
  Command.withDescription(
    "Distil a teacher into a one-step generator with Score identity Distillation (data-free). Ctrl-C stops after the " +
      "current iteration and writes a final checkpoint; --resume continues exactly where a run stopped."
  )
)
