import * as tf from "@tensorflow/tfjs"
import { appendFileSync } from "node:fs"
import { afterAll, afterEach, beforeAll, expect } from "vitest"

tf.env().set("PROD", true)

// vitest's worker reports to the main process over an RPC that gives up after 60 s; its replies are handled only
// when the event loop turns. Tensor work is synchronous, so a turn is taken after every test: no chain of tests
// holds the loop for longer than its longest test, also on a busy machine where everything runs several times slower.
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
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
  afterAll(() => {
    clearInterval(timer)
    appendFileSync(report, JSON.stringify({ file: expect.getState().testPath, maxBlockMs: Math.round(maxBlockMs) }) + "\n")
  })
}
