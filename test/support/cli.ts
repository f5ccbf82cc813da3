import { type ChildProcess, spawn } from "node:child_process"

/** A running `sid` command: its process, everything it printed so far, and how it ended. */
export interface SidProcess {
  readonly child: ChildProcess
  readonly output: () => string
  /** The exit code (null when a signal ended it). */
  readonly exit: Promise<number | null>
  readonly ended: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

/**
 * Runs the CLI as one process (node with tsx's loader), as a user's shell would start and signal it: the `tsx` wrapper
 * process relays signals to its child and SIGKILLs it if the child does not acknowledge within 30 ms, which a busy
 * machine can miss. The engine is `wasm` unless `env` says otherwise.
 */
export const spawnSid = (args: ReadonlyArray<string>, env: Record<string, string> = {}): SidProcess => {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/bin.ts", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, SID_ENGINE: "wasm", ...env }
  })
  let out = ""
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()))
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()))
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal }))
  )
  return { child, output: () => out, exit: ended.then((e) => e.code), ended }
}
