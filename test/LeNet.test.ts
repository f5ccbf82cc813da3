import * as tf from "@tensorflow/tfjs"
import { Effect, Exit, Layer } from "effect"
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { accuracy, applyLeNet, crossEntropy, initLeNet, leNetShapes, leNetSpec, toLeNetInput } from "../src/domain/nn/LeNet.js"
import { countParameters } from "../src/domain/nn/Parameters.js"
import { pad } from "../src/domain/data/Images.js"
import { layerLeNet, LENET_PATH, loadLeNetWeights } from "../src/services/node/FeatureExtractor.js"
import * as MnistDataset from "../src/services/node/Dataset.js"
import { Dataset } from "../src/services/node/Dataset.js"
import { FeatureExtractor, FeatureExtractorError } from "../src/services/node/FeatureExtractor.js"
import { runExitWithEngine, runWithEngine, useEngine } from "./support/distillation.js"

const dir = mkdtempSync(join(tmpdir(), "sid-lenet-"))

let release: () => Promise<void>

beforeAll(async () => {
  release = await useEngine("wasm")
})

afterAll(async () => {
  await release()
  rmSync(dir, { recursive: true, force: true })
})

const spec = leNetSpec()

describe("LeNet (issue 4 §4)", () => {
  it("has the documented shapes, a deterministic seeded init, and maps [N, 28, 28, 1] to 128 features and 10 logits", () => {
    const shapes = leNetShapes(spec)
    expect(shapes["fc1.weight"]).toEqual([5 * 5 * spec.conv2, 128])
    const a = initLeNet(spec, 3)
    const b = initLeNet(spec, 3)
    const c = initLeNet(spec, 4)
    expect(countParameters(a)).toBe(Object.values(shapes).reduce((n, s) => n + s.reduce((x, y) => x * y, 1), 0))
    expect(Array.from(a["conv1.weight"]!.dataSync())).toEqual(Array.from(b["conv1.weight"]!.dataSync()))
    expect(Array.from(a["conv1.weight"]!.dataSync())).not.toEqual(Array.from(c["conv1.weight"]!.dataSync()))
    const x = tf.fill([3, 28, 28, 1], -1) as tf.Tensor4D
    const before = tf.memory().numTensors
    for (let i = 0; i < 3; i++) {
      const out = applyLeNet(spec, a, x)
      expect(out.features.shape).toEqual([3, 128])
      expect(out.logits.shape).toEqual([3, 10])
      expect(Math.min(...out.features.dataSync())).toBeGreaterThanOrEqual(0)
      tf.dispose([out.features, out.logits])
    }
    expect(tf.memory().numTensors).toBe(before)
    expect(() => applyLeNet(spec, a, tf.zeros([1, 16, 16, 1]) as tf.Tensor4D)).toThrow(/28, 28, 1/)
    tf.dispose([...Object.values(a), ...Object.values(b), ...Object.values(c), x])
  })

  it("toLeNetInput undoes the 32×32 padding exactly, resizes 16×16, averages channels", () => {
    const x = tf.tensor4d(Array.from({ length: 2 * 784 }, (_, i) => Math.sin(i)), [2, 28, 28, 1])
    const padded = pad(x, 32)
    const back = toLeNetInput(padded)
    expect(Array.from(back.dataSync())).toEqual(Array.from(x.dataSync()))
    const small = toLeNetInput(tf.image.resizeBilinear(x, [16, 16]) as tf.Tensor4D)
    expect(small.shape).toEqual([2, 28, 28, 1])
    const rgb = toLeNetInput(tf.concat([x, x, x], 3) as tf.Tensor4D)
    expect(Math.max(...tf.sub(rgb, x).abs().dataSync())).toBeLessThan(1e-6)
    const same = toLeNetInput(x)
    expect(same).not.toBe(x)
    tf.dispose([x, padded, back, small, rgb, same])
  })

  it("cross-entropy is ln K for constant logits and accuracy counts arg-max hits", () => {
    const logits = tf.zeros([4, 10]) as tf.Tensor2D
    const labels = tf.tensor1d([0, 1, 2, 3], "int32")
    expect(crossEntropy(logits, labels).dataSync()[0]).toBeCloseTo(Math.log(10), 5)
    const peaked = tf.oneHot(tf.tensor1d([0, 1, 5, 3], "int32"), 10).asType("float32") as tf.Tensor2D
    expect(accuracy(peaked, labels)).toBeCloseTo(0.75, 6)
    tf.dispose([logits, labels, peaked])
  })

  it("the committed weights pass their SHA-256 check and classify ≥ 97% of the held-out digits", async () => {
    const accuracyOf = Effect.gen(function*() {
      const extractor = yield* FeatureExtractor
      const data = yield* Dataset
      const logits = yield* extractor.logits!(data.heldOut.images)
      const acc = accuracy(logits, data.heldOut.labels)
      logits.dispose()
      return { acc, name: extractor.name, dim: extractor.featureDim, classes: extractor.classes }
    })
    const before = tf.memory().numTensors
    const result = await runWithEngine(
      accuracyOf.pipe(Effect.provide(Layer.merge(layerLeNet(), MnistDataset.layer({ size: 28 }))))
    )
    expect(tf.memory().numTensors).toBe(before)
    expect(result.acc).toBeGreaterThanOrEqual(0.97)
    expect(result.dim).toBe(128)
    expect(result.classes).toBe(10)
    expect(result.name).toMatch(/^lenet-mnist/)
  })

  it("a checksum mismatch, a missing file or a corrupt file is a typed FeatureExtractorError saying how to regenerate", async () => {
    const load = (options: Parameters<typeof loadLeNetWeights>[0]) =>
      runExitWithEngine(Effect.map(loadLeNetWeights(options), (w) => tf.dispose(Object.values(w.params))))
    const expectError = (exit: Exit.Exit<unknown, FeatureExtractorError>, pattern: RegExp) => {
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit) && exit.cause._tag === "Fail") {
        expect(exit.cause.error).toBeInstanceOf(FeatureExtractorError)
        expect(exit.cause.error.message).toMatch(pattern)
        expect(exit.cause.error.message).toMatch(/tools\/train-lenet\.ts/)
      } else {
        throw new Error("expected a typed failure")
      }
    }
    expectError(await load({ sha256: "ab".repeat(32) }), /checksum mismatch/)
    expectError(await load({ path: join(dir, "absent.safetensors") }), /cannot read/)
    const copy = join(dir, "flipped.safetensors")
    copyFileSync(LENET_PATH, copy)
    const bytes = readFileSync(copy)
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1
    writeFileSync(copy, bytes)
    expectError(await load({ path: copy }), /checksum mismatch/)
    const garbage = join(dir, "garbage.safetensors")
    writeFileSync(garbage, new Uint8Array([1, 2, 3]))
    expectError(await load({ path: garbage, sha256: null }), /not a valid safetensors/)
    const layerExit = await runExitWithEngine(
      Effect.provide(FeatureExtractor, layerLeNet({ sha256: "00".repeat(32) }))
    )
    expectError(layerExit, /checksum mismatch/)
  })
})
