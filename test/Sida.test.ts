import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Context, Effect, Either, Exit, Layer, Option, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sidAugmentSettings } from "../src/domain/sid/Augment.js"
import { decodeDistillConfig, type DistillConfig } from "../src/domain/config/DistillConfig.js"
import { dhariwalUNetNetwork, dhariwalUNetSpec } from "../src/domain/edm/DhariwalUNet.js"
import { songUNetNetwork, songUNetSpec } from "../src/domain/edm/SongUNet.js"
import { denoisingLoss } from "../src/domain/edm/DenoisingLoss.js"
import { sidLoss } from "../src/domain/sid/SidLoss.js"
import { mlpSpec } from "../src/domain/nn/Mlp.js"
import {
  denoiseWith,
  denoiseWithLogits,
  discriminatorLogitsWith,
  mlpNetwork,
  type Network,
  unetNetwork
} from "../src/domain/nn/Network.js"
import { adam, adamHost, sgd } from "../src/domain/optim/Optimizer.js"
import {
  adversarialGeneratorLoss,
  bceWithLogits,
  discriminatorLoss,
  sidaFakeScoreLoss,
  sidaGeneratorLoss,
  sidaPhase
} from "../src/domain/sid/SidaLoss.js"
import { unetSpec } from "../src/domain/nn/UNet.js"
import * as DataFreeSampler from "../src/services/DataFreeSampler.js"
import * as Distillation from "../src/layers/node/Distillation.js"
import * as FakeScoreLayers from "../src/services/FakeScore.js"
import * as GeneratorLayers from "../src/services/node/Generator.js"
import * as Metrics from "../src/services/node/Metrics.js"
import * as RealDataLayers from "../src/services/node/RealData.js"
import { makeTrainableWeights } from "../src/services/TrainableWeights.js"
import { distill, StepReport } from "../src/pipeline/Distill.js"
import {
  generatorObjective,
  generatorUpdate,
  iterate,
  type IterationServices,
  type IterationSettings
} from "../src/pipeline/Iteration.js"
import { adversarialSettingsOf } from "../src/pipeline/Sida.js"
import { FakeScore } from "../src/services/FakeScore.js"
import { Generator } from "../src/services/node/Generator.js"
import { RealData, type RealDataShape, SidaSetupError } from "../src/services/node/RealData.js"
import { Teacher as TeacherTag } from "../src/services/node/Teacher.js"
import { fixedLatents } from "../src/domain/sid/OneStep.js"
import { exportGenerator } from "../src/services/node/Generator.js"
import { CheckpointStore, runExitWithEngine, runSyncWithEngine, runWithEngine, smallConfig, Teacher, tf, tinyRun, useEngine } from "./support/distillation.js"

let release: () => Promise<void>
let dir: string
beforeAll(async () => {
  release = await useEngine("wasm")
  dir = mkdtempSync(join(tmpdir(), "sid-sida-"))
})
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true })
  await release()
})

const tinyUNet = (labelDim = 0) =>
  unetNetwork(unetSpec([8, 8, 1], { baseChannels: 8, channelMult: [1, 2], groups: 4, labelDim }))
const maxAbs = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!)
const softplus = (x: number) => Math.log1p(Math.exp(x))
const lambda = (s: number) => (s * s + 0.25) / (0.25 * s * s)

/** A synthetic real dataset of `size` 8×8 one-channel images with values `fill(i)` (classes cycle). */
const fakeRealData = (size: number, classes = 10, fill: (i: number) => number = (i) => Math.sin(i)): RealDataShape => {
  const data = new Float32Array(size * 64)
  for (let i = 0; i < size; i++) for (let k = 0; k < 64; k++) data[i * 64 + k] = Math.max(-1, Math.min(1, fill(i) + 0.1 * Math.cos(k + i)))
  return RealDataLayers.fromDataset({
    name: `synthetic:${size}`,
    imageShape: [8, 8, 1],
    classes,
    train: {
      images: tf.tensor4d(data, [size, 8, 8, 1]),
      labels: tf.tensor1d(Int32Array.from({ length: size }, (_, i) => i % classes), "int32")
    }
  })
}

describe("SiDA's discriminator view of each architecture (docs/algorithm.md §13, docs/sida.md §3)", () => {
  const networks: ReadonlyArray<readonly [Network, ReadonlyArray<number>]> = [
    [tinyUNet(), [2, 4, 4, 1]],
    [songUNetNetwork(songUNetSpec(8, 1, { modelChannels: 16, channelMult: [1, 2], numBlocks: 1, attnResolutions: [4], dropout: 0 })), [2, 4, 4, 1]],
    [dhariwalUNetNetwork(dhariwalUNetSpec(8, 1, { modelChannels: 16, channelMult: [1, 2], numBlocks: 1, attnResolutions: [], dropout: 0 })), [2, 4, 4, 1]],
    [mlpNetwork(mlpSpec(2, { hidden: 16, depth: 4 })), [2, 1]]
  ]
  for (const [network, logitShape] of networks) {
    it(`${network.description.kind}: F with logits is F; the encoder-only logits are the same; D with logits is D`, () => {
      const params = Object.fromEntries(
        Object.entries(network.shapes).map(([name, shape], i) => [name, tf.randomNormal([...shape], 0, 0.2, "float32", i + 1)])
      )
      const x = tf.randomNormal([2, ...network.dataShape], 0, 1, "float32", 3)
      const c = tf.tensor1d([0.2, -0.5])
      const plain = network.apply(params, x, c)
      const both = network.applyWithLogits!(params, x, c)
      const logits = network.applyLogits!(params, x, c)
      expect(maxAbs(plain, both.output)).toBe(0)
      expect(both.logits.shape).toEqual(logitShape)
      expect(maxAbs(both.logits, logits)).toBe(0)
      const sigma = tf.tensor1d([0.7, 3])
      const d = denoiseWith(network, params, x, sigma, 0.5)
      const dl = denoiseWithLogits(network, params, x, sigma, 0.5)
      const l = discriminatorLogitsWith(network, params, x, sigma, 0.5)
      expect(maxAbs(d, dl.denoised)).toBe(0)
      expect(maxAbs(dl.logits, l)).toBe(0)
      tf.dispose([x, c, plain, both.output, both.logits, logits, sigma, d, dl.denoised, dl.logits, l, ...Object.values(params)])
    })
  }

  it("the small UNet with dropout: F with logits keeps F's masks; the encoder-only logits see the same masks", () => {
    const network = unetNetwork(unetSpec([8, 8, 1], { baseChannels: 8, channelMult: [1, 2], groups: 4, dropout: 0.3 }))
    const params = network.init(2)
    const x = tf.randomNormal([2, 8, 8, 1], 0, 1, "float32", 4)
    const c = tf.tensor1d([0.1, 0.3])
    const options = { dropout: { rate: 0.3, seed: 17 } }
    const plain = network.apply(params, x, c, undefined, options)
    const both = network.applyWithLogits!(params, x, c, undefined, options)
    const encoder = network.applyLogits!(params, x, c, undefined, options)
    const evalMode = network.applyLogits!(params, x, c)
    expect(maxAbs(plain, both.output)).toBe(0)
    expect(maxAbs(encoder, both.logits)).toBe(0)
    expect(maxAbs(encoder, evalMode)).toBeGreaterThan(0)
    tf.dispose([x, c, plain, both.output, both.logits, encoder, evalMode, ...Object.values(params)])
  })
})

describe("SiDA losses on a hand-computed case (docs/algorithm.md §13)", () => {
  it("BCE with logits: softplus(∓l), averaged over kept rows and positions", () => {
    const l = tf.tensor4d([0, 2, -1, 3, 5, NaN, 1, 1], [2, 2, 2, 1])
    const one = bceWithLogits(l.slice(0, 1), 1).dataSync()[0]!
    expect(one).toBeCloseTo((softplus(0) + softplus(-2) + softplus(1) + softplus(-3)) / 4, 6)
    const zero = bceWithLogits(l.slice(0, 1), 0).dataSync()[0]!
    expect(zero).toBeCloseTo((softplus(0) + softplus(2) + softplus(-1) + softplus(3)) / 4, 6)
    const kept = bceWithLogits(l, 1, tf.tensor1d([true, false], "bool")).dataSync()[0]!
    expect(kept).toBeCloseTo(one, 6)
    l.dispose()
  })

  it("discriminator loss: Σ λ(σ_i)·(BCE_real + BCE_fake)/2 · lsd / B, NaN rows dropped from both", () => {
    const real = tf.tensor4d([1, -1, 0.5, 2, NaN, 0], [3, 1, 2, 1])
    const fake = tf.tensor4d([-2, 0, 1, 1, 0.3, -0.3], [3, 1, 2, 1])
    const sigma = tf.tensor1d([0.5, 2, 1])
    const r = discriminatorLoss({ realLogits: real, fakeLogits: fake, sigma, lossScale: 2, batchSize: 4 })
    const bceReal = (softplus(-1) + softplus(1) + softplus(-0.5) + softplus(-2)) / 4
    const bceFake = (softplus(-2) + softplus(0) + softplus(1) + softplus(1)) / 4
    expect(r.bceReal.dataSync()[0]).toBeCloseTo(bceReal, 6)
    expect(r.bceFake.dataSync()[0]).toBeCloseTo(bceFake, 6)
    expect(lambda(0.5)).toBe(8)
    expect(r.loss.dataSync()[0]).toBeCloseTo((lambda(0.5) + lambda(2)) * ((bceReal + bceFake) / 2) * 2 / 4, 5)
    tf.dispose([real, fake, sigma, r.loss, r.bceReal, r.bceFake])
  })

  it("the generator's adversarial term: C·H·W·BCE(clamp(l), 1)/w per row × lsg_gan / B; no gradient beyond the clamp or through w", () => {
    const xg = tf.tensor4d([1, 0, 0, 1, 0.5, 0.5, 0.5, 0.5], [2, 2, 2, 1])
    const yReal = tf.tensor4d([0, 0, 0, 0, 0.5, 0.5, 0.5, 0.3], [2, 2, 2, 1])
    const logits = tf.tensor4d([15, 1], [2, 1, 1, 1])
    const w = [0.5, 0.05]
    const bce = (softplus(-10) + softplus(-1)) / 2
    const r = adversarialGeneratorLoss({ xg, yReal, fakeLogits: logits, lossScale: 0.01, batchSize: 2 })
    r.perRow.dataSync().forEach((v, i) => expect(v).toBeCloseTo(4 * bce / w[i]!, 4))
    expect(r.loss.dataSync()[0]).toBeCloseTo((4 * bce / w[0]! + 4 * bce / w[1]!) * 0.01 / 2, 6)
    const g = tf.grads((l: tf.Tensor, y: tf.Tensor) =>
      adversarialGeneratorLoss({ xg, yReal: y, fakeLogits: l, lossScale: 0.01, batchSize: 2 }).loss
    )([logits, yReal])
    const gl = g[0]!.dataSync()
    expect(gl[0]).toBe(0)
    expect(gl[1]).toBeCloseTo(-(1 / (1 + Math.exp(1))) / 2 * 4 * (1 / w[0]! + 1 / w[1]!) * 0.01 / 2, 6)
    expect(Array.from(g[1]!.dataSync()).every((v) => v === 0)).toBe(true)
    tf.dispose([xg, yReal, logits, r.loss, r.perRow, ...g])
  })

  it("the warm-up switches: G frozen while images seen ≤ its warm-up, then SiD alone, then ½ SiD + ½ adversarial; 0 is no warm-up", () => {
    const schedule = { generatorWarmupImages: 100_000, adversarialWarmupImages: 200_000 }
    expect(sidaPhase(0, schedule)).toEqual({ updateGenerator: false, adversarial: false, sidWeight: 1, adversarialWeight: 0 })
    expect(sidaPhase(100_000, schedule).updateGenerator).toBe(false)
    expect(sidaPhase(100_001, schedule)).toEqual({ updateGenerator: true, adversarial: false, sidWeight: 1, adversarialWeight: 0 })
    expect(sidaPhase(200_000, schedule).adversarial).toBe(false)
    expect(sidaPhase(200_001, schedule)).toEqual({ updateGenerator: true, adversarial: true, sidWeight: 0.5, adversarialWeight: 0.5 })
    expect(sidaPhase(0, { generatorWarmupImages: 0, adversarialWarmupImages: 0 })).toEqual({
      updateGenerator: true,
      adversarial: true,
      sidWeight: 0.5,
      adversarialWeight: 0.5
    })
    const config = smallConfig({ adversarial: true, data: "mnist", generatorWarmupKimg: 0.5, adversarialWarmupKimg: 2 })
    expect(adversarialSettingsOf(config)?.schedule).toEqual({ generatorWarmupImages: 500, adversarialWarmupImages: 2000 })
  })

  it("the composite generator loss is the SiD loss alone before the adversarial phase and ½·SiD + ½·adversarial in it", () => {
    const xg = tf.randomNormal([3, 4], 0, 1, "float32", 1)
    const yReal = tf.randomNormal([3, 4], 0, 1, "float32", 2)
    const yFake = tf.randomNormal([3, 4], 0, 1, "float32", 3)
    const fakeLogits = tf.randomNormal([3, 1], 0, 1, "float32", 4)
    const base = sidLoss({ alpha: 1.2, lossScale: 100 })
    const b = base.compute({ xg, yReal, yFake })
    const before = sidaGeneratorLoss(base, { sidWeight: 1, adversarialWeight: 0 }).compute({ xg, yReal, yFake })
    expect(before.loss.dataSync()[0]).toBe(b.loss.dataSync()[0])
    const during = sidaGeneratorLoss(base, { sidWeight: 0.5, adversarialWeight: 0.5, lossScale: 0.01 }).compute({ xg, yReal, yFake, fakeLogits })
    const gan = adversarialGeneratorLoss({ xg, yReal, fakeLogits, lossScale: 0.01 })
    expect(during.loss.dataSync()[0]).toBeCloseTo(0.5 * b.loss.dataSync()[0]! + 0.5 * gan.loss.dataSync()[0]!, 4)
    expect(during.terms?.["adversarial"]?.dataSync()[0]).toBeCloseTo(0.5 * gan.loss.dataSync()[0]!, 6)
    expect(() => sidaGeneratorLoss(base, { sidWeight: 0.5, adversarialWeight: 0.5 }).compute({ xg, yReal, yFake })).toThrow(/logits/)
    tf.dispose([xg, yReal, yFake, fakeLogits, b.loss, b.perRow, b.mask, before.loss, before.perRow, before.mask, during.loss, during.perRow, during.mask, gan.loss, gan.perRow, ...Object.values(during.terms ?? {}), ...Object.values(before.terms ?? {})])
  })

  it("with lsd = 0 the discriminator path leaves the DSM part of ψ's gradient unchanged (and lsd > 0 changes it)", () => {
    const network = tinyUNet()
    const init = network.init(5)
    const vars = Object.fromEntries(Object.entries(init).map(([n, t]) => [n, tf.variable(t, true, `sida-lsd/${n}`)]))
    const y = tf.randomNormal([3, 8, 8, 1], 0, 0.5, "float32", 6)
    const real = tf.randomNormal([3, 8, 8, 1], 0, 0.5, "float32", 7)
    const noise = tf.randomNormal([3, 8, 8, 1], 0, 1, "float32", 8)
    const sigma = tf.tensor1d([0.3, 1, 4])
    const xt = tf.tidy(() => tf.add(y, tf.mul(noise, sigma.reshape([3, 1, 1, 1]))))
    const rt = tf.tidy(() => tf.add(real, tf.mul(noise, sigma.reshape([3, 1, 1, 1]))))
    const list = Object.values(vars)
    const dsm = tf.variableGrads(() =>
      denoisingLoss({ y, yHat: denoiseWith(network, vars, xt, sigma, 0.5), sigma, batchSize: 3 }).loss, list
    )
    const withD = (lsd: number) =>
      tf.variableGrads(() => {
        const pass = denoiseWithLogits(network, vars, xt, sigma, 0.5)
        return sidaFakeScoreLoss({
          y,
          yHat: pass.denoised,
          fakeLogits: pass.logits,
          realLogits: discriminatorLogitsWith(network, vars, rt, sigma, 0.5),
          sigma,
          discriminatorScale: lsd,
          batchSize: 3
        }).loss
      }, list)
    const zero = withD(0)
    const one = withD(1)
    let changed = 0
    for (const name of Object.keys(dsm.grads)) {
      expect(maxAbs(dsm.grads[name]!, zero.grads[name]!)).toBe(0)
      changed = Math.max(changed, maxAbs(dsm.grads[name]!, one.grads[name]!))
    }
    expect(zero.value.dataSync()[0]).toBe(dsm.value.dataSync()[0])
    expect(changed).toBeGreaterThan(0)
    tf.dispose([y, real, noise, sigma, xt, rt, dsm.value, zero.value, one.value, ...Object.values(dsm.grads), ...Object.values(zero.grads), ...Object.values(one.grads), ...list, ...Object.values(init)])
  })
})

describe("ψ's gradient clip by value (SiDA, docs/algorithm.md §13)", () => {
  it("clips every sanitised entry to [−1, 1], the same in engine and host optimiser state; statistics are of the raw gradient", () => {
    const run = (optimizer: ReturnType<typeof adam>) =>
      runSyncWithEngine(
        Effect.scoped(
          Effect.gen(function*() {
            const initial = { a: tf.tensor1d([0, 0, 0, 0, 0]) }
            const w = yield* makeTrainableWeights(initial, optimizer)
            const g = tf.tensor1d([3, -0.5, NaN, -Infinity, 0.25])
            const stats = w.applyGradients({ [w.list[0]!.name]: g }, { clipValue: 1 })
            const value = Array.from(w.variables["a"]!.dataSync())
            tf.dispose([g, initial.a])
            return { stats, value }
          })
        )
      )
    const sgdEngine = run(sgd({ learningRate: 1, momentum: 0 }))
    expect(sgdEngine.value).toEqual([-1, 0.5, 0, 1, -0.25])
    expect(sgdEngine.stats.nonFinite).toBe(2)
    const engine = run(adam({ learningRate: 0.1, beta1: 0, beta2: 0.999, epsilon: 1e-8 }))
    const host = run(adamHost({ learningRate: 0.1, beta1: 0, beta2: 0.999, epsilon: 1e-8 }))
    expect(host.value).toEqual(engine.value)
  })
})

/** Iteration services on a tiny network, with calls to G and ψ recorded. */
const sidaServices = (
  network: Network,
  realData: RealDataShape,
  options: { readonly augment?: boolean; readonly generatorOptimizer?: ReturnType<typeof sgd> } = {}
) =>
  Effect.gen(function*() {
    const params = yield* Effect.acquireRelease(
      Effect.sync(() => network.init(11)),
      (p) => Effect.sync(() => tf.dispose(Object.values(p)))
    )
    const ctx = yield* Layer.build(
      Layer.mergeAll(
        GeneratorLayers.layer({ optimizer: options.generatorOptimizer ?? adam({ learningRate: 1e-3, beta1: 0, beta2: 0.999, epsilon: 1e-8 }) }),
        FakeScoreLayers.layer({ optimizer: adam({ learningRate: 1e-3, beta1: 0, beta2: 0.999, epsilon: 1e-8 }) })
      ).pipe(Layer.provideMerge(Layer.succeed(TeacherTag, Teacher.fromWeights("tiny", network, params, 0.5))))
    )
    const generated: Array<Float32Array> = []
    const realSeen: Array<Float32Array> = []
    const generator = Context.get(ctx, Generator)
    const fakeScore = Context.get(ctx, FakeScore)
    const s: IterationServices = {
      teacher: Context.get(ctx, TeacherTag),
      generator: {
        ...generator,
        generate: (z, which, labels, o) => {
          generated.push(Float32Array.from(z.dataSync()))
          return generator.generate(z, which, labels, o)
        }
      },
      fakeScore: {
        ...fakeScore,
        logits: (x, sigma, labels, o) => {
          realSeen.push(Float32Array.from(x.dataSync()))
          return fakeScore.logits!(x, sigma, labels, o)
        }
      },
      sampler: DataFreeSampler.makeSampler({
        seed: 5,
        dataShape: network.dataShape,
        labelDim: network.labelDim,
        realData: true,
        ...(options.augment === true ? { augment: sidAugmentSettings(0.5) } : {})
      }),
      loss: sidLoss({ alpha: 1.2, lossScale: 100 }),
      realData
    }
    return { s, generated, realSeen }
  })

const sidaSettings = (overrides: Partial<IterationSettings> = {}, generatorWarmupImages = 4, adversarialWarmupImages = 8): IterationSettings => ({
  batchSize: 2,
  fakeLossScale: 1,
  emaHalfLifeKimg: 500,
  emaRampupRatio: 0.05,
  adversarial: {
    discriminatorScale: 1,
    generatorScale: 0.01,
    schedule: { generatorWarmupImages, adversarialWarmupImages }
  },
  ...overrides
})

describe("SiDA in the iteration (docs/algorithm.md §13)", () => {
  it("G is frozen during its warm-up; then it learns from SiD alone (no adversarial gradient) until the adversarial phase", async () => {
    const r = await runWithEngine(
      Effect.scoped(
        Effect.gen(function*() {
          const real = fakeRealData(16)
          const out: Record<string, unknown> = {}
          const { s } = yield* sidaServices(tinyUNet(), real, { generatorOptimizer: sgd({ learningRate: 1, momentum: 0 }) })
          const snapshot = () => s.generator.weights.list.map((w) => Array.from(w.dataSync()))
          const before = snapshot()
          const frozen = iterate(s, sidaSettings(), 4)
          out["frozen"] = frozen.generatorFrozen
          out["unchanged"] = JSON.stringify(snapshot()) === JSON.stringify(before)
          out["optimizerSteps"] = s.generator.weights.optimizerState().step
          out["discriminator"] = frozen.discriminatorLoss
          const objective = generatorObjective(s, sidaSettings(), 5)!
          out["logits"] = objective.logits
          const w0 = snapshot()
          generatorUpdate(s, sidaSettings(), objective)
          const moved = snapshot().flat().map((v, i) => v - w0.flat()[i]!)
          return { out, moved }
        })
      )
    )
    expect(r.out["frozen"]).toBe(true)
    expect(r.out["unchanged"]).toBe(true)
    expect(r.out["optimizerSteps"]).toBe(0)
    expect(r.out["discriminator"]).toBeGreaterThan(0)
    expect(r.out["logits"]).toBe(false)
    expect(Math.max(...r.moved.map(Math.abs))).toBeGreaterThan(0)
  }, 60_000)

  it("before the adversarial phase the generator's update is plain SiD's, bit for bit; in it, it differs", async () => {
    const updates = await runWithEngine(
      Effect.scoped(
        Effect.gen(function*() {
          const real = fakeRealData(16)
          const run = function*(imagesSeen: number | undefined) {
            const { s } = yield* sidaServices(tinyUNet(), real, { generatorOptimizer: sgd({ learningRate: 1, momentum: 0 }) })
            const w0 = s.generator.weights.list.map((w) => Array.from(w.dataSync()))
            const objective = imagesSeen === undefined ? undefined : generatorObjective(s, sidaSettings(), imagesSeen)
            generatorUpdate(s, sidaSettings(), objective)
            return s.generator.weights.list.flatMap((w, i) => Array.from(w.dataSync(), (v, j) => v - w0[i]![j]!))
          }
          return { plain: yield* run(undefined), between: yield* run(6), adversarial: yield* run(10) }
        })
      )
    )
    expect(updates.between).toEqual(updates.plain)
    expect(updates.adversarial).not.toEqual(updates.plain)
  }, 60_000)

  it("real images reach only ψ's discriminator: G's inputs are the sampler's latents; ψ's logits see the real rows noised", async () => {
    const r = await runWithEngine(
      Effect.scoped(
        Effect.gen(function*() {
          const real = fakeRealData(16, 10, () => 0.75)
          const { s, generated, realSeen } = yield* sidaServices(tinyUNet(), real, { augment: false })
          for (let i = 0; i < 6; i++) iterate(s, sidaSettings({}, 0, 0), i * 2)
          const replay = DataFreeSampler.makeSampler({ seed: 5, dataShape: [8, 8, 1], realData: true })
          const expected: Array<Float32Array> = []
          for (let i = 0; i < 6; i++) {
            const f = replay.fakeStep(2)
            const g = replay.generatorStep(2)
            expected.push(Float32Array.from(f.z.dataSync()), Float32Array.from(g.z.dataSync()))
            tf.dispose([f.z, f.sigma, f.noise, g.z, g.sigma, g.noise])
          }
          return { generated, expected, realSeen }
        })
      )
    )
    expect(r.generated).toEqual(r.expected)
    expect(r.realSeen.length).toBe(6)
    expect(r.generated.every((z) => !z.some((v) => Math.abs(v - 0.75) < 1e-7))).toBe(true)
  }, 60_000)

  it("works with a class-conditional network (real rows with their labels) and with augmentation", async () => {
    const r = await runWithEngine(
      Effect.scoped(
        Effect.gen(function*() {
          const { s } = yield* sidaServices(tinyUNet(3), fakeRealData(12, 3), { augment: true })
          const settings = sidaSettings({ augment: sidAugmentSettings(0.5) }, 0, 0)
          const results = [iterate(s, settings, 0), iterate(s, settings, 2)]
          return { results, streams: Object.keys(s.sampler.state()) }
        })
      )
    )
    expect(r.streams).toContain("real")
    expect(r.streams).toContain("augment")
    for (const x of r.results) {
      expect(Number.isFinite(x.fakeLoss) && Number.isFinite(x.generatorLoss)).toBe(true)
      expect(x.adversarialLoss).toBeGreaterThan(0)
    }
  }, 60_000)

  it("holds no tensors across 200 SiDA iterations (augmentation on, through every phase)", async () => {
    const growth = await runWithEngine(
      Effect.scoped(
        Effect.gen(function*() {
          const network = unetNetwork(unetSpec([8, 8, 1], { baseChannels: 4, channelMult: [1, 2], groups: 2 }))
          const { s } = yield* sidaServices(network, fakeRealData(8), { augment: true })
          const settings = sidaSettings({ augment: sidAugmentSettings(0.5) }, 20, 60)
          iterate(s, settings, 0)
          const start = tf.memory().numTensors
          for (let i = 1; i < 200; i++) iterate(s, settings, i * 2)
          return tf.memory().numTensors - start
        })
      )
    )
    expect(growth).toBe(0)
  }, 120_000)
})

describe("SiDA runs (docs/algorithm.md §13)", () => {
  const run = (c: DistillConfig, store: string, options: Parameters<typeof distill>[1] = {}, realData?: RealDataShape) =>
    runWithEngine(
      Effect.scoped(
        Effect.gen(function*() {
          const network = tinyUNet()
          const params = yield* Effect.acquireRelease(
            Effect.sync(() => network.init(11)),
            (p) => Effect.sync(() => tf.dispose(Object.values(p)))
          )
          return yield* distill(c, { evaluate: false, ...options }).pipe(
            Stream.runCollect,
            Effect.map((rs) => Array.from(rs).filter((r): r is StepReport => r instanceof StepReport)),
            Effect.provide(
              Distillation.layer(c, {
                teacher: Layer.succeed(TeacherTag, Teacher.fromWeights("tiny", network, params, 0.5)),
                metrics: Metrics.layerUnavailable(network.dataShape),
                checkpoints: CheckpointStore.layerDirectory(join(dir, store)),
                ...(realData === undefined ? {} : { realData: Layer.succeed(RealData, realData) })
              })
            )
          )
        })
      )
    )
  const config = (overrides: Partial<typeof DistillConfig.Encoded> = {}) =>
    smallConfig({ batchSize: 2, steps: 8, emaHalfLifeKimg: 0.01, seed: 3, ...overrides })
  const losses = (rs: ReadonlyArray<StepReport>) =>
    rs.map((r) => [r.step, r.fakeLoss, r.generatorLoss, r.generatorGradNorm, r.discriminatorLoss, r.adversarialLoss, r.generatorFrozen])

  it("resume is bit-exact with augmentation, and with SiDA's real-data stream (through both warm-ups)", async () => {
    const real = fakeRealData(20)
    for (const [name, overrides] of [
      ["augment", { augment: 0.5 }],
      ["sida", { augment: 0.5, adversarial: true, generatorWarmupKimg: 0.004, adversarialWarmupKimg: 0.008 }]
    ] as const) {
      const whole = await run(config(overrides), `whole-${name}`, {}, real)
      await run(config({ ...overrides, steps: 4 }), `split-${name}`, {}, real)
      const resumed = await run(config(overrides), `split-${name}`, { resume: true }, real)
      expect(resumed.map((r) => r.step)).toEqual([5, 6, 7, 8])
      expect(losses(resumed)).toEqual(losses(whole.slice(4)))
      if (name === "sida") {
        expect(whole.map((r) => r.generatorFrozen ?? false)).toEqual([true, true, true, false, false, false, false, false])
        expect(whole.map((r) => (r.adversarialLoss ?? 0) > 0)).toEqual([false, false, false, false, false, true, true, true])
        expect(whole.every((r) => (r.discriminatorLoss ?? 0) > 0)).toBe(true)
      }
    }
  }, 120_000)

  it("data: mnist feeds the MNIST training split, at the teacher's image size, to the discriminator", async () => {
    const network = unetNetwork(unetSpec([16, 16, 1], { baseChannels: 4, channelMult: [1, 2], groups: 2 }))
    const c = config({ steps: 2, adversarial: true, data: "mnist", generatorWarmupKimg: 0, adversarialWarmupKimg: 0 })
    const reports = await runWithEngine(
      Effect.scoped(
        Effect.gen(function*() {
          const params = yield* Effect.acquireRelease(Effect.sync(() => network.init(1)), (p) => Effect.sync(() => tf.dispose(Object.values(p))))
          return yield* Effect.gen(function*() {
            const real = Option.getOrThrow(yield* Effect.serviceOption(RealData))
            const rows = real.rows(Int32Array.from([0, 1]))
            const range = [rows.images.min().dataSync()[0], rows.images.max().dataSync()[0]]
            tf.dispose(rows.images)
            const steps = yield* distill(c, { evaluate: false }).pipe(Stream.runCollect)
            return { name: real.name, size: real.size, shape: real.dataShape, range, steps: Array.from(steps).filter((r): r is StepReport => r instanceof StepReport) }
          }).pipe(
            Effect.provide(
              Distillation.layer(c, {
                teacher: Layer.succeed(TeacherTag, Teacher.fromWeights("tiny16", network, params, 0.5)),
                metrics: Metrics.layerUnavailable(network.dataShape),
                checkpoints: CheckpointStore.layerMemory
              })
            )
          )
        })
      )
    )
    expect(reports.name).toBe("mnist:16 (seed 0)")
    expect(reports.size).toBe(8000)
    expect(reports.shape).toEqual([16, 16, 1])
    expect(reports.range[0]).toBeGreaterThanOrEqual(-1)
    expect(reports.range[1]).toBeLessThanOrEqual(1)
    expect(reports.steps.map((r) => Number.isFinite(r.discriminatorLoss) && (r.adversarialLoss ?? 0) > 0)).toEqual([true, true])
  }, 60_000)

  it("refuses bad SiDA input with typed errors before anything is written", async () => {
    const failure = async (c: DistillConfig, store: string, realData?: RealDataShape) => {
      const exit = await run(c, store, {}, realData).then(() => undefined, (e: unknown) => e)
      return exit
    }
    const noData = await failure(config({ adversarial: true }), "bad-1")
    expect(String(noData)).toMatch(/SidaSetupError|adversarial/)
    expect(String(noData)).toMatch(/real/)
    const mismatch = await failure(
      config({ adversarial: true }),
      "bad-2",
      RealDataLayers.fromDataset({
        name: "wide",
        imageShape: [8, 10, 1],
        classes: 10,
        train: { images: tf.zeros([4, 8, 10, 1]), labels: tf.zeros([4], "int32") }
      })
    )
    expect(String(mismatch)).toMatch(/\[8,10,1\].*\[8,8,1\]/)
    const mnist = await failure(config({ adversarial: true, data: "mnist" }), "bad-3")
    expect(String(mnist)).toMatch(/one-channel 16, 28 or 32-pixel images.*\[8,8,1\]/)
    for (const store of ["bad-1", "bad-2", "bad-3"]) {
      expect(!existsSync(join(dir, store)) || readdirSync(join(dir, store)).every((n) => !n.startsWith("ckpt"))).toBe(true)
    }
    const mlp = mlpNetwork(mlpSpec(2, { hidden: 8, depth: 2 }))
    const augmented = await runExitWithEngine(
      Effect.scoped(
        Effect.gen(function*() {
          const params = yield* Effect.acquireRelease(Effect.sync(() => mlp.init(1)), (p) => Effect.sync(() => tf.dispose(Object.values(p))))
          const c = config({ augment: 0.2 })
          return yield* distill(c, { evaluate: false }).pipe(
            Stream.runDrain,
            Effect.provide(
              Distillation.layer(c, {
                teacher: Layer.succeed(TeacherTag, Teacher.fromWeights("mlp", mlp, params, 0.5)),
                metrics: Metrics.layerUnavailable(mlp.dataShape),
                checkpoints: CheckpointStore.layerMemory
              })
            )
          )
        })
      )
    )
    expect(Exit.isFailure(augmented)).toBe(true)
    expect(String(Exit.isFailure(augmented) ? augmented.cause : "")).toMatch(/augment.*\[2\]/)
  }, 60_000)

  it("the config names the settings and rejects unknown data sources", () => {
    const ok = decodeDistillConfig({ adversarial: true, data: "mnist", lsd: 0, lsgGan: 0.02, augment: 0.12 })
    expect(Either.isRight(ok)).toBe(true)
    const bad = decodeDistillConfig({ data: "cifar", augment: 1.5, lsd: -1 })
    expect(Either.isLeft(bad)).toBe(true)
    const message = Either.isLeft(bad) ? bad.left.message : ""
    expect(message).toMatch(/data = "cifar": must be null .* or mnist/)
    expect(message).toMatch(/augment = 1.5/)
    expect(message).toMatch(/lsd = -1/)
    expect(new SidaSetupError({ setting: "data", reason: "r", fix: "f" }).message).toBe("data: r. f")
  })
})

describe("SiD²A: G starts from a distilled generator (docs/algorithm.md §13)", () => {
  const start = (network: Network, c: DistillConfig) =>
    runWithEngine(
      Effect.scoped(
        Effect.gen(function*() {
          const params = yield* Effect.acquireRelease(Effect.sync(() => network.init(11)), (p) => Effect.sync(() => tf.dispose(Object.values(p))))
          return yield* Effect.gen(function*() {
            const g = yield* Generator
            const f = yield* FakeScore
            const z = fixedLatents(0, 3, network.dataShape)
            const sample = (which: "live" | "ema") => tf.tidy(() => Float32Array.from(g.generate(z, which).dataSync()))
            const name = Object.keys(f.weights.variables).sort()[0]!
            const out = {
              live: sample("live"),
              ema: sample("ema"),
              psi: Float32Array.from(f.weights.variables[name]!.dataSync()),
              teacher: Float32Array.from(params[name]!.dataSync())
            }
            z.dispose()
            return out
          }).pipe(
            Effect.provide(
              Distillation.layer(c, {
                teacher: Layer.succeed(TeacherTag, Teacher.fromWeights("tiny", network, params, 0.5)),
                metrics: Metrics.layerUnavailable(network.dataShape),
                checkpoints: CheckpointStore.layerMemory
              })
            )
          )
        })
      )
    )

  it("from a run directory (its newest EMA generator) or an exported file; ψ still starts from the teacher", async () => {
    const network = tinyUNet()
    const runDir = join(dir, "sid-run")
    const previous = await tinyRun(network, runDir, { steps: 2 })
    const fromRun = await start(network, smallConfig({ steps: 0, initGenerator: runDir }))
    expect(fromRun.live).toEqual(previous.ema)
    expect(fromRun.ema).toEqual(previous.ema)
    expect(fromRun.psi).toEqual(fromRun.teacher)
    const file = join(dir, "sid-generator.safetensors")
    await runWithEngine(exportGenerator(previous.checkpoint, file))
    const fromFile = await start(network, smallConfig({ steps: 0, initGenerator: file }))
    expect(fromFile.live).toEqual(previous.ema)
    const plain = await start(network, smallConfig({ steps: 0 }))
    expect(plain.live).not.toEqual(previous.ema)
  }, 60_000)

  it("refuses a generator of another network, another σ_init or a missing path with a typed error", async () => {
    const runDir = join(dir, "sid-run-other")
    await tinyRun(unetNetwork(unetSpec([8, 8, 1], { baseChannels: 4, channelMult: [1, 2], groups: 2 })), runDir, { steps: 1 })
    const other = await start(tinyUNet(), smallConfig({ steps: 0, initGenerator: runDir })).then(() => "ok", (e: unknown) => String(e))
    expect(other).toMatch(/initGenerator: .*its network is/)
    const sigma = await start(tinyUNet(), smallConfig({ steps: 0, initGenerator: join(dir, "sid-run"), sigmaInit: 1 })).then(() => "ok", (e: unknown) => String(e))
    expect(sigma).toMatch(/σ_init = 2.5, but this run uses 1/)
    const missing = await start(tinyUNet(), smallConfig({ steps: 0, initGenerator: join(dir, "nowhere") })).then(() => "ok", (e: unknown) => String(e))
    expect(missing).toMatch(/initGenerator: .*nowhere: cannot read it/)
  }, 60_000)
})

