import { describe, expect, it } from "vitest"
import { distillConfig } from "../src/domain/config/DistillConfig.js"
import { SampleMetrics } from "../src/services/node/Metrics.js"
import {
  defaultVariantSettings,
  firstAtOrBelow,
  MNIST_VARIANTS,
  parseVariant,
  variantOverrides,
  variantRow,
  variantTable
} from "../examples/MnistVariants.js"

const metrics = (fid: number) =>
  new SampleMetrics({ samples: 10, frechetDistance: fid, mmd: fid / 10, fid, precision: 0.5, recall: 0.25 })

describe("examples/MnistVariants.ts (issue 14.4)", () => {
  it("each variant is a valid config on the shared budget, differing only in its own settings", () => {
    const settings = defaultVariantSettings(120 * 16)
    expect(settings.generatorWarmupKimg).toBeCloseTo(0.0384, 10)
    expect(settings.adversarialWarmupKimg).toBeCloseTo(0.096, 10)
    const base = { steps: 120, batchSize: 16 }
    const configs = Object.fromEntries(MNIST_VARIANTS.map((v) => [v, distillConfig({ ...base, ...variantOverrides(v, "runs/x", settings) })]))
    expect(configs["sid"]!.generatorSteps).toBe(1)
    expect(configs["sid-aug"]!.augment).toBe(0.12)
    expect(configs["sida"]!.adversarial).toBe(true)
    expect(configs["sida"]!.data).toBe("mnist")
    expect(configs["sid2a"]!.initGenerator).toBe("runs/x/variants/sid/distill")
    expect(configs["sid-2step"]!.generatorSteps).toBe(2)
    expect(configs["sid-4step"]!.generatorSteps).toBe(4)
    for (const c of Object.values(configs)) expect([c.steps, c.batchSize]).toEqual([120, 16])
    expect(() => parseVariant("sid-3step")).toThrow(/--variant must be one of sid, sid-aug/)
  })

  it("the row names the first evaluation at or below the teacher's FID, and the table puts the teacher first", () => {
    const evaluations = [{ step: 0, fid: 300 }, { step: 20, fid: 90 }, { step: 40, fid: 79 }, { step: 60, fid: 85 }]
    expect(firstAtOrBelow(evaluations, 80)).toBe(40)
    expect(firstAtOrBelow(evaluations, 50)).toBeNull()
    const summary = {
      teacher: { heun35: metrics(80) },
      generator: { final: metrics(85), best: { step: 40, fid: 79 }, seconds: 12 },
      evaluations
    }
    const row = variantRow("sid-2step", distillConfig({ steps: 60, batchSize: 16, generatorSteps: 2 }), 1000, summary)
    expect(row).toMatchObject({ variant: "sid-2step", generatorSteps: 2, fid: 85, kid: 8.5, firstAtTeacherFid: 40, teacherFid: 80 })
    const table = variantTable([row, { ...row, variant: "sid", generatorSteps: 1, firstAtTeacherFid: null }], metrics(80)).split("\n")
    expect(table[2]).toMatch(/^\| teacher, Heun-35 \| — \| 35 \| 80\.00 /)
    expect(table[3]).toMatch(/^\| sid \| 60 × 16 \| 1 \| 85\.00 .*\| not reached \|$/)
    expect(table[4]).toMatch(/^\| sid-2step \| 60 × 16 \| 2 \| 85\.00 .*\| 79\.00 \(40\) \| 40 \|$/)
  })
})
