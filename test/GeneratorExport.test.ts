import { existsSync } from "node:fs"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Option, Stream } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { distillConfig } from "../src/domain/DistillConfig.js"
import { ring } from "../src/domain/GaussianMixture.js"
import { edmConfigFromArchitecture, parseEdmConfig } from "../src/domain/edm/Config.js"
import { denoiseWith } from "../src/domain/Network.js"
import { decodeSafetensors, type SafetensorsFile } from "../src/domain/Safetensors.js"
import * as CheckpointStore from "../src/layers/CheckpointStore.js"
import * as Distillation from "../src/layers/Distillation.js"
import * as EdmTeacher from "../src/layers/EdmTeacher.js"
import { exportGeneratorEdm, GENERATOR_EXPORT_FORMAT } from "../src/layers/GeneratorExport.js"
import * as Metrics from "../src/layers/Metrics.js"
import { distill } from "../src/pipeline/Distill.js"
import { type Checkpoint, CheckpointStore as StoreTag } from "../src/services/CheckpointStore.js"
import { Generator } from "../src/services/Generator.js"
import { Teacher, tf, useEngine } from "./support/distillation.js"

const GOLDEN = ["songunet-ddpmpp-tiny", "songunet-ncsnpp-tiny", "dhariwalunet-adm-tiny", "dhariwalunet-adm-attn"]
const golden = (name: string) => new URL(`../../shared/golden/edm/${name}.safetensors`, import.meta.url).pathname
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
    const run = await Effect.runPromise(
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
    await Effect.runPromise(exportGeneratorEdm(checkpoint, emaFile, { weights: "ema" }))
    await Effect.runPromise(exportGeneratorEdm(checkpoint, liveFile, { weights: "live" }))

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
      const loaded = await Effect.runPromise(EdmTeacher.readEdmTeacherFile(file))
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
    const mlp = await Effect.runPromise(
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
    const error = await Effect.runPromise(Effect.flip(exportGeneratorEdm(mlp, join(dir, "out", "mlp.safetensors"))))
    expect(error._tag).toBe("ExportError")
    expect(error.message).toMatch(/"mlp".*--teacher edm:/s)
    expect(existsSync(join(dir, "out", "mlp.safetensors"))).toBe(false)
  }, 120_000)
})
