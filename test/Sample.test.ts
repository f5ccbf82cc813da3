import { spawn } from "node:child_process"
import { access, mkdtemp, readFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { PNG } from "pngjs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { loadOneStepGenerator } from "../src/browser/OneStepGenerator.js"
import { mlpSpec } from "../src/domain/nn/Mlp.js"
import { mlpNetwork } from "../src/domain/nn/Network.js"
import { decodeSafetensors } from "../src/domain/data/Safetensors.js"
import { layerEdmFile } from "../src/services/node/Teacher.js"
import { loadGenerator } from "../src/services/node/Generator.js"
import { fixedLatents, teacherSamples } from "../src/pipeline/Evaluation.js"
import { Teacher } from "../src/services/node/Teacher.js"
import { runWithEngine, tf, tinyRun, useEngine } from "./support/distillation.js"

let release: () => Promise<void>
beforeAll(async () => {
  release = await useEngine("wasm")
})
afterAll(() => release())

const golden = join("test", "fixtures", "edm", "songunet-ddpmpp-tiny.safetensors")

const sid = (args: ReadonlyArray<string>): Promise<{ code: number | null; output: string }> =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/cli/bin.ts", ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, SID_ENGINE: "wasm" }
    })
    let output = ""
    child.stdout.on("data", (d: Buffer) => (output += d.toString()))
    child.stderr.on("data", (d: Buffer) => (output += d.toString()))
    child.on("exit", (code) => resolve({ code, output }))
  })

const exists = (path: string) => access(path).then(() => true, () => false)

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  expect(a.length).toBe(b.length)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

/** `generate(count, seed)` of the file `sid export` wrote, in `sid-ts/browser`. */
const browserSamples = async (file: string, count: number, seed: number): Promise<Float32Array> => {
  const generator = loadOneStepGenerator(new Uint8Array(await readFile(file)))
  try {
    return tf.tidy(() => Float32Array.from(generator.generate(count, seed).dataSync()))
  } finally {
    generator.dispose()
  }
}

const rawSamples = async (path: string) => {
  const file = decodeSafetensors(new Uint8Array(await readFile(path)))
  const samples = file.tensors.get("samples")
  expect(samples).toBeDefined()
  return samples!
}

describe("sid sample (the CLI)", () => {
  it("--teacher edm:<file> writes a PNG grid of the right size and raw NHWC float32 samples", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sid-sample-"))
    const run = await sid([
      "sample", "--teacher", `edm:${golden}`, "--count", "4", "--steps", "4",
      "--out", join(dir, "t.png"), "--raw", join(dir, "t.safetensors")
    ])
    expect(run.code, run.output).toBe(0)
    expect(run.output).toContain("7 evaluations")
    const png = PNG.sync.read(await readFile(join(dir, "t.png")))
    expect([png.width, png.height]).toEqual([2 * 16 + 3 * 2, 2 * 16 + 3 * 2])
    const samples = await rawSamples(join(dir, "t.safetensors"))
    expect(samples.dtype).toBe("float32")
    expect(samples.shape).toEqual([4, 16, 16, 3])
    expect(Array.from(samples.values).every(Number.isFinite)).toBe(true)
    const distinct = new Set(Array.from(samples.values).map((v) => v.toFixed(3)))
    expect(distinct.size).toBeGreaterThan(100)
    const inProcess = await runWithEngine(Effect.map(Teacher, (t) =>
      tf.tidy(() => Array.from(teacherSamples(t, fixedLatents(0, 4, [16, 16, 3]), 4).dataSync()))
    ).pipe(Effect.provide(layerEdmFile(golden))))
    expect(Math.max(...inProcess.map((v, i) => Math.abs(v - samples.values[i]!)))).toBeLessThan(1e-4)
  }, 120_000)

  it("--run-dir samples the EMA generator of the newest checkpoint of `sid distill`", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sid-sample-"))
    const runDir = join(dir, "run")
    const distill = await sid(["distill", "--teacher", `edm:${golden}`, "--steps", "1", "--batch", "2", "--glr", "1e-9", "--run-dir", runDir])
    expect(distill.code, distill.output).toBe(0)
    const run = await sid([
      "sample", "--run-dir", runDir, "--count", "3", "--columns", "3",
      "--out", join(dir, "g.png"), "--raw", join(dir, "g.safetensors")
    ])
    expect(run.code, run.output).toBe(0)
    expect(run.output).toContain("EMA generator at step 1")
    const png = PNG.sync.read(await readFile(join(dir, "g.png")))
    expect([png.width, png.height]).toEqual([3 * 16 + 4 * 2, 16 + 2 * 2])
    const samples = await rawSamples(join(dir, "g.safetensors"))
    expect(samples.shape).toEqual([3, 16, 16, 3])
    // With a negligible generator step the EMA generator is still the teacher: G(z) = D_φ(σ_init·z; σ_init), same z.
    const teacherOneStep = (seed: number) =>
      runWithEngine(Effect.map(Teacher, (t) =>
        tf.tidy(() => Array.from(t.denoise(tf.mul(fixedLatents(seed, 3, [16, 16, 3]), 2.5), 2.5).dataSync()))
      ).pipe(Effect.provide(layerEdmFile(golden))))
    const maxDiff = (a: ReadonlyArray<number>) => Math.max(...a.map((v, i) => Math.abs(v - samples.values[i]!)))
    const same = maxDiff(await teacherOneStep(0))
    const other = maxDiff(await teacherOneStep(1))
    console.log(`one-step EMA generator vs teacher: same latents ${same}, other latents ${other}`)
    expect(same).toBeLessThan(1e-3)
    expect(other).toBeGreaterThan(0.1)

    const exported = await sid(["export", "--run-dir", runDir, "--out", join(dir, "g-export.safetensors")])
    expect(exported.code, exported.output).toBe(0)
    expect(maxAbsDiff(await browserSamples(join(dir, "g-export.safetensors"), 3, 0), samples.values)).toBe(0)
  }, 240_000)

  it("a 2-D mixture teacher writes a scatter PNG and raw samples [N, 2]", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sid-sample-"))
    const run = await sid([
      "sample", "--teacher", "gmm:ring8", "--count", "10", "--steps", "6", "--churn", "5",
      "--out", join(dir, "m.png"), "--raw", join(dir, "m.safetensors")
    ])
    expect(run.code, run.output).toBe(0)
    expect(run.output).toContain("scatter plot")
    const png = PNG.sync.read(await readFile(join(dir, "m.png")))
    expect([png.width, png.height]).toEqual([480, 510])
    const samples = await rawSamples(join(dir, "m.safetensors"))
    expect(samples.shape).toEqual([10, 2])
    expect(Array.from(samples.values).every(Number.isFinite)).toBe(true)
  }, 120_000)

  it("--run-dir of a 2-D run writes a scatter PNG, and `sid export` + sid-ts/browser or loadGenerator draw the same samples for the same seed", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sid-sample-"))
    const runDir = join(dir, "run")
    const inProcess = await tinyRun(mlpNetwork(mlpSpec(2, { hidden: 16, depth: 2 })), runDir, { batchSize: 16, seed: 3, count: 50 })
    const sampled = await sid(["sample", "--run-dir", runDir, "--count", "50", "--seed", "3", "--out", join(dir, "g.png"), "--raw", join(dir, "g.safetensors")])
    expect(sampled.code, sampled.output).toBe(0)
    expect(sampled.output).toContain("EMA generator at step 2")
    const png = PNG.sync.read(await readFile(join(dir, "g.png")))
    expect([png.width, png.height]).toEqual([480, 510])
    const samples = await rawSamples(join(dir, "g.safetensors"))
    expect(samples.shape).toEqual([50, 2])
    expect(maxAbsDiff(samples.values, inProcess.ema)).toBeLessThan(1e-6)

    const file = join(dir, "generator.safetensors")
    const exported = await sid(["export", "--run-dir", runDir, "--out", file])
    expect(exported.code, exported.output).toBe(0)
    expect(exported.output).toContain("mlp generator, ema weights at step 2, format sid-ts-generator-v1")
    const byStep = await sid(["export", "--run-dir", runDir, "--checkpoint", "2", "--out", join(dir, "step2.safetensors")])
    expect(byStep.code, byStep.output).toBe(0)
    expect(await readFile(join(dir, "step2.safetensors"))).toEqual(await readFile(file))
    const noBest = await sid(["export", "--run-dir", runDir, "--checkpoint", "best", "--out", join(dir, "best.safetensors")])
    expect(noBest.code).toBe(1)
    expect(noBest.output).toMatch(/no best checkpoint/)
    expect(await exists(join(dir, "best.safetensors"))).toBe(false)
    expect(maxAbsDiff(await browserSamples(file, 50, 3), samples.values)).toBe(0)
    const library = await runWithEngine(Effect.scoped(Effect.map(loadGenerator(file), (g) =>
      tf.tidy(() => Float32Array.from(g.generate(50, 3).dataSync()))
    )))
    expect(maxAbsDiff(library, samples.values)).toBe(0)
    expect(maxAbsDiff(await browserSamples(file, 50, 4), samples.values)).toBeGreaterThan(0.1)

    const noRaw = await sid(["sample", "--run-dir", runDir, "--count", "8", "--out", join(dir, "default.png")])
    expect(noRaw.code, noRaw.output).toBe(0)
    expect(await exists(join(dir, "default.png"))).toBe(true)
  }, 240_000)

  it("never exits 0 having written nothing: samples that are neither images nor 2-D points need --raw", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sid-sample-"))
    const refused = await sid(["sample", "--teacher", "gmm:gauss1d", "--count", "10", "--steps", "3", "--out", join(dir, "x.png")])
    expect(refused.code, refused.output).toBe(1)
    expect(refused.output).toMatch(/\[10, 1\].*pass --raw/s)
    expect(await exists(join(dir, "x.png"))).toBe(false)
    const raw = await sid([
      "sample", "--teacher", "gmm:gauss1d", "--count", "10", "--steps", "3", "--out", join(dir, "x.png"), "--raw", join(dir, "x.safetensors")
    ])
    expect(raw.code, raw.output).toBe(0)
    expect(raw.output).toContain("no PNG written")
    expect((await rawSamples(join(dir, "x.safetensors"))).shape).toEqual([10, 1])
  }, 120_000)

  it("fails with exit 1 and a clear message when neither or both of --teacher / --run-dir are given", async () => {
    const neither = await sid(["sample", "--count", "2"])
    expect(neither.code).toBe(1)
    expect(neither.output).toMatch(/--teacher .* or --run-dir/)
    const both = await sid(["sample", "--teacher", "gmm:ring8", "--run-dir", tmpdir()])
    expect(both.code).toBe(1)
    expect(both.output).toContain("not both")
  }, 120_000)
})
