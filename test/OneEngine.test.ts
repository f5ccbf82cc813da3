/**
 * Issue 17 §5, "the engine in the types": a distillation cannot be run without an engine (checked by `tsc`, see the
 * `@ts-expect-error` lines), and one process runs one engine: runs that each provide the same engine share it (the
 * backend stays until the last of them releases it, then the one before is restored), and a run asking for another
 * engine while one is active fails with `EngineConflict` instead of switching the backend under the first.
 */
import * as tf from "@tensorflow/tfjs"
import { Deferred, Effect, Exit, Layer, Stream } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { distillConfig } from "../src/domain/config/DistillConfig.js"
import { mlpSpec } from "../src/domain/nn/Mlp.js"
import { mlpNetwork } from "../src/domain/nn/Network.js"
import * as CheckpointStore from "../src/services/node/CheckpointStore.js"
import * as Distillation from "../src/layers/node/Distillation.js"
import * as EngineLayers from "../src/engine/node/Engine.js"
import * as Generator from "../src/services/node/Generator.js"
import * as Metrics from "../src/services/node/Metrics.js"
import * as Teacher from "../src/services/node/Teacher.js"
import { distill, StepReport } from "../src/pipeline/Distill.js"
import { Engine, type EngineError } from "../src/engine/node/Engine.js"
import type { Generator as GeneratorTag } from "../src/services/node/Generator.js"
import { Teacher as TeacherTag } from "../src/services/node/Teacher.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

const network = mlpNetwork(mlpSpec(2, { hidden: 16, depth: 2 }))
const config = distillConfig({
  steps: 8,
  batchSize: 16,
  evalEvery: 1_000_000,
  checkpointEvery: 1_000_000,
  generatorLr: 1e-3,
  fakeLr: 1e-3,
  seed: 5
})

/** A teacher of seeded initial MLP weights, made on the run's engine and disposed with the run. */
const teacher = Layer.scoped(
  TeacherTag,
  Effect.acquireRelease(
    Effect.sync(() => Teacher.fromWeights("tiny mlp", network, network.init(3), 0.5)),
    (t) => Effect.sync(() => tf.dispose(Object.values(t.weights.params)))
  )
)

const services = Distillation.layer(config, {
  teacher,
  metrics: Metrics.layerUnavailable(network.dataShape),
  checkpoints: CheckpointStore.layerMemory
})

interface Seen {
  readonly step: number
  readonly losses: readonly [number, number]
  /** The TF.js backend when the step was reported. */
  readonly backend: string
}

/**
 * A run of `config` on `engine` that stops after `stopAfter` steps; `beforeStep` runs before each step's report is
 * taken (to hold a run at a step). Returns what each step saw and the engine service it ran with.
 */
const run = (
  engine: Layer.Layer<Engine, EngineError>,
  options: { readonly stopAfter?: number; readonly beforeStep?: (step: number) => Effect.Effect<void> } = {}
) =>
  Effect.gen(function*() {
    let completed = 0
    const service = yield* Engine
    const seen = yield* distill(config, {
      evaluate: false,
      shouldStop: Effect.sync(() => completed >= (options.stopAfter ?? config.steps))
    }).pipe(
      Stream.filter((r): r is StepReport => r instanceof StepReport),
      Stream.mapEffect((r) =>
        Effect.gen(function*() {
          completed = r.step
          if (options.beforeStep !== undefined) yield* options.beforeStep(r.step)
          return { step: r.step, losses: [r.fakeLoss, r.generatorLoss], backend: tf.getBackend() } as Seen
        })
      ),
      Stream.runCollect
    )
    return { seen: Array.from(seen), service }
  }).pipe(Effect.provide(Layer.provideMerge(services, engine)))

describe("the engine in the types", () => {
  it("a distillation with its services but without an engine does not compile (tsc checks the @ts-expect-error lines)", () => {
    const program = distill(config, { evaluate: false }).pipe(Stream.runDrain, Effect.provide(services))
    // @ts-expect-error the Engine is not provided: the program still requires it, so it cannot be run
    const withoutEngine: Effect.Effect<void, unknown, never> = program
    const withEngine: Effect.Effect<void, unknown, never> = program.pipe(Effect.provide(EngineLayers.wasm))
    // @ts-expect-error a generator owns tensors: its layer requires the Engine besides the teacher
    const generatorWithoutEngine: Layer.Layer<GeneratorTag, never, TeacherTag> = Generator.layer({
      optimizer: Distillation.defaultOptimizers(config).generator
    })
    // Never run: the assignments above are the test.
    expect([withoutEngine, withEngine, generatorWithoutEngine].every((x) => x !== undefined)).toBe(true)
  })
})

describe("one engine per process", () => {
  it("two runs, each providing Engine.wasm, run concurrently on one shared backend; the last release restores cpu", async () => {
    const firstDone = Effect.runSync(Deferred.make<void>())
    const first = run(EngineLayers.wasm, { stopAfter: 2 }).pipe(Effect.ensuring(Deferred.succeed(firstDone, undefined)))
    // The second run waits at its third step until the first has finished and released its engine.
    const second = run(EngineLayers.wasm, { beforeStep: (step) => step === 3 ? Deferred.await(firstDone) : Effect.void })
    const [a, b] = await Effect.runPromise(Effect.all([first, second], { concurrency: 2 }))
    expect(a.seen.map((s) => s.step)).toEqual([1, 2])
    expect(b.seen.map((s) => s.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
    // Every step of both ran on wasm, also the second run's steps after the first one released the engine.
    expect([...a.seen, ...b.seen].map((s) => s.backend)).toEqual(Array(10).fill("wasm"))
    expect(a.service === b.service).toBe(true)
    // Shared, not disturbed: the same seed gives the same steps.
    expect(a.seen.map((s) => s.losses)).toEqual(b.seen.slice(0, 2).map((s) => s.losses))
    expect(tf.getBackend()).toBe("cpu")
  })

  it("two runs, each providing Engine.wasm, one after the other: both succeed on wasm and cpu is restored in between", async () => {
    const a = await Effect.runPromise(run(EngineLayers.wasm, { stopAfter: 3 }))
    expect(tf.getBackend()).toBe("cpu")
    const b = await Effect.runPromise(run(EngineLayers.layer("wasm"), { stopAfter: 3 }))
    expect(tf.getBackend()).toBe("cpu")
    expect([...a.seen, ...b.seen].map((s) => s.backend)).toEqual(Array(6).fill("wasm"))
    expect(a.seen.map((s) => s.losses)).toEqual(b.seen.map((s) => s.losses))
  })

  it("a run providing Engine.cpu while a wasm run is active fails with EngineConflict naming wasm; the wasm run is unharmed", async () => {
    const held = Effect.runSync(Deferred.make<void>())
    const atStep = Effect.runSync(Deferred.make<void>())
    const result = await Effect.runPromise(Effect.gen(function*() {
      const wasmRun = yield* Effect.fork(run(EngineLayers.wasm, {
        stopAfter: 3,
        beforeStep: (step) => step === 1 ? Effect.zipRight(Deferred.succeed(atStep, undefined), Deferred.await(held)) : Effect.void
      }))
      yield* Deferred.await(atStep)
      const cpuRun = yield* Effect.exit(run(EngineLayers.cpu))
      const backendMeanwhile = tf.getBackend()
      yield* Deferred.succeed(held, undefined)
      const wasmResult = yield* wasmRun.await
      return { cpuRun, backendMeanwhile, wasmResult }
    }))
    expect(Exit.isFailure(result.cpuRun)).toBe(true)
    const failure = Exit.isFailure(result.cpuRun) && result.cpuRun.cause._tag === "Fail" ? result.cpuRun.cause.error : undefined
    expect(failure).toMatchObject({ _tag: "EngineConflict", requested: "cpu", active: "wasm" })
    expect((failure as Error).message).toContain(`the "wasm" engine is already active`)
    expect(result.backendMeanwhile).toBe("wasm")
    expect(Exit.isSuccess(result.wasmResult)).toBe(true)
    if (Exit.isSuccess(result.wasmResult)) {
      expect(result.wasmResult.value.seen.map((s) => s.backend)).toEqual(["wasm", "wasm", "wasm"])
    }
    expect(tf.getBackend()).toBe("cpu")
    // Released: the other engine may start now.
    const c = await Effect.runPromise(run(EngineLayers.cpu, { stopAfter: 1 }))
    expect(c.seen.map((s) => s.backend)).toEqual(["cpu"])
  })
})
