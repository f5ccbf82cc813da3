import { mkdtemp, readdir, readFile, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Deferred, Effect, Either, Exit, Fiber, Layer, Option, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { decodeDistillConfig, type DistillConfig } from "../src/domain/config/DistillConfig.js"
import type { RunSpecMismatch } from "../src/domain/config/RunSpec.js"
import { sgd } from "../src/domain/optim/Optimizer.js"
import { distillationFormat, memoryStore } from "../src/services/node/CheckpointStore.js"
import * as Distillation from "../src/layers/node/Distillation.js"
import * as Metrics from "../src/services/node/Metrics.js"
import { ring } from "../src/domain/data/GaussianMixture.js"
import { distill, StartReport, StepReport } from "../src/pipeline/Distill.js"
import { CheckpointStore as StoreTag } from "../src/services/node/CheckpointStore.js"
import { CheckpointStore, runLayers, runWithEngine, smallConfig, Teacher, tf, useEngine, writeSmallTeacher } from "./support/distillation.js"

let release: () => Promise<void>
let dir: string
let teacherFile: string

beforeAll(async () => {
  release = await useEngine("wasm")
  dir = await mkdtemp(join(tmpdir(), "sid-distill-"))
  teacherFile = join(dir, "teacher.safetensors")
  await writeSmallTeacher(teacherFile)
})
afterAll(() => release())

const steps = (reports: ReadonlyArray<StartReport | StepReport>): Array<StepReport> =>
  reports.filter((r): r is StepReport => r instanceof StepReport)

const lossesOf = (reports: ReadonlyArray<StepReport>) =>
  reports.map((r) => [r.step, r.fakeLoss, r.generatorLoss, r.fakeGradNorm, r.generatorGradNorm])

const snapshot = async (path: string): Promise<Record<string, string>> => {
  const out: Record<string, string> = {}
  for (const entry of await readdir(path, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      for (const [name, bytes] of Object.entries(await snapshot(join(path, entry.name)))) out[`${entry.name}/${name}`] = bytes
    } else out[entry.name] = (await readFile(join(path, entry.name))).toString("base64")
  }
  return out
}

describe("distill", () => {
  it("cuts the Fréchet distance to the truth at least in half on the exact mixture teacher", async () => {
    const config = smallConfig({ steps: 120, batchSize: 256, evalEvery: 120, seed: 3 })
    const layers = runLayers(
      config,
      Teacher.layerGaussianMixture(ring(), { steps: 300, hidden: 32, depth: 2, batchSize: 256 }),
      CheckpointStore.layerMemory
    )
    const reports = await Effect.runPromise(
      distill(config, { evalSamples: 4000 }).pipe(Stream.runCollect, Effect.provide(layers))
    ).then((c) => Array.from(c))
    const start = reports[0] as StartReport
    const last = steps(reports).at(-1)!
    expect(last.step).toBe(120)
    const before = start.evaluation!.frechetDistance
    const after = last.evaluation!.frechetDistance
    expect(after).toBeLessThan(0.5 * before)
    expect(last.evaluation!.modesCovered).toBeGreaterThanOrEqual(6)
    for (const r of steps(reports)) {
      expect(Number.isFinite(r.fakeLoss) && Number.isFinite(r.generatorLoss)).toBe(true)
      expect(r.generatorSigma.max).toBeLessThanOrEqual(24.41)
      expect(r.nonFiniteGradients).toBe(0)
    }
  })

  it("resumes bit for bit: the next 5 steps after a checkpoint equal the uninterrupted run, also with a decaying rate", async () => {
    const teacher = Teacher.layerFile(teacherFile)
    const wholeRuns: Array<ReadonlyArray<StepReport>> = []
    // lrDecayKimg 0.256: 256 images, two steps of batch 128, so the rates fall from the third update on.
    for (const [name, config] of [["constant", smallConfig({ steps: 10, checkpointEvery: 5, seed: 11 })], [
      "decaying",
      smallConfig({ steps: 10, checkpointEvery: 5, seed: 11, lrDecayKimg: 0.256 })
    ]] as const) {
      const run = (store: string, options: Parameters<typeof distill>[1], onStep: () => void = () => {}) =>
        Effect.runPromise(
          distill(config, options).pipe(
            Stream.tap((r) => Effect.sync(() => r instanceof StepReport && onStep())),
            Stream.runCollect,
            Effect.provide(runLayers(config, teacher, CheckpointStore.layerDirectory(store)))
          )
        ).then((c) => steps(Array.from(c)))
      const whole = await run(join(dir, `whole-${name}`), {})
      expect(whole.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
      let completed = 0
      const stopped = await run(join(dir, `stopped-${name}`), { shouldStop: Effect.sync(() => completed >= 5) }, () => completed++)
      expect(stopped.map((r) => r.step)).toEqual([1, 2, 3, 4, 5])
      expect(lossesOf(stopped)).toEqual(lossesOf(whole.slice(0, 5)))
      const resumed = await run(join(dir, `stopped-${name}`), { resume: true })
      expect(resumed.map((r) => r.step)).toEqual([6, 7, 8, 9, 10])
      expect(lossesOf(resumed)).toEqual(lossesOf(whole.slice(5)))
      wholeRuns.push(whole)
    }
    const [constant, decaying] = wholeRuns.map(lossesOf)
    expect(decaying!.slice(0, 3)).toEqual(constant!.slice(0, 3))
    expect(decaying!.slice(3)).not.toEqual(constant!.slice(3))
  })

  it("takes another optimiser (SGD with momentum) as a part: its slot is checkpointed and resume stays exact", async () => {
    const config = smallConfig({ steps: 6, checkpointEvery: 3, seed: 13 })
    const optimizers = { generator: sgd({ learningRate: 1e-3, momentum: 0.9 }), fakeScore: sgd({ learningRate: 1e-3, momentum: 0.9 }) }
    const layers = (store: string) =>
      Distillation.layer(config, {
        teacher: Teacher.layerFile(teacherFile),
        metrics: Metrics.layerGaussianMixture(ring(), { referenceSize: 1000, mmdSize: 500 }),
        checkpoints: CheckpointStore.layerDirectory(store),
        optimizers
      })
    const run = (store: string, options: Parameters<typeof distill>[1]) =>
      runWithEngine(distill(config, options).pipe(Stream.runCollect, Effect.provide(layers(store)))).then((c) => steps(Array.from(c)))
    const whole = await run(join(dir, "sgd-whole"), { evaluate: false })
    let completed = 0
    await runWithEngine(
      distill(config, { evaluate: false, shouldStop: Effect.sync(() => completed >= 3) }).pipe(
        Stream.tap((r) => Effect.sync(() => r instanceof StepReport && completed++)),
        Stream.runDrain,
        Effect.provide(layers(join(dir, "sgd-split")))
      )
    )
    const latest = await Effect.runPromise(
      Effect.flatMap(StoreTag, (s) => s.latest).pipe(Effect.provide(CheckpointStore.layerDirectory(join(dir, "sgd-split"))))
    )
    const names = [...Option.getOrThrow(latest).tensors.keys()]
    expect(names.some((n) => n.startsWith("generator.optimizer.velocity."))).toBe(true)
    expect(names.some((n) => n.includes(".optimizer.m."))).toBe(false)
    const resumed = await run(join(dir, "sgd-split"), { evaluate: false, resume: true })
    expect(resumed.map((r) => r.step)).toEqual([4, 5, 6])
    expect(lossesOf(resumed)).toEqual(lossesOf(whole.slice(3)))
  })

  it("on interruption writes a loadable final checkpoint and releases every tensor", async () => {
    const config = smallConfig({ steps: 10_000, seed: 5 })
    const store = join(dir, "interrupted")
    const before = tf.memory().numTensors
    const progressed = await Effect.runPromise(Deferred.make<number>())
    let lastEmitted = 0
    const fiber = Effect.runFork(
      distill(config).pipe(
        Stream.tap((r) => Effect.sync(() => (lastEmitted = r.step))),
        Stream.tap((r) => (r.step >= 7 ? Deferred.succeed(progressed, r.step) : Effect.void)),
        Stream.runDrain,
        Effect.provide(runLayers(config, Teacher.layerFile(teacherFile), CheckpointStore.layerDirectory(store)))
      )
    )
    const reached = await Effect.runPromise(Deferred.await(progressed))
    await Effect.runPromise(Fiber.interrupt(fiber))
    expect(tf.memory().numTensors).toBe(before)
    const latest = await Effect.runPromise(
      Effect.flatMap(StoreTag, (s) => s.latest).pipe(Effect.provide(CheckpointStore.layerDirectory(store)))
    )
    expect(Option.isSome(latest)).toBe(true)
    const step = Option.getOrThrow(latest).manifest.step
    expect(step).toBeGreaterThanOrEqual(reached)
    expect([lastEmitted, lastEmitted + 1]).toContain(step)
  })

  it("an interrupt from a timer (as a signal handler would send it) is seen within one iteration", async () => {
    const config = smallConfig({ steps: 400, seed: 9 })
    const store = await Effect.runPromise(memoryStore(distillationFormat))
    for (const k of [3, 12]) {
      let lastStep = 0
      const fiber = Effect.runFork(
        distill(config, { evaluate: false }).pipe(
          Stream.tap((r) =>
            Effect.sync(() => {
              lastStep = r.step
              if (r.step === k) setTimeout(() => Effect.runFork(Fiber.interrupt(fiber)), 0)
            })
          ),
          Stream.runDrain,
          Effect.provide(runLayers(config, Teacher.layerFile(teacherFile), Layer.succeed(StoreTag, StoreTag.of(store))))
        )
      )
      const exit = await Effect.runPromise(Fiber.await(fiber))
      expect(Exit.isInterrupted(exit)).toBe(true)
      const saved = Option.getOrThrow(await Effect.runPromise(store.latest)).manifest.step
      expect(saved).toBeGreaterThanOrEqual(k)
      expect(saved).toBeLessThanOrEqual(k + 1)
      expect(lastStep).toBeLessThanOrEqual(k + 1)
    }
  })

  it("Effect.timeout ends a run within one iteration of its deadline, with a final checkpoint of the last one", async () => {
    const config = smallConfig({ steps: 100_000, seed: 10 })
    const store = await Effect.runPromise(memoryStore(distillationFormat))
    let lastStep = 0
    const exit = await Effect.runPromiseExit(
      distill(config, { evaluate: false }).pipe(
        Stream.tap((r) => Effect.sync(() => (lastStep = r.step))),
        Stream.runDrain,
        Effect.timeout("400 millis"),
        Effect.provide(runLayers(config, Teacher.layerFile(teacherFile), Layer.succeed(StoreTag, StoreTag.of(store))))
      )
    )
    expect(Exit.isFailure(exit)).toBe(true)
    expect(lastStep).toBeLessThan(config.steps)
    const saved = Option.getOrThrow(await Effect.runPromise(store.latest)).manifest.step
    expect([lastStep, lastStep + 1]).toContain(saved)
  })

  it("resume keeps the recorded run: a trajectory setting that differs is a RunSpecMismatch, run-only ones may change", async () => {
    const store = await Effect.runPromise(memoryStore(distillationFormat))
    const storeLayer = Layer.succeed(StoreTag, StoreTag.of(store))
    const record = { teacher: { spec: "gmm:ring8", sha256: "ab", fitSteps: 300 }, reference: "gmm:ring8" }
    const run = (cfg: DistillConfig, options: Parameters<typeof distill>[1]) =>
      Effect.runPromise(
        distill(cfg, { evaluate: false, ...options }).pipe(
          Stream.runCollect,
          Effect.provide(runLayers(cfg, Teacher.layerFile(teacherFile), storeLayer)),
          Effect.either
        )
      )
    const first = smallConfig({ steps: 2, batchSize: 64, alpha: 0.5, seed: 21 })
    expect(Either.isRight(await run(first, { record }))).toBe(true)
    const changed = smallConfig({ steps: 4, batchSize: 32, alpha: 0.5, loss: "dmd", seed: 21 })
    const refused = Either.getLeft(await run(changed, { resume: true, record })).pipe(Option.getOrThrow)
    expect(refused._tag).toBe("RunSpecMismatch")
    const differences = (refused as RunSpecMismatch).differences
    expect(differences.map((d) => d.setting).sort()).toEqual(["batchSize", "loss"])
    expect(refused.message).toMatch(/batchSize \(--batch\): recorded 64, requested 32/)
    const otherTeacher = { ...record, teacher: { ...record.teacher, sha256: "cd" } }
    const teacherRefused = Either.getLeft(await run(smallConfig({ steps: 4, batchSize: 64, alpha: 0.5, seed: 21 }), {
      resume: true,
      record: otherTeacher
    })).pipe(Option.getOrThrow)
    expect((teacherRefused as RunSpecMismatch).differences.map((d) => d.setting)).toEqual(["teacher.sha256"])
    const longer = smallConfig({ steps: 4, batchSize: 64, alpha: 0.5, seed: 21, checkpointEvery: 7 })
    const resumed = await run(longer, { resume: true, record })
    expect(steps(Array.from(Either.getOrThrow(resumed))).map((r) => [r.step, r.imagesSeen])).toEqual([[3, 192], [4, 256]])
    const manifest = Option.getOrThrow(await Effect.runPromise(store.latest)).manifest
    expect((manifest.run as { teacher: unknown }).teacher).toEqual(record.teacher)
  })

  it("rejects corrupt and mis-shaped checkpoints with typed errors and leaves the files untouched", async () => {
    const config = smallConfig({ steps: 3, checkpointEvery: 3, seed: 2 })
    const store = join(dir, "damaged")
    await Effect.runPromise(
      distill(config, { evaluate: false }).pipe(Stream.runDrain, Effect.provide(runLayers(config, Teacher.layerFile(teacherFile), CheckpointStore.layerDirectory(store))))
    )
    const otherTeacher = join(dir, "other-teacher.safetensors")
    await writeSmallTeacher(otherTeacher, 16)
    const resumeWith = (teacher: string) =>
      Effect.runPromise(
        distill(config, { resume: true }).pipe(
          Stream.runDrain,
          Effect.provide(runLayers(config, Teacher.layerFile(teacher), CheckpointStore.layerDirectory(store))),
          Effect.either
        )
      )
    const files = await snapshot(store)
    const misShaped = await resumeWith(otherTeacher)
    expect(Either.isLeft(misShaped)).toBe(true)
    const e1 = Either.getLeft(misShaped).pipe(Option.getOrThrow)
    expect(e1._tag).toBe("CheckpointError")
    expect(e1.message).toMatch(/network|mis-shaped/)
    expect(await snapshot(store)).toEqual(files)

    const manifest = Object.keys(files).find((n) => n.endsWith(".json") && !n.includes("/"))!
    const weights = Object.keys(files).find((n) => n.endsWith(".safetensors") && !n.includes("/"))!
    const bytes = await readFile(join(store, weights))
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff
    await writeFile(join(store, weights), bytes)
    const damaged = await snapshot(store)
    const corrupt = await resumeWith(teacherFile)
    expect(Either.getLeft(corrupt).pipe(Option.getOrThrow).message).toMatch(/corrupt \(checksum mismatch\)/)
    expect(await snapshot(store)).toEqual(damaged)

    await writeFile(join(store, manifest), "{ not json")
    const badManifest = await resumeWith(teacherFile)
    expect(Either.getLeft(badManifest).pipe(Option.getOrThrow).message).toMatch(/corrupt manifest/)
  })

  it("rejects an invalid config with a ConfigError naming the field, the value and the rule", () => {
    const bad = decodeDistillConfig({ alpha: -1, batchSize: 0 })
    expect(Either.isLeft(bad)).toBe(true)
    const message = Either.getLeft(bad).pipe(Option.getOrThrow).message
    expect(message).toMatch(/alpha/)
    expect(message).toMatch(/-1/)
    expect(message).toMatch(/batchSize/)
  })

  it("a missing teacher file is a typed TeacherError", async () => {
    const result = await runWithEngine(
      Layer.build(Teacher.layerFile(join(dir, "nope.safetensors"))).pipe(Effect.scoped, Effect.either)
    )
    expect(Either.getLeft(result).pipe(Option.getOrThrow).message).toMatch(/cannot read the file/)
  })
})
