import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Context, Effect, FastCheck as fc, Layer, Option, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { loadOneStepGenerator } from "../src/browser/OneStepGenerator.js"
import { decodeDistillConfig, type DistillConfig } from "../src/domain/config/DistillConfig.js"
import { decodeGeneratorFile, GeneratorFileError } from "../src/domain/data/GeneratorFile.js"
import { sidLoss } from "../src/domain/sid/SidLoss.js"
import { mlpSpec } from "../src/domain/nn/Mlp.js"
import { denoiseWith, mlpNetwork, type Network, unetNetwork } from "../src/domain/nn/Network.js"
import { fixedLatents } from "../src/domain/sid/OneStep.js"
import { adam } from "../src/domain/optim/Optimizer.js"
import { decodeSafetensors, encodeSafetensors } from "../src/domain/data/Safetensors.js"
import {
  fewStepSample,
  generateWith,
  generatorSigmaLadder,
  latentRenoise,
  MAX_GENERATOR_STEPS,
  stepOptions
} from "../src/domain/sid/FewStep.js"
import { unetSpec } from "../src/domain/nn/UNet.js"
import * as DataFreeSampler from "../src/services/DataFreeSampler.js"
import * as Distillation from "../src/layers/node/Distillation.js"
import * as FakeScoreLayers from "../src/services/FakeScore.js"
import * as GeneratorLayers from "../src/services/node/Generator.js"
import { exportGenerator } from "../src/services/node/Generator.js"
import { readGenerator } from "../src/services/node/Generator.js"
import * as Metrics from "../src/services/node/Metrics.js"
import { distill, StepReport } from "../src/pipeline/Distill.js"
import { iterate, type IterationServices, type IterationSettings } from "../src/pipeline/Iteration.js"
import { CheckpointStore as CheckpointStoreTag } from "../src/services/node/CheckpointStore.js"
import { FakeScore } from "../src/services/FakeScore.js"
import { Generator } from "../src/services/node/Generator.js"
import { Teacher as TeacherTag } from "../src/services/node/Teacher.js"
import { CheckpointStore, runWithEngine, smallConfig, Teacher, tf, useEngine } from "./support/distillation.js"

let release: () => Promise<void>
let dir: string
beforeAll(async () => {
  release = await useEngine("wasm")
  dir = mkdtempSync(join(tmpdir(), "sid-fewstep-"))
})
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true })
  await release()
})

const tinyUNet = () => unetNetwork(unetSpec([8, 8, 1], { baseChannels: 8, channelMult: [1, 2], groups: 4 }))
const values = (t: tf.Tensor): Float32Array => Float32Array.from(t.dataSync())
const bits = (t: tf.Tensor): Uint32Array => new Uint32Array(values(t).buffer)

describe("the σ ladder of k generator steps (docs/few-step.md)", () => {
  it("is σ_init·(k − s)/k: starts at σ_init, strictly decreasing, ends at σ_init/k", () => {
    expect(generatorSigmaLadder(2.5, 1)).toEqual([2.5])
    expect(generatorSigmaLadder(2.5, 2)).toEqual([2.5, 1.25])
    expect(generatorSigmaLadder(2.5, 4)).toEqual([2.5, 1.875, 1.25, 0.625])
    fc.assert(
      fc.property(fc.double({ min: 1e-3, max: 80, noNaN: true }), fc.integer({ min: 1, max: MAX_GENERATOR_STEPS }), (sigma, k) => {
        const ladder = generatorSigmaLadder(sigma, k)
        expect(ladder.length).toBe(k)
        expect(ladder[0]).toBe(sigma)
        for (let s = 1; s < k; s++) expect(ladder[s]!).toBeLessThan(ladder[s - 1]!)
        expect(ladder[k - 1]!).toBeCloseTo(sigma / k, 12)
      })
    )
  })

  it("refuses a k outside 1..4 or a σ_init that is not positive", () => {
    for (const k of [0, 5, 1.5, NaN]) expect(() => generatorSigmaLadder(2.5, k)).toThrow(/integer in 1\.\.4/)
    for (const s of [0, -1, Infinity]) expect(() => generatorSigmaLadder(s, 2)).toThrow(/σ_init/)
  })
})

describe("k-step sampling (docs/few-step.md)", () => {
  it("k = 1 is the one-step generator D(σ_init·z; σ_init), bit for bit (MLP and UNet)", () => {
    for (const network of [mlpNetwork(mlpSpec(2, { hidden: 16, depth: 2 })), tinyUNet()] as ReadonlyArray<Network>) {
      const params = network.init(4)
      const z = fixedLatents(1, 5, network.dataShape)
      const oneStep = tf.tidy(() => denoiseWith(network, params, tf.mul(z, 2.5), 2.5, 0.5))
      const k1 = tf.tidy(() => generateWith(network, params, z, { sigmaInit: 2.5, sigmaData: 0.5, steps: 1 }))
      expect(bits(k1)).toEqual(bits(oneStep))
      tf.dispose([z, oneStep, k1, ...Object.values(params)])
    }
  })

  it("k = 2 is D(D(σ₀z; σ₀) + σ₁ε; σ₁) with σ = (2.5, 1.25), bit for bit", () => {
    const network = tinyUNet()
    const params = network.init(4)
    const z = fixedLatents(2, 3, network.dataShape)
    const eps = fixedLatents(3, 3, network.dataShape)
    const byHand = tf.tidy(() => {
      const x0 = denoiseWith(network, params, tf.mul(z, 2.5), 2.5, 0.5)
      return denoiseWith(network, params, tf.add(x0, tf.mul(eps, 1.25)), 1.25, 0.5)
    })
    const k2 = tf.tidy(() => generateWith(network, params, z, { sigmaInit: 2.5, sigmaData: 0.5, steps: 2 }, undefined, undefined, [eps]))
    expect(bits(k2)).toEqual(bits(byHand))
    expect(() => tf.tidy(() => generateWith(network, params, z, { sigmaInit: 2.5, sigmaData: 0.5, steps: 3 }, undefined, undefined, [eps])))
      .toThrow(/needs 2 re-noise tensors/)
    tf.dispose([z, eps, byHand, k2, ...Object.values(params)])
  })

  it("the gradient flows through every step: for D(x; σ) = a·x, ∂Σx/∂a = 2a·σ₀·Σz + σ₁·Σε at k = 2", () => {
    const z = tf.tensor2d([[0.3, -1.2], [2.0, 0.5]])
    const eps = tf.tensor2d([[1.0, 0.25], [-0.5, 0.75]])
    const a = tf.scalar(0.7)
    const grad = tf.grad((s: tf.Tensor) => tf.sum(fewStepSample((x) => tf.mul(x, s), z, 2.5, 2, [eps])))(a)
    expect(grad.dataSync()[0]!).toBeCloseTo(2 * 0.7 * 2.5 * 1.6 + 1.25 * 1.5, 4)
    const seen: Array<[number, number]> = []
    tf.tidy(() => fewStepSample((x, sigma, step) => (seen.push([sigma, step]), x), z, 2.5, 4, [eps, eps, eps]))
    expect(seen).toEqual([[2.5, 0], [1.875, 1], [1.25, 2], [0.625, 3]])
    tf.dispose([z, eps, a, grad])
  })

  it("train-mode dropout: step 0 keeps the step's masks, each later step gets its own seed", () => {
    const train = { dropout: { rate: 0.1, seed: 7 } }
    expect(stepOptions(train, 0)).toBe(train)
    const seeds = [0, 1, 2, 3].map((s) => stepOptions(train, s)!.dropout!.seed)
    expect(new Set(seeds).size).toBe(4)
    expect(stepOptions(undefined, 2)).toBeUndefined()
  })

  it("a finished generator's re-noise is a function of each latent row: deterministic, batch-independent, standard normal", () => {
    const z = fixedLatents(4, 64, [8, 8, 1])
    expect(latentRenoise(z, 1)).toEqual([])
    const whole = latentRenoise(z, 4)
    expect(whole.length).toBe(3)
    expect(whole.map((e) => e.shape)).toEqual([[64, 8, 8, 1], [64, 8, 8, 1], [64, 8, 8, 1]])
    const again = latentRenoise(z, 4)
    const head = tf.slice(z, 0, 10)
    const part = latentRenoise(head, 4)
    for (let s = 0; s < 3; s++) {
      expect(values(again[s]!)).toEqual(values(whole[s]!))
      expect(values(part[s]!)).toEqual(values(whole[s]!).slice(0, 10 * 64))
    }
    const all = Float64Array.from(whole.flatMap((e) => Array.from(values(e))))
    const mean = all.reduce((a, b) => a + b, 0) / all.length
    const std = Math.sqrt(all.reduce((a, b) => a + (b - mean) ** 2, 0) / all.length)
    expect(Math.abs(mean)).toBeLessThan(0.05)
    expect(Math.abs(std - 1)).toBeLessThan(0.05)
    const zs = values(z)
    const e1 = values(whole[0]!)
    const corr = zs.reduce((a, v, i) => a + v * e1[i]!, 0) / zs.length
    expect(Math.abs(corr)).toBeLessThan(0.05)
    expect(values(whole[0]!)).not.toEqual(values(whole[1]!))
    tf.dispose([z, head, ...whole, ...again, ...part])
  })
})

describe("the sampler's re-noise streams (docs/few-step.md)", () => {
  it("exist only for k > 1, and leave every other stream's draws as they were", () => {
    const base = { seed: 9, dataShape: [4] }
    const one = DataFreeSampler.makeSampler(base)
    const explicit = DataFreeSampler.makeSampler({ ...base, generatorSteps: 1 })
    const three = DataFreeSampler.makeSampler({ ...base, generatorSteps: 3 })
    expect(Object.keys(explicit.state()).sort()).toEqual(Object.keys(one.state()).sort())
    expect(Object.keys(three.state()).filter((k) => !(k in one.state())).sort()).toEqual(["fake.renoise", "generator.renoise"])
    for (const step of ["fakeStep", "generatorStep"] as const) {
      const a = one[step](5)
      const b = three[step](5)
      expect(a.renoise).toBeUndefined()
      expect(b.renoise?.map((e) => e.shape)).toEqual([[5, 4], [5, 4]])
      expect(values(b.renoise![0]!)).not.toEqual(values(b.renoise![1]!))
      for (const k of ["z", "sigma", "noise"] as const) expect(values(b[k])).toEqual(values(a[k]))
      tf.dispose([a.z, a.sigma, a.noise, b.z, b.sigma, b.noise, ...b.renoise!])
    }
  })
})

/** The services of a k-step iteration on a tiny UNet (wasm engine), for `use`. */
const withServices = <A>(steps: number, use: (s: IterationServices) => A) =>
  runWithEngine(
    Effect.scoped(
      Effect.gen(function*() {
        const network = unetNetwork(unetSpec([8, 8, 1], { baseChannels: 4, channelMult: [1, 2], groups: 2 }))
        const params = yield* Effect.acquireRelease(Effect.sync(() => network.init(11)), (p) => Effect.sync(() => tf.dispose(Object.values(p))))
        const optimizer = () => adam({ learningRate: 1e-3, beta1: 0, beta2: 0.999, epsilon: 1e-8 })
        const ctx = yield* Layer.build(
          Layer.mergeAll(GeneratorLayers.layer({ optimizer: optimizer(), steps }), FakeScoreLayers.layer({ optimizer: optimizer() })).pipe(
            Layer.provideMerge(Layer.succeed(TeacherTag, Teacher.fromWeights("tiny", network, params, 0.5)))
          )
        )
        const s: IterationServices = {
          teacher: Context.get(ctx, TeacherTag),
          generator: Context.get(ctx, Generator),
          fakeScore: Context.get(ctx, FakeScore),
          sampler: DataFreeSampler.makeSampler({ seed: 5, dataShape: network.dataShape, generatorSteps: steps }),
          loss: sidLoss({ alpha: 1.2, lossScale: 100 })
        }
        return use(s)
      })
    )
  )

const settings: IterationSettings = { batchSize: 2, fakeLossScale: 1, emaHalfLifeKimg: 0.01, emaRampupRatio: null }

describe("k-step iterations (docs/few-step.md)", () => {
  it("hold no tensors across 100 iterations at k = 2 (fused and two-stage generator update)", async () => {
    const growth = await withServices(2, (s) => {
      iterate(s, settings, 0)
      const start = tf.memory().numTensors
      for (let i = 1; i < 50; i++) iterate(s, settings, i * 2)
      for (let i = 50; i < 100; i++) iterate(s, { ...settings, twoStageGenerator: true }, i * 2)
      return tf.memory().numTensors - start
    })
    expect(growth).toBe(0)
  }, 120_000)

  it("a k-step generator without the sampler's re-noise is refused (the run's streams must supply it)", async () => {
    const message = await withServices(2, (s) => {
      try {
        iterate({ ...s, sampler: DataFreeSampler.makeSampler({ seed: 5, dataShape: s.generator.dataShape }) }, settings, 0)
        return "ran"
      } catch (e) {
        return String(e)
      }
    })
    expect(message).toMatch(/2-step generator needs a sampler that draws its re-noise/)
  }, 60_000)
})

describe("k-step runs (docs/few-step.md)", () => {
  const network = tinyUNet()
  const runIn = (c: DistillConfig, runDir: string, options: Parameters<typeof distill>[1] = {}) =>
    runWithEngine(
      Effect.scoped(
        Effect.gen(function*() {
          const params = yield* Effect.acquireRelease(Effect.sync(() => network.init(11)), (p) => Effect.sync(() => tf.dispose(Object.values(p))))
          return yield* Effect.gen(function*() {
            const reports = yield* distill(c, { evaluate: false, ...options }).pipe(
              Stream.runCollect,
              Effect.map((rs) => Array.from(rs).filter((r): r is StepReport => r instanceof StepReport))
            )
            const g = yield* Generator
            const z = fixedLatents(0, 3, network.dataShape)
            const ema = tf.tidy(() => values(g.generate(z, "ema")))
            z.dispose()
            const checkpoint = Option.getOrThrow(yield* Effect.flatMap(CheckpointStoreTag, (st) => st.latest))
            return { reports, ema, checkpoint }
          }).pipe(
            Effect.provide(
              Distillation.layer(c, {
                teacher: Layer.succeed(TeacherTag, Teacher.fromWeights("tiny", network, params, 0.5)),
                metrics: Metrics.layerUnavailable(network.dataShape),
                checkpoints: CheckpointStore.layerDirectory(join(dir, runDir, "checkpoints"))
              })
            )
          )
        })
      )
    )
  const config = (overrides: Partial<typeof DistillConfig.Encoded> = {}) =>
    smallConfig({ batchSize: 2, steps: 6, emaHalfLifeKimg: 0.01, emaRampupRatio: null, seed: 3, checkpointEvery: 3, ...overrides })
  const losses = (rs: ReadonlyArray<StepReport>) => rs.map((r) => [r.step, r.fakeLoss, r.generatorLoss, r.generatorGradNorm])

  it("resume is bit-exact at k = 2 (the re-noise comes from the run's streams), with dropout and the two-stage update too", async () => {
    for (const [name, overrides] of [
      ["k2", { generatorSteps: 2 }],
      ["k2-dropout-lowmem", { generatorSteps: 2, dropout: 0.1, lowMemory: true }]
    ] as const) {
      const whole = await runIn(config(overrides), `whole-${name}`)
      await runIn(config({ ...overrides, steps: 3 }), `split-${name}`)
      const resumed = await runIn(config(overrides), `split-${name}`, { resume: true })
      expect(resumed.reports.map((r) => r.step)).toEqual([4, 5, 6])
      expect(losses(resumed.reports)).toEqual(losses(whole.reports.slice(3)))
      expect(resumed.ema).toEqual(whole.ema)
    }
    const oneStep = await runIn(config(), "whole-k1")
    expect(losses(oneStep.reports)).not.toEqual(losses((await runIn(config({ generatorSteps: 2 }), "again-k2")).reports))
  }, 180_000)

  it("a resume that changes k is refused, naming --generator-steps", async () => {
    await runIn(config({ generatorSteps: 2, steps: 2 }), "change-k")
    const refused = await runIn(config({ generatorSteps: 1 }), "change-k", { resume: true }).then(() => "ran", (e: unknown) => String(e))
    expect(refused).toMatch(/RunSpecMismatch|generatorSteps|generator-steps/)
    expect(refused).toMatch(/generator-steps/)
  }, 60_000)

  it("export and load with k = 2 give the run's samples in Node (loadGenerator) and through sid-ts/browser", async () => {
    const run = await runIn(config({ generatorSteps: 2, steps: 2 }), "export-k2")
    const file = join(dir, "k2.safetensors")
    const written = await runWithEngine(exportGenerator(run.checkpoint, file))
    expect(written.generatorSteps).toBe(2)
    const bytes = new Uint8Array(readFileSync(file))
    expect(decodeSafetensors(bytes).metadata["generator_steps"]).toBe("2")
    const node = await runWithEngine(
      Effect.map(readGenerator(file), (g) => {
        const out = { steps: g.generatorSteps, samples: tf.tidy(() => values(g.generate(3, 0))) }
        g.dispose()
        return out
      })
    )
    expect(node.steps).toBe(2)
    expect(node.samples).toEqual(run.ema)
    const browser = loadOneStepGenerator(bytes)
    expect(browser.generatorSteps).toBe(2)
    expect(tf.tidy(() => values(browser.generate(3, 0)))).toEqual(run.ema)
    browser.dispose()

    const oneFile = join(dir, "k2-as-1.safetensors")
    await runWithEngine(exportGenerator(run.checkpoint, oneFile, { generatorSteps: 1 }))
    const oneBytes = new Uint8Array(readFileSync(oneFile))
    expect(decodeSafetensors(oneBytes).metadata["generator_steps"]).toBeUndefined()
    const one = loadOneStepGenerator(oneBytes)
    expect(one.generatorSteps).toBe(1)
    expect(tf.tidy(() => values(one.generate(3, 0)))).not.toEqual(run.ema)
    one.dispose()
  }, 60_000)

  it("files without generator_steps load as one-step; a bad value is a corrupt file", () => {
    const network = mlpNetwork(mlpSpec(2, { hidden: 8, depth: 2 }))
    const params = network.init(1)
    const file = (extra: Record<string, string>) =>
      encodeSafetensors(
        Object.entries(params).map(([n, t]) => [n, { dtype: "float32" as const, shape: t.shape, values: values(t) }] as const),
        { format: "sid-ts-generator-v1", sigma_init: "2.5", sigma_data: "0.5", network: JSON.stringify(network.description), ...extra }
      )
    const old = decodeGeneratorFile(file({}))
    expect(old.generatorSteps).toBe(1)
    tf.dispose(Object.values(old.params))
    for (const bad of ["5", "0", "two", "1.5"]) {
      expect(() => decodeGeneratorFile(file({ generator_steps: bad }))).toThrow(GeneratorFileError)
      expect(() => decodeGeneratorFile(file({ generator_steps: bad }))).toThrow(/generator_steps/)
    }
    tf.dispose(Object.values(params))
  })

  it("the config takes k in 1..4 (default 1) and says the rule otherwise", () => {
    expect(smallConfig().generatorSteps).toBe(1)
    expect(smallConfig({ generatorSteps: 4 }).generatorSteps).toBe(4)
    for (const bad of [0, 5, 2.5, "2"]) {
      const r = decodeDistillConfig({ generatorSteps: bad })
      expect(r._tag).toBe("Left")
      if (r._tag === "Left") expect(r.left.message).toMatch(/generatorSteps = .*integer in 1\.\.4/)
    }
  })
})
