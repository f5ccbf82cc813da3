import { mkdtemp } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Context, Effect, Exit, Layer, Scope, Stream } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type AdamConfig, adamUpdate, adamUpdateHost, initAdam } from "../src/domain/optim/Adam.js"
import { ring } from "../src/domain/data/GaussianMixture.js"
import { adam, adamHost, type Optimizer } from "../src/domain/optim/Optimizer.js"
import * as Distillation from "../src/layers/node/Distillation.js"
import * as GeneratorLayers from "../src/services/node/Generator.js"
import * as Metrics from "../src/services/node/Metrics.js"
import { makeTrainableWeights } from "../src/services/TrainableWeights.js"
import { distill, StepReport } from "../src/pipeline/Distill.js"
import { Generator } from "../src/services/node/Generator.js"
import type { TrainableWeights } from "../src/services/TrainableWeights.js"
import { CheckpointStore, runSyncWithEngine, runWithEngine, smallConfig, Teacher, tf, useEngine, writeSmallTeacher } from "./support/distillation.js"

let release: () => Promise<void>
let dir: string
let teacherFile: string

beforeAll(async () => {
  release = await useEngine("wasm")
  dir = await mkdtemp(join(tmpdir(), "sid-host-optimizer-"))
  teacherFile = join(dir, "teacher.safetensors")
  await writeSmallTeacher(teacherFile)
})
afterAll(() => release())

const onBackend = async <A>(backend: string, f: () => A): Promise<A> => {
  const previous = tf.getBackend()
  await tf.setBackend(backend)
  try {
    return f()
  } finally {
    await tf.setBackend(previous)
  }
}

const f32 = (xs: ReadonlyArray<number>) => Float32Array.from(xs)
const finite = fc.float({ min: -50, max: 50, noNaN: true, noDefaultInfinity: true })
const configArb = fc.record({
  learningRate: fc.constantFrom(1e-4, 1e-3, 0.05),
  beta1: fc.constantFrom(0, 0.9),
  beta2: fc.constantFrom(0.999, 0.99),
  epsilon: fc.constantFrom(1e-8, 1e-6)
})

describe("adamUpdateHost", () => {
  for (const backend of ["cpu", "wasm"]) {
    it(`gives the bits of the tensor Adam step for step (${backend})`, async () => {
      await onBackend(backend, () =>
        fc.assert(
          fc.property(
            configArb,
            fc.integer({ min: 1, max: 40 }).chain((n) =>
              fc.tuple(fc.array(finite, { minLength: n, maxLength: n }), fc.array(fc.array(finite, { minLength: n, maxLength: n }), { minLength: 1, maxLength: 4 }))
            ),
            (config: AdamConfig, [init, grads]) => {
              const value = f32(init)
              const m = new Float32Array(value.length)
              const v = new Float32Array(value.length)
              let params: Record<string, tf.Tensor> = { w: tf.tensor1d(value.slice()) }
              let state = initAdam(params)
              grads.forEach((g, step) => {
                const gt = tf.tensor1d(f32(g))
                const next = adamUpdate(config, params, { w: gt }, state)
                tf.dispose([gt, ...Object.values(params), ...Object.values(state.m), ...Object.values(state.v)])
                params = next.params
                state = next.state
                adamUpdateHost(config, step, value, f32(g), m, v)
                expect(Array.from(value)).toEqual(Array.from(params["w"]!.dataSync()))
                expect(Array.from(m)).toEqual(Array.from(state.m["w"]!.dataSync()))
                expect(Array.from(v)).toEqual(Array.from(state.v["w"]!.dataSync()))
              })
              tf.dispose([...Object.values(params), ...Object.values(state.m), ...Object.values(state.v)])
            }
          ),
          { numRuns: 25, seed: 5 }
        )
      )
    })
  }
})

/** Builds trainable weights for `initial` in a fresh scope; returns them and the scope's close. */
const build = (initial: Record<string, tf.Tensor>, optimizer: Optimizer) => {
  const scope = Effect.runSync(Scope.make())
  const weights = runSyncWithEngine(Scope.extend(makeTrainableWeights(initial, optimizer), scope))
  return { weights, close: () => Effect.runSync(Scope.close(scope, Exit.void)) }
}

const byVariable = (w: TrainableWeights, grads: Record<string, tf.Tensor>) =>
  Object.fromEntries(Object.entries(grads).map(([n, g]) => [w.variables[n]!.name, g]))

const values = (ts: Readonly<Record<string, tf.Tensor>>) =>
  Object.fromEntries(Object.entries(ts).map(([n, t]) => [n, Array.from(t.dataSync())]))

describe("trainable weights with a host optimiser", () => {
  const config: AdamConfig = { learningRate: 1e-2, beta1: 0, beta2: 0.999, epsilon: 1e-8 }
  const initial = () => ({
    a: tf.randomNormal([3, 4], 0, 1, "float32", 1),
    b: tf.randomNormal([5], 0, 1, "float32", 2),
    c: tf.randomNormal([2, 2, 2], 0, 1, "float32", 3)
  })
  const gradsAt = (k: number): Record<string, tf.Tensor> => ({
    a: tf.randomNormal([3, 4], 0, 3, "float32", 10 + k),
    b: tf.tensor1d([NaN, Infinity, -Infinity, 2e6, -0.5 * k]),
    ...(k % 3 === 2 ? {} : { c: tf.randomNormal([2, 2, 2], 0, 1, "float32", 20 + k) })
  })

  it("matches tensor Adam on every engine step (NaN/Inf sanitised, missing gradients skipped) without leaking", () => {
    const init = initial()
    const engine = build(init, adam(config))
    const host = build(init, adamHost(config))
    const before = tf.memory().numTensors
    for (let k = 0; k < 6; k++) {
      const g = gradsAt(k)
      const se = engine.weights.applyGradients(byVariable(engine.weights, g))
      const sh = host.weights.applyGradients(byVariable(host.weights, g))
      tf.dispose(Object.values(g))
      expect(sh.nonFinite).toBe(se.nonFinite)
      expect(sh.nonFinite).toBe(3)
      expect(Number.isNaN(sh.gradNorm)).toBe(true)
      expect(values(host.weights.variables)).toEqual(values(engine.weights.variables))
      expect(tf.memory().numTensors).toBe(before)
    }
    const finiteGrads = { a: tf.ones([3, 4]), b: tf.fill([5], 2), c: tf.fill([2, 2, 2], -1) }
    const se = engine.weights.applyGradients(byVariable(engine.weights, finiteGrads))
    const sh = host.weights.applyGradients(byVariable(host.weights, finiteGrads))
    tf.dispose(Object.values(finiteGrads))
    expect(sh.gradNorm).toBeCloseTo(se.gradNorm, 4)
    expect(sh.gradNorm).toBeCloseTo(Math.sqrt(12 + 20 + 8), 5)
    expect(host.weights.optimizerState().step).toBe(7)
    expect(engine.weights.optimizerState().step).toBe(7)
    const es = engine.weights.optimizerState().slots
    const hs = host.weights.optimizerState().slots
    expect(Object.keys(hs).sort()).toEqual(["m", "v"])
    expect(values(hs["m"]!)).toEqual(values(es["m"]!))
    expect(values(hs["v"]!)).toEqual(values(es["v"]!))
    const g = gradsAt(7)
    host.weights.applyGradients(byVariable(host.weights, g))
    tf.dispose(Object.values(g))
    expect(tf.memory().numTensors).toBe(before)
    engine.close()
    host.close()
    tf.dispose(Object.values(init))
  })

  it("restores a captured state and continues bit for bit; rejects a mis-shaped slot", () => {
    const init = initial()
    const whole = build(init, adamHost(config))
    const split = build(init, adamHost(config))
    for (let k = 0; k < 3; k++) {
      const g = gradsAt(k)
      whole.weights.applyGradients(byVariable(whole.weights, g))
      split.weights.applyGradients(byVariable(split.weights, g))
      tf.dispose(Object.values(g))
    }
    const captured = tf.tidy(() => {
      const s = split.weights.optimizerState()
      return {
        params: Object.fromEntries(Object.entries(split.weights.variables).map(([n, v]) => [n, tf.clone(v)])),
        optimizer: {
          step: s.step,
          slots: Object.fromEntries(
            Object.entries(s.slots).map(([slot, ts]) => [slot, Object.fromEntries(Object.entries(ts).map(([n, t]) => [n, tf.clone(t)]))])
          )
        }
      }
    })
    split.close()
    const resumed = build(initial(), adamHost(config))
    const bad = { ...captured, optimizer: { ...captured.optimizer, slots: { ...captured.optimizer.slots, v: { a: tf.zeros([2]) } } } }
    expect(() => resumed.weights.restore(bad)).toThrow(/optimizer slot "v" does not fit/)
    tf.dispose(Object.values(bad.optimizer.slots.v))
    resumed.weights.restore(captured)
    tf.dispose([...Object.values(captured.params), ...Object.values(captured.optimizer.slots).flatMap((s) => Object.values(s))])
    expect(resumed.weights.optimizerState().step).toBe(3)
    for (let k = 3; k < 6; k++) {
      const g = gradsAt(k)
      whole.weights.applyGradients(byVariable(whole.weights, g))
      resumed.weights.applyGradients(byVariable(resumed.weights, g))
      tf.dispose(Object.values(g))
      expect(values(resumed.weights.variables)).toEqual(values(whole.weights.variables))
    }
    expect(values(resumed.weights.optimizerState().slots["v"]!)).toEqual(values(whole.weights.optimizerState().slots["v"]!))
    whole.close()
    resumed.close()
    tf.dispose(Object.values(init))
  })
})

describe("distillation with host Adam", () => {
  const config = smallConfig({ steps: 6, checkpointEvery: 3, seed: 17 })
  const hostOptimizers = {
    generator: adamHost({ learningRate: config.generatorLr, beta1: config.generatorBeta1, beta2: config.beta2, epsilon: config.epsilon }),
    fakeScore: adamHost({ learningRate: config.fakeLr, beta1: 0, beta2: config.beta2, epsilon: config.epsilon })
  }
  const layers = (store: string, optimizers?: typeof hostOptimizers) =>
    Distillation.layer(config, {
      teacher: Teacher.layerFile(teacherFile),
      metrics: Metrics.layerGaussianMixture(ring(), { referenceSize: 1000, mmdSize: 500 }),
      checkpoints: CheckpointStore.layerDirectory(store),
      ...(optimizers === undefined ? {} : { optimizers })
    })
  const run = (layer: ReturnType<typeof layers>, options: Parameters<typeof distill>[1]) =>
    runWithEngine(distill(config, options).pipe(Stream.runCollect, Effect.provide(layer))).then((c) =>
      Array.from(c).filter((r): r is StepReport => r instanceof StepReport)
    )
  const losses = (rs: ReadonlyArray<StepReport>) => rs.map((r) => [r.step, r.fakeLoss, r.generatorLoss])

  it("equals the tensor-Adam run, and resumes from its checkpoint bit for bit with tensors released", async () => {
    const before = tf.memory().numTensors
    const reference = await run(layers(join(dir, "tensor")), { evaluate: false })
    const whole = await run(layers(join(dir, "host-whole"), hostOptimizers), { evaluate: false })
    expect(losses(whole)).toEqual(losses(reference))
    let completed = 0
    await runWithEngine(
      distill(config, { evaluate: false, shouldStop: Effect.sync(() => completed >= 3) }).pipe(
        Stream.tap((r) => Effect.sync(() => r instanceof StepReport && completed++)),
        Stream.runDrain,
        Effect.provide(layers(join(dir, "host-split"), hostOptimizers))
      )
    )
    const resumed = await run(layers(join(dir, "host-split"), hostOptimizers), { evaluate: false, resume: true })
    expect(resumed.map((r) => r.step)).toEqual([4, 5, 6])
    expect(losses(resumed)).toEqual(losses(whole.slice(3)))
    expect(resumed.map((r) => r.generatorGradNorm)).toEqual(whole.slice(3).map((r) => r.generatorGradNorm))
    expect(tf.memory().numTensors).toBe(before)
  })
})

describe("generator with θ_ema in host memory", () => {
  it("updates, generates from, exposes and restores θ_ema exactly like the engine EMA, without leaking", () => {
    const scope = Effect.runSync(Scope.make())
    const optimizer = adam({ learningRate: 1e-2, beta1: 0, beta2: 0.999, epsilon: 1e-8 })
    const build = (emaInHost: boolean) =>
      Effect.promise(() =>
        runWithEngine(
          Scope.extend(Layer.build(GeneratorLayers.layer({ optimizer, emaInHost }).pipe(Layer.provide(Teacher.layerFile(teacherFile)))), scope)
        )
      ).pipe(Effect.map((ctx) => Context.get(ctx, Generator)))
    return Effect.runPromise(
      Effect.gen(function*() {
        const engine = yield* build(false)
        const host = yield* build(true)
        const z = tf.randomNormal([16, ...engine.dataShape], 0, 1, "float32", 4)
        const before = tf.memory().numTensors
        expect(values(host.ema)).toEqual(values(engine.ema))
        for (let k = 0; k < 3; k++) {
          for (const g of [engine, host]) {
            const grads = tf.tidy(() =>
              Object.fromEntries(g.weights.list.map((v, i) => [v.name, tf.randomNormal(v.shape, 0, 1, "float32", 1 + 100 * k + i)]))
            )
            g.weights.applyGradients(grads)
            tf.dispose(Object.values(grads))
            g.updateEma(0.9 - 0.2 * k)
          }
          expect(tf.memory().numTensors).toBe(before)
          expect(values(host.weights.variables)).toEqual(values(engine.weights.variables))
          expect(values(host.ema)).toEqual(values(engine.ema))
          const [a, b] = [engine.generate(z, "ema"), host.generate(z, "ema")]
          expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()))
          tf.dispose([a, b])
        }
        const saved = tf.tidy(() => Object.fromEntries(Object.entries(engine.ema).map(([n, t]) => [n, tf.clone(t)])))
        engine.updateEma(0.5)
        host.updateEma(0.5)
        const bad = tf.zeros([1])
        expect(() => host.restoreEma({ ...saved, [Object.keys(saved)[0]!]: bad })).toThrow(/missing or mis-shaped/)
        bad.dispose()
        host.restoreEma(saved)
        engine.restoreEma(saved)
        tf.dispose(Object.values(saved))
        expect(values(host.ema)).toEqual(values(engine.ema))
        host.updateEma(0.8)
        engine.updateEma(0.8)
        expect(values(host.ema)).toEqual(values(engine.ema))
        expect(tf.memory().numTensors).toBe(before + Object.keys(engine.ema).length)
        host.updateEma(0.8)
        expect(tf.memory().numTensors).toBe(before)
        tf.dispose(z)
      })
    ).finally(() => Effect.runPromise(Scope.close(scope, Exit.void)))
  })
})
