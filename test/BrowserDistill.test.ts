import * as tf from "@tensorflow/tfjs"
import { Chunk, Effect, Either, Layer, Option, Stream } from "effect"
import { readFileSync } from "node:fs"
import { dirname, resolve } from "node:path"
import { describe, expect, it } from "vitest"
import { engineLayer } from "../src/browser/Engine.js"
import { layerMemory, makeStore, memoryRecords, type CheckpointRecords } from "../src/browser/CheckpointStore.js"
import * as BrowserRun from "../src/browser/Distillation.js"
import { loadOneStepGenerator } from "../src/browser/OneStepGenerator.js"
import { decodeDistillConfig, DISTILL_PRESETS } from "../src/domain/config/DistillConfig.js"
import { ring } from "../src/domain/data/GaussianMixture.js"
import { distill, StepReport } from "../src/pipeline/Distill.js"
import { CheckpointStore } from "../src/services/CheckpointStore.js"
import { Generator } from "../src/services/Generator.js"
import { serveLibraryPage } from "./support/libraryPage.js"
import type { PageCheck } from "./support/webGpuPage.js"
import { chromiumMissing, launchChromium } from "./support/webDemo.js"

/**
 * Bare module specifiers reachable from a source file through its runtime imports and re-exports, static and
 * dynamic (`import("pkg")` with a literal); type-only imports are skipped.
 */
const bareImports = (entry: string): Map<string, string> => {
  const seen = new Set<string>()
  const bare = new Map<string, string>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    seen.add(file)
    const text = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "")
    const specs = [
      ...[...text.matchAll(/^(?:import|export)\s+(type\s+)?[^;]*?from\s+"([^"]+)"/gm)].filter((m) => m[1] === undefined).map((m) => m[2]!),
      ...[...text.matchAll(/^import\s+"([^"]+)"/gm)].map((m) => m[1]!),
      ...[...text.matchAll(/\bimport\(\s*"([^"]+)"\s*\)/g)].map((m) => m[1]!)
    ]
    for (const spec of specs) {
      if (spec.startsWith(".")) visit(resolve(dirname(file), spec.replace(/\.js$/, ".ts")))
      else if (!bare.has(spec)) bare.set(spec, file)
    }
  }
  visit(entry)
  return bare
}

const configOf = (overrides: Record<string, unknown>) =>
  Either.getOrThrow(decodeDistillConfig({
    ...DISTILL_PRESETS.lowDimensional.config,
    batchSize: 64,
    steps: 6,
    evalEvery: 1000,
    checkpointEvery: 3,
    seed: 3,
    ...overrides
  }))

const FIT = { steps: 15, hidden: 16, depth: 2, batchSize: 64 } as const
const mixture = ring()

/** A browser run on the cpu engine with `checkpoints`: its step reports and the EMA generator's samples. */
const runWith = (
  config: ReturnType<typeof configOf>,
  checkpoints: Layer.Layer<CheckpointStore>,
  resume: boolean
) => {
  const run = BrowserRun.layer(config, {
    teacher: BrowserRun.mixtureTeacher(mixture, "exact", FIT),
    metrics: BrowserRun.mixtureMetrics(mixture, { referenceSize: 500, mmdSize: 200 }),
    checkpoints
  })
  return Effect.gen(function*() {
    const reports = Chunk.toReadonlyArray(yield* Stream.runCollect(distill(config, { resume, evaluate: false })))
    const generator = yield* Generator
    const samples = tf.tidy(() => generator.generate(tf.randomNormal([32, 2], 0, 1, "float32", 9), "ema"))
    const values = Array.from(samples.dataSync())
    samples.dispose()
    const exported = yield* BrowserRun.exportGenerator({ step: reports.length })
    return { reports, values, exported }
  }).pipe(Effect.provide(Layer.provideMerge(run, engineLayer("cpu"))))
}

describe("sid-ts/browser/distill", () => {
  it("has nothing from Node in its import graph", () => {
    const entry = new URL("../src/browser/index.ts", import.meta.url).pathname
    const bare = bareImports(entry)
    expect([...bare.keys()].sort()).toEqual([
      "@tensorflow/tfjs",
      "@tensorflow/tfjs-backend-wasm",
      "@tensorflow/tfjs-backend-webgpu",
      "effect",
      "ml-matrix"
    ])
    for (const [spec, file] of bare) expect(`${spec} (imported by ${file})`).not.toMatch(/^node:|platform-node|\.node\b|^fs|^path|^os|^crypto/)
  })

  it("distils on the page's cpu engine; a run resumed from its stored step 3 ends bit for bit where the straight run ends", async () => {
    const before = tf.memory().numTensors
    const config = configOf({})
    const straight = await Effect.runPromise(runWith(config, layerMemory(), false))
    expect(straight.reports.filter((r) => r instanceof StepReport).map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6])
    // The first run stops after 3 iterations (its checkpoint at step 3); the second resumes from that same store.
    const shared = Layer.succeed(CheckpointStore, makeStore(memoryRecords()))
    const firstHalf = await Effect.runPromise(runWith(configOf({ steps: 3 }), shared, false))
    expect(firstHalf.reports.at(-1)).toMatchObject({ step: 3, checkpoint: "memory @ step 3" })
    const resumed = await Effect.runPromise(runWith(config, shared, true))
    expect(resumed.reports[0]).toMatchObject({ step: 3, resumedFrom: "memory @ step 3" })
    expect(resumed.values).toEqual(straight.values)
    expect(resumed.values.every(Number.isFinite)).toBe(true)
    // The exported generator samples what the run's EMA generator samples.
    const loaded = loadOneStepGenerator(resumed.exported)
    expect(loaded.provenance).toMatchObject({ weights: "ema" })
    const z = tf.randomNormal([32, 2], 0, 1, "float32", 9)
    const fromFile = loaded.generate(z)
    expect(Array.from(fromFile.dataSync())).toEqual(resumed.values)
    tf.dispose([z, fromFile])
    loaded.dispose()
    expect(tf.memory().numTensors).toBe(before)
  })

  it("the store keeps the newest checkpoints and the best, and reports a damaged record with the intact steps", async () => {
    const config = configOf({ steps: 4, checkpointEvery: 1 })
    const records = memoryRecords()
    const store = makeStore(records, 2)
    await Effect.runPromise(runWith(config, Layer.succeed(CheckpointStore, store), false))
    expect((await Effect.runPromise(store.list)).map((e) => e.step)).toEqual([4, 3])
    const latest = await Effect.runPromise(store.latest)
    expect(Option.map(latest, (c) => c.manifest.step)).toEqual(Option.some(4))
    const best = await Effect.runPromise(store.saveBest(Option.getOrThrow(latest), { metric: "frechetDistance", value: 0.5 }))
    expect(best.replaced).toBe(true)
    const worse = await Effect.runPromise(store.saveBest(Option.getOrThrow(latest), { metric: "frechetDistance", value: Number.NaN }))
    expect(worse.replaced).toBe(false)
    // Flip one byte of the newest weights: latest refuses it and names the intact steps.
    const record = (await records.get("ckpt-00000004"))!
    const weights = record.weights.slice()
    weights[weights.length - 1] = weights[weights.length - 1]! ^ 0xff
    await records.put("ckpt-00000004", { ...record, weights })
    const error = await Effect.runPromise(Effect.flip(store.latest))
    expect(error).toMatchObject({ kind: "damaged", step: 4, intactSteps: [3, 4] })
    expect(error.message).toMatch(/SHA-256/)
    const fromThree = await Effect.runPromise(store.load(3))
    expect(fromThree.manifest.step).toBe(3)
    const poisoned = new Map(fromThree.tensors)
    const [name, array] = [...poisoned].find(([, a]) => a.dtype === "float32")!
    poisoned.set(name, { ...array, values: Float32Array.from(array.values, (v, i) => (i === 0 ? Number.NaN : v)) })
    const refusal = await Effect.runPromise(Effect.flip(store.save({ manifest: { ...fromThree.manifest, step: 5 } as typeof fromThree.manifest, tensors: poisoned })))
    expect(refusal).toMatchObject({ kind: "invalid", step: 5 })
    expect(refusal.message).toMatch(/NaN or ±Inf.*diverged.*last good checkpoint/s)
    expect((await Effect.runPromise(store.list)).map((e) => e.step)).toEqual([4, 3, 4])
    const failing: CheckpointRecords = { ...records, put: () => Promise.reject(new Error("QuotaExceededError")) }
    const full = makeStore(failing, 2)
    const writeError = await Effect.runPromise(Effect.flip(full.save(fromThree)))
    expect(writeError).toMatchObject({ kind: "write-failed" })
    expect(writeError.message).toMatch(/QuotaExceededError/)
    expect((await Effect.runPromise(full.list)).map((e) => [e.step, e.status._tag])).toEqual([[4, "Damaged"], [3, "Intact"], [4, "Intact"]])
  })

  it("refuses a mixture without modes, and runs it cannot do, with what to do", async () => {
    const empty = await Effect.runPromise(Effect.flip(BrowserRun.mixtureOfModes([])))
    expect(empty._tag).toBe("MixtureInvalid")
    expect(empty.message).toMatch(/no modes.*Place at least one mode/)
    const bad = await Effect.runPromise(Effect.flip(BrowserRun.mixtureOfModes([{ x: 0, y: 0, std: 0 }])))
    expect(bad.message).toMatch(/variances\[0\] must be finite and positive/)
    const two = await Effect.runPromise(BrowserRun.mixtureOfModes([{ x: 0, y: 0, std: 0.1 }, { x: 1, y: 0, std: 0.2, weight: 3 }]))
    expect(two.weights).toEqual([0.25, 0.75])
    const sida = BrowserRun.layer(configOf({ adversarial: true }), {
      teacher: BrowserRun.mixtureTeacher(mixture, "exact", FIT),
      metrics: BrowserRun.mixtureMetrics(mixture),
      checkpoints: layerMemory()
    })
    const refused = await Effect.runPromise(Effect.flip(Layer.build(sida).pipe(Effect.scoped, Effect.provide(engineLayer("cpu")))))
    expect(refused.message).toMatch(/does not support SiDA/)
  })
})

/** Relative L2 distance of `got` from `want`. */
const relativeL2 = (got: ReadonlyArray<number>, want: ReadonlyArray<number>): number => {
  let d = 0
  let n = 0
  for (let i = 0; i < want.length; i++) {
    d += (got[i]! - want[i]!) ** 2
    n += want[i]! ** 2
  }
  return Math.sqrt(d / Math.max(n, 1e-30))
}

// Page-side globals inside `page.evaluate` callbacks (this file compiles without the DOM lib).
declare const navigator: { gpu?: { requestAdapter(): Promise<{ info?: Record<string, string | boolean | undefined> } | null> } }

const chromium = chromiumMissing()
if (chromium !== undefined) console.log(`BrowserDistill: the page's webgpu engine check is skipped: ${chromium}`)

describe.skipIf(chromium !== undefined)("sid-ts/browser's webgpu engine in Chromium (a software adapter where there is no GPU)", () => {
  /** Tolerance of the kernels against the page's wasm engine (float32 on both; different summation orders). */
  const TOLERANCE = 1e-5

  it("installs the project's WebGPU kernels: addN of 12 inputs, Adam and GroupNorm (+ SiLU, gradient) equal the wasm engine's, and 3 ring8 SiD iterations give finite losses", async (ctx) => {
    const server = await serveLibraryPage()
    const browser = await launchChromium(true)
    try {
      const page = await browser.newPage()
      await page.goto(server.url)
      const adapter = await page.evaluate(async () => {
        if (navigator.gpu === undefined) return "none: this Chromium has no navigator.gpu"
        const a = await navigator.gpu.requestAdapter()
        if (a === null) return "none: navigator.gpu.requestAdapter() returned null"
        const info = a.info ?? {}
        return ["vendor", "architecture", "device", "description", "isFallbackAdapter"].map((k) => `${k}: ${String(info[k])}`).join(", ")
      })
      console.log(`BrowserDistill: Chromium's WebGPU adapter: ${adapter}`)
      if (adapter.startsWith("none:")) return ctx.skip()
      await page.waitForFunction(() => "sidCheck" in globalThis)
      const run = (engine: "webgpu" | "wasm", iterations: number) =>
        page.evaluate(
          ([e, n]) => (globalThis as unknown as { sidCheck: (e: string, n: number) => Promise<PageCheck> }).sidCheck(e, n),
          [engine, iterations] as const
        )
      const gpu = await run("webgpu", 3)
      const wasm = await run("wasm", 0)
      console.log(`BrowserDistill: page engine ${gpu.engine} on "${gpu.adapter}", patched kernels: ${gpu.patchedKernels.join(", ")}`)
      expect(gpu.engine).toMatch(/^webgpu \(backend webgpu\)/)
      expect(wasm.engine).toMatch(/^wasm \(backend wasm\)/)
      const sums = Array.from({ length: 16 }, (_, i) =>
        Array.from({ length: gpu.addNInputs }, (_, k) => Math.fround(Math.sin(1.7 * i + k) * (1 + (i % 5) / 4))).reduce((a, b) => a + b, 0))
      expect(relativeL2(gpu.addN, sums)).toBeLessThan(TOLERANCE)
      expect(gpu.patchedKernels).toEqual(expect.arrayContaining(["webgpu/AddN", "webgpu/SidAdam", "webgpu/SidGroupNorm", "webgpu/SidGroupNormGrad"]))
      const measured = {
        addN: relativeL2(gpu.addN, wasm.addN),
        adamParams: relativeL2(gpu.adam.params, wasm.adam.params),
        adamM: relativeL2(gpu.adam.m, wasm.adam.m),
        adamV: relativeL2(gpu.adam.v, wasm.adam.v),
        groupNorm: relativeL2(gpu.groupNorm, wasm.groupNorm),
        groupNormGrad: relativeL2(gpu.groupNormGrad, wasm.groupNormGrad)
      }
      console.log(`BrowserDistill: webgpu vs wasm in the page, relative L2: ${JSON.stringify(measured)}`)
      for (const value of Object.values(measured)) expect(value).toBeLessThan(TOLERANCE)
      console.log(`BrowserDistill: 3 SiD iterations on webgpu: ${JSON.stringify(gpu.losses)}`)
      expect(gpu.losses).toHaveLength(3)
      expect(gpu.losses.every((l) => Number.isFinite(l.fake) && Number.isFinite(l.generator))).toBe(true)
      expect([gpu.tensorsLeaked, wasm.tensorsLeaked]).toEqual([0, 0])
    } finally {
      await browser.close()
      await server.close()
    }
  }, 300_000)
})
