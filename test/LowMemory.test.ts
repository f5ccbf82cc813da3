import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Context, Effect, Layer, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { DistillConfig } from "../src/domain/config/DistillConfig.js"
import { sidLoss } from "../src/domain/sid/SidLoss.js"
import { unetNetwork } from "../src/domain/nn/Network.js"
import { adam, sgd } from "../src/domain/optim/Optimizer.js"
import { unetSpec } from "../src/domain/nn/UNet.js"
import * as DataFreeSampler from "../src/services/DataFreeSampler.js"
import * as Distillation from "../src/layers/node/Distillation.js"
import * as FakeScoreLayers from "../src/services/FakeScore.js"
import * as GeneratorLayers from "../src/services/node/Generator.js"
import * as Metrics from "../src/services/node/Metrics.js"
import { distill, StepReport } from "../src/pipeline/Distill.js"
import {
  fakeScoreUpdate,
  generatorUpdate,
  generatorUpdateTwoStage,
  type IterationServices,
  type IterationSettings
} from "../src/pipeline/Iteration.js"
import { FakeScore } from "../src/services/FakeScore.js"
import { Generator } from "../src/services/node/Generator.js"
import { Teacher as TeacherTag } from "../src/services/node/Teacher.js"
import { CheckpointStore, runWithEngine, smallConfig, Teacher, tf, useEngine } from "./support/distillation.js"

const spec = unetSpec([8, 8, 1], { baseChannels: 8, channelMult: [1, 2], groups: 4, labelDim: 3 })
const network = unetNetwork(spec)
let teacherParams: Record<string, tf.Tensor>
let release: () => Promise<void>
let dir: string

beforeAll(async () => {
  release = await useEngine("wasm")
  teacherParams = network.init(11)
  dir = mkdtempSync(join(tmpdir(), "sid-lowmem-"))
})
afterAll(async () => {
  tf.dispose(Object.values(teacherParams))
  rmSync(dir, { recursive: true, force: true })
  await release()
})

const teacherLayer = () => Layer.succeed(TeacherTag, Teacher.fromWeights("tiny-unet", network, teacherParams, 0.5))

const flat = (ts: ReadonlyArray<tf.Tensor>): Float32Array => {
  const parts = ts.map((t) => t.dataSync() as Float32Array)
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

const norm = (v: Float32Array): number => Math.sqrt(v.reduce((a, x) => a + x * x, 0))

describe("two-stage generator update", () => {
  const settings: IterationSettings = { batchSize: 4, fakeLossScale: 1, emaHalfLifeKimg: 500, emaRampupRatio: 0.05 }
  /**
   * θ's change under SGD (lr 1, no momentum: Δθ = −∂L/∂θ) after one fake step (so ψ ≠ φ and the gradient is not 0),
   * with the fused or the two-stage generator update, on identically seeded services.
   */
  const generatorStep = (twoStage: boolean) =>
    runWithEngine(
      Effect.scoped(
        Effect.gen(function*() {
          const ctx = yield* Layer.build(
            Layer.mergeAll(
              GeneratorLayers.layer({ optimizer: sgd({ learningRate: 1, momentum: 0 }) }),
              FakeScoreLayers.layer({ optimizer: adam({ learningRate: 1e-2, beta1: 0, beta2: 0.999, epsilon: 1e-8 }) })
            ).pipe(Layer.provideMerge(teacherLayer()))
          )
          const s: IterationServices = {
            teacher: Context.get(ctx, TeacherTag),
            generator: Context.get(ctx, Generator),
            fakeScore: Context.get(ctx, FakeScore),
            sampler: DataFreeSampler.makeSampler({ seed: 5, dataShape: network.dataShape, labelDim: 3 }),
            loss: sidLoss({ alpha: 1.2, lossScale: 100 })
          }
          fakeScoreUpdate(s, settings)
          const before = flat(s.generator.weights.list)
          const tensors = tf.memory().numTensors
          const r = twoStage ? generatorUpdateTwoStage(s, settings) : generatorUpdate(s, settings)
          const leaked = tf.memory().numTensors - tensors
          const after = flat(s.generator.weights.list)
          return { delta: after.map((a, i) => a - before[i]!), loss: r.loss, dropped: r.dropped, sigma: r.sigma, leaked }
        })
      )
    )

  it("gives the fused update's gradient within float tolerance, loss and draws included, without leaking tensors", async () => {
    const fused = await generatorStep(false)
    const staged = await generatorStep(true)
    expect(norm(fused.delta)).toBeGreaterThan(1e-6)
    const diff = norm(fused.delta.map((d, i) => d - staged.delta[i]!))
    expect(diff / norm(fused.delta)).toBeLessThan(1e-4)
    expect(staged.loss).toBe(fused.loss)
    expect(staged.dropped).toBe(fused.dropped)
    expect(staged.sigma).toEqual(fused.sigma)
    expect(staged.leaked).toBe(0)
    expect(fused.leaked).toBe(0)
  }, 60_000)
})

describe("low-memory distillation", () => {
  const config = (lowMemory: boolean, overrides: Partial<typeof DistillConfig.Encoded> = {}) =>
    smallConfig({ batchSize: 4, steps: 6, emaHalfLifeKimg: 0.01, seed: 3, lowMemory, ...overrides })
  const layers = (c: DistillConfig, store: string) =>
    Distillation.layer(c, {
      teacher: teacherLayer(),
      metrics: Metrics.layerUnavailable(network.dataShape),
      checkpoints: CheckpointStore.layerDirectory(join(dir, store))
    })
  const run = (c: DistillConfig, store: string, options: Parameters<typeof distill>[1] = {}) => {
    const tensors: Array<number> = []
    return runWithEngine(
      Effect.gen(function*() {
        const g = yield* Generator
        const f = yield* FakeScore
        const reports = yield* distill(c, { evaluate: false, ...options }).pipe(
          Stream.tap(() => Effect.sync(() => tensors.push(tf.memory().numTensors))),
          Stream.runCollect
        )
        return {
          reports: Array.from(reports).filter((r): r is StepReport => r instanceof StepReport),
          optimizers: [g.weights.optimizer.name, f.weights.optimizer.name],
          ema: flat(Object.keys(g.ema).sort().map((n) => g.ema[n]!))
        }
      }).pipe(Effect.provide(layers(c, store)))
    ).then((r) => ({ ...r, tensors }))
  }
  const losses = (rs: ReadonlyArray<StepReport>) => rs.map((r) => [r.step, r.fakeLoss, r.generatorLoss, r.generatorGradNorm])

  it("uses host optimiser state and host EMA, and follows a normal run closely", async () => {
    const normal = await run(config(false), "normal")
    const low = await run(config(true), "low")
    expect(low.optimizers.every((n) => n.startsWith("adam-host"))).toBe(true)
    expect(normal.optimizers.every((n) => n.startsWith("adam("))).toBe(true)
    expect(low.reports.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6])
    low.reports.forEach((r, i) => {
      const n = normal.reports[i]!
      expect(Math.abs(r.fakeLoss - n.fakeLoss)).toBeLessThan(1e-3 * Math.abs(n.fakeLoss) + 1e-6)
      expect(Math.abs(r.generatorLoss - n.generatorLoss)).toBeLessThan(1e-3 * Math.abs(n.generatorLoss) + 1e-6)
    })
    const emaDiff = norm(low.ema.map((v, i) => v - normal.ema[i]!))
    expect(emaDiff / norm(normal.ema)).toBeLessThan(1e-4)
  }, 60_000)

  it("resumes bit for bit, and holds no tensors between steps or after release", async () => {
    const start = tf.memory().numTensors
    const whole = await run(config(true), "whole")
    expect(tf.memory().numTensors).toBe(start)
    expect(whole.tensors).toHaveLength(7)
    // The last step writes a checkpoint, which materialises the host θ_ema until the next EMA update or release.
    expect(new Set(whole.tensors.slice(0, -1)).size).toBe(1)
    await run(config(true, { steps: 3 }), "split")
    const resumed = await run(config(true), "split", { resume: true })
    expect(resumed.reports.map((r) => r.step)).toEqual([4, 5, 6])
    expect(losses(resumed.reports)).toEqual(losses(whole.reports.slice(3)))
    expect(resumed.ema).toEqual(whole.ema)
    expect(tf.memory().numTensors).toBe(start)
  }, 60_000)
})
