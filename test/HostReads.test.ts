/**
 * Host reads of a step from one code path (issue 16): a `Reads` computation served synchronously (`runSync`) or with
 * one batched asynchronous read per request (`runAsync`) gives the same result, frees what it owns when a read fails,
 * and the batched read returns every tensor's values in order without leaking.
 */
import * as tf from "@tensorflow/tfjs"
import { beforeAll, describe, expect, it } from "vitest"
import { read, readBatched, type Reads, runAsync, runSync } from "../src/pipeline/HostReads.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

/** Reads twice (a float matrix and an int/bool pair), then returns a summary; disposes its tensors in `finally`. */
function* twoReads(log: Array<string>): Reads<{ readonly sum: number; readonly flags: ReadonlyArray<number> }> {
  const a = tf.tensor2d([[1.5, -2], [3, 4.25]])
  const b = tf.tensor1d([3, 7], "int32")
  const c = tf.tensor1d([true, false, true], "bool")
  try {
    const [av] = yield* read([a])
    const [bv, cv] = yield* read([b, c])
    return { sum: Array.from(av!).reduce((s, x) => s + x, 0) + Array.from(bv!).reduce((s, x) => s + x, 0), flags: Array.from(cv!) }
  } finally {
    tf.dispose([a, b, c])
    log.push("disposed")
  }
}

describe("host reads", () => {
  it("runSync and runAsync give the same values; nothing leaks", async () => {
    const before = tf.memory().numTensors
    const log: Array<string> = []
    const sync = runSync(twoReads(log))
    const async = await runAsync(twoReads(log))
    expect(sync).toEqual({ sum: 16.75, flags: [1, 0, 1] })
    expect(async).toEqual(sync)
    expect(log).toEqual(["disposed", "disposed"])
    expect(tf.memory().numTensors).toBe(before)
  })

  it("a failing read is thrown into the computation, whose finally frees its tensors", async () => {
    const before = tf.memory().numTensors
    const log: Array<string> = []
    const steps = twoReads(log)
    const first = steps.next()
    expect(first.done).toBe(false)
    expect(() => steps.throw(new Error("device lost"))).toThrow("device lost")
    expect(log).toEqual(["disposed"])
    expect(tf.memory().numTensors).toBe(before)
  })

  it("readBatched returns each tensor's flattened values in request order, with one temporary freed", async () => {
    const ts = [tf.tensor2d([[1, 2], [3, 4]]), tf.scalar(7, "int32"), tf.tensor1d([0.25, -0.5])]
    const before = tf.memory().numTensors
    const values = await readBatched(ts)
    expect(values.map((v) => Array.from(v))).toEqual([[1, 2, 3, 4], [7], [0.25, -0.5]])
    expect(tf.memory().numTensors).toBe(before)
    expect(await readBatched([])).toEqual([])
    tf.dispose(ts)
  })
})
