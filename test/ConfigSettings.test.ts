import { Either, Option, Schema } from "effect"
import { describe, expect, it } from "vitest"
import { ConfigError } from "../src/domain/config/ConfigError.js"
import { DISTILL_DEFAULTS, DISTILL_SETTINGS, DistillConfig, decodeDistillConfig, encodeDistillConfig } from "../src/domain/config/DistillConfig.js"
import { setting, fieldsOf, defaultsOf } from "../src/domain/config/Setting.js"
import {
  decodeTeacherTrainingConfig,
  encodeTeacherTrainingConfig,
  TEACHER_DEFAULTS,
  TEACHER_SETTINGS,
  TeacherTrainingConfig,
  teacherTrainingConfig
} from "../src/domain/config/TeacherTrainingConfig.js"
import { brandedNumber } from "../src/domain/config/Units.js"

describe("brandedNumber", () => {
  const Rate = brandedNumber("Rate", { min: 0, minExclusive: true, max: 1 }, "must be in (0, 1]", "a rate")
  const Count = brandedNumber("Count", { int: true, min: 1, max: 10, maxExclusive: true }, "must be an integer in [1, 10)", "a count")

  it("keeps each bound's end open or closed as asked, brands, and says its one rule on every failure", () => {
    const accepts = <A>(schema: Schema.Schema<A, number>, x: unknown) => Either.isRight(Schema.decodeUnknownEither(schema)(x))
    expect([0, 1e-9, 1, 1.0001].map((x) => accepts(Rate, x))).toEqual([false, true, true, false])
    expect([0, 1, 9, 10, 2.5].map((x) => accepts(Count, x))).toEqual([false, true, true, false, false])
    for (const bad of [Number.NaN, Infinity, "1", 0, 2]) {
      const failure = Schema.decodeUnknownEither(Rate)(bad)
      expect(Either.isLeft(failure) && failure.left.message, String(bad)).toContain("must be in (0, 1]")
    }
    expect(() => Rate.make(0)).toThrow(/must be in \(0, 1\]/)
    expect(Rate.make(0.5)).toBe(0.5)
    expect(Rate.ast.annotations[Symbol.for("effect/annotation/Description")]).toBe("a rate")
  })
})

describe("settings tables", () => {
  it("are where the config classes take their fields and defaults from", () => {
    expect(Object.keys(DistillConfig.fields)).toEqual(Object.keys(DISTILL_SETTINGS))
    expect(Object.keys(TeacherTrainingConfig.fields)).toEqual(Object.keys(TEACHER_SETTINGS))
    expect(encodeDistillConfig(DistillConfig.make({}))).toEqual(DISTILL_DEFAULTS)
    expect(encodeTeacherTrainingConfig(teacherTrainingConfig())).toEqual(TEACHER_DEFAULTS)
    const flags = [...Object.values(DISTILL_SETTINGS), ...Object.values(TEACHER_SETTINGS)].map((row) => row.flag)
    for (const flag of flags) expect(flag).toMatch(/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/)
    expect(new Set(Object.values(DISTILL_SETTINGS).map((r) => r.flag)).size).toBe(Object.keys(DISTILL_SETTINGS).length)
    expect(DISTILL_SETTINGS.loss.default).toBe("sid")
    expect(DISTILL_SETTINGS.normalizer.default).toBe(true)
  })

  it("reject a default that breaks its own rule when the fields are built", () => {
    const Positive = brandedNumber("Positive", { min: 0, minExclusive: true }, "must be > 0", "positive")
    const table = { x: setting(Positive, 2, "x", "an x") }
    expect(defaultsOf(table)).toEqual({ x: 2 })
    expect(() => fieldsOf({ x: setting(Positive, -1, "x", "an x") })).toThrow(/must be > 0/)
    expect(() => setting(Schema.NullOr(Positive), null, "y", "a y")).toThrow(/--y: say how its flag is read/)
  })
})

describe("one ConfigError for every config", () => {
  it("names the config, each field, the value and the rule, for the distillation and the teacher-training config", () => {
    const distill = Option.getOrThrow(Either.getLeft(decodeDistillConfig({ alpha: -1, alpah: 1 })))
    const teacher = Option.getOrThrow(Either.getLeft(decodeTeacherTrainingConfig({ batchSize: 0, stepz: 1 })))
    for (const error of [distill, teacher]) expect(error).toBeInstanceOf(ConfigError)
    expect(distill.message).toMatch(/^Invalid distillation config \(2 settings\):\n/)
    expect(distill.message).toMatch(/\n {2}alpha = -1: must be a finite number ≥ 0/)
    expect(distill.message).toContain("alpah = 1: is not a DistillConfig setting")
    expect(teacher.message).toMatch(/^Invalid teacher-training config \(2 settings\):\n/)
    expect(teacher.message).toMatch(/\n {2}batchSize = 0: must be an integer in \[1, 65536\]/)
    expect(teacher.message).toContain("stepz = 1: is not a TeacherTrainingConfig setting")
    const back = Schema.decodeUnknownSync(ConfigError)(Schema.encodeSync(ConfigError)(teacher))
    expect(back.message).toBe(teacher.message)
  })
})
