import type { ChildProcess } from "node:child_process"
import { access, mkdir, mkdtemp, readdir, readFile, symlink, truncate, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { makeRunLog, RunLogError } from "../src/cli/RunLog.js"
import { spawnSid } from "./support/cli.js"

// Fault drills (issue 17, point 9): every fault ends with exit 130 (interrupted) or exit 1 and one `error:` line,
// never a stack trace or death by a signal. Steps and lines are counted; the only times are generous test timeouts.

interface Run {
  readonly child: ChildProcess
  readonly output: () => string
  readonly exit: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

const running = new Set<ChildProcess>()

afterEach(() => {
  for (const child of running) child.kill("SIGKILL")
  running.clear()
})

const sid = (args: ReadonlyArray<string>): Run => {
  const p = spawnSid(args)
  running.add(p.child)
  void p.ended.then(() => running.delete(p.child))
  return { child: p.child, output: p.output, exit: p.ended }
}

const waitFor = async (f: () => boolean | Promise<boolean>, what: string, timeoutMs = 90_000) => {
  const end = Date.now() + timeoutMs
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

const exists = (path: string) => access(path).then(() => true, () => false)

/** The output is one `error:` line (plus whatever progress came before it) and no stack frame. */
const expectOneErrorLine = (output: string) => {
  const errors = output.split("\n").filter((l) => l.startsWith("error:"))
  expect(errors, output).toHaveLength(1)
  expect(output).not.toMatch(/^\s+at /m)
  return errors[0]!
}

const quick = ["--teacher", "gmm:ring8", "--teacher-fit-steps", "10", "--batch", "16", "--eval-samples", "200"]

/** A finished two-step run with one checkpoint. */
const finishedRun = async (): Promise<string> => {
  const runDir = join(await mkdtemp(join(tmpdir(), "sid-faults-")), "run")
  const run = sid(["distill", ...quick, "--steps", "2", "--run-dir", runDir])
  const { code } = await run.exit
  expect(code, run.output()).toBe(0)
  return runDir
}

const manifestOf = async (runDir: string): Promise<string> => {
  const names = (await readdir(join(runDir, "checkpoints"))).filter((n) => n.endsWith(".json"))
  expect(names).toHaveLength(1)
  return join(runDir, "checkpoints", names[0]!)
}

describe("Ctrl-C (SIGINT) in every phase", () => {
  it("during the teacher fit of --teacher gmm-dsm:ring8: exits 130 without finishing the fit", async () => {
    const runDir = join(await mkdtemp(join(tmpdir(), "sid-faults-fit-")), "run")
    const run = sid(["distill", "--teacher", "gmm-dsm:ring8", "--teacher-fit-steps", "100000", "--run-dir", runDir])
    await waitFor(() => run.output().includes("fitting the teacher's network: step 1/100000"), "the first fit progress line")
    run.child.kill("SIGINT")
    const { code, signal } = await run.exit
    expect(signal).toBeNull()
    expect(code, run.output()).toBe(130)
    const output = run.output()
    expect(output).not.toMatch(/step \d{2,}\/100000/)
    expect(output).not.toContain("teacher, Heun sampler")
    expect(output).not.toContain("start at step")
    expect(await exists(join(runDir, "checkpoints"))).toBe(false)
  }, 60_000)

  it("during the teacher's baseline evaluation (Heun sampler): exits 130 without finishing it", async () => {
    const runDir = join(await mkdtemp(join(tmpdir(), "sid-faults-baseline-")), "run")
    const run = sid(["distill", ...quick, "--baseline-samples", "2000000", "--run-dir", runDir])
    await waitFor(() => run.output().includes("fitting the teacher's network: step 10/10"), "the end of the fit")
    run.child.kill("SIGINT")
    const { code, signal } = await run.exit
    expect(signal).toBeNull()
    expect(code, run.output()).toBe(130)
    expect(run.output()).not.toContain("teacher, Heun sampler")
    expect(run.output()).not.toContain("start at step")
  }, 60_000)

  it("more SIGINTs while the first is being honoured exit 130 at once and leave a loadable checkpoint", async () => {
    const runDir = join(await mkdtemp(join(tmpdir(), "sid-faults-twice-")), "run")
    const run = sid(["distill", ...quick, "--steps", "100000", "--checkpoint-every", "2", "--eval-every", "1000000", "--run-dir", runDir])
    await waitFor(
      () => readFile(join(runDir, "log.jsonl"), "utf8").then((t) => t.includes("\"checkpoint\""), () => false),
      "a checkpoint"
    )
    run.child.kill("SIGINT")
    const again = setInterval(() => run.child.kill("SIGINT"), 2)
    const { code, signal } = await run.exit
    clearInterval(again)
    expect(signal).toBeNull()
    expect(code, run.output()).toBe(130)
    const sample = sid(["sample", "--run-dir", runDir, "--count", "4", "--out", join(runDir, "s.png")])
    expect((await sample.exit).code, sample.output()).toBe(0)
  }, 90_000)
})

describe("a run log that cannot be written", () => {
  it("is a RunLogError naming the path when its parent is a file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sid-faults-log-"))
    await writeFile(join(dir, "file"), "")
    const logPath = join(dir, "file", "log.jsonl")
    const error = await Effect.runPromise(Effect.flip(makeRunLog({ totalSteps: 10, logPath, write: () => {} })))
    expect(error).toBeInstanceOf(RunLogError)
    expect(error.message).toContain(logPath)
    expect(error.message.split("\n")).toHaveLength(1)
  })

  it("is a RunLogError with the system's code and what to do when an append fails (ENOSPC)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sid-faults-log-"))
    const logPath = join(dir, "log.jsonl")
    let appended = 0
    const append = async (_path: string, _text: string) => {
      if (++appended > 1) throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" })
    }
    const lines: Array<string> = []
    const error = await Effect.runPromise(
      Effect.flip(
        Effect.gen(function*() {
          const log = yield* makeRunLog({ totalSteps: 10, logPath, write: (l) => lines.push(l), append, tty: false })
          yield* log.note("first", { a: 1 })
          yield* log.note("second", { a: 2 })
        })
      )
    )
    expect(lines).toEqual(["first"])
    expect(error).toBeInstanceOf(RunLogError)
    expect(error.code).toBe("ENOSPC")
    expect(error.message).toContain(logPath)
    expect(error.message).toMatch(/Free disk space.*--resume/)
  })

  it("sid distill with a full disk under its log (/dev/full): exit 1 and one error line", async () => {
    if (!(await exists("/dev/full"))) return
    const runDir = join(await mkdtemp(join(tmpdir(), "sid-faults-full-")), "run")
    await mkdir(runDir, { recursive: true })
    await symlink("/dev/full", join(runDir, "log.jsonl"))
    const run = sid(["distill", ...quick, "--steps", "2", "--run-dir", runDir])
    const { code } = await run.exit
    expect(code, run.output()).toBe(1)
    const line = expectOneErrorLine(run.output())
    expect(line).toContain(join(runDir, "log.jsonl"))
    expect(line).toMatch(/no space left.*Free disk space/)
  }, 60_000)

  it("sid distill with a directory where its log should be: exit 1 and one error line", async () => {
    const runDir = join(await mkdtemp(join(tmpdir(), "sid-faults-dir-")), "run")
    await mkdir(join(runDir, "log.jsonl"), { recursive: true })
    const run = sid(["distill", ...quick, "--steps", "2", "--baseline-samples", "0", "--run-dir", runDir])
    const { code } = await run.exit
    expect(code, run.output()).toBe(1)
    expect(expectOneErrorLine(run.output())).toContain(join(runDir, "log.jsonl"))
  }, 60_000)
})

describe("a damaged or missing checkpoint", () => {
  it("sid sample --run-dir: a manifest whose network does not fit the weights → exit 1, one error line naming the file", async () => {
    const runDir = await finishedRun()
    const manifestPath = await manifestOf(runDir)
    const manifest = JSON.parse(await readFile(manifestPath, "utf8")) as { network: { spec: { dim: number } } }
    manifest.network.spec.dim = 3
    await writeFile(manifestPath, JSON.stringify(manifest))
    const run = sid(["sample", "--run-dir", runDir, "--count", "4", "--out", join(runDir, "s.png")])
    const { code } = await run.exit
    expect(code, run.output()).toBe(1)
    const line = expectOneErrorLine(run.output())
    expect(line).toContain(join(runDir, "checkpoints"))
    expect(line).toMatch(/do not fit (the|its mlp) network/)
  }, 90_000)

  it("sid sample and sid export: truncated weights, or no checkpoint at all → exit 1, one error line", async () => {
    const runDir = await finishedRun()
    const weights = (await readdir(join(runDir, "checkpoints"))).find((n) => n.endsWith(".safetensors"))!
    await truncate(join(runDir, "checkpoints", weights), 100)
    for (const copy of await readdir(join(runDir, "checkpoints", "best")).catch(() => [])) {
      if (copy.endsWith(".safetensors")) await truncate(join(runDir, "checkpoints", "best", copy), 100)
    }
    for (const args of [["sample", "--count", "4", "--out", join(runDir, "s.png")], ["export", "--out", join(runDir, "g.safetensors")]]) {
      const run = sid([...args, "--run-dir", runDir])
      expect((await run.exit).code, run.output()).toBe(1)
      expect(expectOneErrorLine(run.output())).toContain(weights)
    }
    const empty = await mkdtemp(join(tmpdir(), "sid-faults-empty-"))
    for (const args of [["sample", "--count", "4", "--out", join(empty, "s.png")], ["export", "--out", join(empty, "g.safetensors")]]) {
      const run = sid([...args, "--run-dir", empty])
      expect((await run.exit).code, run.output()).toBe(1)
      expect(expectOneErrorLine(run.output())).toMatch(/no checkpoint/)
    }
  }, 90_000)
})
