/**
 * Trains the LeNet feature network of MNIST-FID (issue 4 §4) on the MNIST training split and writes its weights to
 * `assets/lenet-mnist.safetensors` (or `--out <path>`), printing the file's SHA-256 for `LENET_SHA256` in
 * `src/services/FeatureExtractor.ts`.
 *
 *   node --import tsx tools/train-lenet.ts [--epochs 30] [--seed 0] [--conv1 16 --conv2 32 --hidden 128] [--out assets/lenet-mnist.safetensors]
 *
 * Deterministic: the wasm engine (single-threaded), initial weights, batch order and affine augmentation (rotation ±12°, scale 0.9–1.1, shift ±2 px) all
 * come from `RandomStream` with the seed. Adam (β = 0.9/0.999), batch 64, lr 1e-3 with a cosine decay to 0.
 * `--conv1 --conv2 --hidden` change the architecture (stored in the file's metadata, which the loader reads).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer } from "effect"
import { createHash } from "node:crypto"
import { mkdirSync, writeFileSync } from "node:fs"
import { dirname, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { adamUpdate, initAdam } from "../src/domain/optim/Adam.js"
import { accuracy, applyLeNet, crossEntropy, initLeNet, leNetSpec } from "../src/domain/nn/LeNet.js"
import { makeStream, permutation as shuffled, uniforms } from "../src/domain/data/RandomStream.js"
import { encodeSafetensors } from "../src/domain/data/Safetensors.js"
import * as EngineLayers from "../src/engine/node/Engine.js"
import * as MnistDataset from "../src/services/node/Dataset.js"
import { toNamedArrays } from "../src/domain/data/NamedTensors.js"
import { Dataset } from "../src/services/node/Dataset.js"
import { Engine } from "../src/engine/node/Engine.js"

const args = process.argv.slice(2)
const option = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback
}
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const epochs = Number(option("epochs", "30"))
const seed = Number(option("seed", "0"))
const out = resolve(option("out", resolve(root, "assets/lenet-mnist.safetensors")))
const batchSize = 64
const shift = 2
const peakRate = 1e-3

const permutation = (n: number, label: string): Int32Array => shuffled(makeStream(seed, label), n)

/**
 * A batch of training images with a random affine distortion each (rotation ±12°, scale 0.9–1.1, shift ±2 pixels),
 * bilinear, background −1 outside; computed in plain JS from the stream, so it is the same on every engine.
 */
const augmented = (pixels: Float32Array, indices: ArrayLike<number>, side: number, label: string): tf.Tensor4D => {
  const n = indices.length
  const area = side * side
  const out = new Float32Array(n * area).fill(-1)
  const u = uniforms(makeStream(seed, label), 4 * n).values
  const c = (side - 1) / 2
  for (let b = 0; b < n; b++) {
    const angle = (u[4 * b]! * 2 - 1) * (12 * Math.PI / 180)
    const scale = 0.9 + 0.2 * u[4 * b + 1]!
    const dx = (u[4 * b + 2]! * 2 - 1) * shift
    const dy = (u[4 * b + 3]! * 2 - 1) * shift
    const cos = Math.cos(angle) / scale
    const sin = Math.sin(angle) / scale
    const src = indices[b]! * area
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        const ox = x - c - dx
        const oy = y - c - dy
        const sx = cos * ox + sin * oy + c
        const sy = -sin * ox + cos * oy + c
        const x0 = Math.floor(sx)
        const y0 = Math.floor(sy)
        const fx = sx - x0
        const fy = sy - y0
        const at = (yy: number, xx: number) =>
          yy >= 0 && yy < side && xx >= 0 && xx < side ? pixels[src + yy * side + xx]! : -1
        out[b * area + y * side + x] = (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1)) +
          fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1))
      }
    }
  }
  return tf.tensor4d(out, [n, side, side, 1])
}

const evaluate = (params: Record<string, tf.Tensor>, images: tf.Tensor4D, labels: tf.Tensor1D): number => {
  const n = images.shape[0]
  let correct = 0
  for (let s = 0; s < n; s += 500) {
    const m = Math.min(500, n - s)
    const acc = tf.tidy(() => {
      const { logits } = applyLeNet(spec, params, images.slice([s, 0, 0, 0], [m, -1, -1, -1]))
      return accuracy(logits, labels.slice([s], [m]))
    })
    correct += acc * m
  }
  return correct / n
}

const spec = leNetSpec({
  conv1: Number(option("conv1", String(leNetSpec().conv1))),
  conv2: Number(option("conv2", String(leNetSpec().conv2))),
  hidden: Number(option("hidden", String(leNetSpec().hidden)))
})

const program = Effect.gen(function*() {
  const engine = yield* Engine
  const data = yield* Dataset
  process.stderr.write(`engine ${engine.name}; ${data.name}; ${epochs} epochs, seed ${seed}\n`)
  const init = initLeNet(spec, seed)
  const variables: Record<string, tf.Variable> = Object.fromEntries(
    Object.keys(init).sort().map((name) => [name, tf.variable(init[name]!, true, `lenet/${name}`)])
  )
  tf.dispose(Object.values(init))
  let state = initAdam(variables)
  const n = data.train.images.shape[0]
  const pixels = Float32Array.from(data.train.images.dataSync())
  const started = Date.now()
  for (let epoch = 0; epoch < epochs; epoch++) {
    const perm = permutation(n, `lenet.epoch.${epoch}`)
    let lossSum = 0
    let batches = 0
    for (let s = 0; s + batchSize <= n; s += batchSize) {
      const progress = (epoch + s / n) / epochs
      const learningRate = peakRate * 0.5 * (1 + Math.cos(Math.PI * progress))
      const loss = tf.tidy(() => {
        const idx = tf.tensor1d(perm.subarray(s, s + batchSize), "int32")
        const x = augmented(pixels, perm.subarray(s, s + batchSize), spec.size, `lenet.augment.${epoch}.${s}`)
        const y = tf.gather(data.train.labels, idx) as tf.Tensor1D
        const { grads, value } = tf.variableGrads(() => crossEntropy(applyLeNet(spec, variables, x).logits, y))
        const byName: Record<string, tf.Tensor> = {}
        for (const [name, v] of Object.entries(variables)) byName[name] = grads[v.name]!
        const next = adamUpdate({ learningRate, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 }, variables, byName, state)
        for (const [name, v] of Object.entries(variables)) v.assign(next.params[name]!)
        const old = state
        state = { step: next.state.step, m: keepAll(next.state.m), v: keepAll(next.state.v) }
        tf.dispose([...Object.values(old.m), ...Object.values(old.v)])
        return value.dataSync()[0]!
      })
      lossSum += loss
      batches++
    }
    const held = evaluate(variables, data.heldOut.images, data.heldOut.labels)
    process.stderr.write(
      `epoch ${epoch + 1}/${epochs}: loss ${(lossSum / batches).toFixed(4)}, held-out accuracy ${(100 * held).toFixed(2)}% ` +
        `(${((Date.now() - started) / 1000).toFixed(0)} s)\n`
    )
  }
  const trainAccuracy = evaluate(variables, data.train.images, data.train.labels)
  const heldOutAccuracy = evaluate(variables, data.heldOut.images, data.heldOut.labels)
  const bytes = encodeSafetensors(toNamedArrays(variables), {
    format: "sid-ts/lenet",
    spec: JSON.stringify(spec),
    dataset: data.name,
    seed: String(seed),
    epochs: String(epochs),
    trainAccuracy: trainAccuracy.toFixed(4),
    heldOutAccuracy: heldOutAccuracy.toFixed(4)
  })
  mkdirSync(dirname(out), { recursive: true })
  writeFileSync(out, bytes)
  const sha256 = createHash("sha256").update(bytes).digest("hex")
  tf.dispose([...Object.values(variables), ...Object.values(state.m), ...Object.values(state.v)])
  process.stdout.write(
    `${JSON.stringify({ out, bytes: bytes.byteLength, sha256, trainAccuracy, heldOutAccuracy, seconds: (Date.now() - started) / 1000 }, null, 2)}\n`
  )
})

const keepAll = (m: Readonly<Record<string, tf.Tensor>>): Record<string, tf.Tensor> =>
  Object.fromEntries(Object.entries(m).map(([k, t]) => [k, tf.keep(t)]))

Effect.runPromise(
  program.pipe(Effect.provide(MnistDataset.layer({ size: 28, seed: 0 }).pipe(Layer.provideMerge(EngineLayers.wasm))))
).catch((e: unknown) => {
  process.stderr.write(`${String(e)}\n`)
  process.exit(1)
})
