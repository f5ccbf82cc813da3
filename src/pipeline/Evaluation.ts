/**
 * Evaluating the one-step generator and, for comparison, the teacher's own Heun sampler (spec §1.5, §7, §10.5).
 *
 * Both draw their latents from a fixed seed, so successive evaluations of a run compare like with like.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { heunEvaluations, heunSample } from "../domain/HeunSampler.js"
import { balancedLabels, fixedLatents } from "../domain/OneStep.js"
import { Generator, type GeneratorWeights } from "../services/Generator.js"
import { Metrics, type MetricsError, type SampleMetrics } from "../services/Metrics.js"
import { Teacher } from "../services/Teacher.js"

/** The latent convention (`domain/OneStep`): the latents and balanced labels that every sampler draws. */
export { balancedLabels, fixedLatents } from "../domain/OneStep.js"

/** Balanced labels when the network is class-conditional, none otherwise. */
const labelsFor = (labelDim: number, n: number): tf.Tensor2D | undefined =>
  labelDim > 0 ? balancedLabels(n, labelDim) : undefined

/**
 * Samples of the one-step generator (EMA weights by default), generated in chunks; the caller owns the result.
 * A class-conditional generator gets `labels` (one-hot [n, K]) or, when absent, {@link balancedLabels}.
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
    const parts: Array<tf.Tensor> = []
    for (let i = 0; i < n; i += chunk) {
      const size = Math.min(chunk, n - i)
      parts.push(generator.generate(tf.slice(latents, i, size), weights, c === undefined ? undefined : tf.slice(c, i, size)))
    }
    return parts.length === 1 ? parts[0]! : tf.concat(parts, 0)
  })

/**
 * Samples of the teacher's Heun sampler (N steps, 2N − 1 evaluations), in chunks of `chunk` samples; the caller owns
 * the result. A class-conditional teacher gets `labels` or, when absent, {@link balancedLabels}.
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

/** Metrics of samples drawn from fixed latents [n, ...shape]; the samples are disposed afterwards. */
const evaluateFromLatents = (
  n: number,
  seed: number,
  shape: ReadonlyArray<number>,
  draw: (latents: tf.Tensor) => tf.Tensor
): Effect.Effect<SampleMetrics, MetricsError, Metrics> =>
  Effect.flatMap(Metrics, (metrics) =>
    Effect.acquireUseRelease(
      Effect.sync(() => tf.tidy(() => draw(fixedLatents(seed, n, shape)))),
      metrics.evaluate,
      (x) => Effect.sync(() => x.dispose())
    ))

/** Metrics of `n` generator samples (EMA weights) from latents of a fixed seed. */
export const evaluateGenerator = (
  n: number,
  seed: number,
  weights: GeneratorWeights = "ema"
): Effect.Effect<SampleMetrics, MetricsError, Generator | Metrics> =>
  Effect.flatMap(Generator, (generator) =>
    evaluateFromLatents(n, seed, generator.dataShape, (z) => generatorSamples(generator, z, weights)))

/** Metrics of `n` samples of the teacher's Heun sampler, and its number of denoiser evaluations per sample. */
export const evaluateTeacher = (
  n: number,
  seed: number,
  numSteps = 18
): Effect.Effect<{ readonly metrics: SampleMetrics; readonly evaluations: number }, MetricsError, Teacher | Metrics> =>
  Effect.flatMap(Teacher, (teacher) =>
    Effect.map(
      evaluateFromLatents(n, seed, teacher.dataShape, (z) => teacherSamples(teacher, z, numSteps)),
      (metrics) => ({ metrics, evaluations: heunEvaluations(numSteps) })
    ))
