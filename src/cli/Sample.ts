/**
 * `sid sample`: samples of a teacher's EDM Heun sampler (spec §1.5: N = 18 steps, 2N − 1 = 35 evaluations by default,
 * with S_churn / S_min / S_max / S_noise) or of a run's distilled one-step generator (EMA weights,
 * x = G_θ(z) = D_θ(σ_init·z; σ_init), spec §3), as a PNG grid and optionally as raw float32 samples (safetensors).
 *
 * @module
 */
import { engineOption } from "./EngineOption.js"
import { Command, Options } from "@effect/cli"
import * as tf from "@tensorflow/tfjs"
import { join } from "node:path"
import { Console, Effect, Option, Schema, type Scope } from "effect"
import { heunEvaluations } from "../domain/HeunSampler.js"
import { denoiseWith, networkFromDescription } from "../domain/Network.js"
import { compareShapes } from "../domain/Parameters.js"
import { normalTensor } from "../domain/RandomStream.js"
import { encodeSafetensors } from "../domain/Safetensors.js"
import { writeFileAtomic } from "../layers/AtomicFile.js"
import * as CheckpointStore from "../layers/CheckpointStore.js"
import * as Engine from "../layers/Engine.js"
import { fromNamedArrays, shapesWithPrefix, toNamedArrays } from "../layers/NamedTensors.js"
import * as TeacherSpec from "../layers/TeacherSpec.js"
import { balancedLabels, fixedLatents, sampleHeun } from "../pipeline/Evaluation.js"
import { imageGrid } from "../report/ImageGrid.js"
import { CheckpointError, CheckpointStore as CheckpointStoreTag } from "../services/CheckpointStore.js"
import { Teacher } from "../services/Teacher.js"

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

/** The options of `sid sample`. */
export const sampleOptions = {
  teacher: Options.text("teacher").pipe(
    Options.withDescription("sample a teacher with the Heun sampler: gmm:<preset>, gmm-dsm:<preset>, edm:<file>, or a teacher file"),
    Options.optional
  ),
  runDir: Options.directory("run-dir").pipe(
    Options.withDescription("sample the EMA one-step generator of the newest checkpoint in <run-dir>/checkpoints"),
    Options.optional
  ),
  steps: Options.integer("steps").pipe(Options.withDefault(18), Options.withDescription("Heun steps N ≥ 2 (2N − 1 evaluations; default 18)")),
  churn: Options.float("churn").pipe(Options.withDefault(0), Options.withDescription("S_churn (default 0: deterministic)")),
  sMin: Options.float("s-min").pipe(Options.withDefault(0), Options.withDescription("S_min (default 0)")),
  sMax: Options.float("s-max").pipe(Options.withDescription("S_max (default ∞)"), Options.optional),
  sNoise: Options.float("s-noise").pipe(Options.withDefault(1), Options.withDescription("S_noise (default 1)")),
  count: Options.integer("count").pipe(Options.withDefault(64), Options.withDescription("number of samples (default 64)")),
  label: Options.integer("class").pipe(
    Options.withDescription("class of every sample, for a class-conditional network (default: classes in turn, 0, 1, …)"),
    Options.optional
  ),
  seed: Options.integer("seed").pipe(Options.withDefault(0), Options.withDescription("seed of the latents and churn noise")),
  columns: Options.integer("columns").pipe(Options.withDescription("images per grid row (default ⌈√count⌉)"), Options.optional),
  out: Options.file("out").pipe(Options.withDefault("samples.png"), Options.withDescription("the PNG grid to write")),
  raw: Options.file("raw").pipe(
    Options.withDescription("also write the samples as float32 tensor `samples` of a safetensors file"),
    Options.optional
  ),
  teacherFitSteps: Options.integer("teacher-fit-steps").pipe(
    Options.withDefault(3000),
    Options.withDescription("steps of the in-process MLP fit for gmm-dsm: teachers")
  ),
  engine: engineOption
} as const

type Parsed = {
  readonly [K in keyof typeof sampleOptions]: (typeof sampleOptions)[K] extends Options.Options<infer A> ? A : never
}

/** Samples and a description of where they came from. */
interface Drawn {
  readonly samples: tf.Tensor
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
 * The labels of a draw: none for an unconditional network (where `--class` is an error), `--class` for every sample,
 * or the classes in turn.
 */
const drawLabels = (labelDim: number, o: Parsed): Effect.Effect<tf.Tensor2D | undefined, SampleArgumentsError> => {
  if (labelDim === 0) {
    return Option.isSome(o.label)
      ? Effect.fail(new SampleArgumentsError({ reason: "--class given, but the network is unconditional (no labels)" }))
      : Effect.succeed(undefined)
  }
  if (Option.isNone(o.label)) return Effect.sync(() => balancedLabels(o.count, labelDim))
  const k = o.label.value
  if (!Number.isInteger(k) || k < 0 || k >= labelDim) {
    return Effect.fail(new SampleArgumentsError({ reason: `--class must be in 0..${labelDim - 1}, got ${k}` }))
  }
  return Effect.sync(() => tf.tidy(() => tf.oneHot(tf.fill([o.count], k, "int32") as tf.Tensor1D, labelDim).toFloat() as tf.Tensor2D))
}

const classNote = (labels: tf.Tensor2D | undefined, o: Parsed): string =>
  labels === undefined ? "" : Option.isSome(o.label) ? `, class ${o.label.value}` : ", classes in turn"

/** A tensor held by the enclosing scope (disposed when it closes). */
const holdTensor = (make: () => tf.Tensor): Effect.Effect<tf.Tensor, never, Scope.Scope> =>
  Effect.acquireRelease(Effect.sync(make), (t) => Effect.sync(() => t.dispose()))

/**
 * Heun-sampler samples of the teacher a `--teacher` argument names (spec §1.5); interruptible between sampler steps.
 * The samples are owned by the caller's scope.
 */
const teacherDraw = (text: string, o: Parsed): Effect.Effect<Drawn, unknown, Scope.Scope> => {
  const spec = TeacherSpec.parseTeacherSpec(text)
  const fitSteps = spec.kind === "gmm" ? 1 : o.teacherFitSteps
  return Effect.gen(function*() {
    const teacher = yield* Teacher
    const labels = yield* Effect.acquireRelease(drawLabels(teacher.weights.network.labelDim, o), (l) => Effect.sync(() => l?.dispose()))
    const latents = yield* holdTensor(() => fixedLatents(o.seed, o.count, teacher.dataShape))
    const samples = yield* sampleHeun((x, sigma) => teacher.denoise(x, sigma, labels), latents, {
      numSteps: o.steps,
      sChurn: o.churn,
      sMin: o.sMin,
      sMax: Option.getOrElse(o.sMax, () => Infinity),
      sNoise: o.sNoise,
      churnNoise: (i) => normalTensor(latents.shape, o.seed, `churn-${i}`)
    })
    return {
      samples,
      source: `teacher ${teacher.name}, Heun sampler: ${o.steps} steps, ${heunEvaluations(o.steps)} evaluations` +
        classNote(labels, o)
    }
  }).pipe(Effect.provide(TeacherSpec.layerFromSpec(spec, { steps: fitSteps, seed: o.seed })))
}

/**
 * The EMA generator of a run's newest checkpoint, checked against the architecture its manifest describes: a missing,
 * unreadable or damaged checkpoint is a {@link CheckpointError} naming the file and the problem.
 */
const checkpointGenerator = (location: string) =>
  Effect.gen(function*() {
    const store = yield* CheckpointStoreTag
    const latest = yield* store.latest
    if (Option.isNone(latest)) {
      return yield* new CheckpointError({ path: store.location, reason: "there is no checkpoint to sample; run `sid distill` first" })
    }
    const { manifest, tensors } = latest.value
    const manifestPath = join(location, manifest.weightsFile.replace(/\.safetensors$/, ".json"))
    const path = join(location, manifest.weightsFile)
    const network = yield* Effect.try({
      try: () => networkFromDescription(manifest.network),
      catch: (e) => new CheckpointError({ path: manifestPath, reason: `its network description is malformed (${errorText(e)})` })
    })
    const m = compareShapes(network.shapes, shapesWithPrefix(tensors, EMA_PREFIX))
    const wrong = [
      ...m.missing.map((n) => `${EMA_PREFIX}${n} missing`),
      ...m.misShaped.map((x) => `${EMA_PREFIX}${x.name} ${JSON.stringify(x.actual)} ≠ ${JSON.stringify(x.expected)}`)
    ]
    if (wrong.length > 0) {
      return yield* new CheckpointError({
        path,
        reason: `its EMA generator's weights do not fit the network its manifest describes (${wrong.length} tensors: ` +
          `${wrong.slice(0, 3).join(", ")}${wrong.length > 3 ? ", …" : ""}); the checkpoint is damaged, sample an intact one`
      })
    }
    const params = yield* Effect.acquireRelease(
      Effect.sync(() => fromNamedArrays(tensors, EMA_PREFIX)),
      (p) => Effect.sync(() => tf.dispose(Object.values(p)))
    )
    return { manifest, network, params, path }
  })

const EMA_PREFIX = "generator.ema."

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split("\n")[0]!

/**
 * One-step samples x = D_θ(σ_init·z; σ_init) of the EMA generator in a run's newest checkpoint (spec §3, §5.1). The
 * samples are owned by the caller's scope; the checkpoint's tensors are released once they are drawn.
 */
const generatorDraw = (runDir: string, o: Parsed): Effect.Effect<Drawn, unknown, Scope.Scope> => {
  const location = join(runDir, "checkpoints")
  const draw = Effect.gen(function*() {
    const { manifest, network, params, path } = yield* checkpointGenerator(location)
    const labels = yield* Effect.acquireRelease(drawLabels(network.labelDim, o), (l) => Effect.sync(() => l?.dispose()))
    const samples = yield* Effect.try({
      try: () =>
        tf.tidy(() => {
          const z = fixedLatents(o.seed, o.count, network.dataShape)
          return denoiseWith(network, params, tf.mul(z, manifest.sigmaInit), manifest.sigmaInit, manifest.sigmaData, labels)
        }),
      catch: (e) => new CheckpointError({ path, reason: `its EMA generator cannot be run (${errorText(e)}); the checkpoint is damaged` })
    })
    return {
      samples,
      source: `EMA generator at step ${manifest.step} of ${runDir}, one step (σ_init = ${manifest.sigmaInit})` +
        classNote(labels, o)
    }
  })
  return Effect.acquireRelease(Effect.scoped(draw), (d) => Effect.sync(() => d.samples.dispose())).pipe(
    Effect.provide(CheckpointStore.layerDirectory(location))
  )
}

const writeOutputs = (drawn: Drawn, o: Parsed): Effect.Effect<void, SampleOutputError> =>
  Effect.gen(function*() {
    const { samples } = drawn
    const write = (path: string, bytes: Uint8Array) =>
      Effect.mapError(writeFileAtomic(path, bytes), (e) => new SampleOutputError({ path, reason: e.message }))
    yield* Console.log(`${o.count} samples [${samples.shape.join(", ")}] from ${drawn.source}`)
    if (Option.isSome(o.raw)) {
      const named = toNamedArrays({ samples })
      yield* write(o.raw.value, encodeSafetensors(named, { source: drawn.source, layout: samples.rank === 4 ? "NHWC" : "ND" }))
      yield* Console.log(`wrote ${o.raw.value} (tensor "samples", float32 [${samples.shape.join(", ")}])`)
    }
    const channels = samples.shape[3]
    if (samples.rank === 4 && (channels === 1 || channels === 3)) {
      const columns = Option.getOrUndefined(o.columns)
      const png = imageGrid(samples as tf.Tensor4D, columns === undefined ? {} : { columns })
      yield* write(o.out, png)
      yield* Console.log(`wrote ${o.out}`)
    } else {
      yield* Console.log(
        `no PNG written: a grid needs image samples [N, H, W, 1 or 3], these are [${samples.shape.join(", ")}]` +
          (Option.isSome(o.raw) ? "" : "; pass --raw <file.safetensors> to keep them")
      )
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
    const draw = Option.isSome(o.teacher) ? teacherDraw(o.teacher.value, o) : generatorDraw(Option.getOrThrow(o.runDir), o)
    yield* Effect.scoped(Effect.flatMap(draw, (d) => writeOutputs(d, o))).pipe(Effect.provide(Engine.layer(o.engine)))
  })

/** `sid sample`. */
export const sampleCommand = Command.make("sample", sampleOptions, runSample).pipe(
  Command.withDescription(
    "Sample a teacher with the EDM Heun sampler (--teacher) or a run's distilled one-step generator (--run-dir); " +
      "writes a PNG grid and optionally the raw samples."
  )
)
