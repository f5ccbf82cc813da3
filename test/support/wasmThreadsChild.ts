/**
 * A child process of `test/WasmThreads.test.ts`: starts the Node `wasm` engine with the thread count given as its
 * argument, checks that the globals the start-up borrowed are back, computes a dense network's and a convolution's
 * outputs and gradients from seeded inputs, and prints one JSON line: the engine's thread count, whether the globals
 * were restored, and the bytes of every result (base64). It must end by itself: an idle thread pool may not keep it
 * alive.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import * as os from "node:os"
import { Engine, makeWasm } from "../../src/engine/node/Engine.js"

const threads = Number(process.argv[2] ?? 1)
const borrowed = { blob: globalThis.Blob, createObjectURL: URL.createObjectURL, cores: os.cpus().length }

const bytes = (t: tf.Tensor): string => Buffer.from((t.dataSync() as Float32Array).buffer).toString("base64")

const program = Effect.scoped(
  Effect.gen(function*() {
    const engine = yield* Engine
    const restored = globalThis.Blob === borrowed.blob && URL.createObjectURL === borrowed.createObjectURL &&
      os.cpus().length === borrowed.cores
    const results = tf.tidy(() => {
      const x = tf.randomNormal([512, 64], 0, 1, "float32", 1)
      const w1 = tf.randomNormal([64, 128], 0, 0.1, "float32", 2)
      const w2 = tf.randomNormal([128, 128], 0, 0.1, "float32", 3)
      const dense = (a: tf.Tensor, b: tf.Tensor) => {
        const h = tf.matMul(x, a as tf.Tensor2D)
        return tf.matMul(h.mul(tf.sigmoid(h)), b as tf.Tensor2D).square().mean()
      }
      const { value, grads } = tf.valueAndGrads(dense)([w1, w2])
      const img = tf.randomNormal([4, 16, 16, 8], 0, 1, "float32", 4)
      const k = tf.randomNormal([3, 3, 8, 16], 0, 0.2, "float32", 5)
      const conv = (a: tf.Tensor, b: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, "same").relu().sum()
      const c = tf.valueAndGrads(conv)([img, k])
      return [value, ...grads, c.value, ...c.grads].map(bytes)
    })
    console.log(JSON.stringify({ threads: engine.facts.threads, restored, results }))
  }).pipe(Effect.provide(makeWasm({ wasmThreads: threads })))
)

Effect.runPromise(program).catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
