/**
 * Evaluating the one-step generator and, for comparison, the teacher's own Heun sampler (docs/algorithm.md §3, §11, §12.3).
 *
 * Both draw their latents from a fixed seed, so successive evaluations of a run compare like with like. The effectful
 * samplers ({@link sampleHeun}, {@link drawTeacherSamples}, {@link drawGeneratorSamples}) give the event loop a turn
 * between sampler steps and chunks, so an evaluation is interrupted (Ctrl-C) within one step; what they return is
 * owned by the caller's scope, and everything in flight is released on interruption.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, type Scope } from "effect"
import { type Denoiser, heunEvaluations, type HeunOptions, heunSample, heunStep } from "../domain/edm/HeunSampler.js"
import { balancedLabels, fixedLatents } from "../domain/sid/OneStep.js"
import { latentRenoise } from "../domain/sid/FewStep.js"
import { cacheOnHost, runReads } from "./HostReads.js"
import { heunSteps } from "../domain/edm/Schedule.js"
import { yieldToEventLoop } from "../engine/EventLoop.js"
import { Generator, type GeneratorWeights } from "../services/Generator.js"
import { Metrics, type MetricsError, type SampleMetrics } from "../services/Metrics.js"
import { Teacher } from "../services/Teacher.js"

/** The latent convention (`domain/OneStep`): the latents and balanced labels that every sampler draws. */
export { balancedLabels, fixedLatents } from "../domain/sid/OneStep.js"

/** Balanced labels when the network is class-conditional, none otherwise. */
const labelsFor = (labelDim: number, n: number): tf.Tensor2D | undefined =>
  labelDim > 0 ? balancedLabels(n, labelDim) : undefined

/**
 * Samples of the one-step generator (EMA weights by default), generated in chunks; the caller owns the result.
 * A class-conditional generator gets `labels` (one-hot [n, K]) or, when absent, {@link balancedLabels}.
 *
 * @since 0.1.0
 * @category utils
 */
export const generatorSamples = (
  generator: Generator["Type"],
  latents: tf.Tensor,
  weights: GeneratorWeights = "ema",
  chunk = 4096,
  labels?: tf.Tensor2D
): tf.Tensor =>
  tf.tidy(() => {
    const n = latents.shape[0] ?? 0
    const c = labels ?? labelsFor(generator.network.labelDim, n)
    const renoise = renoiseOf(generator, latents)
    const parts: Array<tf.Tensor> = []
    for (let i = 0; i < n; i += chunk) {
      const size = Math.min(chunk, n - i)
      parts.push(
        generator.generate(tf.slice(latents, i, size), weights, c === undefined ? undefined : tf.slice(c, i, size), renoiseRows(renoise, i, size))
      )
    }
    return parts.length === 1 ? parts[0]! : tf.concat(parts, 0)
  })

/**
 * A k-step generator's re-noise for all the latents' rows at once (`latentRenoise`: each row's from its own values),
 * read from the latents before any chunk is sliced from them: on `webgpu` the latents' host values (fresh from
 * `fixedLatents`, or kept by `cacheOnHost`) serve that read, a slice's would not. None for a one-step generator.
 */
const renoiseOf = (generator: Generator["Type"], latents: tf.Tensor): ReadonlyArray<tf.Tensor> | undefined =>
  (generator.steps ?? 1) > 1 ? latentRenoise(latents, generator.steps!) : undefined

const renoiseRows = (renoise: ReadonlyArray<tf.Tensor> | undefined, start: number, size: number) =>
  renoise === undefined ? undefined : { renoise: renoise.map((e) => tf.slice(e, start, size)) }

/**
 * Samples of the teacher's Heun sampler (N steps, 2N − 1 evaluations), in chunks of `chunk` samples; the caller owns
 * the result. A class-conditional teacher gets `labels` or, when absent, {@link balancedLabels}.
 *
 * @since 0.1.0
 * @category utils
 */
export const teacherSamples = (
  teacher: Teacher["Type"],
  latents: tf.Tensor,
  numSteps = 18,
  labels?: tf.Tensor2D,
  chunk = 1024
): tf.Tensor =>
  tf.tidy(() => {
    const n = latents.shape[0] ?? 0
    const c = labels ?? labelsFor(teacher.weights.network.labelDim, n)
    const parts: Array<tf.Tensor> = []
    for (let i = 0; i < n; i += chunk) {
      const size = Math.min(chunk, n - i)
      const ci = c === undefined ? undefined : tf.slice(c, i, size)
      parts.push(tf.tidy(() => heunSample((x, sigma) => teacher.denoise(x, sigma, ci), tf.slice(latents, i, size), { numSteps })))
    }
    return parts.length === 1 ? parts[0]! : tf.concat(parts, 0)
  })

/** Tensors owned by a scope until dropped: whatever is still held when the scope closes is disposed. */
interface Held {
  readonly add: <T extends tf.Tensor>(t: T) => T
  /** Disposes a held tensor now. */
  readonly drop: (t: tf.Tensor | undefined) => void
}

const holdTensors: Effect.Effect<Held, never, Scope.Scope> = Effect.map(
  Effect.acquireRelease(Effect.sync(() => new Set<tf.Tensor>()), (set) => Effect.sync(() => tf.dispose([...set]))),
  (set): Held => ({
    add: (t) => {
      set.add(t)
      return t
    },
    drop: (t) => {
      if (t === undefined) return
      set.delete(t)
      t.dispose()
    }
  })
)

const runHeun = (held: Held, denoise: Denoiser, latents: tf.Tensor, options: HeunOptions) =>
  Effect.gen(function*() {
    const t = heunSteps(options.numSteps ?? 18, options)
    let x = yield* Effect.sync(() => held.add(tf.mul(latents, t[0]!)))
    for (let i = 0; i < t.length - 1; i++) {
      yield* yieldToEventLoop
      const previous = x
      x = yield* Effect.sync(() => held.add(heunStep(denoise, previous, i, t, options)))
      held.drop(previous)
    }
    return x
  })

/**
 * The Heun sampler of `heunSample` (docs/algorithm.md §3) as an Effect: the event loop gets a turn before each step, so an
 * interruption ends it within one step (at most two denoiser evaluations). The samples are owned by the caller's
 * scope; intermediate tensors are released as it goes, and on interruption.
 *
 * @since 0.1.0
 * @category utils
 */
export const sampleHeun = (
  denoise: Denoiser,
  latents: tf.Tensor,
  options: HeunOptions = {}
): Effect.Effect<tf.Tensor, never, Scope.Scope> =>
  Effect.flatMap(holdTensors, (held) => runHeun(held, denoise, latents, options))

/**
 * {@link teacherSamples} as an Effect: chunks of `chunk` samples, each by {@link sampleHeun}'s interruptible steps.
 * The samples are owned by the caller's scope.
 *
 * @since 0.1.0
 * @category utils
 */
export const drawTeacherSamples = (
  teacher: Teacher["Type"],
  latents: tf.Tensor,
  numSteps = 18,
  labels?: tf.Tensor2D,
  chunk = 1024
): Effect.Effect<tf.Tensor, never, Scope.Scope> =>
  Effect.gen(function*() {
    const held = yield* holdTensors
    const n = latents.shape[0] ?? 0
    const c = labels ?? (yield* Effect.sync(() => {
      const made = labelsFor(teacher.weights.network.labelDim, n)
      return made === undefined ? undefined : held.add(made)
    }))
    const parts: Array<tf.Tensor> = []
    for (let i = 0; i < n; i += chunk) {
      const size = Math.min(chunk, n - i)
      const z = yield* Effect.sync(() => held.add(tf.slice(latents, i, size)))
      const ci = c === undefined ? undefined : yield* Effect.sync(() => held.add(tf.slice(c, i, size)))
      parts.push(yield* runHeun(held, (x, sigma) => teacher.denoise(x, sigma, ci), z, { numSteps }))
      held.drop(z)
      held.drop(ci)
    }
    if (labels === undefined) held.drop(c)
    return yield* concatHeld(held, parts)
  })

/**
 * {@link generatorSamples} as an Effect: chunks of `chunk` samples with a turn of the event loop before each, so an
 * interruption ends it within one chunk. The samples are owned by the caller's scope.
 *
 * @since 0.1.0
 * @category utils
 */
export const drawGeneratorSamples = (
  generator: Generator["Type"],
  latents: tf.Tensor,
  weights: GeneratorWeights = "ema",
  chunk = 4096,
  labels?: tf.Tensor2D
): Effect.Effect<tf.Tensor, never, Scope.Scope> =>
  Effect.gen(function*() {
    const held = yield* holdTensors
    const n = latents.shape[0] ?? 0
    const c = labels ?? (yield* Effect.sync(() => {
      const made = labelsFor(generator.network.labelDim, n)
      return made === undefined ? undefined : held.add(made)
    }))
    if ((generator.steps ?? 1) > 1) yield* Effect.promise(() => runReads(cacheOnHost([latents])))
    const renoise = yield* Effect.sync(() => renoiseOf(generator, latents)?.map(held.add))
    const parts: Array<tf.Tensor> = []
    for (let i = 0; i < n; i += chunk) {
      const size = Math.min(chunk, n - i)
      yield* yieldToEventLoop
      parts.push(
        yield* Effect.sync(() =>
          held.add(tf.tidy(() =>
            generator.generate(
              tf.slice(latents, i, size),
              weights,
              c === undefined ? undefined : tf.slice(c, i, size),
              renoiseRows(renoise, i, size)
            )
          ))
        )
      )
    }
    for (const e of renoise ?? []) held.drop(e)
    if (labels === undefined) held.drop(c)
    return yield* concatHeld(held, parts)
  })

const concatHeld = (held: Held, parts: ReadonlyArray<tf.Tensor>): Effect.Effect<tf.Tensor> =>
  parts.length === 1
    ? Effect.succeed(parts[0]!)
    : Effect.sync(() => {
      const all = held.add(tf.concat([...parts], 0))
      for (const p of parts) held.drop(p)
      return all
    })

/** Metrics of samples drawn from fixed latents [n, ...shape]; every tensor is released afterwards. */
const evaluateFromLatents = <E, R>(
  n: number,
  seed: number,
  shape: ReadonlyArray<number>,
  draw: (latents: tf.Tensor) => Effect.Effect<tf.Tensor, E, R | Scope.Scope>
): Effect.Effect<SampleMetrics, MetricsError | E, Metrics | Exclude<R, Scope.Scope>> =>
  Effect.scoped(
    Effect.gen(function*() {
      const metrics = yield* Metrics
      const latents = yield* Effect.acquireRelease(
        Effect.sync(() => fixedLatents(seed, n, shape)),
        (z) => Effect.sync(() => z.dispose())
      )
      return yield* metrics.evaluate(yield* draw(latents))
    })
  )

/**
 * Metrics of `n` generator samples (EMA weights) from latents of a fixed seed; interruptible between chunks.
 *
 * @since 0.1.0
 * @category utils
 */
export const evaluateGenerator = (
  n: number,
  seed: number,
  weights: GeneratorWeights = "ema"
): Effect.Effect<SampleMetrics, MetricsError, Generator | Metrics> =>
  Effect.flatMap(Generator, (generator) =>
    evaluateFromLatents(n, seed, generator.dataShape, (z) => drawGeneratorSamples(generator, z, weights)))

/**
 * Metrics of `n` samples of the teacher's Heun sampler, and its number of denoiser evaluations per sample;
 * interruptible between sampler steps.
 *
 * @since 0.1.0
 * @category utils
 */
export const evaluateTeacher = (
  n: number,
  seed: number,
  numSteps = 18
): Effect.Effect<{ readonly metrics: SampleMetrics; readonly evaluations: number }, MetricsError, Teacher | Metrics> =>
  Effect.flatMap(Teacher, (teacher) =>
    Effect.map(
      evaluateFromLatents(n, seed, teacher.dataShape, (z) => drawTeacherSamples(teacher, z, numSteps)),
      (metrics) => ({ metrics, evaluations: heunEvaluations(numSteps) })
    ))
