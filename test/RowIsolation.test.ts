import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Context, Effect, Layer, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { dropoutMask } from "../src/domain/nn/Dropout.js"
import { nonFiniteRows, sidLoss } from "../src/domain/sid/SidLoss.js"
import { mlpSpec } from "../src/domain/nn/Mlp.js"
import { type ApplyOptions, mlpNetwork, type Network, unetNetwork } from "../src/domain/nn/Network.js"
import { adam, sgd } from "../src/domain/optim/Optimizer.js"
import { broadcastPerSample } from "../src/domain/nn/Tensors.js"
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
  iterate,
  type IterationServices,
  type IterationSettings
} from "../src/pipeline/Iteration.js"
import type { DataFreeSamplerShape, Draws } from "../src/services/DataFreeSampler.js"
import { FakeScore, type FakeScoreShape } from "../src/services/FakeScore.js"
import { Generator, type GeneratorShape } from "../src/services/node/Generator.js"
import { Teacher as TeacherTag, type TeacherShape } from "../src/services/node/Teacher.js"
import { CheckpointStore, runWithEngine, smallConfig, Teacher, tf, useEngine } from "./support/distillation.js"

const mlp = mlpNetwork(mlpSpec(2, { hidden: 16, depth: 2 }))
const unet = unetNetwork(unetSpec([8, 8, 1], { baseChannels: 8, channelMult: [1, 2], groups: 4, labelDim: 3, dropout: 0.3 }))
const params = new Map<Network, Record<string, tf.Tensor>>()
let release: () => Promise<void>
let dir: string

beforeAll(async () => {
  release = await useEngine("wasm")
  params.set(mlp, mlp.init(7))
  params.set(unet, unet.init(11))
  dir = mkdtempSync(join(tmpdir(), "sid-rows-"))
})
afterAll(async () => {
  for (const p of params.values()) tf.dispose(Object.values(p))
  rmSync(dir, { recursive: true, force: true })
  await release()
})

/** Where a test plants its non-finite row. */
type Site = "generator" | "teacher" | "fakeScore"
/** What the poisoned network multiplies its output row by: NaN, or ±Inf (the sign of the output). */
type Poison = "nan" | "inf"

/** G's rows are poisoned where z[:, 0] is this marker; the teacher's and the fake score's where σ is. */
const Z_MARK = 1e4
const SIGMA_MARK = 77

const firstColumn = (x: tf.Tensor): tf.Tensor1D => x.reshape([x.shape[0]!, -1]).slice([0, 0], [-1, 1]).reshape([-1])

/**
 * out ⊙ m per row, with m = NaN or Inf on the flagged rows and 1 elsewhere: a multiply, so the backward pass also
 * carries 0·NaN (or 0·Inf) through the network, as a real non-finite row does.
 */
const poisonRows = (out: tf.Tensor, flagged: tf.Tensor, poison: Poison): tf.Tensor =>
  tf.tidy(() => {
    const n = out.shape[0]!
    const factor = tf.where(flagged, tf.fill([n], poison === "nan" ? NaN : Infinity), tf.ones([n])) as tf.Tensor1D
    return tf.mul(out, broadcastPerSample(factor, out))
  })

const poisonedGenerator = (g: GeneratorShape, poison: Poison): GeneratorShape => ({
  ...g,
  generate: (z, which, labels, options) =>
    tf.tidy(() => poisonRows(g.generate(z, which, labels, options), tf.greater(tf.abs(firstColumn(z)), Z_MARK / 2), poison))
})

const sigmaFlag = (sigma: number | tf.Tensor, n: number, above: number): tf.Tensor =>
  typeof sigma === "number" ? tf.fill([n], sigma > above ? 1 : 0, "bool") : tf.greater(tf.reshape(sigma, [-1]).broadcastTo([n]), above)

const poisonedTeacher = (t: TeacherShape, poison: Poison, above = SIGMA_MARK / 2): TeacherShape => ({
  ...t,
  denoise: (x, sigma, labels) =>
    tf.tidy(() => poisonRows(t.denoise(x, sigma, labels), sigmaFlag(sigma, x.shape[0]!, above), poison))
})

const poisonedFakeScore = (f: FakeScoreShape, poison: Poison): FakeScoreShape => ({
  ...f,
  denoise: (x, sigma, labels, options) =>
    tf.tidy(() => poisonRows(f.denoise(x, sigma, labels, options), sigmaFlag(sigma, x.shape[0]!, SIGMA_MARK / 2), poison))
})

/** The draws with the marker of `site` planted in `rows` (z[row, 0] for G, σ[row] for the teacher and fake score). */
const markDraws = (d: Draws, rows: ReadonlyArray<number>, site: Site): Draws => {
  const n = d.sigma.shape[0]!
  const flags = tf.tensor1d(Array.from({ length: n }, (_, i) => (rows.includes(i) ? 1 : 0)), "bool")
  const marked = tf.tidy(() => {
    if (site !== "generator") return { ...d, sigma: tf.where(flags, tf.fill([n], SIGMA_MARK), d.sigma) as tf.Tensor1D }
    const flat = d.z.reshape([n, -1])
    const at = tf.logicalAnd(
      broadcastPerSample(flags, flat).cast("bool"),
      tf.oneHot(tf.zeros([1], "int32"), flat.shape[1]!).cast("bool")
    )
    return { ...d, z: tf.where(at, tf.fill(flat.shape, Z_MARK), flat).reshape(d.z.shape) }
  })
  tf.dispose([flags, site === "generator" ? d.z : d.sigma])
  return marked
}

/** A sampler whose generator draws carry the marker in the rows `rowsAt(step)` (step counts generator draws). */
const markedSampler = (
  base: DataFreeSamplerShape,
  site: Site,
  rowsAt: (step: number) => ReadonlyArray<number>
): DataFreeSamplerShape => {
  let step = 0
  return { ...base, generatorStep: (batch) => markDraws(base.generatorStep(batch), rowsAt(step++), site) }
}

const flat = (ts: ReadonlyArray<tf.Tensor>): Float64Array => {
  const out: Array<number> = []
  for (const t of ts) out.push(...(t.dataSync() as Float32Array))
  return Float64Array.from(out)
}
const norm = (v: ArrayLike<number>): number => Math.sqrt(Array.from(v).reduce((a, x) => a + x * x, 0))

const drawnTensors = (d: Draws): Array<tf.Tensor> => [d.z, d.sigma, d.noise, ...(d.labels === undefined ? [] : [d.labels])]

interface Case {
  readonly name: string
  readonly network: Network
  readonly site: Site
  readonly poison: Poison
  readonly twoStage: boolean
}

const SEED = 5
const settingsOf = (c: { readonly network: Network; readonly twoStage: boolean }, batchSize: number): IterationSettings => ({
  batchSize,
  fakeLossScale: 1,
  emaHalfLifeKimg: 500,
  emaRampupRatio: 0.05,
  twoStageGenerator: c.twoStage,
  ...(c.network === mlp ? {} : { dropout: 0.3 })
})

/** Services for a network: G under SGD (lr 1, no momentum: Δθ = −∂L/∂θ), ψ under Adam, the sampler seeded by SEED. */
const withServices = <A>(network: Network, use: (s: IterationServices) => A): Promise<A> =>
  runWithEngine(
    Effect.scoped(
      Effect.gen(function*() {
        const teacher = Teacher.fromWeights("test", network, params.get(network)!, 0.5)
        const ctx = yield* Layer.build(
          Layer.mergeAll(
            GeneratorLayers.layer({ optimizer: sgd({ learningRate: 1, momentum: 0 }) }),
            FakeScoreLayers.layer({ optimizer: adam({ learningRate: 1e-2, beta1: 0, beta2: 0.999, epsilon: 1e-8 }) })
          ).pipe(Layer.provideMerge(Layer.succeed(TeacherTag, teacher)))
        )
        return use({
          teacher: Context.get(ctx, TeacherTag),
          generator: Context.get(ctx, Generator),
          fakeScore: Context.get(ctx, FakeScore),
          sampler: samplerFor(network),
          loss: sidLoss({ alpha: 1.2, lossScale: 100 })
        })
      })
    )
  )

const samplerFor = (network: Network) =>
  DataFreeSampler.makeSampler({ seed: SEED, dataShape: network.dataShape, labelDim: network.labelDim, dropout: network === unet })

/**
 * The reference ∂L/∂θ, by hand: the unpoisoned networks on the whole batch of the same draws, train-mode dropout with
 * the whole batch's masks, and the rows `dropped` masked out of the loss by a 0/1 weight (they are finite here, so the
 * weight removes them exactly); the divisor is N.
 */
const referenceGradient = (s: IterationServices, draws: Draws, dropped: ReadonlyArray<number>, train: ApplyOptions | undefined) =>
  tf.tidy(() => {
    const n = draws.sigma.shape[0]!
    const weight = tf.tensor1d(Array.from({ length: n }, (_, i) => (dropped.includes(i) ? 0 : 1)))
    const { grads, value } = tf.variableGrads(() => {
      const xg = s.generator.generate(draws.z, "live", draws.labels, train)
      const xt = tf.add(xg, tf.mul(draws.noise, broadcastPerSample(draws.sigma, xg)))
      const r = s.loss.compute({
        xg,
        yReal: s.teacher.denoise(xt, draws.sigma, draws.labels),
        yFake: s.fakeScore.denoise(xt, draws.sigma, draws.labels)
      })
      return tf.sum(tf.mul(r.perRow, weight)).mul(100 / n) as tf.Scalar
    }, [...s.generator.weights.list])
    return { gradient: s.generator.weights.list.map((v) => grads[v.name]!), value }
  })

/**
 * One generator update with the marker in rows `dropped` and the site's network poisoned there, after one fake step
 * (so ψ ≠ φ); and the reference by hand from an identically seeded sampler.
 */
const poisonedStep = (c: Case, batchSize: number, dropped: ReadonlyArray<number>) =>
  withServices(c.network, (s) => {
    const settings = settingsOf(c, batchSize)
    fakeScoreUpdate(s, settings)
    const replica = samplerFor(c.network)
    tf.dispose(drawnTensors(replica.fakeStep(batchSize)))
    const draws = markDraws(replica.generatorStep(batchSize), dropped, c.site)
    const train = settings.dropout === undefined ? undefined : { dropout: { rate: settings.dropout, seed: draws.dropoutSeed! } }
    const reference = referenceGradient(s, draws, dropped, train)
    const expected = flat(reference.gradient).map((g) => -g)
    const expectedLoss = reference.value.dataSync()[0]!
    tf.dispose([...drawnTensors(draws), ...reference.gradient, reference.value])
    const poisoned: IterationServices = {
      ...s,
      sampler: markedSampler(s.sampler, c.site, () => dropped),
      generator: c.site === "generator" ? poisonedGenerator(s.generator, c.poison) : s.generator,
      teacher: c.site === "teacher" ? poisonedTeacher(s.teacher, c.poison) : s.teacher,
      fakeScore: c.site === "fakeScore" ? poisonedFakeScore(s.fakeScore, c.poison) : s.fakeScore
    }
    const before = flat(s.generator.weights.list)
    const tensors = tf.memory().numTensors
    const r = c.twoStage ? generatorUpdateTwoStage(poisoned, settings) : generatorUpdate(poisoned, settings)
    const leaked = tf.memory().numTensors - tensors
    const after = flat(s.generator.weights.list)
    return {
      delta: after.map((a, i) => a - before[i]!),
      expected,
      expectedLoss,
      result: r,
      after,
      optimizerStep: s.generator.weights.optimizerState().step,
      leaked
    }
  })

const cases: ReadonlyArray<Case> = [
  { name: "G's output NaN, fused", network: mlp, site: "generator", poison: "nan", twoStage: false },
  { name: "G's output NaN, two-stage", network: mlp, site: "generator", poison: "nan", twoStage: true },
  { name: "the teacher's output ±Inf, fused", network: mlp, site: "teacher", poison: "inf", twoStage: false },
  { name: "the teacher's output NaN, two-stage", network: mlp, site: "teacher", poison: "nan", twoStage: true },
  { name: "the fake score's output NaN, fused", network: mlp, site: "fakeScore", poison: "nan", twoStage: false },
  { name: "the fake score's output ±Inf, two-stage", network: mlp, site: "fakeScore", poison: "inf", twoStage: true },
  { name: "conditional UNet with train-mode dropout, G's output NaN, fused", network: unet, site: "generator", poison: "nan", twoStage: false },
  { name: "conditional UNet with train-mode dropout, the teacher's output NaN, two-stage", network: unet, site: "teacher", poison: "nan", twoStage: true }
]

describe("row isolation at ∂L/∂θ (generator step)", () => {
  for (const c of cases) {
    it(`${c.name}: Δθ is the update of the batch without that row (divisor N), 1 row dropped, no NaN in θ`, async () => {
      const batch = c.network === mlp ? 16 : 4
      const r = await poisonedStep(c, batch, [2])
      expect(r.result.dropped).toBe(1)
      expect(r.result.stats.nonFinite).toBe(0)
      expect(r.after.every(Number.isFinite)).toBe(true)
      expect(norm(r.expected)).toBeGreaterThan(1e-6)
      const diff = norm(r.delta.map((d, i) => d - r.expected[i]!))
      expect(diff / norm(r.expected)).toBeLessThan(1e-6)
      expect(Math.abs(r.result.loss - r.expectedLoss)).toBeLessThan(1e-6 * Math.abs(r.expectedLoss) + 1e-9)
      expect(r.optimizerStep).toBe(1)
      expect(r.leaked).toBe(0)
    }, 120_000)
  }

  it("several non-finite rows are all removed", async () => {
    const r = await poisonedStep({ name: "", network: mlp, site: "teacher", poison: "nan", twoStage: false }, 16, [0, 7, 15])
    expect(r.result.dropped).toBe(3)
    const diff = norm(r.delta.map((d, i) => d - r.expected[i]!))
    expect(diff / norm(r.expected)).toBeLessThan(1e-6)
  }, 60_000)

  for (const twoStage of [false, true]) {
    it(`every row non-finite (${twoStage ? "two-stage" : "fused"}): no optimiser step, θ unchanged, dropped = N, loss 0`, async () => {
      const rows = Array.from({ length: 8 }, (_, i) => i)
      const r = await poisonedStep({ name: "", network: mlp, site: "generator", poison: "nan", twoStage }, 8, rows)
      expect(r.result.dropped).toBe(8)
      expect(r.result.loss).toBe(0)
      expect(r.result.stats).toEqual({ gradNorm: 0, nonFinite: 0 })
      expect(Array.from(r.delta).every((d) => d === 0)).toBe(true)
      expect(r.optimizerStep).toBe(0)
      expect(r.leaked).toBe(0)
    }, 60_000)
  }

  for (const twoStage of [false, true]) {
    it(`holds tf.memory().numTensors flat over many iterations with dropped rows (${twoStage ? "two-stage" : "fused"})`, async () => {
      const counts = await withServices(unet, (s) => {
        const settings = settingsOf({ network: unet, twoStage }, 4)
        const poisoned: IterationServices = {
          ...s,
          sampler: markedSampler(s.sampler, "generator", (step) => (step % 3 === 2 ? [0, 1, 2, 3] : [step % 4])),
          generator: poisonedGenerator(s.generator, "nan")
        }
        const out: Array<{ readonly tensors: number; readonly dropped: number; readonly moved: boolean }> = []
        for (let i = 0; i < 9; i++) {
          const before = flat(s.generator.weights.list)
          const r = iterate(poisoned, settings, i * 4)
          const after = flat(s.generator.weights.list)
          out.push({ tensors: tf.memory().numTensors, dropped: r.droppedRows, moved: after.some((v, j) => v !== before[j]) })
          expect(after.every(Number.isFinite)).toBe(true)
        }
        return out
      })
      expect(counts.map((c) => c.dropped)).toEqual([1, 1, 4, 1, 1, 4, 1, 1, 4])
      expect(counts.map((c) => c.moved)).toEqual(counts.map((c) => c.dropped < 4))
      expect(new Set(counts.map((c) => c.tensors)).size).toBe(1)
    }, 120_000)
  }
})

describe("row isolation: domain pieces", () => {
  it("dropoutMask with rows is the whole batch's mask at those rows, in order", () => {
    const masks = { rate: 0.4, seed: 123 }
    const whole = dropoutMask([6, 3, 2], masks, "site")
    const indices = [5, 0, 3]
    const some = dropoutMask([3, 3, 2], { ...masks, rows: { of: 6, indices } }, "site")
    const gathered = tf.gather(whole, indices)
    expect(Array.from(some.dataSync())).toEqual(Array.from(gathered.dataSync()))
    expect(() => dropoutMask([2, 3, 2], { ...masks, rows: { of: 6, indices } }, "site")).toThrow(/3 row indices/)
    expect(() => dropoutMask([1, 3, 2], { ...masks, rows: { of: 6, indices: [6] } }, "site")).toThrow(/outside/)
    tf.dispose([whole, some, gathered])
  })

  it("nonFiniteRows flags NaN and ±Inf in x_g, y_r, y_f and a non-finite per-row loss", () => {
    const before = tf.memory().numTensors
    const xg = tf.tensor2d([[0, 1], [NaN, 0], [0, 0], [0, 0], [0, 0], [1, 1]])
    const yReal = tf.tensor2d([[0, 0], [0, 0], [Infinity, 0], [0, 0], [0, 0], [0, 2]])
    const yFake = tf.tensor2d([[0, 0], [0, 0], [0, 0], [0, -Infinity], [0, 0], [1, 0]])
    const result = { loss: tf.scalar(0), perRow: tf.tensor1d([1, 0, 0, 0, NaN, 2]), mask: tf.ones([6]) as tf.Tensor1D }
    const bad = nonFiniteRows({ xg, yReal, yFake }, result)
    expect(bad.dtype).toBe("bool")
    expect(Array.from(bad.dataSync())).toEqual([0, 1, 1, 1, 1, 0])
    tf.dispose([xg, yReal, yFake, ...Object.values(result), bad])
    expect(tf.memory().numTensors).toBe(before)
  })
})

describe("row isolation in a run", () => {
  it("reports droppedRows per step, keeps θ finite and resumes bit for bit with dropped rows", async () => {
    const configOf = (steps: number) => smallConfig({ batchSize: 64, steps, checkpointEvery: 3, seed: 21 })
    const config = configOf(6)
    const teacher = Teacher.fromWeights("mlp", mlp, params.get(mlp)!, 0.5)
    const layers = (store: string) =>
      Distillation.layer(config, {
        teacher: Layer.succeed(TeacherTag, poisonedTeacher(teacher, "nan", 20)),
        metrics: Metrics.layerUnavailable(mlp.dataShape),
        checkpoints: CheckpointStore.layerDirectory(join(dir, store))
      })
    const run = (store: string, steps: number, resume: boolean) =>
      runWithEngine(
        Effect.gen(function*() {
          const reports = yield* distill(configOf(steps), { evaluate: false, resume }).pipe(Stream.runCollect)
          const g = yield* Generator
          return {
            reports: Array.from(reports).filter((r): r is StepReport => r instanceof StepReport),
            theta: flat(g.weights.list)
          }
        }).pipe(Effect.provide(layers(store)))
      )
    const whole = await run("whole", 6, false)
    const replica = DataFreeSampler.makeSampler({ seed: config.seed, dataShape: mlp.dataShape, tmax: config.tmax })
    const expected = whole.reports.map(() => {
      tf.dispose(drawnTensors(replica.fakeStep(64)))
      const d = replica.generatorStep(64)
      const count = Array.from(d.sigma.dataSync()).filter((v) => v > 20).length
      tf.dispose(drawnTensors(d))
      return count
    })
    expect(expected.reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
    expect(whole.reports.map((r) => r.droppedRows)).toEqual(expected)
    for (const r of whole.reports) {
      expect(r.nonFiniteGradients).toBe(0)
      expect(Number.isFinite(r.generatorLoss)).toBe(true)
    }
    expect(whole.theta.every(Number.isFinite)).toBe(true)
    await run("split", 3, false)
    const resumed = await run("split", 6, true)
    const losses = (rs: ReadonlyArray<StepReport>) => rs.map((r) => [r.step, r.generatorLoss, r.generatorGradNorm, r.droppedRows])
    expect(losses(resumed.reports)).toEqual(losses(whole.reports.slice(3)))
    expect(resumed.theta).toEqual(whole.theta)
  }, 120_000)
})
