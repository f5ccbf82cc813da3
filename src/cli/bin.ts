#!/usr/bin/env node
/**
 * The `sid` executable: runs the CLI under `NodeRuntime.runMain`.
 *
 * Exit codes: 0 done, 130 interrupted (SIGINT/SIGTERM: the current iteration finishes, a final checkpoint is written,
 * everything is released; a second signal exits at once), 1 any failure (its message printed once).
 *
 * @module
 */
import { ValidationError } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, Console, Effect, Exit, Option } from "effect"
import { run } from "./Cli.js"

const messageOf = (e: unknown): string =>
  typeof e === "object" && e !== null && "message" in e && typeof e.message === "string" && e.message.length > 0
    ? e.message
    : String(e)

run(process.argv).pipe(
  Effect.tapErrorCause((cause) => {
    if (Cause.isInterruptedOnly(cause)) return Effect.void
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure)) {
      return ValidationError.isValidationError(failure.value) ? Effect.void : Console.error(`error: ${messageOf(failure.value)}`)
    }
    return Console.error(Cause.pretty(cause))
  }),
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) ? 0 : Cause.isInterruptedOnly(exit.cause) ? 130 : 1)
  })
)
