import { readFileSync } from "node:fs"
import { Effect, Layer, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { distillConfig } from "../src/domain/config/DistillConfig.js"
import { decodeSafetensors } from "../src/domain/data/Safetensors.js"
import * as CheckpointStore from "../src/services/node/CheckpointStore.js"
import * as Distillation from "../src/layers/node/Distillation.js"
import * as EdmTeacher from "../src/services/node/Teacher.js"
import * as Metrics from "../src/services/node/Metrics.js"
import { distill, StepReport } from "../src/pipeline/Distill.js"
import { DataFreeSampler } from "../src/services/DataFreeSampler.js"
import { Generator } from "../src/services/node/Generator.js"
import { Teacher } from "../src/services/node/Teacher.js"
import { runWithEngine, tf, useEngine } from "./support/distillation.js"

const golden = (name: string) => new URL(`./fixtures/edm/${name}.safetensors`, import.meta.url).pathname

let release: () => Promise<void>
beforeAll(async () => {
  release = await useEngine("wasm")
})
afterAll(() => release())

describe("distilling an EDM teacher (tiny golden SongUNet)", () => {
  it("starts G at the teacher and runs SiD iterations with finite losses, updating θ", async () => {
    const config = distillConfig({ steps: 2, batchSize: 2, evalEvery: 1000, checkpointEvery: 2, generatorLr: 1e-5, fakeLr: 1e-5 })
    const teacher = EdmTeacher.layerEdmFile(golden("songunet-ddpmpp-tiny"))
    const services = Distillation.layer(config, {
      teacher,
      metrics: Metrics.layerUnavailable([16, 16, 3]),
      checkpoints: CheckpointStore.layerMemory
    })
    const before = tf.memory().numTensors
    const result = await runWithEngine(
      Effect.gen(function*() {
        const t = yield* Teacher
        const g = yield* Generator
        expect(t.dataShape).toEqual([16, 16, 3])
        const start = tf.tidy(() => {
          const z = tf.randomNormal([2, 16, 16, 3], 0, 1, "float32", 5)
          const diff = tf.abs(tf.sub(g.generate(z), t.denoise(tf.mul(z, g.sigmaInit), g.sigmaInit))).max()
          return diff.dataSync()[0]!
        })
        const theta0 = Array.from(g.weights.list[0]!.dataSync())
        const reports = Array.from(yield* distill(config, { evaluate: false }).pipe(Stream.runCollect))
        return { start, theta0, theta1: Array.from(g.weights.list[0]!.dataSync()), reports }
      }).pipe(Effect.provide(services))
    )
    expect(result.start).toBe(0)
    const steps = result.reports.filter((r): r is StepReport => r instanceof StepReport)
    expect(steps.map((r) => r.step)).toEqual([1, 2])
    for (const r of steps) {
      expect(Number.isFinite(r.fakeLoss) && Number.isFinite(r.generatorLoss)).toBe(true)
      expect(r.nonFiniteGradients).toBe(0)
    }
    expect(steps.at(-1)!.checkpoint).toBeDefined()
    expect(result.theta1).not.toEqual(result.theta0)
    expect(tf.memory().numTensors).toBe(before)
  }, 120_000)

  it("a file without EDM config metadata is a TeacherError that says how to convert", async () => {
    const bad = await runWithEngine(
      Layer.build(EdmTeacher.layerEdmFile(new URL("../package.json", import.meta.url).pathname)).pipe(Effect.scoped, Effect.flip)
    )
    expect(bad._tag).toBe("TeacherError")
    expect(bad.message).toMatch(/edm_to_safetensors/)
  })

  it("a class-conditional EDM teacher (ADM, label_dim 10) reproduces the reference D with labels and distils into a conditional generator", async () => {
    const path = golden("dhariwalunet-adm-tiny")
    const file = decodeSafetensors(new Uint8Array(readFileSync(path)))
    const input = (name: string) => {
      const a = file.tensors.get(name)!
      return tf.tensor(a.values, [...a.shape])
    }
    const config = distillConfig({ steps: 2, batchSize: 2, evalEvery: 1000, checkpointEvery: 1000, generatorLr: 1e-4, fakeLr: 1e-4 })
    const services = Distillation.layer(config, {
      teacher: EdmTeacher.layerEdmFile(path),
      metrics: Metrics.layerUnavailable([8, 8, 3]),
      checkpoints: CheckpointStore.layerMemory
    })
    const before = tf.memory().numTensors
    const result = await runWithEngine(
      Effect.gen(function*() {
        const t = yield* Teacher
        const g = yield* Generator
        const sampler = yield* DataFreeSampler
        const checks = tf.tidy(() => {
          const x = tf.transpose(input("input.x"), [0, 2, 3, 1])
          const sigma = input("input.sigma").reshape([-1]) as tf.Tensor1D
          const labels = input("input.class_labels") as tf.Tensor2D
          const expected = tf.transpose(input("output.D"), [0, 2, 3, 1])
          const d = t.denoise(x, sigma, labels)
          const rel = tf.norm(tf.sub(d, expected)).div(tf.norm(expected)).dataSync()[0]!
          const unlabelled = tf.norm(tf.sub(t.denoise(x, sigma), expected)).div(tf.norm(expected)).dataSync()[0]!
          const n = x.shape[0]!
          const z = tf.randomNormal(x.shape, 0, 1, "float32", 2)
          const other = tf.oneHot(tf.fill([n], 3, "int32") as tf.Tensor1D, 10).toFloat() as tf.Tensor2D
          const g0 = tf.abs(tf.sub(g.generate(z, "live", labels), t.denoise(tf.mul(z, g.sigmaInit), g.sigmaInit, labels))).max()
          const byLabel = tf.abs(tf.sub(g.generate(z, "live", labels), g.generate(z, "live", other))).max()
          return { rel, unlabelled, g0: g0.dataSync()[0]!, byLabel: byLabel.dataSync()[0]! }
        })
        const draws = sampler.generatorStep(4)
        const drawnLabels = draws.labels?.shape
        tf.dispose(Object.values(draws))
        const reports = Array.from(yield* distill(config, { evaluate: false }).pipe(Stream.runCollect))
        return { ...checks, labelDim: g.network.labelDim, drawnLabels, reports }
      }).pipe(Effect.provide(services))
    )
    expect(result.rel).toBeLessThan(1e-4)
    expect(result.unlabelled).toBeGreaterThan(1e-3)
    expect(result.labelDim).toBe(10)
    expect(result.drawnLabels).toEqual([4, 10])
    expect(result.g0).toBe(0)
    expect(result.byLabel).toBeGreaterThan(1e-5)
    const steps = result.reports.filter((r): r is StepReport => r instanceof StepReport)
    expect(steps.map((r) => r.step)).toEqual([1, 2])
    for (const r of steps) expect(Number.isFinite(r.fakeLoss) && Number.isFinite(r.generatorLoss)).toBe(true)
    expect(tf.memory().numTensors).toBe(before)
  }, 120_000)
})

