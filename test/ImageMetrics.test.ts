import * as tf from "@tensorflow/tfjs"
import { Effect, Exit, Layer } from "effect"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeStream, uniforms } from "../src/domain/data/RandomStream.js"
import { fileSystemSaver, layerLeNet, layerTfjsModel } from "../src/services/node/FeatureExtractor.js"
import * as ImageMetrics from "../src/services/node/Metrics.js"
import * as MnistDataset from "../src/services/node/Dataset.js"
import { Dataset } from "../src/services/node/Dataset.js"
import { FeatureExtractor, FeatureExtractorError } from "../src/services/node/FeatureExtractor.js"
import { Metrics, MetricsError, type SampleMetrics } from "../src/services/node/Metrics.js"
import { runExitWithEngine, runWithEngine, useEngine } from "./support/distillation.js"

const dir = mkdtempSync(join(tmpdir(), "sid-image-metrics-"))

let release: () => Promise<void>

beforeAll(async () => {
  release = await useEngine("wasm")
})

afterAll(async () => {
  await release()
  rmSync(dir, { recursive: true, force: true })
})

const SUBSET = 1000

/** Uniform noise in [-1, 1] shaped like the images. */
const noise = (shape: ReadonlyArray<number>, seed: number): tf.Tensor4D =>
  tf.tidy(() => {
    const size = shape.reduce((a, b) => a * b, 1)
    return tf.sub(tf.mul(tf.tensor(uniforms(makeStream(seed, "noise"), size).values, [...shape]), 2), 1) as tf.Tensor4D
  })

const firstImages = (images: tf.Tensor4D, n: number): tf.Tensor4D => images.slice([0, 0, 0, 0], [n, -1, -1, -1])

describe("ImageMetrics with the committed LeNet (issue 4 §4, §7)", () => {
  it("MNIST-FID of train vs held-out is small, of noise ≥ 20× larger; P/R high for real digits; no tensor leaks", async () => {
    const program = Effect.gen(function*() {
      const metrics = yield* Metrics
      const data = yield* Dataset
      const train = firstImages(data.train.images, SUBSET)
      const pure = noise([SUBSET, 28, 28, 1], 1)
      const real = yield* metrics.evaluate(train)
      const before = tf.memory().numTensors
      const random = yield* metrics.evaluate(pure)
      const again = yield* metrics.evaluate(pure)
      const after = tf.memory().numTensors
      tf.dispose([train, pure])
      return { real, random, again, before, after, reference: metrics.reference }
    })
    const layer = ImageMetrics.layer({ referenceSize: SUBSET }).pipe(
      Layer.provideMerge(Layer.merge(layerLeNet(), MnistDataset.layer({ size: 28 })))
    )
    const startTensors = tf.memory().numTensors
    const r = await runWithEngine(Effect.provide(program, layer))
    expect(tf.memory().numTensors).toBe(startTensors)
    expect(r.after).toBe(r.before)
    expect(r.again).toEqual(r.random)
    expect(r.reference).toMatch(/held-out \(1000 images\).*lenet-mnist.*accuracy/)
    const real: SampleMetrics = r.real
    expect(real.samples).toBe(SUBSET)
    expect(real.fid).toBe(real.frechetDistance)
    expect(real.fid! * 20).toBeLessThan(r.random.fid!)
    expect(real.mmd * 20).toBeLessThan(r.random.mmd)
    expect(real.classifierAccuracy).toBeGreaterThanOrEqual(0.97)
    expect(real.inceptionScore).toBeGreaterThan(8)
    expect(real.inceptionScore).toBeLessThanOrEqual(10)
    expect(real.precision).toBeGreaterThan(0.6)
    expect(real.recall).toBeGreaterThan(0.6)
    expect(r.random.precision).toBeLessThan(0.05)
    expect(r.random.inceptionScore).toBeLessThan(real.inceptionScore!)
  })

  it("rejects wrong shapes and non-finite samples with a MetricsError", async () => {
    const program = Effect.gen(function*() {
      const metrics = yield* Metrics
      const wrong = tf.zeros([8, 16, 16, 1])
      const nan = tf.fill([8, 28, 28, 1], NaN)
      const tooFew = tf.zeros([3, 28, 28, 1])
      const exits = [
        yield* Effect.exit(metrics.evaluate(wrong)),
        yield* Effect.exit(metrics.evaluate(nan)),
        yield* Effect.exit(metrics.evaluate(tooFew))
      ]
      tf.dispose([wrong, nan, tooFew])
      return exits
    })
    const layer = ImageMetrics.layer({ referenceSize: 200 }).pipe(
      Layer.provideMerge(Layer.merge(layerLeNet(), MnistDataset.layer({ size: 28 })))
    )
    const exits = await runWithEngine(Effect.provide(program, layer))
    const reasons = exits.map((e) => {
      if (Exit.isFailure(e) && e.cause._tag === "Fail") {
        expect(e.cause.error).toBeInstanceOf(MetricsError)
        return e.cause.error.reason
      }
      throw new Error("expected a MetricsError")
    })
    expect(reasons[0]).toMatch(/shape/)
    expect(reasons[1]).toMatch(/NaN/)
    expect(reasons[2]).toMatch(/N ≥ 4/)
  })

  it("works at 16×16 and 32×32 (resized / cropped to the LeNet's 28×28)", async () => {
    for (const size of [16, 32] as const) {
      const program = Effect.gen(function*() {
        const extractor = yield* FeatureExtractor
        const data = yield* Dataset
        const reference = firstImages(data.heldOut.images, 500)
        const train = firstImages(data.train.images, 500)
        const pure = noise([500, size, size, 1], 2)
        const labels = data.heldOut.labels.slice([0], [500])
        const real = yield* ImageMetrics.imageSetMetrics(extractor, reference, train, { referenceLabels: labels })
        const random = yield* ImageMetrics.imageSetMetrics(extractor, reference, pure)
        tf.dispose([reference, train, pure, labels])
        return { real, random }
      })
      const layer = Layer.merge(layerLeNet(), MnistDataset.layer({ size }))
      const { random, real } = await runWithEngine(Effect.provide(program, layer))
      expect(real.fid! * 20).toBeLessThan(random.fid!)
      expect(real.classifierAccuracy).toBeGreaterThan(size === 32 ? 0.97 : 0.85)
      expect(random.classifierAccuracy).toBeUndefined()
    }
  })
})

describe("A user-supplied TF.js model as the feature extractor", () => {
  it("loads a LayersModel saved to disk, uses its named outputs, and feeds the unchanged metric code", async () => {
    const modelDir = join(dir, "tiny")
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [12, 12, 3], filters: 4, kernelSize: 3, activation: "relu", name: "conv" }),
        tf.layers.flatten({ name: "flat" }),
        tf.layers.dense({ units: 6, activation: "tanh", name: "pool" }),
        tf.layers.dense({ units: 3, activation: "softmax", name: "probs" })
      ]
    })
    await model.save(fileSystemSaver(modelDir))
    const images = noise([20, 28, 28, 1], 3)
    const expectedFeatures = tf.tidy(() => {
      const adapted = tf.mul(tf.add(tf.tile(tf.image.resizeBilinear(images, [12, 12], false, true), [1, 1, 1, 3]), 1), 127.5)
      const sub = tf.model({ inputs: model.inputs, outputs: model.getLayer("pool").output as tf.SymbolicTensor })
      return sub.predict(adapted) as tf.Tensor
    })
    const expectedProbs = tf.tidy(() => {
      const adapted = tf.mul(tf.add(tf.tile(tf.image.resizeBilinear(images, [12, 12], false, true), [1, 1, 1, 3]), 1), 127.5)
      return model.predict(adapted) as tf.Tensor
    })
    const program = Effect.gen(function*() {
      const extractor = yield* FeatureExtractor
      const { features, logits } = yield* extractor.extract(images)
      const f = Array.from(features.dataSync())
      const p = Array.from(tf.tidy(() => tf.softmax(logits!).dataSync()))
      tf.dispose([features, logits!])
      const metrics = yield* ImageMetrics.imageSetMetrics(extractor, images, images)
      return { f, p, metrics, shape: extractor.inputShape, dim: extractor.featureDim, classes: extractor.classes }
    })
    const before = tf.memory().numTensors
    const r = await runWithEngine(
      Effect.provide(
        program,
        layerTfjsModel({
          path: modelDir,
          featureOutput: "pool",
          logitsOutput: "probs",
          outputsProbabilities: true,
          inputRange: "[0,255]",
          batchSize: 7
        })
      )
    )
    expect(tf.memory().numTensors).toBe(before)
    expect(r.shape).toEqual([12, 12, 3])
    expect(r.dim).toBe(6)
    expect(r.classes).toBe(3)
    const ef = Array.from(expectedFeatures.dataSync())
    const ep = Array.from(expectedProbs.dataSync())
    r.f.forEach((v, i) => expect(v).toBeCloseTo(ef[i]!, 5))
    r.p.forEach((v, i) => expect(v).toBeCloseTo(ep[i]!, 5))
    expect(r.metrics.precision).toBe(1)
    expect(r.metrics.recall).toBe(1)
    expect(r.metrics.fid).toBeLessThan(1e-3)
    expect(r.metrics.inceptionScore).toBeGreaterThanOrEqual(1)
    tf.dispose([images, expectedFeatures, expectedProbs])
    model.dispose()
  })

  it("loads a GraphModel (the tensorflowjs_converter format) with node names as outputs", async () => {
    const modelDir = join(dir, "graph")
    mkdirSync(modelDir, { recursive: true })
    const w1 = Float32Array.from({ length: 16 * 5 }, (_, i) => Math.sin(i + 1))
    const w2 = Float32Array.from({ length: 5 * 3 }, (_, i) => Math.cos(i))
    const float = { dtype: { type: "DT_FLOAT" } }
    const node = (name: string, op: string, input: Array<string>, attr: Record<string, unknown> = float) => ({ name, op, input, attr })
    const topology = {
      node: [
        node("x", "Placeholder", [], {
          ...float,
          shape: { shape: { dim: [{ size: "-1" }, { size: "4" }, { size: "4" }, { size: "1" }] } }
        }),
        node("shape", "Const", [], { dtype: { type: "DT_INT32" } }),
        node("w1", "Const", []),
        node("w2", "Const", []),
        node("flat", "Reshape", ["x", "shape"]),
        node("hidden", "MatMul", ["flat", "w1"]),
        node("features", "Relu", ["hidden"]),
        node("logits", "MatMul", ["features", "w2"])
      ],
      versions: { producer: 1 }
    }
    const weights = new Uint8Array(8 + 4 * (80 + 15))
    new Int32Array(weights.buffer, 0, 2).set([-1, 16])
    new Float32Array(weights.buffer, 8, 80).set(w1)
    new Float32Array(weights.buffer, 8 + 320, 15).set(w2)
    writeFileSync(join(modelDir, "group1-shard1of1.bin"), weights)
    writeFileSync(
      join(modelDir, "model.json"),
      JSON.stringify({
        format: "graph-model",
        modelTopology: topology,
        weightsManifest: [{
          paths: ["group1-shard1of1.bin"],
          weights: [
            { name: "shape", shape: [2], dtype: "int32" },
            { name: "w1", shape: [16, 5], dtype: "float32" },
            { name: "w2", shape: [5, 3], dtype: "float32" }
          ]
        }]
      })
    )
    const images = noise([9, 28, 28, 1], 4)
    const expected = tf.tidy(() => {
      const flat = tf.reshape(tf.mul(tf.add(tf.image.resizeBilinear(images, [4, 4], false, true), 1), 0.5), [9, 16])
      const f = tf.relu(tf.matMul(flat, tf.tensor2d(w1, [16, 5])))
      return [Array.from(f.dataSync()), Array.from(tf.matMul(f, tf.tensor2d(w2, [5, 3])).dataSync())]
    })
    const program = Effect.gen(function*() {
      const extractor = yield* FeatureExtractor
      const { features, logits } = yield* extractor.extract(images)
      const out = [Array.from(features.dataSync()), Array.from(logits!.dataSync())]
      tf.dispose([features, logits!])
      return { out, shape: extractor.inputShape, classes: extractor.classes }
    })
    const before = tf.memory().numTensors
    const r = await runWithEngine(
      Effect.provide(
        program,
        layerTfjsModel({ path: modelDir, featureOutput: "features", logitsOutput: "logits", inputRange: "[0,1]" })
      )
    )
    expect(tf.memory().numTensors).toBe(before)
    expect(r.shape).toEqual([4, 4, 1])
    expect(r.classes).toBe(3)
    r.out[0]!.forEach((v, i) => expect(v).toBeCloseTo(expected[0]![i]!, 4))
    r.out[1]!.forEach((v, i) => expect(v).toBeCloseTo(expected[1]![i]!, 4))
    images.dispose()
  })

  it("a missing model or an unknown output name is a FeatureExtractorError", async () => {
    const missing = await runExitWithEngine(
      Effect.provide(FeatureExtractor, layerTfjsModel({ path: join(dir, "nowhere"), featureOutput: "pool" }))
    )
    const modelDir = join(dir, "tiny2")
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4, 4, 1], units: 2, name: "d" })] })
    await model.save(fileSystemSaver(modelDir))
    model.dispose()
    const unknown = await runExitWithEngine(
      Effect.provide(FeatureExtractor, layerTfjsModel({ path: join(modelDir, "model.json"), featureOutput: "nope" }))
    )
    for (const exit of [missing, unknown]) {
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit) && exit.cause._tag === "Fail") {
        expect(exit.cause.error).toBeInstanceOf(FeatureExtractorError)
        expect(exit.cause.error.message).toMatch(/cannot load the TF\.js model/)
      } else {
        throw new Error("expected a typed failure")
      }
    }
  })
})
