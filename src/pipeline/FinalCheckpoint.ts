/**
 * The final checkpoint of a training stream (docs/algorithm.md §9.3): when the stream ends for any reason — done, failed or
 * interrupted — the last completed step is saved unless it already was, bounded in time, before the services are
 * released. Shared by distillation and teacher training.
 *
 * @module
 */
import { Effect, type Ref, type Scope } from "effect"

/**
 * Runs `write` to completion in a fiber of its own and waits for it at most `timeoutMs`. A finalizer of an interrupted
 * fiber cannot use `Effect.timeout` on work that must not itself be interrupted (the pending interruption would cut
 * an interruptible write short, and an uninterruptible one cannot be timed out), so the wait is a plain timer.
 */
export const boundedFinalWrite = (write: Effect.Effect<unknown>, timeoutMs: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.logWarning(`final checkpoint: still writing after ${timeoutMs} ms, giving up`)), timeoutMs)
    Effect.runFork(write).addObserver(() => {
      clearTimeout(timer)
      resume(Effect.void)
    })
  })

/** What the final checkpoint needs: the progress, the last saved step, how to save, and how long to wait. */
export interface FinalCheckpointOptions<P extends { readonly step: number }, E extends { readonly message: string }> {
  /** The last completed step. */
  readonly progress: Ref.Ref<P>
  /** The step of the newest checkpoint written (−1: none). */
  readonly savedStep: Ref.Ref<number>
  readonly save: Effect.Effect<unknown, E>
  /** Default 60 s. */
  readonly timeoutMs?: number
}

/**
 * Adds the finalizer to the current scope: on release, when at least one step ran and the last one is not saved,
 * `save` runs via {@link boundedFinalWrite}; a failure is logged as a warning (the earlier checkpoints stay intact).
 */
export const addFinalCheckpoint = <P extends { readonly step: number }, E extends { readonly message: string }>(
  options: FinalCheckpointOptions<P, E>
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.addFinalizer(() =>
    Effect.gen(function*() {
      const p = yield* options.progress
      if ((yield* options.savedStep) === p.step || p.step === 0) return
      yield* boundedFinalWrite(
        options.save.pipe(Effect.catchAll((e) => Effect.logWarning(`final checkpoint failed: ${e.message}`))),
        options.timeoutMs ?? 60_000
      )
    })
  )
