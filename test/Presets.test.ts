import * as tf from "@tensorflow/tfjs"
import { spawn } from "node:child_process"
import { mkdir, mkdtemp, readFile, stat, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Either, Option } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { type DistillArgs, distillOptions, planDistill, presetLine } from "../src/cli/Distill.js"
import { summaryTable } from "../src/cli/RunSummary.js"
import {
  describePreset,
  DISTILL_DEFAULTS,
  DISTILL_FLAGS,
  DISTILL_PRESETS,
  distillConfig,
  encodeDistillConfig
} from "../src/domain/config/DistillConfig.js"
import { mlpSpec } from "../src/domain/nn/Mlp.js"
import { mlpNetwork, unetNetwork } from "../src/domain/nn/Network.js"
import { encodeRunSpec, RUN_SPEC_FORMAT, RunSpec } from "../src/domain/config/RunSpec.js"
import { unetSpec } from "../src/domain/nn/UNet.js"
import { writeTeacherFile } from "../src/services/node/Teacher.js"
import { parseTeacherSpec, teacherKind } from "../src/services/node/Teacher.js"
import { SampleMetrics } from "../src/services/node/Metrics.js"

let dir = ""
let imageTeacher = ""
let vectorTeacher = ""

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
  dir = await mkdtemp(join(tmpdir(), "sid-presets-"))
  imageTeacher = join(dir, "image-teacher.safetensors")
  vectorTeacher = join(dir, "vector-teacher.safetensors")
  const unet = unetNetwork(unetSpec([8, 8, 1], { baseChannels: 8, channelMult: [1, 2], groups: 4 }))
  const mlp = mlpNetwork(mlpSpec(2, { hidden: 16, depth: 2 }))
  for (const [path, network] of [[imageTeacher, unet], [vectorTeacher, mlp]] as const) {
    const params = network.init(0)
    await Effect.runPromise(writeTeacherFile(path, network, params, 0.5))
    tf.dispose(Object.values(params))
  }
})

/** `sid distill` arguments as parsed from a command line that gives only `given` (flags as text, switches as booleans). */
const args = (given: Partial<Record<keyof DistillArgs, string | boolean>> = {}): DistillArgs => {
  const parsed: Record<string, unknown> = {}
  for (const key of Object.keys(distillOptions)) parsed[key] = Option.none()
  parsed["engine"] = "cpu"
  parsed["resume"] = false
  parsed["overwrite"] = false
  for (const [key, value] of Object.entries(given)) {
    parsed[key] = key === "resume" || key === "overwrite" ? value : Option.some(value)
  }
  return parsed as unknown as DistillArgs
}

const plan = (given: Partial<Record<keyof DistillArgs, string | boolean>>) =>
  Effect.runPromise(Effect.either(planDistill(args({ runDir: join(dir, "never-written"), ...given }))))

const planned = async (given: Partial<Record<keyof DistillArgs, string | boolean>>) => {
  const result = await plan(given)
  if (Either.isLeft(result)) throw new Error(`plan failed: ${String(result.left)}`)
  return result.right
}

describe("presets by teacher kind (issue 18.1)", () => {
  it("the teacher's kind: mixtures and vector teacher files are low-dimensional, EDM and UNet files images", async () => {
    const kind = (text: string) => Effect.runPromise(teacherKind(parseTeacherSpec(text)))
    expect(await kind("gmm:ring8")).toBe("lowDimensional")
    expect(await kind("gmm-dsm:grid25")).toBe("lowDimensional")
    expect(await kind("edm:whatever.safetensors")).toBe("images")
    expect(await kind(imageTeacher)).toBe("images")
    expect(await kind(vectorTeacher)).toBe("lowDimensional")
    const missing = await Effect.runPromise(Effect.either(teacherKind(parseTeacherSpec(join(dir, "absent.safetensors")))))
    expect(Either.isLeft(missing) && missing.left.message).toMatch(/cannot read the file/)
    const notSid = join(dir, "not-a-teacher.safetensors")
    await writeFile(notSid, Buffer.concat([Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]), Buffer.from("{}")]))
    const foreign = await Effect.runPromise(Effect.either(teacherKind(parseTeacherSpec(notSid))))
    expect(Either.isLeft(foreign) && foreign.left.message).toMatch(/not a sid-ts teacher file/)
  })

  it("a mixture teacher gets the low-dimensional preset, fit included, and records it", async () => {
    const p = await planned({ teacher: "gmm:ring8" })
    expect(p.kind).toBe("lowDimensional")
    expect(p.spec.preset).toBe("lowDimensional")
    expect(encodeDistillConfig(p.spec.config)).toEqual(encodeDistillConfig(distillConfig(DISTILL_PRESETS.lowDimensional.config)))
    expect(p.spec.config.normalizer).toBe(false)
    const fit = DISTILL_PRESETS.lowDimensional.teacherFit
    expect(p.spec.teacher.fitSteps).toBe(fit.steps)
    expect(p.spec.teacher.fitNetwork).toEqual({ hidden: fit.hidden, depth: fit.depth })
    expect(p.overrides).toEqual([])
    expect(presetLine(p)).toBe(`preset lowDimensional: ${describePreset("lowDimensional")}`)
  })

  it("an image teacher gets the paper's settings (docs/algorithm.md §9.2)", async () => {
    const p = await planned({ teacher: imageTeacher })
    expect(p.kind).toBe("images")
    const c = p.spec.config
    expect([c.generatorLr, c.fakeLr, c.batchSize, c.alpha, c.tmax, c.normalizer, c.emaHalfLifeKimg]).toEqual([1e-5, 1e-5, 256, 1.2, 800, true, 500])
    expect(p.spec.teacher.fitSteps).toBeNull()
    expect(p.spec.teacher.fitNetwork).toBeUndefined()
    const vector = await planned({ teacher: vectorTeacher })
    expect(vector.kind).toBe("lowDimensional")
    expect(vector.spec.config.normalizer).toBe(false)
  })

  it("every preset value can be overridden by its flag; a --config file sits between the preset and the flags", async () => {
    const preset = DISTILL_PRESETS.lowDimensional
    const flags = {
      alpha: "0.9",
      tmax: "700",
      normalizer: true,
      batchSize: "64",
      generatorLr: "2e-4",
      fakeLr: "5e-4",
      lrDecayKimg: "100",
      emaHalfLifeKimg: "50",
      teacherFitSteps: "40",
      teacherHidden: "32",
      teacherDepth: "2"
    } as const
    const p = await planned({ teacher: "gmm:grid25", ...flags })
    const c = p.spec.config
    expect([c.alpha, c.tmax, c.normalizer, c.batchSize, c.generatorLr, c.fakeLr, c.lrDecayKimg, c.emaHalfLifeKimg]).toEqual([
      0.9,
      700,
      true,
      64,
      2e-4,
      5e-4,
      100,
      50
    ])
    expect(p.spec.teacher.fitSteps).toBe(40)
    expect(p.spec.teacher.fitNetwork).toEqual({ hidden: 32, depth: 2 })
    // every setting of the preset (and of its fit) is named as overridden
    const named = p.overrides.map((o) => o.split(" ")[0])
    for (const key of Object.keys(preset.config) as Array<keyof typeof DISTILL_FLAGS>) {
      if (key !== "alpha" || flags.alpha !== String(preset.config.alpha)) expect(named).toContain(`--${DISTILL_FLAGS[key].flag}`)
    }
    for (const flag of ["teacher-fit-steps 40", "teacher-hidden 32", "teacher-depth 2"]) expect(p.overrides).toContain(`--${flag}`)
    expect(presetLine(p)).toMatch(/overridden: .*--batch 64/)

    const file = join(dir, "config.json")
    await writeFile(file, JSON.stringify({ batchSize: 128, tmax: 500 }))
    const layered = await planned({ teacher: "gmm:ring8", config: file, tmax: "650" })
    expect(layered.spec.config.batchSize).toBe(128)
    expect(layered.spec.config.tmax).toBe(650)
    expect(layered.spec.config.normalizer).toBe(preset.config.normalizer)
    const images = await planned({ teacher: imageTeacher, fakeLr: "3e-4", generatorLr: "3e-4", normalizer: false })
    expect([images.spec.config.fakeLr, images.spec.config.generatorLr, images.spec.config.normalizer]).toEqual([3e-4, 3e-4, false])
  })

  it("--normalizer and --no-normalizer set the switch either way; bad values name their flag", async () => {
    expect((await planned({ teacher: "gmm:ring8", normalizer: true })).spec.config.normalizer).toBe(true)
    expect((await planned({ teacher: imageTeacher, normalizer: false })).spec.config.normalizer).toBe(false)
    const bad = await plan({ teacher: "gmm:ring8", teacherHidden: "0" })
    expect(Either.isLeft(bad) && bad.left.message).toMatch(/--teacher-hidden 0: must be a whole number ≥ 1/)
  })

  it("a resumed run keeps its recorded settings: the preset is not applied again, and a changed fit network is refused", async () => {
    const runDir = join(dir, "recorded")
    await mkdir(runDir, { recursive: true })
    const recordedConfig = distillConfig({ batchSize: 48, tmax: 800, normalizer: true })
    const record = (teacher: RunSpec["teacher"]) =>
      writeFile(
        join(runDir, "config.json"),
        JSON.stringify(encodeRunSpec(new RunSpec({ format: RUN_SPEC_FORMAT, config: recordedConfig, teacher, reference: "auto" })))
      )
    const hash = (await planned({ teacher: "gmm:ring8" })).spec.teacher.sha256
    await record({ spec: "gmm:ring8", sha256: hash, fitSteps: 200 })
    const resumed = await planned({ runDir, resume: true })
    expect(encodeDistillConfig(resumed.spec.config)).toEqual(encodeDistillConfig(recordedConfig))
    expect(resumed.spec.teacher.fitNetwork).toEqual({ hidden: 128, depth: 4 })
    expect(resumed.spec.preset).toBeUndefined()
    expect(presetLine(resumed)).toMatch(/recorded settings are kept/)
    const refused = await plan({ runDir, resume: true, teacherHidden: "64" })
    expect(Either.isLeft(refused) && refused.left.message).toMatch(/teacher.fitNetwork.hidden \(--teacher-hidden\): recorded 128, requested 64/)
  })

  it("the library's own defaults are unchanged (docs/algorithm.md §9.2, §12.3); only sid distill layers a preset", () => {
    expect(encodeDistillConfig(distillConfig())).toMatchObject({ batchSize: DISTILL_DEFAULTS.batchSize, normalizer: true, tmax: 800 })
  })
})

describe("the closing summary (issue 18.3)", () => {
  const metrics = (over: Partial<ConstructorParameters<typeof SampleMetrics>[0]>) =>
    new SampleMetrics({
      samples: 10_000,
      frechetDistance: 3.7e-4,
      mmd: 6.2e-4,
      modeWeights: Array.from({ length: 8 }, () => 0.125),
      modesCovered: 8,
      offModeFraction: 0.02,
      betweenModeFraction: 0.004,
      inModeSpread: 0.98,
      ...over
    })

  it("compares the teacher's Heun sampler with the generator: figures, ratios and samples/s", () => {
    const table = summaryTable({
      teacher: { evaluations: 35, metrics: metrics({}), throughput: { samples: 5000, ms: 500, samplesPerSecond: 10_000 } },
      generator: {
        step: 3000,
        metrics: metrics({ frechetDistance: 1.85e-4, mmd: 9.3e-4, offModeFraction: 0.061, inModeSpread: 0.91 }),
        throughput: { samples: 5000, ms: 20, samplesPerSecond: 250_000 }
      }
    })
    const rows = table.split("\n")
    expect(rows[0]).toMatch(/teacher, Heun \(35 NFE\) +one-step generator \(EMA, step 3000\) +generator \/ teacher/)
    expect(table).toMatch(/FD +3\.70e-4 +1\.85e-4 +0\.50×/)
    expect(table).toMatch(/MMD² \(h 0\.1\) +6\.20e-4 +9\.30e-4 +1\.50×/)
    expect(table).toMatch(/modes +8\/8 +8\/8/)
    expect(table).toMatch(/off-mode mass +2\.0% +6\.1%/)
    expect(table).toMatch(/in-mode spread \(truth 1\) +0\.98× +0\.91×/)
    expect(table).toMatch(/samples\/s +10,000 +250,000 +25\.00×/)
  })

  it("shows a dash where the teacher was not evaluated, and image figures for image runs", () => {
    const noBaseline = summaryTable({
      teacher: { evaluations: 35, throughput: { samples: 8, ms: 3500, samplesPerSecond: 2.3, estimated: true } },
      generator: { step: 10, metrics: metrics({}), throughput: { samples: 8, ms: 10, samplesPerSecond: 800 } }
    })
    expect(noBaseline).toMatch(/FD +— +3\.70e-4/)
    expect(noBaseline).toMatch(/samples\/s +2 \(est\.\) +800/)
    const image = summaryTable({
      teacher: { evaluations: 35, metrics: metrics({ fid: 14.2, precision: 0.5, recall: 0.9 }), throughput: { samples: 8, ms: 100, samplesPerSecond: 80 } },
      generator: { step: 9000, metrics: metrics({ fid: 14.8, precision: 0.55, recall: 0.87 }), throughput: { samples: 8, ms: 4, samplesPerSecond: 2000 } }
    })
    expect(image).toMatch(/FID +14\.20 +14\.80 +1\.04×/)
    expect(image).toMatch(/recall +90\.0% +87\.0%/)
    expect(image).not.toMatch(/off-mode/)
  })

  it("names a few-step generator by its steps", () => {
    const table = summaryTable({
      teacher: { evaluations: 35, throughput: { samples: 8, ms: 100, samplesPerSecond: 80 } },
      generator: { step: 40, generatorSteps: 2, metrics: metrics({}), throughput: { samples: 8, ms: 4, samplesPerSecond: 2000 } }
    })
    expect(table.split("\n")[0]).toMatch(/teacher, Heun \(35 NFE\) +2-step generator \(EMA, step 40\)/)
    expect(table).not.toMatch(/one-step/)
  })
})

describe("sid distill end to end (one small run)", () => {
  it("prints the preset and the closing table, and writes samples.png beside fd.png", async () => {
    const runDir = join(dir, "run")
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "src/cli/bin.ts",
        "distill",
        "--steps",
        "6",
        "--eval-every",
        "3",
        "--batch",
        "64",
        "--teacher-fit-steps",
        "20",
        "--teacher-hidden",
        "16",
        "--teacher-depth",
        "2",
        "--eval-samples",
        "400",
        "--run-dir",
        runDir
      ],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, SID_ENGINE: "wasm" } }
    )
    let out = ""
    child.stdout.on("data", (d: Buffer) => (out += d.toString()))
    child.stderr.on("data", (d: Buffer) => (out += d.toString()))
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve))
    expect(code, out).toBe(0)
    expect(out).toContain(`preset lowDimensional: ${describePreset("lowDimensional")}`)
    expect(out).toMatch(/overridden: --batch 64 --steps 6 --eval-every 3 --teacher-fit-steps 20 --teacher-hidden 16 --teacher-depth 2/)
    expect(out).toMatch(/summary: teacher vs one-step generator \(400 samples each\)/)
    expect(out).toMatch(/FD +\S+ +\S+ +\S+×/)
    expect(out).toMatch(/in-mode spread \(truth 1\)/)
    expect(out).toMatch(/samples\/s +[\d,]+ +[\d,]+ +[\d.]+×/)
    expect(out).toMatch(/between \d+\.\d%  spread|between \d+\.\d%  MMD²@h/)
    for (const file of ["samples.png", "fd.png", "summary.json", "config.json"]) expect((await stat(join(runDir, file))).size).toBeGreaterThan(0)
    const png = await readFile(join(runDir, "samples.png"))
    expect(png.subarray(1, 4).toString()).toBe("PNG")
    const summary = JSON.parse(await readFile(join(runDir, "summary.json"), "utf8")) as {
      final: { teacher: { metrics: { inModeSpread?: number } }; generator: { step: number; throughput: { samplesPerSecond: number } } }
    }
    expect(summary.final.generator.step).toBe(6)
    expect(summary.final.generator.throughput.samplesPerSecond).toBeGreaterThan(0)
    expect(summary.final.teacher.metrics.inModeSpread).toBeGreaterThan(0.8)
    const record = JSON.parse(await readFile(join(runDir, "config.json"), "utf8")) as { preset: string; config: { normalizer: boolean; tmax: number } }
    expect(record.preset).toBe("lowDimensional")
    expect(record.config).toMatchObject({ normalizer: false, tmax: DISTILL_PRESETS.lowDimensional.config.tmax })
  })
})
