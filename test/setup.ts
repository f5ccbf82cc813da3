import * as tf from "@tensorflow/tfjs"
import { appendFileSync } from "node:fs"
import { afterAll, afterEach, beforeAll, expect } from "vitest"
import { turn } from "./support/turn.js"

tf.env().set("PROD", true)

// vitest's worker reports to the main process over an RPC that gives up after 60 s; its replies are handled only
// when the event loop turns. Tensor work is synchronous, so a turn is taken after every test: no chain of tests
// holds the loop for longer than its longest test, also on a busy machine where everything runs several times slower.
afterEach(turn)

// SID_LOOP_REPORT=<file>: append each test file's longest event-loop block (ms) to <file>, to find tests that starve
// vitest's worker RPC on a busy machine.
const report = process.env["SID_LOOP_REPORT"]
if (report !== undefined) {
  let last = 0
  let maxBlockMs = 0
  let timer: ReturnType<typeof setInterval> | undefined
  beforeAll(() => {
    last = performance.now()
    timer = setInterval(() => {
      const now = performance.now()
      maxBlockMs = Math.max(maxBlockMs, now - last - 20)
      last = now
    }, 20)
  })
  afterEach(async () => {
    await turn()
    await new Promise((resolve) => setTimeout(resolve, 25))
    const state = expect.getState()
    appendFileSync(report, JSON.stringify({ file: state.testPath, test: state.currentTestName, maxBlockMs: Math.round(maxBlockMs) }) + "\n")
    maxBlockMs = 0
  })
  afterAll(() => clearInterval(timer))
}
