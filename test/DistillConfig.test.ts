import { Arbitrary, Either, FastCheck, Schema } from "effect"
import { describe, expect, it } from "vitest"
import {
  ConfigError,
  decodeDistillConfig,
  decodeDistillConfigJson,
  DistillConfig,
  DistillConfigFromJson,
  encodeDistillConfig
} from "../src/domain/config/DistillConfig.js"
import { Alpha, BatchSize, LearningRate, Seed, Tmax } from "../src/domain/config/Units.js"

const equivalent = Schema.equivalence(DistillConfig)

const rejected = (input: unknown): ConfigError => {
  const result = decodeDistillConfig(input)
  if (Either.isRight(result)) throw new Error(`expected ${JSON.stringify(input)} to be rejected`)
  return result.left
}

describe("DistillConfig defaults (docs/algorithm.md §9.1–9.2, §12.3)", () => {
  it("equal docs/algorithm.md's values", () => {
    // from docs/algorithm.md: docs/algorithm.md §8.1/§9.2 CLI defaults, §2.1 EDM constants, §9.1 Adam/EMA, docs/algorithm.md §12.3 toy lr and batch
    const expected = {
      alpha: 1.2,
      tmax: 800,
      sigmaInit: 2.5,
      pMean: -1.2,
      pStd: 1.2,
      generatorLr: 3e-4,
      fakeLr: 3e-4,
      batchSize: 512,
      generatorBeta1: 0,
      beta2: 0.999,
      epsilon: 1e-8,
      generatorLossScale: 100,
      fakeLossScale: 1,
      emaHalfLifeKimg: 500, // --ema 0.5 Mimg
      emaRampupRatio: 0.05
    }
    const defaults = DistillConfig.defaults
    expect(defaults).toMatchObject(expected)
    const decoded = Either.getOrThrow(decodeDistillConfig({}))
    expect(equivalent(decoded, defaults)).toBe(true)
    expect(Number.isInteger(defaults.steps) && defaults.steps > 0).toBe(true)
    expect(Number.isInteger(defaults.evalEvery) && defaults.evalEvery > 0).toBe(true)
    expect(Number.isInteger(defaults.checkpointEvery) && defaults.checkpointEvery > 0).toBe(true)
  })

  it("a partial input keeps the given values and fills in the rest", () => {
    const cfg = Either.getOrThrow(decodeDistillConfig({ alpha: 1, batchSize: 256, emaRampupRatio: null }))
    expect(cfg.alpha).toBe(1)
    expect(cfg.batchSize).toBe(256)
    expect(cfg.emaRampupRatio).toBeNull()
    expect(cfg.tmax).toBe(800)
    const made = DistillConfig.make({ alpha: Alpha.make(1), generatorLr: LearningRate.make(1e-5) })
    expect(made.alpha).toBe(1)
    expect(made.generatorLr).toBe(1e-5)
    expect(made.fakeLr).toBe(3e-4)
  })
})

describe("DistillConfig round trips (docs/algorithm.md §9.2)", () => {
  it("Arbitrary samples decode and survive encode/decode", () => {
    const decode = Schema.decodeUnknownSync(DistillConfig)
    FastCheck.assert(
      FastCheck.property(Arbitrary.make(DistillConfig), (cfg) => {
        const encoded = encodeDistillConfig(cfg)
        expect(equivalent(decode(encoded), cfg)).toBe(true)
        expect(Either.isRight(decodeDistillConfig(encoded))).toBe(true)
      }),
      { numRuns: 200 }
    )
  })

  it("Arbitrary samples survive a JSON round trip (Schema.parseJson)", () => {
    const toJson = Schema.encodeSync(DistillConfigFromJson)
    const fromJson = Schema.decodeSync(DistillConfigFromJson)
    FastCheck.assert(
      FastCheck.property(Arbitrary.make(DistillConfig), (cfg) => {
        const text = toJson(cfg)
        expect(equivalent(fromJson(text), cfg)).toBe(true)
        expect(equivalent(Either.getOrThrow(decodeDistillConfigJson(text)), cfg)).toBe(true)
      }),
      { numRuns: 200 }
    )
  })

  it("encoding writes every field, so a saved config does not depend on future defaults", () => {
    expect(Object.keys(encodeDistillConfig(DistillConfig.defaults)).sort()).toEqual(
      Object.keys(DistillConfig.fields).sort()
    )
  })
})

describe("ConfigError messages name the field, the value and the rule", () => {
  const cases: ReadonlyArray<readonly [field: string, value: unknown, shown: string, rule: string]> = [
    ["alpha", -1, "-1", "≥ 0"],
    ["alpha", NaN, "NaN", "finite"],
    ["alpha", Infinity, "Infinity", "finite"],
    ["tmax", 0, "0", "(0, 1000]"],
    ["tmax", 1001, "1001", "(0, 1000]"],
    ["sigmaInit", 0, "0", "> 0"],
    ["sigmaInit", -Infinity, "-Infinity", "> 0"],
    ["loss", "sidd", "\"sidd\"", "one of sid"],
    ["normalizer", 1, "1", "true or false"],
    ["pMean", NaN, "NaN", "finite"],
    ["pStd", 0, "0", "> 0"],
    ["generatorLr", 0, "0", "(0, 1]"],
    ["generatorLr", -1, "-1", "(0, 1]"],
    ["fakeLr", 2, "2", "(0, 1]"],
    ["fakeLr", Infinity, "Infinity", "(0, 1]"],
    ["batchSize", 0, "0", "integer in [1, 65536]"],
    ["batchSize", 2.5, "2.5", "integer in [1, 65536]"],
    ["batchSize", 65537, "65537", "integer in [1, 65536]"],
    ["batchSize", NaN, "NaN", "integer"],
    ["steps", -1, "-1", "integer ≥ 0"],
    ["steps", 1.5, "1.5", "integer ≥ 0"],
    ["generatorBeta1", 1, "1", "[0, 1)"],
    ["beta2", -0.1, "-0.1", "[0, 1)"],
    ["epsilon", 0, "0", "> 0"],
    ["generatorLossScale", 0, "0", "> 0"],
    ["fakeLossScale", -1, "-1", "> 0"],
    ["emaHalfLifeKimg", -1, "-1", "≥ 0"],
    ["emaRampupRatio", -0.05, "-0.05", "≥ 0, or null"],
    ["evalEvery", 0, "0", "integer ≥ 1"],
    ["checkpointEvery", 2.5, "2.5", "integer ≥ 1"],
    ["seed", -1, "-1", "[0, 4294967295]"],
    ["seed", 2 ** 32, "4294967296", "[0, 4294967295]"],
    ["alpha", "1.2", "\"1.2\"", "finite number ≥ 0"],
    ["batchSize", null, "null", "integer in [1, 65536]"]
  ]

  it.each(cases)("%s = %s is rejected", (field, value, shown, rule) => {
    const error = rejected({ [field]: value })
    expect(error._tag).toBe("ConfigError")
    expect(error.issues).toHaveLength(1)
    const [issue] = error.issues
    expect(issue!.field).toBe(field)
    expect(Object.is(issue!.value, value)).toBe(true)
    expect(issue!.rule).toContain(rule)
    expect(issue!.rule).toMatch(/docs\/algorithm\.md §/)
    expect(error.message).toContain(`${field} = ${shown}: `)
    expect(error.message).toContain(rule)
  })

  it("the message from the brief's example reads as specified", () => {
    expect(rejected({ alpha: -1 }).message).toMatch(/^Invalid distillation config \(1 setting\):\n {2}alpha = -1: must be a finite number ≥ 0 \(.*α.*docs\/algorithm\.md §8\.1.*\)\nFix /)
  })

  it("lists every bad setting at once", () => {
    const error = rejected({ alpha: -1, tmax: 0, batchSize: 2.5, generatorLr: 0, sigmaInit: NaN })
    expect(error.issues.map((i) => i.field).sort()).toEqual(["alpha", "batchSize", "generatorLr", "sigmaInit", "tmax"])
    expect(error.message.split("\n")).toHaveLength(7)
  })

  it("rejects unknown keys, naming the known ones", () => {
    const error = rejected({ alpah: 1.2 })
    expect(error.issues[0]!.field).toBe("alpah")
    expect(error.message).toContain("alpah = 1.2: is not a DistillConfig setting")
    expect(error.message).toContain("alpha, tmax")
  })

  it("rejects a non-object, an explicit undefined and malformed JSON", () => {
    expect(rejected(5).issues[0]!.field).toBe("(config)")
    expect(rejected(null).issues[0]!.field).toBe("(config)")
    expect(rejected({ alpha: undefined }).issues[0]!.field).toBe("alpha")
    const json = decodeDistillConfigJson("{\"alpha\": ")
    expect(Either.isLeft(json) && json.left.issues[0]!.field).toBe("(json)")
    const badValue = decodeDistillConfigJson("{\"tmax\": 1001}")
    expect(Either.isLeft(badValue) && badValue.left.message).toContain("tmax = 1001: must be in (0, 1000]")
  })

  it("a property: any out-of-range batch size or tmax is rejected on that field", () => {
    FastCheck.assert(
      FastCheck.property(
        FastCheck.oneof(
          FastCheck.integer({ min: -1e6, max: 0 }),
          FastCheck.integer({ min: 65537, max: 1e9 }),
          FastCheck.double({ min: 1.01, max: 1e4, noNaN: true }).filter((v) => !Number.isInteger(v))
        ),
        FastCheck.oneof(
          FastCheck.double({ max: 0, noNaN: true }),
          FastCheck.double({ min: 1000, minExcluded: true, noNaN: true })
        ),
        (batchSize, tmax) => {
          const error = rejected({ batchSize, tmax })
          expect(error.issues.map((i) => i.field).sort()).toEqual(["batchSize", "tmax"])
        }
      ),
      { numRuns: 200 }
    )
  })

  it("branded constructors validate too", () => {
    expect(() => Alpha.make(-1)).toThrow(/≥ 0/)
    expect(() => Tmax.make(0)).toThrow(/\(0, 1000\]/)
    expect(() => BatchSize.make(2.5)).toThrow(/integer/)
    expect(() => Seed.make(-1)).toThrow(/4294967295/)
    expect(BatchSize.make(512)).toBe(512)
  })

  it("ConfigError survives its own encode/decode", () => {
    const error = rejected({ alpha: -1, batchSize: 0 })
    const codec = Schema.encodeSync(ConfigError)
    const back = Schema.decodeSync(ConfigError)(codec(error))
    expect(back.issues).toEqual(error.issues)
    expect(back.message).toBe(error.message)
  })
})
