import * as tf from "@tensorflow/tfjs"
import { beforeAll, describe, expect, it } from "vitest"
import { identitiesReport } from "../examples/identities.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

describe("examples/identities.ts", () => {
  it("finds every identity satisfied within 5 standard errors, Tweedie to float32 precision, and leaks nothing", () => {
    const before = tf.memory().numTensors
    const report = identitiesReport({ samples: 40_000, alpha: 1.2, seed: 1 })
    expect(tf.memory().numTensors).toBe(before)
    expect(report.tweedieMaxError).toBeLessThan(1e-4)
    expect(report.checks).toHaveLength(4)
    for (const c of report.checks) {
      expect(c.difference.stderr).toBeGreaterThan(0)
      expect(Math.abs(c.difference.mean)).toBeLessThanOrEqual(5 * c.difference.stderr)
    }
  })

  it("detects a broken identity: with α ≠ the one used on the right-hand side the SiD check fails", () => {
    const report = identitiesReport({ samples: 40_000, alpha: 3, seed: 2 })
    const sid = report.checks[2]!
    const wrongRhs = (1 - 1.2) * report.checks[3]!.rhs.mean
    expect(Math.abs(sid.lhs.mean - wrongRhs)).toBeGreaterThan(5 * sid.lhs.stderr)
  })
})
