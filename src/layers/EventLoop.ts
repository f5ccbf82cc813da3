/**
 * A turn of Node's (or the browser's) event loop between units of synchronous work.
 *
 * `Effect.yieldNow()` only lets other fibers run; it never returns to the host's event loop, so signal handlers,
 * timers and I/O callbacks — and with them `Fiber.interrupt` from a timer, `Effect.timeout`, SIGINT under
 * `NodeRuntime.runMain` — wait until the scheduler falls back to a timer of its own (every 2048 yields). A macrotask
 * (`setImmediate`, or `setTimeout(0)` where there is none) lets all of them run, so an interruption is seen within
 * one unit of work.
 *
 * @module
 */
import { Effect } from "effect"

const schedule: (f: () => void) => () => void = typeof globalThis.setImmediate === "function"
  ? (f) => {
    const handle = globalThis.setImmediate(f)
    return () => globalThis.clearImmediate(handle)
  }
  : (f) => {
    const handle = globalThis.setTimeout(f, 0)
    return () => globalThis.clearTimeout(handle)
  }

/** Completes on the next macrotask of the host's event loop; interruptible while it waits. */
export const yieldToEventLoop: Effect.Effect<void> = Effect.async<void>((resume) => {
  const cancel = schedule(() => resume(Effect.void))
  return Effect.sync(cancel)
})
