/**
 * Every part of a run on the `webgpu` engine in Node (issue 16), through the real CLI at a tiny size: `sid distill` of
 * a 2-D mixture with an in-process fitted teacher (the fit, the teacher's baseline evaluation, one evaluation, a
 * checkpoint, the best checkpoint, the closing summary and its plots), the same with `--low-memory` and with a
 * two-step generator, `sid sample` and
 * `sid export` of the result, and `sid teacher train` for a few steps. Every host read on `webgpu` must be
 * asynchronous: a synchronous one would fail the command (WebGpuSyncRead), and tfjs prints a warning the moment one is
 * attempted, so the output is checked for both. Values are compared with the `cpu` engine's runs of the same commands.
 *
 * Skipped, with the reason, where the optional `webgpu` package or an adapter is missing (in CI the adapter is Mesa's
 * software llvmpipe, opted into with `--allow-software-gpu` / `SID_WEBGPU_SOFTWARE=1`).
 */
import { Effect } from "effect"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { decodeSafetensors } from "../src/domain/data/Safetensors.js"
import * as Engine from "../src/engine/node/Engine.js"
import { probeWebGpu } from "../src/engine/node/WebGpu.js"
import { loadGenerator } from "../src/services/node/Generator.js"
import { spawnSid } from "./support/cli.js"
import { relativeL2 } from "./support/errors.js"

const probe = await probeWebGpu()
const reason = probe._tag === "None" ? probe.reason : ""
const gpuDescribe = probe._tag === "Adapter" ? describe : describe.skip
if (probe._tag === "None") console.log(`webgpu CLI tests skipped: ${reason}`)

/**
 * Tolerances of webgpu against cpu (float32 kernels with different summation orders, compounded over the teacher's
 * fit, two SiD iterations and a 35-evaluation Heun sampler): losses and metrics relative, tensors relative L2.
 */
const LOSS_TOLERANCE = 1e-3
const METRIC_TOLERANCE = 1e-3
const TENSOR_TOLERANCE = 1e-4
/** The same weights sampled on both engines: one network evaluation, relative L2. */
const SAMPLE_TOLERANCE = 1e-5

const dirs: Array<string> = []
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), "sid-webgpu-cli-"))
  dirs.push(d)
  return d
}

type EngineName = "webgpu" | "cpu"

const sid = async (args: ReadonlyArray<string>): Promise<{ readonly code: number | null; readonly output: string }> => {
  const p = spawnSid(args, { SID_WEBGPU_SOFTWARE: "1" })
  const code = await p.exit
  return { code, output: p.output() }
}

/** Asserts a command succeeded without any synchronous read attempted on the engine. */
const expectClean = (r: { readonly code: number | null; readonly output: string }): void => {
  expect(r.output).not.toMatch(/WebGpuSyncRead|synchronously reading data from GPU/)
  expect(r.code, r.output).toBe(0)
}

const relative = (a: number, b: number): number => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12)


type LogLine = Record<string, unknown> & { readonly step?: number }
const logOf = (dir: string): Array<LogLine> =>
  readFileSync(join(dir, "log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as LogLine)

/** The tensors of the newest rotated checkpoint in `<dir>/checkpoints`, as float arrays by name. */
const checkpointTensors = (dir: string): Map<string, Float32Array> => {
  const files = readdirSync(join(dir, "checkpoints")).filter((f) => /^ckpt-.*\.safetensors$/.test(f)).sort()
  const file = decodeSafetensors(new Uint8Array(readFileSync(join(dir, "checkpoints", files.at(-1)!))))
  return new Map([...file.tensors].map(([n, t]) => [n, Float32Array.from(t.values)]))
}

/** Worst relative L2 over the tensors both checkpoints hold (the names must agree). */
const worstTensor = (a: Map<string, Float32Array>, b: Map<string, Float32Array>): number => {
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort())
  return Math.max(...[...b].map(([n, v]) => relativeL2(a.get(n)!, v)))
}

/**
 * Worst relative L2 over the groups of tensors (`params`, `ema`, each optimiser slot), each group's tensors taken as
 * one vector. For networks where some gradients are zero in exact arithmetic (a bias followed by GroupNorm), whose
 * float32 noise Adam normalises into steps of full size on either engine: compared one by one, those tensors differ
 * by construction.
 */
const worstGroup = (a: Map<string, Float32Array>, b: Map<string, Float32Array>): number => {
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort())
  const groups = new Map<string, { num: number; den: number }>()
  for (const [n, y] of b) {
    const key = /^(.*?(params|ema|optimizer\.\w+))\./.exec(n)?.[1] ?? n
    const g = groups.get(key) ?? { num: 0, den: 0 }
    const x = a.get(n)!
    for (let i = 0; i < y.length; i++) {
      g.num += (x[i]! - y[i]!) ** 2
      g.den += y[i]! ** 2
    }
    groups.set(key, g)
  }
  return Math.max(...[...groups.values()].map((g) => Math.sqrt(g.num / Math.max(g.den, 1e-30))))
}

const rawSamples = (path: string): Float32Array =>
  Float32Array.from(decodeSafetensors(new Uint8Array(readFileSync(path))).tensors.get("samples")!.values)

const distillArgs = (dir: string, engine: EngineName, extra: ReadonlyArray<string> = []): Array<string> => [
  "distill",
  "--teacher", "gmm-dsm:ring8",
  "--teacher-fit-steps", "5",
  "--teacher-hidden", "16",
  "--teacher-depth", "2",
  "--steps", "2",
  "--eval-every", "2",
  "--eval-samples", "200",
  "--baseline-samples", "200",
  "--batch", "16",
  "--checkpoint-every", "2",
  "--run-dir", dir,
  "--engine", engine,
  ...(engine === "webgpu" ? ["--allow-software-gpu"] : []),
  ...extra
]

const steps = (log: ReadonlyArray<LogLine>) => log.filter((l) => typeof l["fakeLoss"] === "number")
const evaluationAt = (log: ReadonlyArray<LogLine>, step: number) =>
  log.find((l) => l.step === step && l["evaluation"] !== undefined)!["evaluation"] as Record<string, number>

gpuDescribe(`the CLI on the webgpu engine (${probe._tag === "Adapter" ? probe.report.description : reason})`, () => {
  const gpuRun = tempDir()
  const cpuRun = tempDir()

  it(
    `sid distill (fitted mixture teacher, evaluations, checkpoints, closing summary) runs on webgpu with asynchronous ` +
      `reads only, and equals cpu's run: losses within ${LOSS_TOLERANCE}, metrics within ${METRIC_TOLERANCE}, ` +
      `checkpoint tensors within ${TENSOR_TOLERANCE} (relative L2)`,
    async () => {
      const [gpu, cpu] = [await sid(distillArgs(gpuRun, "webgpu")), await sid(distillArgs(cpuRun, "cpu"))]
      expectClean(gpu)
      expect(cpu.code, cpu.output).toBe(0)
      expect(gpu.output).toMatch(/engine webgpu on/)
      const files = readdirSync(gpuRun)
      for (const f of ["samples.png", "fd.png", "summary.json", "config.json"]) expect(files).toContain(f)
      expect(readdirSync(join(gpuRun, "checkpoints"))).toContain("best")
      const [g, c] = [logOf(gpuRun), logOf(cpuRun)]
      expect(steps(g).map((l) => l.step)).toEqual([1, 2])
      const worst = { loss: 0, metric: 0 }
      for (const [a, b] of steps(g).map((l, i) => [l, steps(c)[i]!] as const)) {
        for (const k of ["fakeLoss", "generatorLoss", "fakeGradNorm", "generatorGradNorm"]) {
          worst.loss = Math.max(worst.loss, relative(a[k] as number, b[k] as number))
        }
      }
      for (const step of [0, 2]) {
        const [a, b] = [evaluationAt(g, step), evaluationAt(c, step)]
        for (const k of ["frechetDistance", "mmd"]) worst.metric = Math.max(worst.metric, relative(a[k]!, b[k]!))
      }
      const baseline = (log: ReadonlyArray<LogLine>) =>
        (log.find((l) => l["teacherSampler"] !== undefined)!["teacherSampler"] as { metrics: Record<string, number> }).metrics
      worst.metric = Math.max(worst.metric, relative(baseline(g)["frechetDistance"]!, baseline(c)["frechetDistance"]!))
      const tensors = worstTensor(checkpointTensors(gpuRun), checkpointTensors(cpuRun))
      console.log(`sid distill, webgpu vs cpu: worst relative loss ${worst.loss.toExponential(2)}, metric ` +
        `${worst.metric.toExponential(2)}, checkpoint tensor (relative L2) ${tensors.toExponential(2)}`)
      expect(worst.loss).toBeLessThanOrEqual(LOSS_TOLERANCE)
      expect(worst.metric).toBeLessThanOrEqual(METRIC_TOLERANCE)
      expect(tensors).toBeLessThanOrEqual(TENSOR_TOLERANCE)
    },
    300_000
  )

  it("sid distill --low-memory (host Adam moments and EMA) on webgpu equals the same run on webgpu without it", async () => {
    const lowRun = tempDir()
    const low = await sid(distillArgs(lowRun, "webgpu", ["--low-memory"]))
    expectClean(low)
    const [a, b] = [steps(logOf(lowRun)), steps(logOf(gpuRun))]
    expect(a).toHaveLength(2)
    for (let i = 0; i < 2; i++) {
      for (const k of ["fakeLoss", "generatorLoss", "fakeGradNorm", "generatorGradNorm"]) {
        expect(relative(a[i]![k] as number, b[i]![k] as number)).toBeLessThanOrEqual(LOSS_TOLERANCE)
      }
    }
    expect(worstTensor(checkpointTensors(lowRun), checkpointTensors(gpuRun))).toBeLessThanOrEqual(TENSOR_TOLERANCE)
  }, 300_000)

  it(`a two-step generator (--generator-steps 2) evaluates on webgpu as on cpu within ${METRIC_TOLERANCE}`, async () => {
    const [gpuDir, cpuDir] = [tempDir(), tempDir()]
    const extra = ["--generator-steps", "2"]
    const [gpu, cpu] = [await sid(distillArgs(gpuDir, "webgpu", extra)), await sid(distillArgs(cpuDir, "cpu", extra))]
    expectClean(gpu)
    expect(cpu.code, cpu.output).toBe(0)
    for (const step of [0, 2]) {
      const [a, b] = [evaluationAt(logOf(gpuDir), step), evaluationAt(logOf(cpuDir), step)]
      expect(relative(a["frechetDistance"]!, b["frechetDistance"]!)).toBeLessThanOrEqual(METRIC_TOLERANCE)
    }
  }, 300_000)

  it(
    `sid sample of the webgpu run on webgpu equals cpu's within ${SAMPLE_TOLERANCE} (relative L2); sid export of it ` +
      "loads and gives cpu's samples",
    async () => {
      const out = tempDir()
      const sample = (engine: EngineName) =>
        sid(["sample", "--run-dir", gpuRun, "--engine", engine, "--count", "64", "--out", join(out, `${engine}.png`),
          "--raw", join(out, `${engine}.safetensors`)])
      const [gpu, cpu] = [await sample("webgpu"), await sample("cpu")]
      expectClean(gpu)
      expect(cpu.code, cpu.output).toBe(0)
      const [a, b] = [rawSamples(join(out, "webgpu.safetensors")), rawSamples(join(out, "cpu.safetensors"))]
      expect(a).toHaveLength(128)
      expect(relativeL2(a, b)).toBeLessThanOrEqual(SAMPLE_TOLERANCE)
      expect(readdirSync(out)).toContain("webgpu.png")

      const file = join(out, "generator.safetensors")
      expectClean(await sid(["export", "--run-dir", gpuRun, "--out", file]))
      const exported = await Effect.runPromise(
        Effect.scoped(Effect.flatMap(loadGenerator(file), (g) =>
          Effect.promise(async () => {
            const x = g.generate(64, 0)
            try {
              return Float32Array.from(await x.data())
            } finally {
              x.dispose()
            }
          }))).pipe(Effect.provide(Engine.cpu))
      )
      expect(relativeL2(exported, b)).toBeLessThanOrEqual(1e-6)
    },
    300_000
  )

  const teacherDir = tempDir()

  it(`sid teacher train runs on webgpu and equals cpu's first steps: losses within ${LOSS_TOLERANCE}, checkpoint ` +
    `groups (params, EMA, each Adam slot) within ${TENSOR_TOLERANCE}`, async () => {
    const [gpuDir, cpuDir] = [teacherDir, tempDir()]
    const train = (dir: string, engine: EngineName) =>
      sid(["teacher", "train", "--batch", "4", "--base-channels", "8", "--channel-mult", "1,2", "--resolution", "16",
        "--steps", "2", "--checkpoint-every", "2", "--run-dir", dir, "--engine", engine])
    const [gpu, cpu] = [await train(gpuDir, "webgpu"), await train(cpuDir, "cpu")]
    expectClean(gpu)
    expect(cpu.code, cpu.output).toBe(0)
    expect(readdirSync(gpuDir)).toContain("teacher.safetensors")
    const [a, b] = [logOf(gpuDir).filter((l) => l["loss"] !== undefined), logOf(cpuDir).filter((l) => l["loss"] !== undefined)]
    expect(a.map((l) => l.step)).toEqual([1, 2])
    let worst = 0
    for (let i = 0; i < 2; i++) {
      for (const k of ["loss", "gradNorm"]) worst = Math.max(worst, relative(a[i]![k] as number, b[i]![k] as number))
    }
    const tensors = worstGroup(checkpointTensors(gpuDir), checkpointTensors(cpuDir))
    console.log(`sid teacher train, webgpu vs cpu: worst relative loss ${worst.toExponential(2)}, checkpoint tensor ` +
      `group (relative L2) ${tensors.toExponential(2)}`)
    expect(worst).toBeLessThanOrEqual(LOSS_TOLERANCE)
    expect(tensors).toBeLessThanOrEqual(TENSOR_TOLERANCE)
  }, 300_000)

  it(
    `sid distill of the trained UNet teacher against MNIST (LeNet features: FID, KID, IS, precision/recall, sample ` +
      `grids) runs on webgpu, and its start evaluation equals wasm's within ${METRIC_TOLERANCE}`,
    async () => {
      const teacher = join(teacherDir, "teacher.safetensors")
      const run = (dir: string, engine: "webgpu" | "wasm") =>
        sid(["distill", "--teacher", teacher, "--reference", "mnist", "--steps", "1", "--eval-every", "1",
          "--eval-samples", "16", "--baseline-samples", "0", "--batch", "2", "--checkpoint-every", "1", "--run-dir", dir,
          "--engine", engine, ...(engine === "webgpu" ? ["--allow-software-gpu"] : [])])
      const [gpuDir, wasmDir] = [tempDir(), tempDir()]
      const [gpu, wasm] = [await run(gpuDir, "webgpu"), await run(wasmDir, "wasm")]
      expectClean(gpu)
      expect(wasm.code, wasm.output).toBe(0)
      expect(readdirSync(join(gpuDir, "samples"))).toEqual(["step-00000000.png", "step-00000001.png"])
      expect(readdirSync(gpuDir)).toContain("fid.png")
      const [a, b] = [evaluationAt(logOf(gpuDir), 0), evaluationAt(logOf(wasmDir), 0)]
      let worst = 0
      for (const k of ["fid", "mmd", "inceptionScore", "precision", "recall", "classifierAccuracy"]) {
        expect(typeof a[k], k).toBe("number")
        worst = Math.max(worst, relative(a[k]!, b[k]!))
      }
      console.log(`image metrics, webgpu vs wasm: worst relative ${worst.toExponential(2)}`)
      expect(worst).toBeLessThanOrEqual(METRIC_TOLERANCE)
    },
    400_000
  )
})
