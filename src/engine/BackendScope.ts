/**
 * The TF.js backend as a scoped resource: an engine layer that switches the process's (or page's) backend puts it
 * back when its scope closes, so layers can be built and released one after another, in tests and in programs that
 * compare engines.
 *
 * @since 0.2.0
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, type Scope } from "effect"

/**
 * Remembers the backend in use when acquired and restores it on release, when it is still registered and no longer
 * the active one; a restore that fails is logged as a warning (release never fails).
 *
 * @since 0.2.0
 * @category resources
 */
export const keepBackend: Effect.Effect<string | undefined, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync(() => (tf.getBackend() as string | null | undefined) ?? undefined),
  (previous) =>
    previous === undefined || tf.getBackend() === previous || tf.findBackendFactory(previous) == null
      ? Effect.void
      : Effect.tryPromise(() => tf.setBackend(previous)).pipe(
        Effect.catchAll((error) => Effect.logWarning(`could not restore TF.js backend "${previous}"`, error))
      )
)
