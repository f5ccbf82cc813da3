import * as tf from "@tensorflow/tfjs"
import { mkdtemp, readdir, readFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { readTeacherFile } from "../src/services/node/Teacher.js"
import * as Engine from "../src/engine/node/Engine.js"
import { spawnSid } from "./support/cli.js"

const sid = (args: ReadonlyArray<string>) => spawnSid(args)

const tiny = ["--batch", "4", "--base-channels", "8", "--channel-mult", "1,2", "--resolution", "16"]

const logSteps = (runDir: string): Promise<Array<number>> =>
  readFile(join(runDir, "log.jsonl"), "utf8").then(
    (t) => t.trim().split("\n").map((l) => (JSON.parse(l) as { step: number }).step),
    () => []
  )

describe("sid teacher train (the CLI)", () => {
  it("on SIGINT writes a final checkpoint and teacher file and exits 130; --resume continues from config.json", async () => {
    const runDir = await mkdtemp(join(tmpdir(), "sid-teacher-cli-"))
    const run = sid(["teacher", "train", ...tiny, "--steps", "100000", "--checkpoint-every", "100000", "--run-dir", runDir])
    const end = Date.now() + 90_000
    while ((await logSteps(runDir)).length < 4) {
      if (Date.now() > end) throw new Error(`no progress: ${run.output()}`)
      await new Promise((r) => setTimeout(r, 100))
    }
    run.child.kill("SIGINT")
    expect(await run.exit).toBe(130)
    const manifests = (await readdir(join(runDir, "checkpoints"))).filter((f) => f.endsWith(".json"))
    expect(manifests).toHaveLength(1)
    const stopped = JSON.parse(await readFile(join(runDir, "checkpoints", manifests[0]!), "utf8")) as { step: number }
    expect(stopped.step).toBeGreaterThan(0)
    expect((await logSteps(runDir)).at(-1)).toBeLessThanOrEqual(stopped.step)
    const teacher = await Effect.runPromise(Effect.provide(readTeacherFile(join(runDir, "teacher.safetensors")), Engine.cpu))
    expect(teacher.network.dataShape).toEqual([16, 16, 1])
    tf.dispose(Object.values(teacher.params))

    const changed = sid(["teacher", "train", "--resume", "--batch", "8", "--steps", String(stopped.step + 2), "--run-dir", runDir])
    expect(await changed.exit).toBe(1)
    expect(changed.output()).toMatch(/batchSize \(--batch\): recorded 4, requested 8/)
    const fresh = sid(["teacher", "train", ...tiny, "--steps", "2", "--run-dir", runDir])
    expect(await fresh.exit).toBe(1)
    expect(fresh.output()).toMatch(/already holds a run/)

    const resumed = sid(["teacher", "train", "--resume", "--steps", String(stopped.step + 2), "--run-dir", runDir])
    expect(await resumed.exit).toBe(0)
    expect(resumed.output()).toContain(`resumed from`)
    expect((await logSteps(runDir)).slice(-3)).toEqual([stopped.step, stopped.step + 1, stopped.step + 2])
  })

  it("rejects a bad setting with exit 1 and a message naming the flag", async () => {
    const run = sid(["teacher", "train", "--batch", "0", "--channel-mult", "1,2,2,2,2,2"])
    expect(await run.exit).toBe(1)
    expect(run.output()).toMatch(/--batch = 0: must be/)
    expect(run.output()).toMatch(/--channel-mult = \[1,2,2,2,2,2\]: must be a list of 1 to 5/)
  })
})
