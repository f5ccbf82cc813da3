import { mkdtemp } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Layer, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { distillConfig } from "../src/domain/config/DistillConfig.js"
import { mlpSpec } from "../src/domain/nn/Mlp.js"
import { mlpNetwork, unetNetwork } from "../src/domain/nn/Network.js"
import { unetSpec } from "../src/domain/nn/UNet.js"
import * as DataFreeSampler from "../src/services/DataFreeSampler.js"
import * as Distillation from "../src/layers/node/Distillation.js"
import * as Metrics from "../src/services/node/Metrics.js"
import { distill, StepReport } from "../src/pipeline/Distill.js"
import { balancedLabels, generatorSamples, teacherSamples } from "../src/pipeline/Evaluation.js"
import type { CheckpointStore as CheckpointStoreTag } from "../src/services/node/CheckpointStore.js"
import { DataFreeSampler as SamplerTag } from "../src/services/DataFreeSampler.js"
import { Generator } from "../src/services/node/Generator.js"
import { Teacher as TeacherTag } from "../src/services/node/Teacher.js"
import { CheckpointStore, runWithEngine, Teacher, tf, useEngine } from "./support/distillation.js"

const CLASSES = 3
const network = unetNetwork(
  unetSpec([8, 8, 1], { baseChannels: 8, channelMult: [1, 2], groups: 4, labelDim: CLASSES, outputScale: 0.5 })
)

let release: () => Promise<void>
let teacherFile: string

beforeAll(async () => {
  release = await useEngine("wasm")
  teacherFile = join(await mkdtemp(join(tmpdir(), "sid-conditional-")), "teacher.safetensors")
  const params = network.init(4)
  await Effect.runPromise(Teacher.writeTeacherFile(teacherFile, network, params, 0.5))
  tf.dispose(Object.values(params))
})
afterAll(() => release())

const oneHot = (n: number, k: number) => tf.oneHot(tf.fill([n], k, "int32") as tf.Tensor1D, CLASSES).toFloat() as tf.Tensor2D

const config = distillConfig({
  steps: 4,
  batchSize: 6,
  checkpointEvery: 2,
  evalEvery: 1000,
  generatorLr: 1e-3,
  fakeLr: 1e-3,
  seed: 5
})

const layers = (store: Layer.Layer<CheckpointStoreTag>) =>
  Distillation.layer(config, {
    teacher: Teacher.layerFile(teacherFile),
    metrics: Metrics.layerUnavailable([8, 8, 1]),
    checkpoints: store
  })

describe("class-conditional networks (docs/algorithm.md §2.3: D(x; σ, c))", () => {
  it("a teacher file keeps the label dimension, and labels change the teacher's, generator's and sampler's outputs", async () => {
    const out = await runWithEngine(
      Effect.gen(function*() {
        const teacher = yield* TeacherTag
        const generator = yield* Generator
        expect(teacher.weights.network.labelDim).toBe(CLASSES)
        return tf.tidy(() => {
          const x = tf.randomNormal([4, 8, 8, 1], 0, 1, "float32", 3)
          const gap = (a: tf.Tensor, b: tf.Tensor) => tf.abs(tf.sub(a, b)).max().dataSync()[0]!
          const denoiseGap = gap(teacher.denoise(x, 1.5, oneHot(4, 0)), teacher.denoise(x, 1.5, oneHot(4, 2)))
          const generateGap = gap(generator.generate(x, "ema", oneHot(4, 0)), generator.generate(x, "ema", oneHot(4, 1)))
          const balanced = generatorSamples(generator, x, "ema")
          const byHand = tf.concat([
            generator.generate(x.slice(0, 1), "ema", oneHot(1, 0)),
            generator.generate(x.slice(1, 1), "ema", oneHot(1, 1)),
            generator.generate(x.slice(2, 1), "ema", oneHot(1, 2)),
            generator.generate(x.slice(3, 1), "ema", oneHot(1, 0))
          ])
          const heunGap = gap(teacherSamples(teacher, x, 3), teacherSamples(teacher, x, 3, oneHot(4, 1)))
          return { denoiseGap, generateGap, balancedGap: gap(balanced, byHand), heunGap }
        })
      }).pipe(Effect.provide(layers(CheckpointStore.layerMemory)))
    )
    expect(out.denoiseGap).toBeGreaterThan(1e-4)
    expect(out.generateGap).toBeGreaterThan(1e-4)
    expect(out.heunGap).toBeGreaterThan(1e-4)
    expect(out.balancedGap).toBeLessThan(1e-5)
  })

  it("the sampler draws one-hot labels uniformly over classes from a stream of its own", () => {
    const sampler = DataFreeSampler.makeSampler({ seed: 2, dataShape: [2], labelDim: CLASSES })
    const draws = sampler.generatorStep(3000)
    const labels = draws.labels!
    expect(labels.shape).toEqual([3000, CLASSES])
    const rowSums = labels.sum(1).dataSync()
    expect(rowSums.every((v) => v === 1)).toBe(true)
    const counts = Array.from(labels.sum(0).dataSync())
    const se = Math.sqrt(3000 * (1 / CLASSES) * (1 - 1 / CLASSES))
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(5 * se)
    expect(Object.keys(sampler.state())).toEqual(expect.arrayContaining(["fake.label", "generator.label"]))
    const unconditional = DataFreeSampler.makeSampler({ seed: 2, dataShape: [2] }).generatorStep(5)
    const conditional = DataFreeSampler.makeSampler({ seed: 2, dataShape: [2], labelDim: CLASSES }).generatorStep(5)
    expect(unconditional.labels).toBeUndefined()
    expect(Array.from(conditional.z.dataSync())).toEqual(Array.from(unconditional.z.dataSync()))
    expect(Array.from(conditional.sigma.dataSync())).toEqual(Array.from(unconditional.sigma.dataSync()))
    tf.dispose([draws.z, draws.sigma, draws.noise, labels, ...Object.values(unconditional), ...Object.values(conditional)])
  })

  it("distils a conditional teacher and resumes bit for bit (label streams included), without leaking tensors", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sid-conditional-run-"))
    const run = (store: string, options: Parameters<typeof distill>[1]) =>
      runWithEngine(
        Effect.gen(function*() {
          const reports = yield* distill(config, options).pipe(Stream.runCollect)
          const sampler = yield* SamplerTag
          return { reports: Array.from(reports).filter((r): r is StepReport => r instanceof StepReport), state: sampler.state() }
        }).pipe(Effect.provide(layers(CheckpointStore.layerDirectory(store))))
      )
    const before = tf.memory().numTensors
    const whole = await run(join(dir, "whole"), { evaluate: false })
    const losses = (rs: ReadonlyArray<StepReport>) => rs.map((r) => [r.step, r.fakeLoss, r.generatorLoss, r.generatorGradNorm])
    expect(whole.reports.map((r) => r.step)).toEqual([1, 2, 3, 4])
    for (const r of whole.reports) expect(Number.isFinite(r.fakeLoss) && Number.isFinite(r.generatorLoss)).toBe(true)
    let done = 0
    const first = await run(join(dir, "split"), {
      evaluate: false,
      shouldStop: Effect.sync(() => done++ >= 2)
    })
    expect(first.reports.map((r) => r.step)).toEqual([1, 2])
    const rest = await run(join(dir, "split"), { evaluate: false, resume: true })
    expect(losses(rest.reports)).toEqual(losses(whole.reports.slice(2)))
    expect(rest.state["generator.label"]).toEqual(whole.state["generator.label"])
    expect(tf.memory().numTensors).toBe(before)
  }, 120_000)

  it("balanced evaluation labels give every class n/K rows; an unconditional network rejects labels", () => {
    const labels = balancedLabels(9, CLASSES)
    expect(Array.from(labels.argMax(1).dataSync())).toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2])
    labels.dispose()
    const mlp = mlpNetwork(mlpSpec(2, { hidden: 8, depth: 1 }))
    const params = mlp.init(0)
    expect(mlp.labelDim).toBe(0)
    expect(() => tf.tidy(() => mlp.apply(params, tf.zeros([2, 2]), tf.zeros([2]), oneHot(2, 0)))).toThrow(/unconditional/)
    tf.dispose(Object.values(params))
  })
})
