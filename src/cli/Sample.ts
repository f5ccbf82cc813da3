/**
 * `sid sample`: samples of a teacher's EDM Heun sampler (docs/algorithm.md §3: N = 18 steps, 2N − 1 = 35 evaluations by default,
 * with S_churn / S_min / S_max / S_noise) or of a run's distilled one-step generator (EMA weights,
 * x = G_θ(z) = D_θ(σ_init·z; σ_init), docs/algorithm.md §7), as a PNG (a grid of images, or a scatter plot of 2-D points) and
 * optionally as raw float32 samples (safetensors). It never succeeds without writing a file.
 *
 * Generator samples use the latent convention of `domain/OneStep` (`generate(n, seed)`), so `sid sample --seed s`,
 * `loadGenerator` and `sid-ts/browser` give the same samples for the same seed.
 *
 * @module
 */
import { engineFlag } from "./EngineOption.js"
import { cacheOnHost } from "../domain/data/HostReads.js"
import { runReadsEffect } from "../engine/HostReadsEffect.js"
import { Command, type Options } from "@effect/cli"
import * as tf from "@tensorflow/tfjs"
import { join } from "node:path"
import { Console, Effect, Option, Schema } from "effect"
import { heunEvaluations } from "../domain/edm/HeunSampler.js"
import { generatorName } from "../domain/sid/FewStep.js"
import { classLabels, fixedLatents, oneStepGenerator } from "../domain/sid/OneStep.js"
import { normalTensor } from "../domain/data/RandomStream.js"
import { encodeSafetensors } from "../domain/data/Safetensors.js"
import { writeFileAtomic } from "../platform/AtomicFile.js"
import * as CheckpointStore from "../services/node/CheckpointStore.js"
import * as Engine from "../engine/node/Engine.js"
import { checkpointGenerator } from "../services/node/Generator.js"
import { toNamedArrays } from "../domain/data/NamedTensors.js"
import * as TeacherSpec from "../services/node/Teacher.js"
import { sampleHeun } from "../pipeline/Evaluation.js"
import { imageGrid } from "../report/ImageGrid.js"
import { scatterPanels } from "../report/Plots.js"
import { CheckpointError, CheckpointStore as CheckpointStoreTag } from "../services/node/CheckpointStore.js"
import type { Engine as EngineTag } from "../engine/node/Engine.js"
import { Teacher } from "../services/node/Teacher.js"
import { distillPreset } from "../domain/config/DistillConfig.js"
import {
  docsOf,
  integerFlag,
  numberFlag,
  optionalIntegerFlag,
  optionalNumberFlag,
  optionsOf,
  pathFlag,
  textFlag
} from "./Flags.js"
import { generatorStepsFlag } from "./GeneratorStepsOption.js"
import type { CliNode } from "./Help.js"

/** The arguments of `sid sample` do not name exactly one source, or a sampler setting is out of range. */
export class SampleArgumentsError extends Schema.TaggedError<SampleArgumentsError>()("SampleArgumentsError", {
  reason: Schema.String
}) {
  override get message(): string {
    return `sid sample: ${this.reason}`
  }
}

/** Samples could not be written. */
export class SampleOutputError extends Schema.TaggedError<SampleOutputError>()("SampleOutputError", {
  path: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `cannot write ${this.path}: ${this.reason}`
  }
}

const sourceFlags = {
  teacher: textFlag(
    "teacher",
    "sample a teacher with the Heun sampler: gmm:<name>, gmm-dsm:<name>, edm:<file>, or a teacher file",
    { placeholder: "<spec>", default: "none" }
  ),
  runDir: textFlag("run-dir", "sample the EMA one-step generator of the newest checkpoint in <run-dir>/checkpoints", {
    placeholder: "<dir>",
    default: "none"
  }),
  teacherFitSteps: integerFlag(
    "teacher-fit-steps",
    "steps of the in-process MLP fit of a gmm-dsm: teacher",
    distillPreset("lowDimensional").teacherFit!.steps
  ),
  generatorSteps: generatorStepsFlag,
  engine: engineFlag
} as const

const samplerFlags = {
  steps: integerFlag("steps", "Heun steps N (2N − 1 network evaluations)", 18),
  churn: numberFlag("churn", "S_churn (0: deterministic)", 0),
  sMin: numberFlag("s-min", "S_min", 0),
  sMax: optionalNumberFlag("s-max", "S_max", "∞"),
  sNoise: numberFlag("s-noise", "S_noise", 1)
} as const

const outputFlags = {
  count: integerFlag("count", "number of samples", 64),
  label: optionalIntegerFlag("class", "class of every sample, for a class-conditional network", "the classes in turn, 0, 1, …"),
  seed: integerFlag("seed", "seed of the latents and the churn noise", 0),
  columns: optionalIntegerFlag("columns", "images per grid row", "⌈√count⌉"),
  out: pathFlag("out", "<file.png>", "the PNG to write (a grid of images, or a scatter plot of 2-D points)", "samples.png"),
  raw: textFlag("raw", "also write the samples as the float32 tensor `samples` of a safetensors file", {
    placeholder: "<file>",
    default: "none"
  })
} as const

/** The options of `sid sample`. */
export const sampleOptions = optionsOf({ ...sourceFlags, ...samplerFlags, ...outputFlags })

type Parsed = {
  readonly [K in keyof typeof sampleOptions]: (typeof sampleOptions)[K] extends Options.Options<infer A> ? A : never
}

/** Samples, a short title for a plot and a description of where they came from. */
interface Drawn {
  readonly samples: tf.Tensor
  readonly title: string
  readonly source: string
}

const checkSettings = (o: Parsed): Effect.Effect<void, SampleArgumentsError> => {
  const fail = (reason: string) => Effect.fail(new SampleArgumentsError({ reason }))
  if (!Number.isInteger(o.count) || o.count < 1) return fail(`--count must be a positive integer, got ${o.count}`)
  if (!Number.isInteger(o.steps) || o.steps < 2) return fail(`--steps must be an integer ≥ 2, got ${o.steps}`)
  if (o.churn < 0) return fail(`--churn must be ≥ 0, got ${o.churn}`)
  if (o.sNoise < 0) return fail(`--s-noise must be ≥ 0, got ${o.sNoise}`)
  if (Option.isSome(o.columns) && o.columns.value < 1) return fail(`--columns must be ≥ 1, got ${o.columns.value}`)
  return Effect.void
}

/**
 * The class of each sample: none for an unconditional network (where `--class` is an error), `--class` for every
 * sample, or undefined for the classes in turn.
 */
const drawClasses = (labelDim: number, o: Parsed): Effect.Effect<ReadonlyArray<number> | undefined, SampleArgumentsError> => {
  if (Option.isNone(o.label)) return Effect.succeed(undefined)
  if (labelDim === 0) return Effect.fail(new SampleArgumentsError({ reason: "--class given, but the network is unconditional (no labels)" }))
  const k = o.label.value
  if (!Number.isInteger(k) || k < 0 || k >= labelDim) {
    return Effect.fail(new SampleArgumentsError({ reason: `--class must be in 0..${labelDim - 1}, got ${k}` }))
  }
  return Effect.succeed(Array.from({ length: o.count }, () => k))
}

const classNote = (labelDim: number, o: Parsed): string =>
  labelDim === 0 ? "" : Option.isSome(o.label) ? `, class ${o.label.value}` : ", classes in turn"

/** Heun-sampler samples of the teacher a `--teacher` argument names (docs/algorithm.md §3). */
const teacherDraw = (text: string, o: Parsed): Effect.Effect<Drawn, unknown, EngineTag> => {
  const spec = TeacherSpec.parseTeacherSpec(text)
  const fitSteps = spec.kind === "gmm" ? 1 : o.teacherFitSteps
  return Effect.gen(function*() {
    const teacher = yield* Teacher
    const labelDim = teacher.weights.network.labelDim
    const classes = yield* drawClasses(labelDim, o)
    const samples = yield* Effect.scoped(
      Effect.gen(function*() {
        const latents = yield* Effect.acquireRelease(
          Effect.sync(() => fixedLatents(o.seed, o.count, teacher.dataShape)),
          (t) => Effect.sync(() => t.dispose())
        )
        const labels = yield* Effect.acquireRelease(
          Effect.sync(() => classLabels(o.count, labelDim, classes)),
          (t) => Effect.sync(() => t?.dispose())
        )
        const drawn = yield* sampleHeun((x, sigma) => teacher.denoise(x, sigma, labels), latents, {
          numSteps: o.steps,
          sChurn: o.churn,
          sMin: o.sMin,
          sMax: Option.getOrElse(o.sMax, () => Infinity),
          sNoise: o.sNoise,
          churnNoise: (i) => normalTensor(latents.shape, o.seed, `churn-${i}`)
        })
        return drawn.clone()
      })
    )
    return {
      samples,
      title: `teacher, Heun sampler (${heunEvaluations(o.steps)} evaluations)`,
      source: `teacher ${teacher.name}, Heun sampler: ${o.steps} steps, ${heunEvaluations(o.steps)} evaluations` +
        classNote(labelDim, o)
    } satisfies Drawn
  }).pipe(Effect.provide(TeacherSpec.layerFromSpec(spec, { steps: fitSteps, seed: o.seed })))
}

/**
 * One-step samples x = D_θ(σ_init·z; σ_init) of the EMA generator in a run's newest checkpoint (docs/algorithm.md §7, §9.1), drawn
 * as `loadGenerator` and `sid-ts/browser` draw them from the exported file: the same seed gives the same samples.
 */
const generatorDraw = (runDir: string, o: Parsed): Effect.Effect<Drawn, unknown, EngineTag> => {
  const location = join(runDir, "checkpoints")
  return Effect.gen(function*() {
    const store = yield* CheckpointStoreTag
    const latest = yield* store.latest
    if (Option.isNone(latest)) {
      return yield* new CheckpointError({ path: store.location, reason: "there is no checkpoint to sample; run `sid distill` first" })
    }
    const step = latest.value.manifest.step
    return yield* Effect.acquireUseRelease(
      Effect.map(
        checkpointGenerator(latest.value, {
          weights: "ema",
          runDir,
          ...(Option.isSome(o.generatorSteps) ? { generatorSteps: o.generatorSteps.value } : {})
        }).pipe(
          Effect.mapError((e) => new CheckpointError({ ...e, path: join(location, latest.value.manifest.weightsFile) }))
        ),
        oneStepGenerator
      ),
      (generator) =>
        Effect.flatMap(drawClasses(generator.labelDim, o), (classes) =>
          Effect.try({
            try: (): Drawn => ({
              samples: generator.generate(o.count, o.seed, classes),
              title: `${generatorName(generator.generatorSteps)}, step ${step}`,
              source: `EMA generator at step ${step} of ${runDir}, ${
                generator.generatorSteps === 1 ? "one step" : `${generator.generatorSteps} steps`
              } (σ_init = ${generator.sigmaInit})` +
                classNote(generator.labelDim, o)
            }),
            catch: (e) =>
              new CheckpointError({
                path: location,
                reason: `the EMA generator of its step-${step} checkpoint cannot be run (${
                  (e instanceof Error ? e.message : String(e)).split("\n")[0]
                }); the checkpoint is damaged, sample an intact one`
              })
          })),
      (generator) => Effect.sync(() => generator.dispose())
    )
  }).pipe(Effect.provide(CheckpointStore.layerDirectory(location)))
}

/** What a sample set can be drawn as: an image grid, a 2-D scatter plot, or nothing (raw samples only). */
const pictureOf = (samples: tf.Tensor): "grid" | "scatter" | undefined =>
  samples.rank === 4 && (samples.shape[3] === 1 || samples.shape[3] === 3)
    ? "grid"
    : samples.rank === 2 && samples.shape[1] === 2
    ? "scatter"
    : undefined

/** The range of the finite coordinates, widened by a tenth on each side (absent when there is none). */
const paddedDomain = (points: Float32Array): { readonly domain?: readonly [number, number] } => {
  let lo = Infinity
  let hi = -Infinity
  for (const v of points) {
    if (Number.isFinite(v)) {
      lo = Math.min(lo, v)
      hi = Math.max(hi, v)
    }
  }
  if (!(hi > lo)) return {}
  const pad = 0.1 * (hi - lo)
  return { domain: [lo - pad, hi + pad] }
}

const writeOutputs = (drawn: Drawn, o: Parsed): Effect.Effect<void, SampleOutputError> =>
  Effect.gen(function*() {
    const { samples } = drawn
    const shape = `[${samples.shape.join(", ")}]`
    // The outputs read the samples synchronously: from a host copy on an engine that reads asynchronously.
    yield* runReadsEffect(() => cacheOnHost([samples]), (e) => new SampleOutputError({ path: o.out, reason: String(e) }))
    const write = (path: string, bytes: Uint8Array) =>
      Effect.mapError(writeFileAtomic(path, bytes), (e) => new SampleOutputError({ path, reason: e.message }))
    const picture = pictureOf(samples)
    if (picture === undefined && Option.isNone(o.raw)) {
      return yield* new SampleOutputError({
        path: o.out,
        reason: `samples ${shape} are neither images [N, H, W, 1 or 3] nor 2-D points [N, 2], so there is no picture to ` +
          "draw; pass --raw <file.safetensors> to keep them"
      })
    }
    yield* Console.log(`${o.count} samples ${shape} from ${drawn.source}`)
    if (Option.isSome(o.raw)) {
      const named = toNamedArrays({ samples })
      yield* write(o.raw.value, encodeSafetensors(named, { source: drawn.source, layout: samples.rank === 4 ? "NHWC" : "ND" }))
      yield* Console.log(`wrote ${o.raw.value} (tensor "samples", float32 ${shape})`)
    }
    if (picture === "grid") {
      const columns = Option.getOrUndefined(o.columns)
      yield* write(o.out, imageGrid(samples as tf.Tensor4D, columns === undefined ? {} : { columns }))
      yield* Console.log(`wrote ${o.out}`)
    } else if (picture === "scatter") {
      const points = Float32Array.from(samples.dataSync())
      const png = yield* scatterPanels([{ title: drawn.title, points }], {
        width: 480,
        height: 510,
        pointSize: 14,
        opacity: 0.6,
        ...paddedDomain(points)
      }).pipe(
        Effect.mapError((e) => new SampleOutputError({ path: o.out, reason: e.message }))
      )
      yield* write(o.out, png)
      yield* Console.log(`wrote ${o.out} (scatter plot)`)
    } else {
      yield* Console.log(`no PNG written: a picture needs images [N, H, W, 1 or 3] or 2-D points [N, 2], these are ${shape}`)
    }
  })

/** The `sid sample` handler. */
export const runSample = (o: Parsed) =>
  Effect.gen(function*() {
    if (Option.isSome(o.teacher) === Option.isSome(o.runDir)) {
      return yield* new SampleArgumentsError({
        reason: Option.isSome(o.teacher)
          ? "give either --teacher <spec> (the teacher's Heun sampler) or --run-dir <dir> (the distilled generator), not both"
          : "say what to sample: --teacher <spec> (the teacher's Heun sampler) or --run-dir <dir> (the distilled generator)"
      })
    }
    yield* checkSettings(o)
    if (Option.isSome(o.teacher) && Option.isSome(o.generatorSteps)) {
      return yield* new SampleArgumentsError({
        reason: "--generator-steps applies to a distilled generator (--run-dir); the teacher's sampler takes --steps"
      })
    }
    const draw = Option.isSome(o.teacher) ? teacherDraw(o.teacher.value, o) : generatorDraw(Option.getOrThrow(o.runDir), o)
    yield* Effect.acquireUseRelease(draw, (d) => writeOutputs(d, o), (d) => Effect.sync(() => d.samples.dispose())).pipe(
      Effect.provide(Engine.layer(o.engine))
    )
  })

const SAMPLE_DESCRIPTION =
  "Sample a teacher with the EDM Heun sampler (--teacher) or a run's distilled one-step generator (--run-dir); " +
  "writes a PNG grid and optionally the raw samples."

/** `sid sample`. */
export const sampleCommand = Command.make("sample", sampleOptions, runSample).pipe(Command.withDescription(SAMPLE_DESCRIPTION))

/** The help of `sid sample`. */
export const sampleHelp: CliNode = {
  path: ["sample"],
  summary: "sample a teacher (Heun sampler) or a distilled generator",
  description: SAMPLE_DESCRIPTION,
  sections: [
    { title: "What to sample (one of --teacher, --run-dir)", flags: docsOf(sourceFlags) },
    { title: "Heun sampler (--teacher)", flags: docsOf(samplerFlags) },
    { title: "Output", flags: docsOf(outputFlags) }
  ]
}
