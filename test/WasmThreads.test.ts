import { execFile } from "node:child_process"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"
import * as tf from "@tensorflow/tfjs"
import "@tensorflow/tfjs-backend-wasm"
import { Effect, Logger, LogLevel } from "effect"
import { availableParallelism } from "node:os"
import { busyCoresNow, idleCores, withWasmThreads } from "../src/engine/node/internal/wasmThreads.js"

const run = promisify(execFile)

interface ChildReport {
  readonly threads: number
  readonly restored: boolean
  readonly results: ReadonlyArray<string>
}

/** The child of test/support/wasmThreadsChild.ts with `threads` threads; rejects if it does not end by itself. */
const child = async (threads: number): Promise<ChildReport> => {
  const { stdout } = await run(process.execPath, ["--import", "tsx", "test/support/wasmThreadsChild.ts", String(threads)], {
    encoding: "utf8",
    timeout: 100_000,
    env: { ...process.env, SID_WASM_THREADS: "" }
  })
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as ChildReport
}

describe("the wasm engine's threads in Node (docs/engines.md §2.1)", () => {
  it("starts XNNPACK's pool with the count asked for, restores what it borrowed, ends by itself, and computes the same bits as one thread", async () => {
    const one = await child(1)
    const two = await child(2)
    expect(one.threads).toBe(1)
    expect(two.threads).toBe(2)
    expect(one.restored).toBe(true)
    expect(two.restored).toBe(true)
    expect(two.results.length).toBe(6)
    expect(two.results).toEqual(one.results)
  })
})

describe("the default thread count", () => {
  it("is the cores others leave idle, rounded, from 1 to 4, the busy ones measured over a short window", async () => {
    expect(idleCores(2, 0.1)).toBe(2)
    expect(idleCores(2, 0.6)).toBe(1)
    expect(idleCores(2, 1)).toBe(1)
    expect(idleCores(2, 5)).toBe(1)
    expect(idleCores(16, 0)).toBe(4)
    expect(idleCores(8, 5.2)).toBe(3)
    const busy = await Effect.runPromise(busyCoresNow(50))
    expect(busy).toBeGreaterThanOrEqual(0)
    expect(busy).toBeLessThanOrEqual(availableParallelism() + 0.01)
  })
})

describe("a threaded start that fails", () => {
  it("warns, restores what it borrowed and starts on one thread", async () => {
    const asked: Array<number> = []
    const mod = {
      setThreadsCount: (n: number) => {
        asked.push(n)
        if (n > 1) throw new Error("no threads here")
      }
    }
    const blob = globalThis.Blob
    const flags: Array<boolean> = []
    const init = Effect.sync(() => void flags.push(tf.env().getBool("WASM_HAS_MULTITHREAD_SUPPORT")))
    const logs: Array<string> = []
    const logger = Logger.make(({ message }) => void logs.push(String(message)))
    await Effect.runPromise(
      withWasmThreads(2, mod)(init).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
        Logger.withMinimumLogLevel(LogLevel.Warning)
      )
    )
    expect(asked).toEqual([2, 1])
    expect(flags).toEqual([false])
    expect(globalThis.Blob).toBe(blob)
    expect(logs.join("\n")).toMatch(
      /wasm threads could not start \(.*preparing 2 wasm threads failed: Error: no threads here\); running on one thread/
    )
  })
})
