import { mkdtemp } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sidGeneratorLoss } from "../src/domain/sid/SidLoss.js"
import { stopGradient } from "../src/domain/nn/StopGradient.js"
import * as DataFreeSamplerLayer from "../src/services/DataFreeSampler.js"
import { fakeScoreUpdate, generatorUpdate, type IterationServices } from "../src/pipeline/Iteration.js"
import { iterationServices } from "../src/pipeline/Distill.js"
import { DataFreeSampler } from "../src/services/DataFreeSampler.js"
import { CheckpointStore, runLayers, runWithEngine, smallConfig, Teacher, tf, useEngine, writeSmallTeacher } from "./support/distillation.js"

let release: () => Promise<void>
let teacherFile: string

beforeAll(async () => {
  release = await useEngine("wasm")
  const dir = await mkdtemp(join(tmpdir(), "sid-layers-"))
  teacherFile = join(dir, "teacher.safetensors")
  await writeSmallTeacher(teacherFile)
})
afterAll(() => release())

const config = smallConfig({ seed: 4 })
const withServices = <A>(f: (s: IterationServices) => A): Promise<A> =>
  Effect.runPromise(
    Effect.map(iterationServices, f).pipe(
      Effect.provide(runLayers(config, Teacher.layerFile(teacherFile), CheckpointStore.layerMemory))
    )
  )

const values = (params: Readonly<Record<string, tf.Tensor>>): Record<string, Array<number>> =>
  Object.fromEntries(Object.entries(params).map(([n, t]) => [n, Array.from(t.dataSync())]))

describe("service layers", () => {
  it("release every tensor they own", async () => {
    const before = tf.memory().numTensors
    await withServices((s) => s.generator.network.description.kind)
    expect(tf.memory().numTensors).toBe(before)
  })

  it("start the generator at the teacher: G₀(z) = f_φ(σ_init·z; σ_init), θ_ema = θ, ψ = φ (docs/algorithm.md §6)", async () => {
    await withServices((s) => {
      tf.tidy(() => {
        const z = tf.randomNormal([64, 2], 0, 1, "float32", 1)
        const g = s.generator.generate(z).dataSync()
        const e = s.generator.generate(z, "ema").dataSync()
        const t = s.teacher.denoise(tf.mul(z, s.generator.sigmaInit), s.generator.sigmaInit).dataSync()
        expect(Array.from(g)).toEqual(Array.from(t))
        expect(Array.from(e)).toEqual(Array.from(t))
        const x = tf.randomNormal([16, 2], 0, 1, "float32", 2)
        const sigma = tf.linspace(0.01, 10, 16) as tf.Tensor1D
        expect(Array.from(s.fakeScore.denoise(x, sigma).dataSync())).toEqual(Array.from(s.teacher.denoise(x, sigma).dataSync()))
      })
    })
  })

  it("the fake step updates only ψ; the generator step updates only θ (docs/algorithm.md §9.1)", async () => {
    await withServices((s) => {
      const settings = { batchSize: 64, fakeLossScale: 1, emaHalfLifeKimg: 1, emaRampupRatio: 0.05 }
      const teacher0 = values(s.teacher.weights.params)
      const theta0 = values(s.generator.weights.variables)
      const psi0 = values(s.fakeScore.weights.variables)
      fakeScoreUpdate(s, settings)
      expect(values(s.generator.weights.variables)).toEqual(theta0)
      expect(values(s.fakeScore.weights.variables)).not.toEqual(psi0)
      const psi1 = values(s.fakeScore.weights.variables)
      generatorUpdate(s, settings)
      expect(values(s.fakeScore.weights.variables)).toEqual(psi1)
      expect(values(s.generator.weights.variables)).not.toEqual(theta0)
      expect(values(s.teacher.weights.params)).toEqual(teacher0)
      expect(s.fakeScore.weights.optimizerState().step).toBe(1)
      expect(s.generator.weights.optimizerState().step).toBe(1)
    })
  })

  it("the generator gradient flows through both networks' inputs (it differs from the stop-gradient DMD direction)", async () => {
    await withServices((s) => {
      for (let i = 0; i < 3; i++) fakeScoreUpdate(s, { batchSize: 64, fakeLossScale: 1, emaHalfLifeKimg: 1, emaRampupRatio: 0.05 })
      tf.tidy(() => {
        const z = tf.randomNormal([128, 2], 0, 1, "float32", 3)
        const eps = tf.randomNormal([128, 2], 0, 1, "float32", 4)
        const sigma = tf.linspace(0.05, 5, 128) as tf.Tensor1D
        const gradient = (detach: boolean) =>
          tf.variableGrads(() => {
            const xg = s.generator.generate(z)
            const xt = tf.add(xg, tf.mul(eps, sigma.reshape([-1, 1])))
            const yr = s.teacher.denoise(xt, sigma)
            const yf = s.fakeScore.denoise(xt, sigma)
            return sidGeneratorLoss({
              xg,
              yReal: detach ? stopGradient(yr) : yr,
              yFake: detach ? stopGradient(yf) : yf,
              alpha: 1.2
            }).loss
          }, [...s.generator.weights.list]).grads
        const full = gradient(false)
        const detached = gradient(true)
        const names = Object.keys(full)
        expect(names.length).toBe(s.generator.weights.list.length)
        expect(Object.keys(s.fakeScore.weights.variables).every((n) => !(n in full))).toBe(true)
        const diff = names.reduce((acc, n) => acc + tf.sum(tf.abs(tf.sub(full[n]!, detached[n]!))).dataSync()[0]!, 0)
        const size = names.reduce((acc, n) => acc + tf.sum(tf.abs(full[n]!)).dataSync()[0]!, 0)
        expect(diff / size).toBeGreaterThan(1e-3)
      })
    })
  })

  it("the data-free sampler draws σ from the right schedules and resumes its streams exactly", async () => {
    const sampler = await runWithEngine(
      Effect.provide(DataFreeSampler, DataFreeSamplerLayer.layer({ seed: 9, dataShape: [3, 2], tmax: 800 }))
    )
    const g = sampler.generatorStep(4000)
    const f = sampler.fakeStep(4000)
    expect(g.z.shape).toEqual([4000, 3, 2])
    const gs = g.sigma.dataSync()
    expect(Math.min(...gs)).toBeGreaterThanOrEqual(0.002)
    expect(Math.max(...gs)).toBeLessThanOrEqual(24.4084)
    const logs = Array.from(f.sigma.dataSync()).map(Math.log)
    const mean = logs.reduce((a, b) => a + b, 0) / logs.length
    const sd = Math.sqrt(logs.reduce((a, b) => a + (b - mean) ** 2, 0) / logs.length)
    expect(Math.abs(mean + 1.2)).toBeLessThan(0.1)
    expect(Math.abs(sd - 1.2)).toBeLessThan(0.1)
    const state = sampler.state()
    const next = sampler.generatorStep(5)
    sampler.fakeStep(7)
    sampler.restore(state)
    const again = sampler.generatorStep(5)
    expect(Array.from(again.noise.dataSync())).toEqual(Array.from(next.noise.dataSync()))
    tf.dispose([g.z, g.sigma, g.noise, f.z, f.sigma, f.noise, next.z, next.sigma, next.noise, again.z, again.sigma, again.noise])
  })
})

