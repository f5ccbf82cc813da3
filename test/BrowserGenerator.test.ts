import * as tf from "@tensorflow/tfjs"
import { readFileSync } from "node:fs"
import { dirname, resolve } from "node:path"
import { beforeAll, describe, expect, it } from "vitest"
import { loadOneStepGenerator } from "../src/browser/OneStepGenerator.js"
import { denoiseWith } from "../src/domain/Network.js"
import { decodeSafetensors, encodeSafetensors } from "../src/domain/Safetensors.js"
import { readEdmTeacherFile } from "../src/layers/EdmTeacher.js"
import { Effect } from "effect"

const goldenPath = new URL("../../shared/golden/edm/songunet-ddpmpp-tiny.safetensors", import.meta.url).pathname

/** A generator export made from the golden network (the generator at initialisation is the teacher, spec §2). */
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
    const teacher = await Effect.runPromise(readEdmTeacherFile(goldenPath))
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

  it("refuses a file without the export metadata", () => {
    expect(() => loadOneStepGenerator(readFileSync(new URL("../package.json", import.meta.url)))).toThrow()
    const file = decodeSafetensors(new Uint8Array(readFileSync(goldenPath)))
    const noSigma = encodeSafetensors([...file.tensors].filter(([n]) => n.startsWith("model.")), { config: file.metadata["config"]! })
    expect(() => loadOneStepGenerator(noSigma)).toThrow(/sigma_init/)
  })
})
