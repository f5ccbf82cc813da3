import { mkdtemp, readFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { loadOneStepGenerator } from "../src/browser/OneStepGenerator.js"
import { decodeSafetensors } from "../src/domain/data/Safetensors.js"
import { spawnSid } from "./support/cli.js"
import { tf, useEngine } from "./support/distillation.js"

let release: () => Promise<void>
beforeAll(async () => {
  release = await useEngine("wasm")
})
afterAll(() => release())

const sid = async (args: ReadonlyArray<string>) => {
  const p = spawnSid(args)
  const code = await p.exit
  return { code, output: p.output() }
}

const small = ["--teacher", "gmm:ring8", "--batch", "32", "--teacher-fit-steps", "20", "--eval-samples", "300", "--eval-every", "1000000"]

describe("--generator-steps in sid distill, sample and export (docs/few-step.md)", () => {
  it("a 2-step run samples, exports and loads with k = 2; a resume changing k and a bad k are refused", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sid-fewstep-cli-"))
    const runDir = join(dir, "run")
    const run = await sid(["distill", ...small, "--generator-steps", "2", "--steps", "2", "--checkpoint-every", "2", "--run-dir", runDir])
    expect(run.code, run.output).toBe(0)
    expect(JSON.parse(await readFile(join(runDir, "config.json"), "utf8"))).toMatchObject({ config: { generatorSteps: 2 } })

    const sampled = await sid(["sample", "--run-dir", runDir, "--count", "20", "--seed", "1", "--out", join(dir, "g.png"), "--raw", join(dir, "g.safetensors")])
    expect(sampled.code, sampled.output).toBe(0)
    expect(sampled.output).toContain("2 steps")
    const raw = decodeSafetensors(new Uint8Array(await readFile(join(dir, "g.safetensors")))).tensors.get("samples")!

    const file = join(dir, "k2.safetensors")
    const exported = await sid(["export", "--run-dir", runDir, "--out", file])
    expect(exported.code, exported.output).toBe(0)
    expect(exported.output).toContain("2 generator steps")
    const generator = loadOneStepGenerator(new Uint8Array(await readFile(file)))
    expect(generator.generatorSteps).toBe(2)
    expect(tf.tidy(() => Array.from(generator.generate(20, 1).dataSync()))).toEqual(Array.from(raw.values))
    generator.dispose()

    const oneStep = await sid(["sample", "--run-dir", runDir, "--generator-steps", "1", "--count", "20", "--seed", "1", "--out", join(dir, "g1.png")])
    expect(oneStep.code, oneStep.output).toBe(0)
    expect(oneStep.output).toContain("one step")

    const changed = await sid(["distill", "--resume", "--generator-steps", "1", "--steps", "3", "--run-dir", runDir])
    expect(changed.code).not.toBe(0)
    expect(changed.output).toMatch(/--generator-steps/)

    const bad = await sid(["export", "--run-dir", runDir, "--generator-steps", "5", "--out", join(dir, "bad.safetensors")])
    expect(bad.code).not.toBe(0)
    expect(bad.output).toMatch(/--generator-steps 5: must be an integer in 1\.\.4/)
  }, 180_000)
})
