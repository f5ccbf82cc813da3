import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { runCustomPipeline } from "../examples/custom-pipeline.js"
import { StartReport, StepReport } from "../src/pipeline/Distill.js"

describe("examples/custom-pipeline.ts", () => {
  it("distils a closure teacher with a user-supplied loss through the standard stream", async () => {
    const reports = Array.from(await Effect.runPromise(runCustomPipeline(150)))
    const start = reports[0] as StartReport
    const last = reports.at(-1) as StepReport
    expect(last).toBeInstanceOf(StepReport)
    expect(last.step).toBe(150)
    expect(last.evaluation!.frechetDistance).toBeLessThan(0.5 * start.evaluation!.frechetDistance)
    expect(last.evaluation!.modesCovered).toBe(4)
  })
})
