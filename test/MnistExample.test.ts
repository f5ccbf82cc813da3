import { mkdtemp, readdir, readFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { runMnistPipeline } from "../examples/mnist.js"
import { distillConfig } from "../src/domain/config/DistillConfig.js"
import { teacherTrainingConfig } from "../src/domain/config/TeacherTrainingConfig.js"
import { runWithEngine, tf, useEngine } from "./support/distillation.js"

let release: () => Promise<void>
beforeAll(async () => {
  release = await useEngine("wasm")
})
afterAll(() => release())

const teacher = teacherTrainingConfig({
  steps: 300,
  batchSize: 16,
  baseChannels: 16,
  channelMult: [1, 2],
  groups: 4,
  resolution: 16,
  checkpointEvery: 150
})
const distill = distillConfig({
  steps: 60,
  batchSize: 16,
  evalEvery: 20,
  checkpointEvery: 30,
  generatorLr: 3e-4,
  fakeLr: 3e-4,
  emaHalfLifeKimg: 0.05
})

const settings = (out: string) => ({ out, teacher, distill, evalSamples: 300, referenceSize: 500, speedBatch: 16 })

describe("examples/mnist.ts: teacher training → Heun-35 baseline → SiD → one-step MNIST-FID (issue 4 §6, §7)", () => {
  it("on 16×16 digits, distillation lowers the one-step FID and every stage reports and writes its results", async () => {
    const out = await mkdtemp(join(tmpdir(), "sid-mnist-"))
    const lines: Array<string> = []
    const before = tf.memory().numTensors
    const summary = await runWithEngine(
      runMnistPipeline({ ...settings(out), log: (line) => lines.push(line) })
    )
    expect(tf.memory().numTensors).toBe(before)
    const start = summary.generator.startFid!
    expect(start).not.toBeNull()
    expect(summary.generator.final.fid!).toBeLessThan(0.85 * start)
    expect(summary.evaluations.map((e) => e.step)).toEqual([0, 20, 40, 60])
    expect(summary.teacher.heun35.fid).toBeGreaterThan(0)
    expect(summary.fidRatio).toBeCloseTo(summary.generator.final.fid! / summary.teacher.heun35.fid!, 10)
    expect(summary.speed.speedup).toBeGreaterThan(1)
    expect(summary.earlyPhase).not.toBeNull()
    expect(Number.isFinite(summary.earlyPhase!.slopePer1kIterations)).toBe(true)
    expect(summary.generator.final.classifierAccuracy).toBeGreaterThan(0.9)
    const written = JSON.parse(await readFile(join(out, "summary.json"), "utf8")) as { fidRatio: number }
    expect(written.fidRatio).toBe(summary.fidRatio)
    expect((await readdir(join(out, "distill", "samples"))).sort()).toEqual(
      ["step-00000000.png", "step-00000020.png", "step-00000040.png", "step-00000060.png"]
    )
    expect(await readdir(join(out, "distill"))).toEqual(expect.arrayContaining(["fid.png", "log.jsonl", "checkpoints"]))
    expect(await readdir(join(out, "teacher"))).toEqual(expect.arrayContaining(["teacher.safetensors", "checkpoints", "log.jsonl"]))
    expect(lines.some((l) => l.startsWith("5. one-step MNIST-FID"))).toBe(true)

    const again = await runWithEngine(
      runMnistPipeline({ ...settings(out), log: () => {} })
    )
    expect(again.generator.final.fid).toBeCloseTo(summary.generator.final.fid!, 6)
    expect(again.teacher.heun35).toEqual(summary.teacher.heun35)
    expect(again.evaluations).toEqual(summary.evaluations)
    expect(again.earlyPhase).toEqual(summary.earlyPhase)
  }, 600_000)
})
