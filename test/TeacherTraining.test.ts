import * as tf from "@tensorflow/tfjs"
import { Chunk, Context, Effect, Either, Exit, Fiber, Layer, Option, Scope, Stream } from "effect"
import { mkdtemp, readdir, readFile, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { denoisingLoss } from "../src/domain/edm/DenoisingLoss.js"
import { denoiseWith, type Network } from "../src/domain/nn/Network.js"
import type { Parameters } from "../src/domain/nn/Parameters.js"
import { normalTensor } from "../src/domain/data/RandomStream.js"
import {
  decodeTeacherTrainingConfig,
  encodeTeacherTrainingConfig,
  type TeacherTrainingConfig,
  teacherTrainingConfig
} from "../src/domain/config/TeacherTrainingConfig.js"
import * as Engine from "../src/engine/node/Engine.js"
import * as MnistDataset from "../src/services/node/Dataset.js"
import { layerFile, readTeacherFile } from "../src/services/node/Teacher.js"
import * as TeacherCheckpointStore from "../src/services/node/TeacherCheckpointStore.js"
import { TeacherStartReport, TeacherStepReport, trainTeacher, type TeacherTrainingOptions } from "../src/pipeline/node/TeacherTraining.js"
import { Dataset } from "../src/services/node/Dataset.js"
import { Teacher } from "../src/services/node/Teacher.js"
import { type TeacherCheckpoint, TeacherCheckpointStore as StoreTag } from "../src/services/node/TeacherCheckpointStore.js"
import { activeEngine, runWithEngine } from "./support/distillation.js"

const tiny = (overrides: Partial<typeof TeacherTrainingConfig.Encoded> = {}) =>
  teacherTrainingConfig({
    resolution: 16,
    baseChannels: 8,
    channelMult: [1, 2],
    batchSize: 8,
    learningRate: 2e-3,
    learningRateRampupKimg: 0.04,
    emaHalfLifeKimg: 0.5,
    checkpointEvery: 1000,
    seed: 3,
    ...overrides
  })

let scope: Scope.CloseableScope
let data: Context.Context<Dataset>

beforeAll(async () => {
  scope = await Effect.runPromise(Scope.make())
  await Effect.runPromise(Layer.buildWithScope(Engine.layer("wasm"), scope))
  data = await runWithEngine(Layer.buildWithScope(MnistDataset.layer({ size: 16 }), scope))
})

afterAll(async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
})

type Report = TeacherStartReport | TeacherStepReport

const run = (
  config: TeacherTrainingConfig,
  store: Layer.Layer<StoreTag>,
  options: TeacherTrainingOptions = {},
  onReport: (r: Report) => void = () => {}
) =>
  runWithEngine(
    trainTeacher(config, options).pipe(
      Stream.tap((r) => Effect.sync(() => onReport(r))),
      Stream.runCollect,
      Effect.map(Chunk.toReadonlyArray),
      Effect.provide(store),
      Effect.provide(data)
    )
  )

const runEither = (config: TeacherTrainingConfig, store: Layer.Layer<StoreTag>, options: TeacherTrainingOptions = {}) =>
  runWithEngine(
    trainTeacher(config, options).pipe(Stream.runDrain, Effect.either, Effect.provide(store), Effect.provide(data))
  )

const latestOf = (store: Layer.Layer<StoreTag>): Promise<TeacherCheckpoint> =>
  Effect.runPromise(Effect.flatMap(StoreTag, (s) => s.latest).pipe(Effect.map(Option.getOrThrow), Effect.provide(store)))

/** A store value shared by several runs (the memory layer would build a fresh one per run). */
const sharedMemory = async (): Promise<Layer.Layer<StoreTag>> =>
  Layer.succeed(StoreTag, await Effect.runPromise(TeacherCheckpointStore.makeMemory))

/** The EDM loss (docs/algorithm.md §2.4) at fixed σ values and fixed noise on the first 32 training images. */
const fixedLoss = (network: Network, params: Parameters, labels?: tf.Tensor2D): number =>
  tf.tidy(() => {
    const x0 = Context.get(data, Dataset).train.images.slice([0, 0, 0, 0], [32, 16, 16, 1])
    const sigma = tf.tensor1d(Array.from({ length: 32 }, (_, i) => [0.05, 0.2, 0.5, 1, 2.5, 8][i % 6]!))
    const xt = tf.add(x0, tf.mul(normalTensor(x0.shape, 11, "eval"), sigma.reshape([-1, 1, 1, 1])))
    const yHat = denoiseWith(network, params, xt, sigma, 0.5, labels)
    return denoisingLoss({ y: x0, yHat, sigma }).loss.dataSync()[0]!
  })

describe("TeacherTrainingConfig (issue 4 §2)", () => {
  it("decodes defaults, round-trips through JSON, and lists every bad field with its rule", () => {
    const config = tiny()
    const again = decodeTeacherTrainingConfig(JSON.parse(JSON.stringify(encodeTeacherTrainingConfig(config))))
    expect(Either.isRight(again) && encodeTeacherTrainingConfig(again.right)).toEqual(encodeTeacherTrainingConfig(config))
    const bad = decodeTeacherTrainingConfig({ batchSize: 0, resolution: 20, learningRate: -1, baseChannel: 8 })
    expect(Either.isLeft(bad)).toBe(true)
    const error = Either.getLeft(bad).pipe(Option.getOrThrow)
    expect(error._tag).toBe("ConfigError")
    expect(error.issues.map((i) => i.field).sort()).toEqual(["baseChannel", "batchSize", "learningRate", "resolution"])
    expect(error.message).toMatch(/resolution = 20: must be 16, 28 or 32/)
    expect(error.message).toMatch(/baseChannel = 8: is not a TeacherTrainingConfig setting/)
  })

  it("rejects a UNet that does not fit the resolution or the group count", () => {
    const levels = decodeTeacherTrainingConfig({ resolution: 28, channelMult: [1, 2, 2, 2] })
    expect(Either.getLeft(levels).pipe(Option.getOrThrow).issues[0]!.field).toBe("channelMult")
    const groups = decodeTeacherTrainingConfig({ baseChannels: 12 })
    expect(Either.getLeft(groups).pipe(Option.getOrThrow).issues[0]!.field).toBe("groups")
  })
})

describe("trainTeacher (issue 4 §2)", () => {
  it("lowers the EDM loss, writes a teacher file that layerFile loads, and leaks no tensors", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sid-teacher-"))
    const teacherFile = join(dir, "teacher.safetensors")
    const config = tiny({ steps: 80, checkpointEvery: 40 })
    const before = tf.memory().numTensors
    const counts: Array<number> = []
    const reports = await run(config, TeacherCheckpointStore.layerDirectory(join(dir, "checkpoints")), { teacherFile }, (r) => {
      if (r instanceof TeacherStepReport) counts.push(tf.memory().numTensors)
    })
    expect(tf.memory().numTensors).toBe(before)
    expect(new Set(counts).size).toBe(1)
    const start = reports[0] as TeacherStartReport
    expect(start.step).toBe(0)
    expect(start.trainImages).toBe(8000)
    const steps = reports.slice(1) as ReadonlyArray<TeacherStepReport>
    expect(steps.map((r) => r.step)).toEqual(Array.from({ length: 80 }, (_, i) => i + 1))
    expect(steps.filter((r) => r.checkpoint !== undefined).map((r) => r.step)).toEqual([40, 80])
    expect(steps.every((r) => Number.isFinite(r.loss) && r.gradNorm > 0 && r.nonFiniteGradients === 0)).toBe(true)

    const file = await runWithEngine(readTeacherFile(teacherFile))
    const checkpoint = await latestOf(TeacherCheckpointStore.layerDirectory(join(dir, "checkpoints")))
    expect(checkpoint.manifest.step).toBe(80)
    expect(file.network.description).toEqual(checkpoint.manifest.network)
    expect(file.sigmaData).toBe(0.5)
    for (const [name, t] of Object.entries(file.params)) {
      expect(Array.from(t.dataSync())).toEqual(Array.from(checkpoint.tensors.get(`ema.${name}`)!.values))
    }
    const init = file.network.init(config.seed)
    const lossBefore = fixedLoss(file.network, init)
    const lossAfter = fixedLoss(file.network, file.params)
    tf.dispose([...Object.values(init), ...Object.values(file.params)])
    expect(lossAfter).toBeLessThan(0.7 * lossBefore)

    const denoised = await runWithEngine(
      Effect.flatMap(Teacher, (t) =>
        Effect.sync(() =>
          tf.tidy(() => {
            const x = tf.zeros([2, 16, 16, 1])
            const out = t.denoise(x, 1)
            return { shape: out.shape, finite: tf.all(tf.isFinite(out)).dataSync()[0], kind: t.weights?.network.description.kind }
          })
        )).pipe(Effect.provide(layerFile(teacherFile)))
    )
    expect(denoised).toEqual({ shape: [2, 16, 16, 1], finite: 1, kind: "unet" })
    expect(tf.memory().numTensors).toBe(before)
  })

  it("K steps, then resume for M more, equals K + M steps uninterrupted (weights, Adam, EMA, streams)", async () => {
    const whole = await sharedMemory()
    await run(tiny({ steps: 7 }), whole)
    const split = await sharedMemory()
    await run(tiny({ steps: 3 }), split)
    const resumed = await run(tiny({ steps: 7 }), split, { resume: true })
    expect((resumed[0] as TeacherStartReport).resumedFrom).toMatch(/step 3/)
    expect(resumed.slice(1).map((r) => r.step)).toEqual([4, 5, 6, 7])
    const a = await latestOf(whole)
    const b = await latestOf(split)
    expect(b.manifest.step).toBe(7)
    expect(b.manifest.optimizerStep).toBe(7)
    expect(b.manifest.streams).toEqual(a.manifest.streams)
    expect([...b.tensors.keys()].sort()).toEqual([...a.tensors.keys()].sort())
    expect([...a.tensors.keys()].some((n) => n.startsWith("optimizer.v."))).toBe(true)
    for (const [name, t] of a.tensors) expect(Array.from(b.tensors.get(name)!.values), name).toEqual(Array.from(t.values))
  })

  it("stops on shouldStop with a final checkpoint and teacher file at the last completed step", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sid-teacher-stop-"))
    const teacherFile = join(dir, "teacher.safetensors")
    let completed = 0
    const reports = await run(
      tiny({ steps: 1000 }),
      TeacherCheckpointStore.layerDirectory(join(dir, "ck")),
      { teacherFile, shouldStop: Effect.sync(() => completed >= 3) },
      (r) => {
        if (r instanceof TeacherStepReport) completed = r.step
      }
    )
    expect(reports.at(-1)!.step).toBe(3)
    const checkpoint = await latestOf(TeacherCheckpointStore.layerDirectory(join(dir, "ck")))
    expect(checkpoint.manifest.step).toBe(3)
    expect(checkpoint.manifest.imagesSeen).toBe(24)
    const file = await runWithEngine(readTeacherFile(teacherFile))
    const name = Object.keys(file.params)[0]!
    expect(Array.from(file.params[name]!.dataSync())).toEqual(Array.from(checkpoint.tensors.get(`ema.${name}`)!.values))
    tf.dispose(Object.values(file.params))
  })

  it("an interruption from a macrotask (Ctrl-C) ends training within one step, with a final checkpoint there", async () => {
    const k = 3
    const dir = await mkdtemp(join(tmpdir(), "sid-teacher-interrupt-"))
    const store = TeacherCheckpointStore.layerDirectory(join(dir, "ck"))
    const steps: Array<number> = []
    let fiber: Fiber.RuntimeFiber<void, unknown> | undefined
    fiber = Effect.runFork(
      trainTeacher(tiny({ steps: 200 })).pipe(
        Stream.runForEach((r) =>
          Effect.sync(() => {
            if (!(r instanceof TeacherStepReport)) return
            steps.push(r.step)
            if (r.step === k) setImmediate(() => fiber!.unsafeInterruptAsFork(fiber!.id()))
          })
        ),
        Effect.provide(store),
        Effect.provide(data),
        Effect.provide(activeEngine)
      )
    )
    const exit = await Effect.runPromise(Fiber.await(fiber))
    expect(Exit.isInterrupted(exit)).toBe(true)
    expect(steps.at(-1)!).toBeLessThanOrEqual(k + 1)
    const saved = (await latestOf(store)).manifest.step
    expect(saved).toBeLessThanOrEqual(k + 1)
    expect([steps.at(-1)!, steps.at(-1)! + 1]).toContain(saved)
  })

  it("refuses a mismatched or corrupt checkpoint, and a fresh run over an existing one, without losing it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sid-teacher-bad-"))
    const store = TeacherCheckpointStore.layerDirectory(dir)
    await run(tiny({ steps: 2 }), store)
    const files = (await readdir(dir)).sort()
    const fresh = await runEither(tiny({ steps: 2 }), store)
    expect(Either.isLeft(fresh) && fresh.left.message).toMatch(/already holds a checkpoint at step 2; resume it/)
    const other = await runEither(tiny({ steps: 4, baseChannels: 16 }), store, { resume: true })
    expect(Either.isLeft(other) && other.left._tag).toBe("CheckpointError")
    expect(Either.isLeft(other) && other.left.message).toMatch(/baseChannels: 8 there, 16 here/)
    expect((await readdir(dir)).sort()).toEqual(files)
    const weights = files.find((f) => f.endsWith(".safetensors"))!
    const bytes = await readFile(join(dir, weights))
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff
    await writeFile(join(dir, weights), bytes)
    const corrupt = await runEither(tiny({ steps: 4 }), store, { resume: true })
    expect(Either.isLeft(corrupt) && corrupt.left.message).toMatch(/corrupt \(checksum mismatch\)/)
    expect((await readdir(dir)).sort()).toEqual(files)
  })

  it("trains a class-conditional UNet whose teacher file keeps labelDim 10", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sid-teacher-cond-"))
    const teacherFile = join(dir, "teacher.safetensors")
    await run(tiny({ steps: 3, conditional: true }), TeacherCheckpointStore.layerDirectory(dir), { teacherFile })
    const file = await runWithEngine(readTeacherFile(teacherFile))
    expect(file.network.labelDim).toBe(10)
    expect(file.params["emb.label.weight"]!.shape).toEqual([10, 8])
    const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1], "int32"), 10).toFloat() as tf.Tensor2D
    const shifted = tf.oneHot(tf.tensor1d(Array.from({ length: 32 }, (_, i) => (i + 3) % 10), "int32"), 10).toFloat() as tf.Tensor2D
    expect(fixedLoss(file.network, file.params, labels)).not.toBe(fixedLoss(file.network, file.params, shifted))
    tf.dispose([labels, shifted, ...Object.values(file.params)])
  })
})
