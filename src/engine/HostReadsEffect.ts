/**
 * Host reads as Effects: a {@link Reads} computation (domain/data/HostReads) run the way the active engine can read
 * — asynchronously on `webgpu`, synchronously elsewhere — with the same values either way (docs/engines.md §8).
 *
 * @module
 */
import { Effect } from "effect"
import { type Reads, runReads } from "../domain/data/HostReads.js"

/**
 * Runs the {@link Reads} computation `reads` makes ({@link runReads}), uninterruptibly (its tensors are in use until
 * it settles); a thrown error becomes `onError`'s failure.
 *
 * @since 0.2.0
 * @category utils
 */
export const runReadsEffect = <A, E>(reads: () => Reads<A>, onError: (cause: unknown) => E): Effect.Effect<A, E> =>
  Effect.uninterruptible(Effect.tryPromise({ try: () => runReads(reads()), catch: onError }))
