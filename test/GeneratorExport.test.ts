import { existsSync } from "node:fs"
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Option, Stream } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { loadOneStepGenerator } from "../src/browser/OneStepGenerator.js"
import { distillConfig } from "../src/domain/config/DistillConfig.js"
import { ring } from "../src/domain/data/GaussianMixture.js"
import { edmConfigFromArchitecture, parseEdmConfig } from "../src/domain/edm/NetworkConfig.js"
import { songUNetNetwork, songUNetSpec } from "../src/domain/edm/SongUNet.js"
import { encodeGeneratorFile } from "../src/domain/data/GeneratorFile.js"
import { mlpSpec } from "../src/domain/nn/Mlp.js"
import { denoiseWith, mlpNetwork, type Network, unetNetwork } from "../src/domain/nn/Network.js"
import { decodeSafetensors, encodeSafetensors, type SafetensorsFile } from "../src/domain/data/Safetensors.js"
import { unetSpec } from "../src/domain/nn/UNet.js"
import * as CheckpointStore from "../src/services/node/CheckpointStore.js"
import * as Distillation from "../src/layers/node/Distillation.js"
import * as EdmTeacher from "../src/services/node/Teacher.js"
import {
  EDM_GENERATOR_FORMAT,
  exportGenerator,
  exportGeneratorEdm,
  GENERATOR_EXPORT_FORMAT,
  SID_GENERATOR_FORMAT
} from "../src/services/node/Generator.js"
import { loadGenerator, type LoadGeneratorError } from "../src/services/node/Generator.js"
import * as Metrics from "../src/services/node/Metrics.js"
import { distill } from "../src/pipeline/Distill.js"
import { type Checkpoint, CheckpointStore as StoreTag } from "../src/services/node/CheckpointStore.js"
import { Generator } from "../src/services/node/Generator.js"
import { runWithEngine, Teacher, tf, tinyRun, useEngine } from "./support/distillation.js"

const GOLDEN = ["songunet-ddpmpp-tiny", "songunet-ncsnpp-tiny", "dhariwalunet-adm-tiny", "dhariwalunet-adm-attn"]
const golden = (name: string) => new URL(`./fixtures/edm/${name}.safetensors`, import.meta.url).pathname
const readSafetensors = async (path: string): Promise<SafetensorsFile> => {
  const bytes = await readFile(path)
  return decodeSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength))
}

let release: () => Promise<void>
let dir: string
beforeAll(async () => {
  release = await useEngine("wasm")
  dir = await mkdtemp(join(tmpdir(), "sid-export-"))
})
afterAll(async () => {
  await release()
  await rm(dir, { recursive: true, force: true })
})

describe("edmConfigFromArchitecture", () => {
  it("inverts parseEdmConfig on the golden configs (and survives JSON)", async () => {
    for (const name of GOLDEN) {
      const text = (await readSafetensors(golden(name))).metadata["config"]!
      const parsed = parseEdmConfig(text)
      fc.assert(
        fc.property(fc.double({ min: 0.05, max: 5, noNaN: true }), (sigmaData) => {
          const config = edmConfigFromArchitecture(parsed.architecture, { sigmaData })
          const back = parseEdmConfig(JSON.stringify(config))
          expect(back.architecture).toEqual(parsed.architecture)
          expect(back.sigmaData).toBe(sigmaData)
          expect(back.useFp16).toBe(false)
          expect(parseEdmConfig(config).architecture).toEqual(parsed.architecture)
        }),
        { numRuns: 20 }
      )
      const original = JSON.parse(text) as Record<string, unknown>
      const config = edmConfigFromArchitecture(parsed.architecture)
      for (const [key, value] of Object.entries(original)) expect([key, config[key]]).toEqual([key, value])
    }
  })
})

describe("exporting the one-step generator of an EDM distillation", () => {
  it("writes EDM names/shapes that load back as a network equal to G's EMA (and live) output", async () => {
    const store = join(dir, "store")
    const config = distillConfig({
      steps: 2,
      batchSize: 2,
      evalEvery: 1000,
      checkpointEvery: 2,
      generatorLr: 1e-3,
      fakeLr: 1e-4,
      emaHalfLifeKimg: 0.01,
      emaRampupRatio: null
    })
    const services = Distillation.layer(config, {
      teacher: EdmTeacher.layerEdmFile(golden("songunet-ddpmpp-tiny")),
      metrics: Metrics.layerUnavailable([16, 16, 3]),
      checkpoints: CheckpointStore.layerDirectory(store)
    })
    const zValues = tf.tidy(() => tf.randomNormal([2, 16, 16, 3], 0, 1, "float32", 11).dataSync() as Float32Array)
    const run = await runWithEngine(
      Effect.gen(function*() {
        const g = yield* Generator
        yield* distill(config, { evaluate: false }).pipe(Stream.runDrain)
        const out = (w: "ema" | "live") =>
          tf.tidy(() => Float32Array.from(g.generate(tf.tensor(zValues, [2, 16, 16, 3]), w).dataSync()))
        const latest = Option.getOrThrow(yield* Effect.flatMap(StoreTag, (s) => s.latest))
        return { ema: out("ema"), live: out("live"), sigmaInit: g.sigmaInit, latest }
      }).pipe(Effect.provide(services))
    )
    const checkpoint: Checkpoint = run.latest
    expect(checkpoint.manifest.step).toBe(2)
    expect(Math.max(...run.ema.map((v, i) => Math.abs(v - run.live[i]!)))).toBeGreaterThan(1e-3)

    const emaFile = join(dir, "out", "generator-ema.safetensors")
    const liveFile = join(dir, "out", "generator-live.safetensors")
    await runWithEngine(exportGeneratorEdm(checkpoint, emaFile, { weights: "ema" }))
    await runWithEngine(exportGeneratorEdm(checkpoint, liveFile, { weights: "live" }))

    const reference = await readSafetensors(golden("songunet-ddpmpp-tiny"))
    const exported = await readSafetensors(emaFile)
    const modelEntries = (f: SafetensorsFile) =>
      [...f.tensors].filter(([n]) => n.startsWith("model.")).map(([n, a]) => [n, [...a.shape]] as const)
    expect([...exported.tensors.keys()].every((n) => n.startsWith("model."))).toBe(true)
    expect(modelEntries(exported)).toEqual(modelEntries(reference))
    expect(exported.metadata["format"]).toBe(GENERATOR_EXPORT_FORMAT)
    expect(exported.metadata["source"]).toBe("sid-ts")
    expect(exported.metadata["step"]).toBe("2")
    expect(Number(exported.metadata["sigma_init"])).toBe(run.sigmaInit)
    expect(parseEdmConfig(exported.metadata["config"]!).architecture).toEqual(
      parseEdmConfig(reference.metadata["config"]!).architecture
    )

    const before = tf.memory().numTensors
    for (const [file, expected] of [[emaFile, run.ema], [liveFile, run.live]] as const) {
      const loaded = await runWithEngine(EdmTeacher.readEdmTeacherFile(file))
      const sigmaInit = Number((await readSafetensors(file)).metadata["sigma_init"])
      const actual = tf.tidy(() => {
        const z = tf.tensor(zValues, [2, 16, 16, 3])
        return Float32Array.from(
          denoiseWith(loaded.network, loaded.params, tf.mul(z, sigmaInit), sigmaInit, loaded.sigmaData).dataSync()
        )
      })
      tf.dispose(Object.values(loaded.params))
      let maxDiff = 0
      for (let i = 0; i < expected.length; i++) maxDiff = Math.max(maxDiff, Math.abs(actual[i]! - expected[i]!))
      expect(maxDiff).toBeLessThan(1e-6)
    }
    expect(tf.memory().numTensors).toBe(before)

    const mlpConfig = distillConfig({ steps: 1, batchSize: 16, evalEvery: 1000, checkpointEvery: 1 })
    const mlp = await runWithEngine(
      Effect.gen(function*() {
        yield* distill(mlpConfig, { evaluate: false }).pipe(Stream.runDrain)
        return Option.getOrThrow(yield* Effect.flatMap(StoreTag, (s) => s.latest))
      }).pipe(
        Effect.provide(Distillation.layer(mlpConfig, {
          teacher: Teacher.layerGaussianMixture(ring(), { steps: 5, hidden: 8, depth: 1, batchSize: 16 }),
          metrics: Metrics.layerUnavailable([2]),
          checkpoints: CheckpointStore.layerMemory
        }))
      )
    )
    expect(mlp.manifest.network.kind).toBe("mlp")
    const error = await runWithEngine(Effect.flip(exportGeneratorEdm(mlp, join(dir, "out", "mlp.safetensors"))))
    expect(error._tag).toBe("ExportError")
    expect(error.message).toMatch(/"mlp".*--teacher edm:/s)
    expect(existsSync(join(dir, "out", "mlp.safetensors"))).toBe(false)
  }, 120_000)
})

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  expect(a.length).toBe(b.length)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

const generators: ReadonlyArray<readonly [string, Network, number, string]> = [
  ["mlp", mlpNetwork(mlpSpec(2, { hidden: 16, depth: 2 })), 16, SID_GENERATOR_FORMAT],
  ["unet", unetNetwork(unetSpec([8, 8, 1], { baseChannels: 8, channelMult: [1, 2], groups: 4, labelDim: 3 })), 2, SID_GENERATOR_FORMAT],
  [
    "songunet",
    songUNetNetwork(songUNetSpec(8, 1, { modelChannels: 16, channelMult: [1, 2], numBlocks: 1, attnResolutions: [] })),
    2,
    EDM_GENERATOR_FORMAT
  ]
]

describe("every generator leaves the run: export and loadGenerator (issue 17.8)", () => {
  it.each(generators)(
    "a %s run exports its EMA generator with its provenance, and loadGenerator / sid-ts/browser sample exactly what the run's generator does",
    async (kind, network, batchSize, format) => {
      const runDir = join(dir, `run-${kind}`)
      const run = await tinyRun(network, runDir, { batchSize, seed: 4, count: 3 })
      expect(maxAbsDiff(run.ema, run.live)).toBeGreaterThan(1e-5)
      const file = join(dir, `${kind}.safetensors`)
      const written = await runWithEngine(exportGenerator(run.checkpoint, file, { runDir }))
      expect(written).toEqual({ path: file, format, kind, step: 2, weights: "ema", generatorSteps: 1 })

      const { metadata, tensors } = await readSafetensors(file)
      expect(metadata).toMatchObject({
        format,
        sigma_init: String(run.sigmaInit),
        sigma_data: "0.5",
        label_dim: String(network.labelDim),
        data_shape: JSON.stringify(network.dataShape),
        source: "sid-ts",
        run_dir: runDir,
        step: "2",
        teacher: `tiny ${kind}`,
        weights: "ema"
      })
      if (format === SID_GENERATOR_FORMAT) {
        expect(JSON.parse(metadata["network"]!)).toEqual(network.description)
        expect(new Set(tensors.keys())).toEqual(new Set(Object.keys(network.shapes)))
      } else {
        expect(parseEdmConfig(metadata["config"]!).architecture).toEqual(network.description)
        expect([...tensors.keys()].every((n) => n.startsWith("model."))).toBe(true)
      }

      const before = tf.memory().numTensors
      const loaded = await runWithEngine(Effect.scoped(Effect.map(loadGenerator(file), (g) => ({
        kind: g.architecture.kind,
        dataShape: g.dataShape,
        labelDim: g.labelDim,
        sigmaInit: g.sigmaInit,
        provenance: g.provenance,
        samples: tf.tidy(() => Float32Array.from(g.generate(3, 4).dataSync()))
      }))))
      expect(tf.memory().numTensors).toBe(before)
      expect(loaded.kind).toBe(kind)
      expect(loaded.dataShape).toEqual(network.dataShape)
      expect(loaded.labelDim).toBe(network.labelDim)
      expect(loaded.sigmaInit).toBe(run.sigmaInit)
      expect(loaded.provenance).toEqual({ runDir, step: 2, teacher: `tiny ${kind}`, weights: "ema" })
      expect(maxAbsDiff(loaded.samples, run.ema)).toBeLessThan(1e-6)

      const browser = loadOneStepGenerator(new Uint8Array(await readFile(file)))
      const browserSamples = tf.tidy(() => Float32Array.from(browser.generate(3, 4).dataSync()))
      browser.dispose()
      expect(maxAbsDiff(browserSamples, loaded.samples)).toBe(0)
      expect(tf.memory().numTensors).toBe(before)
    },
    120_000
  )

  it("loadGenerator fails with a typed error saying what is wrong: missing file, corrupt file, unknown architecture", async () => {
    const network = mlpNetwork(mlpSpec(2, { hidden: 8, depth: 1 }))
    const params = network.init(1)
    const good = encodeGeneratorFile({ network, params, sigmaInit: 2.5, sigmaData: 0.5, provenance: {} })
    const teacherBytes = Teacher.encodeTeacherFile(network, params, 0.5)
    tf.dispose(Object.values(params))
    const file = decodeSafetensors(good)
    const variant = (tensors: SafetensorsFile["tensors"], metadata: Record<string, string>) =>
      encodeSafetensors(tensors, { ...file.metadata, ...metadata })
    const withoutOne = new Map(file.tensors)
    withoutOne.delete("layers.0.weight")
    const cases: ReadonlyArray<readonly [string, Uint8Array | undefined, LoadGeneratorError["_tag"], RegExp]> = [
      ["absent", undefined, "GeneratorNotFoundError", /cannot read the file.*sid export/s],
      ["text", new TextEncoder().encode("{\"not\": \"safetensors\"}"), "GeneratorCorruptError", /not a safetensors file/],
      ["truncated", good.slice(0, good.length - 12), "GeneratorCorruptError", /not a safetensors file/],
      ["missing-tensor", variant(withoutOne, {}), "GeneratorCorruptError", /do not fit the mlp network: missing layers\.0\.weight/],
      ["no-sigma", encodeSafetensors(file.tensors, { format: SID_GENERATOR_FORMAT, network: file.metadata["network"]! }), "GeneratorCorruptError", /sigma_init/],
      ["bad-json", variant(file.tensors, { network: "{kind:" }), "GeneratorCorruptError", /`network` metadata is not JSON/],
      ["transformer", variant(file.tensors, { network: JSON.stringify({ kind: "transformer", spec: {} }) }), "UnknownGeneratorArchitectureError", /"transformer" network.*known: mlp, unet/s],
      ["edm-unknown", encodeSafetensors([], { format: EDM_GENERATOR_FORMAT, sigma_init: "2.5", config: JSON.stringify({ model_type: "UNet2DModel", img_resolution: 8, img_channels: 1 }) }), "UnknownGeneratorArchitectureError", /"UNet2DModel"/],
      ["future", variant(file.tensors, { format: "sid-ts-generator-v9" }), "UnknownGeneratorArchitectureError", /"sid-ts-generator-v9"/],
      ["teacher", teacherBytes, "UnknownGeneratorArchitectureError", /not a generator; write one .*sid export/s]
    ]
    await mkdir(join(dir, "bad"), { recursive: true })
    const before = tf.memory().numTensors
    for (const [name, bytes, tag, pattern] of cases) {
      const path = join(dir, "bad", `${name}.safetensors`)
      if (bytes !== undefined) await writeFile(path, bytes)
      const error = await runWithEngine(Effect.flip(Effect.scoped(loadGenerator(path))))
      expect([name, error._tag]).toEqual([name, tag])
      expect(error.message).toContain(path)
      expect(error.message).toMatch(pattern)
    }
    expect(tf.memory().numTensors).toBe(before)
  })
})
