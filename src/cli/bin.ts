#!/usr/bin/env node
/**
 * The `sid` executable: runs the CLI under {@link runMain}.
 *
 * Exit codes: 0 done, 130 interrupted, 1 any failure (its message printed once, as one `error:` line). The first
 * SIGINT/SIGTERM interrupts the program: the current unit of work (an iteration, a fit step, a sampler step) finishes,
 * finalizers run (a training run writes its final checkpoint), then the process exits 130. A second signal exits 130
 * at once; checkpoints are written atomically, so the newest complete one stays.
 *
 * @module
 */
import { ValidationError } from "@effect/cli"
import { makeRunMain } from "@effect/platform/Runtime"
import { NodeContext } from "@effect/platform-node"
import { Cause, Console, Effect, Exit, Option } from "effect"
import { checkArgv } from "./Argv.js"
import { run, sidHelp } from "./Cli.js"
import { helpStyleFor, withoutAnsi } from "./Help.js"

/** The exit code of an interrupted run (128 + SIGINT), whichever signal interrupted it. */
const INTERRUPTED_EXIT_CODE = 130

const messageOf = (e: unknown): string =>
  typeof e === "object" && e !== null && "message" in e && typeof e.message === "string" && e.message.length > 0
    ? e.message
    : String(e)

/**
 * `NodeRuntime.runMain` with a second-signal escape. The platform's version removes its SIGINT/SIGTERM listeners on
 * the first signal, so a second one meets Node's default disposition and kills the process by the signal, skipping
 * the exit code; this one keeps listening until the process exits (Node's signal handles do not keep it alive): the
 * first signal interrupts the main fiber, any later one calls `process.exit(130)`. After a signal the exit code is 130
 * whatever the fiber's exit.
 */
const runMain = makeRunMain(({ fiber, teardown }) => {
  const keepAlive = setInterval(() => {}, 2 ** 31 - 1)
  let signals = 0
  let done = false
  const onSignal = () => {
    signals++
    if (signals > 1 || done) {
      process.exit(INTERRUPTED_EXIT_CODE)
    }
    process.stderr.write("\ninterrupted: finishing the current step and cleaning up (press Ctrl-C again to exit now)\n")
    fiber.unsafeInterruptAsFork(fiber.id())
  }
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
  fiber.addObserver((exit) => {
    done = true
    clearInterval(keepAlive)
    teardown(exit, (code) => {
      if (signals > 0) process.exit(INTERRUPTED_EXIT_CODE)
      if (code !== 0) process.exit(code)
    })
  })
})

const style = helpStyleFor(process.stdout, process.env)
const check = checkArgv(process.argv.slice(2), sidHelp, style)

if (check._tag === "Help") {
  process.stdout.write(check.text)
} else if (check._tag === "Invalid") {
  process.stderr.write(`error: ${check.message}\n`)
  process.exitCode = 1
} else {
  main()
}

/** Runs the command line with `@effect/cli` (after {@link checkArgv} passed it). */
function main(): void {
  run(process.argv).pipe(
    (effect) => (style.color ? effect : withoutAnsi(effect)),
    Effect.tapErrorCause((cause) => {
      if (Cause.isInterruptedOnly(cause)) return Effect.void
      const failure = Cause.failureOption(cause)
      if (Option.isSome(failure)) {
        return ValidationError.isValidationError(failure.value) ? Effect.void : Console.error(`error: ${messageOf(failure.value)}`)
      }
      return Console.error(Cause.pretty(cause))
    }),
    Effect.provide(NodeContext.layer),
    runMain({
      disableErrorReporting: true,
      teardown: (exit, onExit) =>
        onExit(Exit.isSuccess(exit) ? 0 : Cause.isInterruptedOnly(exit.cause) ? INTERRUPTED_EXIT_CODE : 1)
    })
  )
}
