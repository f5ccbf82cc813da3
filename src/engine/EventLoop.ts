/**
 * Giving the host's event loop a turn from inside a long synchronous-step loop.
 *
 * `Effect.yieldNow()` hands control back to Effect's scheduler, which resumes the fiber through microtasks for up to
 * 2048 turns before it schedules a timer: signal handlers (Ctrl-C), I/O callbacks and timers wait until then. A loop
 * of compute steps (a network fit, a sampler) that yields with {@link yieldToEventLoop} instead lets every pending
 * macrotask run between two steps, so an interruption sent from one (a signal handler calling
 * `fiber.unsafeInterruptAsFork`) is seen before the next step starts.
 *
 * @module
 */
import { Effect } from "effect"

type Cancel = () => void

const schedule: (run: () => void) => Cancel = typeof globalThis.setImmediate === "function"
  ? (run) => {
    const handle = globalThis.setImmediate(run)
    return () => globalThis.clearImmediate(handle)
  }
  : (run) => {
    const handle = globalThis.setTimeout(run, 0)
    return () => globalThis.clearTimeout(handle)
  }

/**
 * Suspends the fiber until the next macrotask turn of the event loop (`setImmediate` on Node, `setTimeout(0)`
 * elsewhere); interruptible while it waits, and the scheduled callback is cancelled on interruption.
 *
 * @since 0.1.0
 * @category constants
 */
export const yieldToEventLoop: Effect.Effect<void> = Effect.async<void>((resume) => {
  const cancel = schedule(() => resume(Effect.void))
  return Effect.sync(cancel)
})
