import * as tf from "@tensorflow/tfjs"
import { readFileSync } from "node:fs"
import { dirname, resolve } from "node:path"
import { beforeAll, describe, expect, it } from "vitest"
import { GeneratorFileError, loadOneStepGenerator, SID_GENERATOR_FORMAT } from "../src/browser/OneStepGenerator.js"
import { edmConfigFromArchitecture } from "../src/domain/edm/NetworkConfig.js"
import { songUNetNetwork, songUNetSpec } from "../src/domain/edm/SongUNet.js"
import { toEdmStateDict } from "../src/domain/edm/StateDict.js"
import { encodeGeneratorFile } from "../src/domain/data/GeneratorFile.js"
import { mlpSpec } from "../src/domain/nn/Mlp.js"
import { denoiseWith, mlpNetwork, unetNetwork } from "../src/domain/nn/Network.js"
import { fixedLatents } from "../src/domain/sid/OneStep.js"
import { unetSpec } from "../src/domain/nn/UNet.js"
import { decodeSafetensors, encodeSafetensors } from "../src/domain/data/Safetensors.js"
import { readEdmTeacherFile } from "../src/services/node/Teacher.js"
import { Effect } from "effect"
import * as Engine from "../src/engine/node/Engine.js"

const goldenPath = new URL("./fixtures/edm/songunet-ddpmpp-tiny.safetensors", import.meta.url).pathname

/** A generator export made from the golden network (the generator at initialisation is the teacher, docs/algorithm.md §6). */
const exportedBytes = (): Uint8Array => {
  const file = decodeSafetensors(new Uint8Array(readFileSync(goldenPath)))
  const weights = [...file.tensors].filter(([n]) => n.startsWith("model."))
  return encodeSafetensors(weights, { format: "edm-safetensors-v1", config: file.metadata["config"]!, sigma_init: "2.5" })
}

/** Bare module specifiers reachable from a source file through its runtime (non-type) imports. */
const bareImports = (entry: string): Set<string> => {
  const seen = new Set<string>()
  const bare = new Set<string>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    seen.add(file)
    const text = readFileSync(file, "utf8")
    for (const m of text.matchAll(/^import\s+(type\s+)?[^;]*?from\s+"([^"]+)"/gm)) {
      if (m[1] !== undefined) continue
      const spec = m[2]!
      if (spec.startsWith(".")) visit(resolve(dirname(file), spec.replace(/\.js$/, ".ts")))
      else bare.add(spec)
    }
  }
  visit(entry)
  return bare
}

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

describe("the browser one-step generator (sid-ts/browser)", () => {
  it("depends on @tensorflow/tfjs alone", () => {
    const entry = new URL("../src/browser/OneStepGenerator.ts", import.meta.url).pathname
    expect([...bareImports(entry)]).toEqual(["@tensorflow/tfjs"])
  })

  it("loads an exported generator and samples exactly what the library's generator does", async () => {
    const generator = loadOneStepGenerator(exportedBytes())
    expect(generator.imageShape).toEqual([16, 16, 3])
    const teacher = await Effect.runPromise(Effect.provide(readEdmTeacherFile(goldenPath), Engine.cpu))
    const z = tf.randomNormal([3, 16, 16, 3], 0, 1, "float32", 7)
    const ours = generator.generate(z)
    const reference = denoiseWith(teacher.network, teacher.params, tf.mul(z, 2.5), 2.5, teacher.sigmaData)
    expect(ours.shape).toEqual([3, 16, 16, 3])
    expect(tf.max(tf.abs(tf.sub(ours, reference))).dataSync()[0]).toBe(0)
    const seeded = generator.generate(2, 5)
    expect(Array.from(seeded.dataSync())).toEqual(Array.from(generator.generate(2, 5).dataSync()))
    expect(Array.from(seeded.dataSync())).not.toEqual(Array.from(generator.generate(2, 6).dataSync()))
    generator.dispose()
  })

  it("a class-conditional export takes one class per sample (default: classes in turn); an unconditional one takes none", () => {
    const spec = songUNetSpec(8, 1, { modelChannels: 16, channelMult: [1, 2], numBlocks: 1, attnResolutions: [], labelDim: 3 })
    const network = songUNetNetwork(spec)
    const init = network.init(1)
    const params = Object.fromEntries(
      Object.entries(init).map(([n, t], i) => [n, tf.add(t, tf.randomNormal(t.shape, 0, 0.05, "float32", i + 1))])
    )
    tf.dispose(Object.values(init))
    const bytes = encodeSafetensors(toEdmStateDict(network.shapes, params), {
      format: "edm-safetensors-v1",
      config: JSON.stringify(edmConfigFromArchitecture({ kind: "songunet", spec })),
      sigma_init: "2.5"
    })
    const generator = loadOneStepGenerator(bytes)
    expect(generator.labelDim).toBe(3)
    const z = tf.randomNormal([4, 8, 8, 1], 0, 1, "float32", 3)
    const oneHot = tf.oneHot(tf.tensor1d([2, 0, 1, 2], "int32"), 3).toFloat() as tf.Tensor2D
    const reference = denoiseWith(network, params, tf.mul(z, 2.5), 2.5, 0.5, oneHot)
    expect(tf.max(tf.abs(tf.sub(generator.generate(z, 0, [2, 0, 1, 2]), reference))).dataSync()[0]).toBeLessThan(1e-6)
    const inTurn = denoiseWith(network, params, tf.mul(z, 2.5), 2.5, 0.5, tf.oneHot(tf.tensor1d([0, 1, 2, 0], "int32"), 3).toFloat() as tf.Tensor2D)
    expect(tf.max(tf.abs(tf.sub(generator.generate(z), inTurn))).dataSync()[0]).toBeLessThan(1e-6)
    expect(tf.max(tf.abs(tf.sub(generator.generate(z), reference))).dataSync()[0]).toBeGreaterThan(1e-4)
    expect(() => generator.generate(z, 0, [0, 1, 3, 0])).toThrow(/0\.\.2/)
    generator.dispose()
    tf.dispose(Object.values(params))
    const unconditional = loadOneStepGenerator(exportedBytes())
    expect(unconditional.labelDim).toBe(0)
    expect(() => unconditional.generate(2, 0, [0, 1])).toThrow(/unconditional/)
    unconditional.dispose()
  })

  it("loads the sid-ts generator format (MLP, conditional UNet); generate(n, seed) draws fixedLatents(seed, n, shape)", () => {
    const networks = [
      mlpNetwork(mlpSpec(2, { hidden: 8, depth: 1 })),
      unetNetwork(unetSpec([8, 8, 1], { baseChannels: 8, channelMult: [1, 2], groups: 4, labelDim: 2 }))
    ]
    for (const network of networks) {
      const params = network.init(2)
      const bytes = encodeGeneratorFile({ network, params, sigmaInit: 1.5, sigmaData: 0.5, provenance: { step: 7, teacher: "t" } })
      expect(decodeSafetensors(bytes).metadata["format"]).toBe(SID_GENERATOR_FORMAT)
      const generator = loadOneStepGenerator(bytes)
      expect(generator.architecture).toEqual(network.description)
      expect(generator.dataShape).toEqual(network.dataShape)
      expect(generator.provenance).toEqual({ step: 7, teacher: "t" })
      const z = fixedLatents(9, 4, network.dataShape)
      const labels = network.labelDim === 0 ? undefined : tf.oneHot(tf.tensor1d([0, 1, 0, 1], "int32"), 2).toFloat() as tf.Tensor2D
      const reference = denoiseWith(network, params, tf.mul(z, 1.5), 1.5, 0.5, labels)
      expect(tf.max(tf.abs(tf.sub(generator.generate(4, 9), reference))).dataSync()[0]).toBe(0)
      expect(tf.max(tf.abs(tf.sub(generator.generate(z), reference))).dataSync()[0]).toBe(0)
      generator.dispose()
      tf.dispose(Object.values(params))
    }
  })

  it("refuses a file without the export metadata", () => {
    expect(() => loadOneStepGenerator(readFileSync(new URL("../package.json", import.meta.url)))).toThrow()
    const file = decodeSafetensors(new Uint8Array(readFileSync(goldenPath)))
    const noSigma = encodeSafetensors([...file.tensors].filter(([n]) => n.startsWith("model.")), { config: file.metadata["config"]! })
    expect(() => loadOneStepGenerator(noSigma)).toThrow(/sigma_init/)
    const unknown = encodeSafetensors([], { format: SID_GENERATOR_FORMAT, sigma_init: "2.5", network: JSON.stringify({ kind: "vit", spec: {} }) })
    const thrown = (() => {
      try {
        loadOneStepGenerator(unknown)
      } catch (e) {
        return e
      }
    })()
    expect(thrown).toBeInstanceOf(GeneratorFileError)
    expect((thrown as GeneratorFileError).problem).toBe("unknown-architecture")
    expect((thrown as GeneratorFileError).message).toMatch(/"vit" network/)
  })
})
