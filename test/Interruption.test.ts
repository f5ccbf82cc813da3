import { Effect, Exit, Fiber, Layer } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ring } from "../src/domain/data/GaussianMixture.js"
import { mlpSpec } from "../src/domain/nn/Mlp.js"
import { mlpNetwork } from "../src/domain/nn/Network.js"
import { normals, type StreamState } from "../src/domain/data/RandomStream.js"
import { fitDenoiserScoped } from "../src/services/node/Teacher.js"
import { yieldToEventLoop } from "../src/engine/EventLoop.js"
import * as TeacherSpec from "../src/services/node/Teacher.js"
import { drawGeneratorSamples, drawTeacherSamples, fixedLatents } from "../src/pipeline/Evaluation.js"
import { Generator } from "../src/services/node/Generator.js"
import { Teacher } from "../src/services/node/Teacher.js"
import type { Engine as EngineTag } from "../src/engine/node/Engine.js"
import { activeEngine, CheckpointStore, runLayers, smallConfig, Teacher as TeacherLayers, tf, useEngine } from "./support/distillation.js"

// An interruption that a signal handler sends (Ctrl-C) arrives as a macrotask: these tests interrupt from
// `setImmediate` at a known step and count the steps that ran, never the time.

let release: () => Promise<void>
beforeAll(async () => {
  release = await useEngine("wasm")
})
afterAll(() => release())

/** Runs `program` on its own fiber; `interruptSoon()` interrupts it from the next macrotask, as a signal would. */
const forkWithMacrotaskInterrupt = <A, E>(make: (interruptSoon: () => void) => Effect.Effect<A, E, EngineTag>) => {
  let fiber: Fiber.RuntimeFiber<A, E> | undefined
  let sent = false
  const interruptSoon = () => {
    if (sent) return
    sent = true
    setImmediate(() => fiber!.unsafeInterruptAsFork(fiber!.id()))
  }
  fiber = Effect.runFork(Effect.provide(make(interruptSoon), activeEngine))
  return Effect.runPromise(Fiber.await(fiber))
}

const normalSampler = (stream: StreamState, batch: number) => {
  const drawn = normals(stream, batch * 2)
  return { x: tf.tensor2d(drawn.values, [batch, 2]), state: drawn.state }
}

const tinyTeacher = TeacherLayers.layerGaussianMixture(ring(), { steps: 1, hidden: 8, depth: 1, batchSize: 8 })

describe("interruption between units of work (Ctrl-C)", () => {
  it("yieldToEventLoop lets a pending macrotask run before the fiber continues", async () => {
    const order: Array<string> = []
    await Effect.runPromise(
      Effect.gen(function*() {
        setImmediate(() => order.push("macrotask"))
        yield* Effect.yieldNow()
        order.push("after yieldNow")
        yield* yieldToEventLoop
        order.push("after yieldToEventLoop")
      })
    )
    expect(order).toEqual(["after yieldNow", "macrotask", "after yieldToEventLoop"])
  })

  it("a denoiser fit interrupted after k steps runs at most k + 1 steps and releases every tensor", async () => {
    const k = 5
    const before = tf.memory().numTensors
    const steps: Array<number> = []
    const exit = await forkWithMacrotaskInterrupt((interruptSoon) =>
      Effect.scoped(
        fitDenoiserScoped({
          network: mlpNetwork(mlpSpec(2, { hidden: 8, depth: 1 })),
          sigmaData: 0.5,
          steps: 20_000,
          batchSize: 8,
          learningRate: 1e-3,
          seed: 0,
          sampleData: normalSampler,
          reportEvery: 1,
          onProgress: (step) => {
            steps.push(step)
            if (step === k - 1) interruptSoon()
          }
        })
      )
    )
    expect(Exit.isInterrupted(exit)).toBe(true)
    expect(steps.length).toBeGreaterThanOrEqual(k)
    expect(steps.length).toBeLessThanOrEqual(k + 1)
    expect(tf.memory().numTensors).toBe(before)
  })

  for (const text of ["gmm-dsm:ring8", "gmm:ring8"]) {
    it(`the teacher layer of --teacher ${text} stops its fit within one step of an interruption`, async () => {
      const k = 3
      const before = tf.memory().numTensors
      const steps: Array<number> = []
      const exit = await forkWithMacrotaskInterrupt((interruptSoon) =>
        Effect.scoped(
          Layer.build(
            TeacherSpec.layerFromSpec(TeacherSpec.parseTeacherSpec(text), {
              steps: 5000,
              hidden: 8,
              depth: 1,
              batchSize: 8,
              reportEvery: 1,
              onProgress: (step) => {
                steps.push(step)
                if (step === k - 1) interruptSoon()
              }
            })
          )
        )
      )
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(steps.length).toBeLessThanOrEqual(k + 1)
      expect(tf.memory().numTensors).toBe(before)
    })
  }

  it("teacher Heun sampling stops within one sampler step (≤ 2 evaluations) and releases every tensor", async () => {
    const k = 7
    let evaluations = 0
    const before = tf.memory().numTensors
    const exit = await forkWithMacrotaskInterrupt((interruptSoon) =>
      Effect.gen(function*() {
        const teacher = yield* Teacher
        const counting: Teacher["Type"] = {
          ...teacher,
          denoise: (x, sigma, labels) => {
            evaluations++
            if (evaluations === k) interruptSoon()
            return teacher.denoise(x, sigma, labels)
          }
        }
        const latents = yield* Effect.acquireRelease(Effect.sync(() => fixedLatents(0, 300, [2])), (z) => Effect.sync(() => z.dispose()))
        return yield* drawTeacherSamples(counting, latents, 18, undefined, 100)
      }).pipe(Effect.scoped, Effect.provide(tinyTeacher))
    )
    expect(Exit.isInterrupted(exit)).toBe(true)
    expect(evaluations).toBeGreaterThanOrEqual(k)
    expect(evaluations).toBeLessThanOrEqual(k + 2)
    expect(tf.memory().numTensors).toBe(before)
  })

  it("generator sampling stops within one chunk and releases every tensor", async () => {
    const config = smallConfig({ steps: 1 })
    let chunks = 0
    const before = tf.memory().numTensors
    const exit = await forkWithMacrotaskInterrupt((interruptSoon) =>
      Effect.gen(function*() {
        const generator = yield* Generator
        const counting: Generator["Type"] = {
          ...generator,
          generate: (z, weights, labels) => {
            chunks++
            if (chunks === 2) interruptSoon()
            return generator.generate(z, weights, labels)
          }
        }
        const latents = yield* Effect.acquireRelease(Effect.sync(() => fixedLatents(0, 50, [2])), (z) => Effect.sync(() => z.dispose()))
        return yield* drawGeneratorSamples(counting, latents, "ema", 5)
      }).pipe(
        Effect.scoped,
        Effect.provide(runLayers(config, tinyTeacher, CheckpointStore.layerMemory))
      )
    )
    expect(Exit.isInterrupted(exit)).toBe(true)
    expect(chunks).toBeLessThanOrEqual(3)
    expect(tf.memory().numTensors).toBe(before)
  })
})
