import { mkdtempSync, rmSync } from "node:fs"
import { readdir, readFile, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Context, Effect, Either, Layer, Stream } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { decodeDistillConfig, distillConfig, type DistillConfig } from "../src/domain/config/DistillConfig.js"
import { dropout } from "../src/domain/nn/Dropout.js"
import { dhariwalUNetNetwork, dhariwalUNetSpec } from "../src/domain/edm/DhariwalUNet.js"
import {
  applyConv,
  applyGroupNorm,
  applyLinear,
  applyUNetBlock,
  silu,
  unetBlockParts,
  type UNetBlockModule
} from "../src/domain/edm/Blocks.js"
import { songUNetLayout, songUNetNetwork, songUNetSpec } from "../src/domain/edm/SongUNet.js"
import { sidLoss } from "../src/domain/sid/SidLoss.js"
import { type ApplyOptions, mlpNetwork, type Network, trainDropoutRate, unetNetwork } from "../src/domain/nn/Network.js"
import { mlpSpec } from "../src/domain/nn/Mlp.js"
import { adam, sgd } from "../src/domain/optim/Optimizer.js"
import { unetSpec } from "../src/domain/nn/UNet.js"
import * as DataFreeSampler from "../src/services/DataFreeSampler.js"
import * as Distillation from "../src/layers/node/Distillation.js"
import * as FakeScoreLayers from "../src/services/FakeScore.js"
import * as GeneratorLayers from "../src/services/node/Generator.js"
import * as Metrics from "../src/services/node/Metrics.js"
import { distill, iterationSettings, StepReport } from "../src/pipeline/Distill.js"
import {
  fakeScoreUpdate,
  generatorUpdate,
  generatorUpdateTwoStage,
  iterate,
  type IterationServices,
  type IterationSettings
} from "../src/pipeline/Iteration.js"
import { DataFreeSampler as SamplerTag } from "../src/services/DataFreeSampler.js"
import { FakeScore } from "../src/services/FakeScore.js"
import { Generator } from "../src/services/node/Generator.js"
import { Teacher as TeacherTag } from "../src/services/node/Teacher.js"
import { CheckpointStore, runWithEngine, smallConfig, Teacher, tf, useEngine } from "./support/distillation.js"

const tinyUNet = (rate: number) =>
  unetNetwork(unetSpec([8, 8, 1], { baseChannels: 8, channelMult: [1, 2], groups: 4, dropout: rate }))

let release: () => Promise<void>
let dir: string
beforeAll(async () => {
  release = await useEngine("wasm")
  dir = mkdtempSync(join(tmpdir(), "sid-dropout-"))
})
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true })
  await release()
})

const values = (t: tf.Tensor): Float32Array => t.dataSync() as Float32Array
const maxDiff = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!)

describe("dropout (docs/algorithm.md §9.1)", () => {
  it("zeroes a fraction ≈ p of the units, scales the rest by 1/(1 − p), and is a pure function of the seed", () => {
    fc.assert(
      fc.property(fc.double({ min: 0.05, max: 0.9, noNaN: true }), fc.integer({ min: 0, max: 0xffff_ffff }), (p, seed) => {
        const x = tf.fill([4000], 2)
        const y = dropout(x, { rate: p, seed }, "site")
        const again = dropout(x, { rate: p, seed }, "site")
        const other = dropout(x, { rate: p, seed }, "other site")
        const v = values(y)
        const zeros = v.filter((e) => e === 0).length
        expect(Math.abs(zeros / v.length - p)).toBeLessThan(0.04)
        expect(v.every((e) => e === 0 || Math.abs(e - 2 / (1 - p)) < 1e-5)).toBe(true)
        expect(values(again)).toEqual(v)
        expect(values(other)).not.toEqual(v)
        tf.dispose([x, y, again, other])
      }),
      { numRuns: 20 }
    )
    const x = tf.ones([10])
    const same = dropout(x, { rate: 0, seed: 1 }, "site")
    expect(values(same)).toEqual(values(x))
    expect(() => dropout(x, { rate: 1, seed: 1 }, "site")).toThrow(/\[0, 1\)/)
    tf.dispose([x, same])
  })

  const networks: ReadonlyArray<readonly [string, Network]> = [
    ["unet", tinyUNet(0.3)],
    ["songunet", songUNetNetwork(songUNetSpec(8, 3, { modelChannels: 16, channelMult: [1, 2], numBlocks: 1, attnResolutions: [4], dropout: 0.3 }))],
    ["dhariwalunet", dhariwalUNetNetwork(dhariwalUNetSpec(8, 3, { modelChannels: 16, channelMult: [1, 2], numBlocks: 1, attnResolutions: [], dropout: 0.3 }))]
  ]
  it.each(networks)("%s: eval mode without masks; train-mode masks deterministic in the seed; rate 0 is eval mode", (_, network) => {
    expect(network.dropout).toBe(0.3)
    // Random weights everywhere: EDM's initialisers zero the convs after the dropout sites (conv1, out_conv).
    const params = Object.fromEntries(
      Object.entries(network.shapes).map(([n, shape], i) => [n, tf.randomNormal([...shape], 0, 0.3, "float32", 100 + i)])
    )
    const x = tf.randomNormal([2, ...network.dataShape], 0, 1, "float32", 4)
    const cNoise = tf.tensor1d([0.1, -0.4])
    const run = (options?: ApplyOptions) => network.apply(params, x, cNoise, undefined, options)
    const before = tf.memory().numTensors
    const evalMode = run()
    const evalAgain = run({})
    const zeroRate = run({ dropout: { rate: 0, seed: 9 } })
    const a = run({ dropout: { rate: 0.3, seed: 9 } })
    const b = run({ dropout: { rate: 0.3, seed: 9 } })
    const c = run({ dropout: { rate: 0.3, seed: 10 } })
    const lower = run({ dropout: { rate: 0.1, seed: 9 } })
    expect(values(evalAgain)).toEqual(values(evalMode))
    expect(values(zeroRate)).toEqual(values(evalMode))
    expect(values(b)).toEqual(values(a))
    expect(maxDiff(a, evalMode)).toBeGreaterThan(1e-4)
    expect(maxDiff(a, c)).toBeGreaterThan(1e-4)
    expect(maxDiff(a, lower)).toBeGreaterThan(1e-4)
    tf.dispose([evalMode, evalAgain, zeroRate, a, b, c, lower])
    expect(tf.memory().numTensors).toBe(before)
    tf.dispose([x, cNoise, ...Object.values(params)])
  })

  it("an EDM UNetBlock drops units after its second GroupNorm + SiLU, before conv1 (EDM's conv1(dropout(x)))", () => {
    const spec = songUNetSpec(8, 3, { modelChannels: 16, channelMult: [1, 2], numBlocks: 1, attnResolutions: [], dropout: 0.3 })
    const [name, m] = songUNetLayout(spec).enc.find(([, mod]) => mod.kind === "block" && mod.inChannels !== mod.outChannels)! as readonly [string, UNetBlockModule]
    const network = songUNetNetwork(spec)
    const params = Object.fromEntries(
      Object.entries(network.shapes).map(([n, shape], i) => [n, tf.randomNormal([...shape], 0, 0.3, "float32", 200 + i)])
    )
    const x = tf.randomNormal([2, 4, 4, m.inChannels], 0, 1, "float32", 7) as tf.Tensor4D
    const emb = tf.randomNormal([2, m.embChannels], 0, 1, "float32", 8) as tf.Tensor2D
    const masks = { rate: 0.3, seed: 42 }
    const expected = tf.tidy(() => {
      const parts = unetBlockParts(m)
      const h = applyConv(params, `${name}.conv0`, parts.conv0, silu(applyGroupNorm(params, `${name}.norm0`, parts.norm0, x)) as tf.Tensor4D)
      const affine = applyLinear(params, `${name}.affine`, parts.affine, emb).reshape([2, 1, 1, -1])
      const act = silu(applyGroupNorm(params, `${name}.norm1`, parts.norm1, tf.add(h, affine) as tf.Tensor4D))
      const y = applyConv(params, `${name}.conv1`, parts.conv1, dropout(act, masks, `dropout.${name}`) as tf.Tensor4D)
      return tf.mul(tf.add(y, applyConv(params, `${name}.skip`, parts.skip!, x)), m.skipScale)
    })
    const actual = applyUNetBlock(params, name, m, x, emb, masks)
    const evalMode = applyUNetBlock(params, name, m, x, emb)
    expect(maxDiff(actual, expected)).toBeLessThan(1e-5)
    expect(maxDiff(actual, evalMode)).toBeGreaterThan(1e-3)
    tf.dispose([x, emb, expected, actual, evalMode, ...Object.values(params)])
  })

  it("the MLP has no dropout sites; the rate is the setting, else the network's own", () => {
    const mlp = mlpNetwork(mlpSpec(2))
    expect(trainDropoutRate(mlp)).toBe(0)
    expect(trainDropoutRate(mlp, 0.2)).toBe(0.2)
    expect(trainDropoutRate(tinyUNet(0.3), null)).toBe(0.3)
    expect(trainDropoutRate(tinyUNet(0.3), 0)).toBe(0)
    expect(iterationSettings(distillConfig({}), tinyUNet(0.25)).dropout).toBe(0.25)
    expect(iterationSettings(distillConfig({ dropout: 0.1 }), tinyUNet(0.25)).dropout).toBe(0.1)
    expect(Either.isLeft(decodeDistillConfig({ dropout: 1 }))).toBe(true)
    expect(Either.isLeft(decodeDistillConfig({ dropout: -0.1 }))).toBe(true)
  })
})

/** Services of one iteration on the tiny UNet, with call recorders around G and ψ. */
const recordedServices = (network: Network, samplerDropout: boolean, generatorOptimizer = adam({ learningRate: 1e-3, beta1: 0, beta2: 0.999, epsilon: 1e-8 })) =>
  Effect.gen(function*() {
    const params = yield* Effect.acquireRelease(
      Effect.sync(() => network.init(11)),
      (p) => Effect.sync(() => tf.dispose(Object.values(p)))
    )
    const ctx = yield* Layer.build(
      Layer.mergeAll(
        GeneratorLayers.layer({ optimizer: generatorOptimizer }),
        FakeScoreLayers.layer({ optimizer: adam({ learningRate: 1e-2, beta1: 0, beta2: 0.999, epsilon: 1e-8 }) })
      ).pipe(Layer.provideMerge(Layer.succeed(TeacherTag, Teacher.fromWeights("tiny", network, params, 0.5))))
    )
    const calls: Array<string> = []
    const mode = (o?: ApplyOptions) => (o?.dropout === undefined ? "eval" : `train(${o.dropout.rate})`)
    const generator = Context.get(ctx, Generator)
    const fakeScore = Context.get(ctx, FakeScore)
    const teacher = Context.get(ctx, TeacherTag)
    const s: IterationServices = {
      teacher: { ...teacher, denoise: (...args) => (calls.push("teacher:eval"), teacher.denoise(...args)) },
      generator: {
        ...generator,
        generate: (z, which, labels, options) => (calls.push(`G:${mode(options)}`), generator.generate(z, which, labels, options))
      },
      fakeScore: {
        ...fakeScore,
        denoise: (x, sigma, labels, options) => (calls.push(`psi:${mode(options)}`), fakeScore.denoise(x, sigma, labels, options))
      },
      sampler: DataFreeSampler.makeSampler({ seed: 5, dataShape: network.dataShape, dropout: samplerDropout }),
      loss: sidLoss({ alpha: 1.2, lossScale: 100 })
    }
    return { s, calls, generator, fakeScore }
  })

const settings = (dropoutRate?: number, twoStageGenerator = false): IterationSettings => ({
  batchSize: 4,
  fakeLossScale: 1,
  emaHalfLifeKimg: 500,
  emaRampupRatio: 0.05,
  twoStageGenerator,
  ...(dropoutRate === undefined ? {} : { dropout: dropoutRate })
})

describe("train mode in the iteration (docs/algorithm.md §9.1)", () => {
  it("ψ trains with dropout in the fake step and G in the generator step; the teacher, the fake step's G and the generator step's ψ stay in eval mode", async () => {
    const calls = await runWithEngine(
      Effect.scoped(
        Effect.gen(function*() {
          const fused = yield* recordedServices(tinyUNet(0), true)
          iterate(fused.s, settings(0.2), 0)
          const staged = yield* recordedServices(tinyUNet(0), true)
          iterate(staged.s, settings(0.2, true), 0)
          const off = yield* recordedServices(tinyUNet(0), false)
          iterate(off.s, settings(0), 0)
          return { fused: fused.calls, staged: staged.calls, off: off.calls }
        })
      )
    )
    expect(calls.fused).toEqual(["G:eval", "psi:train(0.2)", "G:train(0.2)", "teacher:eval", "psi:eval"])
    expect(calls.staged).toEqual(["G:eval", "psi:train(0.2)", "G:train(0.2)", "teacher:eval", "psi:eval", "G:train(0.2)"])
    expect(calls.off).toEqual(["G:eval", "psi:eval", "G:eval", "teacher:eval", "psi:eval"])
  }, 60_000)

  it("dropout changes the updates, its masks come from the sampler's streams, and a sampler without them is refused", async () => {
    const r = await runWithEngine(
      Effect.scoped(
        Effect.gen(function*() {
          const step = (s: IterationServices, rate: number) => {
            const fake = fakeScoreUpdate(s, settings(rate))
            const gen = generatorUpdate(s, settings(rate))
            return [fake.loss, gen.loss, fake.stats.gradNorm, gen.stats.gradNorm]
          }
          const a = yield* recordedServices(tinyUNet(0), true)
          const b = yield* recordedServices(tinyUNet(0), true)
          const evalMode = yield* recordedServices(tinyUNet(0), true)
          const plain = yield* recordedServices(tinyUNet(0), false)
          const streams = Object.keys(a.s.sampler.state()).sort()
          const before = tf.memory().numTensors
          const results = [step(a.s, 0.3), step(b.s, 0.3), step(evalMode.s, 0), step(plain.s, 0)]
          const leaked = tf.memory().numTensors - before
          const refused = (() => {
            try {
              fakeScoreUpdate(plain.s, settings(0.3))
              return "no error"
            } catch (e) {
              return String(e)
            }
          })()
          return {
            results,
            leaked,
            streams,
            plainStreams: Object.keys(plain.s.sampler.state()).sort(),
            refused,
            tensorsAfterRefusal: tf.memory().numTensors - before
          }
        })
      )
    )
    const [a, b, evalMode, plain] = r.results
    expect(b).toEqual(a)
    expect(evalMode).toEqual(plain)
    expect(a![0]).not.toBe(evalMode![0])
    expect(a![1]).not.toBe(evalMode![1])
    expect(r.leaked).toBe(0)
    expect(r.streams).toEqual([...r.plainStreams, "fake.dropout", "generator.dropout"].sort())
    expect(r.plainStreams).not.toContain("fake.dropout")
    expect(r.refused).toMatch(/dropout seeds/)
    expect(r.tensorsAfterRefusal).toBe(0)
  }, 60_000)

  it("the two-stage generator update uses the same masks in both forwards of G (same gradient as the fused one)", async () => {
    const delta = (twoStage: boolean) =>
      runWithEngine(
        Effect.scoped(
          Effect.gen(function*() {
            const { s } = yield* recordedServices(tinyUNet(0), true, sgd({ learningRate: 1, momentum: 0 }))
            fakeScoreUpdate(s, settings(0.3))
            const before = s.generator.weights.list.map((w) => Array.from(w.dataSync()))
            ;(twoStage ? generatorUpdateTwoStage : generatorUpdate)(s, settings(0.3, twoStage))
            return s.generator.weights.list.flatMap((w, i) => Array.from(w.dataSync(), (v, j) => v - before[i]![j]!))
          })
        )
      )
    const fused = await delta(false)
    const staged = await delta(true)
    const norm = (v: ReadonlyArray<number>) => Math.sqrt(v.reduce((a, x) => a + x * x, 0))
    expect(norm(fused)).toBeGreaterThan(1e-6)
    expect(norm(fused.map((d, i) => d - staged[i]!)) / norm(fused)).toBeLessThan(1e-4)
  }, 60_000)

  it("a sampler with dropout streams restores a state saved without them (fresh dropout streams); other streams stay required", () => {
    const plain = DataFreeSampler.makeSampler({ seed: 8, dataShape: [2] })
    tf.dispose(Object.values(plain.generatorStep(3)).filter((v): v is tf.Tensor => v instanceof tf.Tensor))
    const saved = plain.state()
    const withDropout = DataFreeSampler.makeSampler({ seed: 8, dataShape: [2], dropout: true })
    const fresh = DataFreeSampler.makeSampler({ seed: 8, dataShape: [2], dropout: true })
    withDropout.restore(saved)
    const a = withDropout.generatorStep(3)
    const b = fresh.generatorStep(3)
    expect(a.dropoutSeed).toBe(b.dropoutSeed)
    expect(values(a.z)).not.toEqual(values(b.z))
    const { "fake.z": _dropped, ...missing } = saved
    expect(() => withDropout.restore(missing)).toThrow(/fake\.z/)
    tf.dispose([a.z, a.sigma, a.noise, b.z, b.sigma, b.noise])
  })

  it("G_ema refuses train mode", async () => {
    await runWithEngine(
      Effect.scoped(
        Effect.gen(function*() {
          const { generator } = yield* recordedServices(tinyUNet(0.3), false)
          const z = tf.zeros([1, 8, 8, 1])
          expect(() => generator.generate(z, "ema", undefined, { dropout: { rate: 0.3, seed: 1 } })).toThrow(/evaluation mode/)
          tf.dispose(z)
        })
      )
    )
  })
})

describe("distillation with dropout", () => {
  const config = (overrides: Partial<typeof DistillConfig.Encoded> = {}) =>
    smallConfig({ batchSize: 4, steps: 6, emaHalfLifeKimg: 0.01, seed: 3, ...overrides })
  const run = (network: Network, c: DistillConfig, store: string, options: Parameters<typeof distill>[1] = {}) =>
    runWithEngine(
      Effect.scoped(
        Effect.gen(function*() {
          const params = yield* Effect.acquireRelease(
            Effect.sync(() => network.init(11)),
            (p) => Effect.sync(() => tf.dispose(Object.values(p)))
          )
          return yield* Effect.gen(function*() {
            const sampler = yield* SamplerTag
            const reports = yield* distill(c, { evaluate: false, ...options }).pipe(Stream.runCollect)
            return {
              reports: Array.from(reports).filter((r): r is StepReport => r instanceof StepReport),
              streams: Object.keys(sampler.state()).sort()
            }
          }).pipe(
            Effect.provide(
              Distillation.layer(c, {
                teacher: Layer.succeed(TeacherTag, Teacher.fromWeights("tiny", network, params, 0.5)),
                metrics: Metrics.layerUnavailable(network.dataShape),
                checkpoints: CheckpointStore.layerDirectory(join(dir, store))
              })
            )
          )
        })
      )
    )
  const losses = (rs: ReadonlyArray<StepReport>) => rs.map((r) => [r.step, r.fakeLoss, r.generatorLoss, r.generatorGradNorm])

  it("dropout 0 is bit-identical to a network without dropout (the pipeline before train mode), with the old sampler streams", async () => {
    const none = await run(tinyUNet(0), config(), "none")
    const off = await run(tinyUNet(0.3), config({ dropout: 0 }), "off")
    expect(losses(off.reports)).toEqual(losses(none.reports))
    expect(off.streams).toEqual(none.streams)
    expect(none.streams).not.toContain("generator.dropout")
  }, 60_000)

  it("uses the network's own rate by default, and resumes bit for bit with dropout on (low-memory too)", async () => {
    const start = tf.memory().numTensors
    const none = await run(tinyUNet(0), config(), "none-2")
    const own = await run(tinyUNet(0.3), config(), "own")
    const explicit = await run(tinyUNet(0), config({ dropout: 0.3 }), "explicit")
    expect(own.streams).toContain("generator.dropout")
    expect(losses(explicit.reports)).toEqual(losses(own.reports))
    expect(losses(own.reports)[0]).not.toEqual(losses(none.reports)[0])
    for (const lowMemory of [false, true]) {
      const c = config({ dropout: 0.3, lowMemory })
      const whole = await run(tinyUNet(0), c, `whole-${lowMemory}`)
      await run(tinyUNet(0), config({ dropout: 0.3, lowMemory, steps: 3 }), `split-${lowMemory}`)
      const resumed = await run(tinyUNet(0), c, `split-${lowMemory}`, { resume: true })
      expect(resumed.reports.map((r) => r.step)).toEqual([4, 5, 6])
      expect(losses(resumed.reports)).toEqual(losses(whole.reports.slice(3)))
    }
    expect(tf.memory().numTensors).toBe(start)
  }, 60_000)

  it("resumes a checkpoint written without dropout streams (an EDM run from before train mode) with dropout on", async () => {
    await run(tinyUNet(0.3), config({ dropout: 0, steps: 3 }), "old")
    for (const name of (await readdir(join(dir, "old"))).filter((n) => n.endsWith(".json"))) {
      const manifest = JSON.parse(await readFile(join(dir, "old", name), "utf8")) as { config: Record<string, unknown> }
      delete manifest.config["dropout"]
      await writeFile(join(dir, "old", name), JSON.stringify(manifest))
    }
    const resumed = await run(tinyUNet(0.3), config(), "old", { resume: true })
    expect(resumed.reports.map((r) => r.step)).toEqual([4, 5, 6])
    expect(resumed.reports.every((r) => Number.isFinite(r.generatorLoss) && Number.isFinite(r.fakeLoss))).toBe(true)
    expect(resumed.streams).toContain("fake.dropout")
  }, 60_000)
})
