/**
 * The page side of the browser WebGPU check (test/BrowserDistill.test.ts): bundled for the page by
 * `test/support/libraryPage.ts`, it sets `globalThis.sidCheck(engine)`, which builds the page's engine (`webgpu` or
 * `wasm`, from `sid-ts/browser`'s `makeEngine`), runs a few kernels the engine patches and a short ring8 SiD run on it,
 * and returns what it read, for the test to compare engines.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Chunk, Effect, Either, Layer, Stream } from "effect"
import { layerMemory } from "../../src/browser/CheckpointStore.js"
import * as BrowserRun from "../../src/browser/Distillation.js"
import { type BrowserEngineName, makeEngine } from "../../src/browser/Engine.js"
import { decodeDistillConfig, DISTILL_PRESETS } from "../../src/domain/config/DistillConfig.js"
import { ring } from "../../src/domain/data/GaussianMixture.js"
import { groupNorm } from "../../src/domain/nn/GroupNorm.js"
import { adamUpdate, initAdam } from "../../src/domain/optim/Adam.js"
import { Engine } from "../../src/engine/Engine.js"
import { distill, StepReport } from "../../src/pipeline/Distill.js"

/** What `sidCheck` returns. */
export interface PageCheck {
  readonly engine: string
  readonly adapter: string
  readonly patchedKernels: ReadonlyArray<string>
  readonly addNInputs: number
  readonly addN: ReadonlyArray<number>
  readonly adam: { readonly params: ReadonlyArray<number>; readonly m: ReadonlyArray<number>; readonly v: ReadonlyArray<number> }
  readonly groupNorm: ReadonlyArray<number>
  readonly groupNormGrad: ReadonlyArray<number>
  readonly losses: ReadonlyArray<{ readonly fake: number; readonly generator: number }>
  readonly tensorsLeaked: number
}

const ADDN_INPUTS = 12
/** Deterministic inputs: a smooth pseudo-random sequence. */
const values = (n: number, seed: number): Array<number> => Array.from({ length: n }, (_, i) => Math.sin(1.7 * i + seed) * (1 + (i % 5) / 4))

const read = async (t: tf.Tensor): Promise<Array<number>> => Array.from(await t.data())

const kernels = async () => {
  const xs = Array.from({ length: ADDN_INPUTS }, (_, k) => tf.tensor1d(values(16, k)))
  const sum = tf.addN(xs)
  const addN = await read(sum)
  tf.dispose([...xs, sum])

  const params = { w: tf.tensor2d(values(96, 1), [12, 8]), b: tf.tensor1d(values(8, 2)) }
  const grads = [{ w: tf.tensor2d(values(96, 3), [12, 8]), b: tf.tensor1d(values(8, 4)) }, { w: tf.tensor2d(values(96, 5), [12, 8]), b: tf.tensor1d(values(8, 6)) }]
  const config = { learningRate: 1e-2, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 }
  const s0 = initAdam(params)
  const first = adamUpdate(config, params, grads[0]!, s0)
  const second = adamUpdate(config, first.params, grads[1]!, first.state)
  const adam = {
    params: [...await read(second.params["w"]!), ...await read(second.params["b"]!)],
    m: [...await read(second.state.m["w"]!), ...await read(second.state.m["b"]!)],
    v: [...await read(second.state.v["w"]!), ...await read(second.state.v["b"]!)]
  }
  tf.dispose([params, grads, s0.m, s0.v, first.params, first.state.m, first.state.v, second.params, second.state.m, second.state.v] as unknown as Array<tf.Tensor>)

  const x = tf.tensor4d(values(2 * 4 * 4 * 8, 7), [2, 4, 4, 8])
  const gamma = tf.tensor1d(values(8, 8).map((g) => 1 + 0.2 * g))
  const beta = tf.tensor1d(values(8, 9))
  const y = groupNorm(x, 4, gamma, beta, 1e-5, "silu")
  const weights = tf.tensor4d(values(2 * 4 * 4 * 8, 10), [2, 4, 4, 8])
  const grad = tf.grads((xi: tf.Tensor, gi: tf.Tensor, bi: tf.Tensor) =>
    tf.sum(tf.mul(groupNorm(xi as tf.Tensor4D, 4, gi, bi, 1e-5, "silu"), weights))
  )([x, gamma, beta])
  const result = { addN, adam, groupNorm: await read(y), groupNormGrad: (await Promise.all(grad.map(read))).flat() }
  tf.dispose([x, gamma, beta, y, weights, ...grad])
  return result
}

const sid = (steps: number) => {
  const mixture = ring()
  const config = Either.getOrThrow(decodeDistillConfig({
    ...DISTILL_PRESETS.lowDimensional.config,
    batchSize: 64,
    steps,
    evalEvery: 1000,
    checkpointEvery: 1000,
    seed: 3
  }))
  const run = BrowserRun.layer(config, {
    teacher: BrowserRun.mixtureTeacher(mixture, "exact", { steps: 5, hidden: 16, depth: 2, batchSize: 64 }),
    metrics: BrowserRun.mixtureMetrics(mixture, { referenceSize: 200, mmdSize: 100 }),
    checkpoints: layerMemory()
  })
  return Effect.map(
    Stream.runCollect(distill(config, { evaluate: false })).pipe(Effect.provide(run)),
    (reports) => Chunk.toReadonlyArray(reports).flatMap((r) => (r instanceof StepReport ? [{ fake: r.fakeLoss, generator: r.generatorLoss }] : []))
  )
}

const check = (name: BrowserEngineName, iterations: number): Promise<PageCheck> =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const { engine, info } = yield* makeEngine(name, { wasmPaths: "/wasm/" })
    const before = tf.memory().numTensors
    const measured = yield* Effect.promise(kernels)
    const losses = yield* sid(iterations).pipe(Effect.provide(Layer.succeed(Engine, engine)))
    return {
      engine: `${info.name} (backend ${tf.getBackend()})`,
      adapter: info.adapter ?? "",
      patchedKernels: engine.facts.patchedKernels,
      addNInputs: ADDN_INPUTS,
      ...measured,
      losses,
      tensorsLeaked: tf.memory().numTensors - before
    }
  })))

;(globalThis as { sidCheck?: typeof check }).sidCheck = check
