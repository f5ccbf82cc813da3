import { spawn } from "node:child_process"
import { appendFile, mkdtemp, readdir, readFile, stat, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { loadGenerator } from "../src/services/node/Generator.js"
import * as Engine from "../src/engine/node/Engine.js"
import { spawnSid } from "./support/cli.js"

const sid = (args: ReadonlyArray<string>) => spawnSid(args)

const waitFor = async (f: () => boolean, timeoutMs: number) => {
  const end = Date.now() + timeoutMs
  while (!f()) {
    if (Date.now() > end) throw new Error("timed out")
    await new Promise((r) => setTimeout(r, 100))
  }
}

const small = ["--batch", "64", "--teacher-fit-steps", "30", "--eval-samples", "500", "--eval-every", "1000000"]

describe("sid distill (the CLI)", () => {
  it("on SIGINT finishes the iteration, writes a final checkpoint, exits 130; --resume continues from it", async () => {
    const runDir = await mkdtemp(join(tmpdir(), "sid-cli-"))
    const run = sid(["distill", ...small, "--steps", "100000", "--run-dir", runDir])
    let lines = 0
    const countLines = () =>
      readFile(join(runDir, "log.jsonl"), "utf8").then((t) => (lines = t.split("\n").length), () => 0)
    await waitFor(() => {
      void countLines()
      return lines > 5
    }, 90_000)
    run.child.kill("SIGINT")
    expect(await run.exit).toBe(130)
    const files = await readdir(join(runDir, "checkpoints"))
    const manifests = files.filter((f) => f.endsWith(".json"))
    expect(manifests).toHaveLength(1)
    const stopped = JSON.parse(await readFile(join(runDir, "checkpoints", manifests[0]!), "utf8")) as { step: number }
    expect(stopped.step).toBeGreaterThan(0)
    const log = (await readFile(join(runDir, "log.jsonl"), "utf8")).trim().split("\n").map((l) => JSON.parse(l) as { step: number })
    expect(log.at(-1)!.step).toBeLessThanOrEqual(stopped.step)
    expect(JSON.parse(await readFile(join(runDir, "config.json"), "utf8")).config.batchSize).toBe(64)

    const resumed = sid(["distill", ...small, "--steps", String(stopped.step + 3), "--run-dir", runDir, "--resume"])
    expect(await resumed.exit).toBe(0)
    expect(resumed.output()).toContain(`resumed from`)
    const after = (await readFile(join(runDir, "log.jsonl"), "utf8")).trim().split("\n").map((l) => JSON.parse(l) as { step: number })
    expect(after.slice(-3).map((r) => r.step)).toEqual([stopped.step + 1, stopped.step + 2, stopped.step + 3])
  })

  it("a resumed exact-mixture run skips the teacher's network fit, keeps its evaluation size and continues bit for bit", async () => {
    const root = await mkdtemp(join(tmpdir(), "sid-resume-gmm-"))
    const losses = async (runDir: string) =>
      (await readFile(join(runDir, "log.jsonl"), "utf8")).trim().split("\n").map((l) => JSON.parse(l))
        .filter((r) => typeof r.step === "number" && r.fakeLoss !== undefined)
        .map((r) => [r.step, r.fakeLoss, r.generatorLoss, r.fakeGradNorm, r.generatorGradNorm])
    const whole = join(root, "whole")
    expect(await sid(["distill", ...small, "--steps", "6", "--run-dir", whole]).exit).toBe(0)
    const split = join(root, "split")
    expect(await sid(["distill", ...small, "--steps", "3", "--run-dir", split]).exit).toBe(0)
    const resumed = sid(["distill", "--resume", "--steps", "6", "--run-dir", split])
    expect(await resumed.exit).toBe(0)
    expect(resumed.output()).toContain("the teacher's 30-step network fit is skipped")
    expect(resumed.output()).not.toContain("fitting the teacher's network")
    const expected = await losses(whole)
    expect(expected.map((r) => r[0])).toEqual([1, 2, 3, 4, 5, 6])
    expect(await losses(split)).toEqual(expected)
    expect(JSON.parse(await readFile(join(split, "config.json"), "utf8")).teacher)
      .toEqual(JSON.parse(await readFile(join(whole, "config.json"), "utf8")).teacher)
    const evaluationSizes = async (runDir: string) =>
      (await readFile(join(runDir, "log.jsonl"), "utf8")).trim().split("\n").map((l) => JSON.parse(l))
        .filter((r) => r.evaluation !== undefined).map((r) => r.evaluation.samples as number)
    expect(JSON.parse(await readFile(join(split, "config.json"), "utf8")).evalSamples).toBe(500)
    expect(await evaluationSizes(split)).toEqual([500, 500, 500, 500])
    const resized = sid(["distill", "--resume", "--steps", "7", "--eval-samples", "300", "--run-dir", split])
    expect(await resized.exit).toBe(0)
    expect(resized.output()).toContain("evaluations: 300 samples each (--eval-samples), the run recorded 500")
    expect((await evaluationSizes(split)).slice(-2)).toEqual([300, 300])
    expect(JSON.parse(await readFile(join(split, "config.json"), "utf8")).evalSamples).toBe(500)
  })

  it("keeps a run directory to one run: resume keeps the recorded spec, a fresh start and a second writer are refused", async () => {
    const runDir = await mkdtemp(join(tmpdir(), "sid-owned-"))
    const first = sid(["distill", ...small, "--alpha", "0.5", "--steps", "2", "--checkpoint-every", "2", "--run-dir", runDir])
    expect(await first.exit).toBe(0)
    const files = async () => {
      const out: Record<string, string> = {}
      for (const name of ["config.json", "log.jsonl"]) out[name] = await readFile(join(runDir, name), "utf8")
      for (const entry of await readdir(join(runDir, "checkpoints"), { withFileTypes: true, recursive: true })) {
        if (entry.isFile()) out[join(entry.parentPath, entry.name)] = (await readFile(join(entry.parentPath, entry.name))).toString("base64")
      }
      return out
    }
    const before = await files()

    const changed = sid(["distill", "--resume", "--steps", "4", "--batch", "32", "--loss", "dmd", "--teacher", "gmm:grid25", "--run-dir", runDir])
    expect(await changed.exit).toBe(1)
    expect(changed.output()).toMatch(/batchSize \(--batch\): recorded 64, requested 32/)
    expect(changed.output()).toMatch(/loss \(--loss\): recorded sid, requested dmd/)
    expect(changed.output()).toMatch(/teacher.spec \(--teacher\): recorded gmm:ring8, requested gmm:grid25/)
    expect(changed.output()).not.toMatch(/\n\s+at /)
    const fresh = sid(["distill", ...small, "--steps", "2", "--run-dir", runDir])
    expect(await fresh.exit).toBe(1)
    expect(fresh.output()).toMatch(/already holds a run.*--resume.*--overwrite/s)
    await writeFile(join(runDir, "run.lock"), JSON.stringify({ pid: process.pid, host: (await import("node:os")).hostname(), startedAt: "then", command: "sid distill", token: "t" }))
    const second = sid(["distill", "--resume", "--steps", "3", "--run-dir", runDir])
    expect(await second.exit).toBe(1)
    expect(second.output()).toContain(`in use by pid ${process.pid}`)
    expect(await files()).toEqual(before)

    const dead = spawn(process.execPath, ["-e", ""])
    await new Promise((r) => dead.on("exit", r))
    await writeFile(join(runDir, "run.lock"), JSON.stringify({ pid: dead.pid, host: (await import("node:os")).hostname(), startedAt: "then", command: "sid distill", token: "t" }))
    await appendFile(join(runDir, "log.jsonl"), JSON.stringify({ step: 3, note: "logged after the checkpoint by a killed run" }) + "\n")
    const resumed = sid(["distill", "--resume", "--steps", "4", "--eval-samples", "300", "--run-dir", runDir])
    expect(await resumed.exit).toBe(0)
    expect(resumed.output()).toContain(`took over the lock of pid ${dead.pid}`)
    const record = JSON.parse(await readFile(join(runDir, "config.json"), "utf8"))
    expect([record.config.alpha, record.config.batchSize, record.config.steps, record.teacher.spec]).toEqual([0.5, 64, 4, "gmm:ring8"])
    const steps = (await readFile(join(runDir, "log.jsonl"), "utf8")).trim().split("\n").map((l) => JSON.parse(l).step as number | undefined)
      .filter((x): x is number => x !== undefined)
    expect(steps).toEqual([0, 1, 2, 2, 3, 4])
    await expect(stat(join(runDir, "run.lock"))).rejects.toThrow()

    const over = sid(["distill", ...small, "--steps", "1", "--overwrite", "--run-dir", runDir])
    expect(await over.exit).toBe(0)
    const aside = /moved the previous run aside to (\S+)/.exec(over.output())![1]!
    expect(await readFile(join(aside, "config.json"), "utf8")).toBe(JSON.stringify(record) + "\n")
  })

  it("keeps the best checkpoint; a damaged newest one is reported with the intact ones, and --resume-from continues", async () => {
    const runDir = await mkdtemp(join(tmpdir(), "sid-damaged-"))
    const first = sid(["distill", "--batch", "64", "--teacher-fit-steps", "30", "--eval-samples", "500", "--eval-every", "2", "--baseline-samples", "0", "--steps", "6", "--checkpoint-every", "2", "--run-dir", runDir])
    expect(await first.exit).toBe(0)
    const summary = JSON.parse(await readFile(join(runDir, "summary.json"), "utf8"))
    expect(first.output()).toContain(`best: step ${summary.best.step}, frechetDistance`)
    expect(await readdir(join(runDir, "checkpoints", "best"))).toContain("best.json")
    for (const folder of [join(runDir, "checkpoints"), join(runDir, "checkpoints", "best")]) {
      for (const weights of (await readdir(folder)).filter((n) => n.startsWith("ckpt-00000006") && n.endsWith(".safetensors"))) {
        const bytes = await readFile(join(folder, weights))
        bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff
        await writeFile(join(folder, weights), bytes)
      }
    }
    const refused = sid(["distill", "--resume", "--steps", "8", "--run-dir", runDir])
    expect(await refused.exit).toBe(1)
    expect(refused.output()).toMatch(/step 6\) is damaged.*intact checkpoints at steps: 4, 2.*--resume-from 4/s)
    const resumed = sid(["distill", "--resume-from", "4", "--steps", "8", "--eval-samples", "300", "--run-dir", runDir])
    expect(await resumed.exit).toBe(0)
    expect(resumed.output()).toMatch(/checkpoints: those after step 4 moved to .*superseded-/)
    const steps = (await readFile(join(runDir, "log.jsonl"), "utf8")).trim().split("\n").map((l) => JSON.parse(l).step as number | undefined)
      .filter((x): x is number => x !== undefined)
    expect(steps).toEqual([0, 1, 2, 3, 4, 5, 6].slice(0, 5).concat([4, 5, 6, 7, 8]))
  })

  it("validates every flag before anything is written, naming the flag, the value and the rule", async () => {
    const root = await mkdtemp(join(tmpdir(), "sid-flags-"))
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, RegExp]> = [
      [["--batch", "1.5"], /--batch = 1.5: must be an integer/],
      [["--lr", "abc"], /--lr: 'abc' is not a number/],
      [["--eval-samples", "0"], /--eval-samples 0: must be a whole number ≥ 1/],
      [["--teacher-fit-steps", "-5"], /--teacher-fit-steps -5: must be a whole number ≥ 1/],
      [["--engine", "nonsense"], /--engine: 'nonsense' is not one of wasm, wasm-native, auto/],
      [["--config", join(root, "missing.json")], /--config .*missing.json: cannot read it/],
      [["--teacher", join(root, "missing.safetensors")], /cannot read the file/],
      [["--teacher", "gmm:nope"], /unknown mixture preset "nope"/],
      [["--loss", "sidd"], /--loss = "sidd": must be one of sid/]
    ]
    for (const [args, message] of cases) {
      const runDir = join(root, "run")
      const run = sid(["distill", ...args, "--run-dir", runDir])
      expect(await run.exit).toBe(1)
      expect(run.output()).toMatch(message)
      expect(run.output()).not.toMatch(/\n\s+at /)
      await expect(stat(runDir)).rejects.toThrow()
    }
    const file = join(root, "a-file")
    await writeFile(file, "x")
    const onFile = sid(["distill", "--run-dir", file])
    expect(await onFile.exit).toBe(1)
    expect(onFile.output()).toMatch(/is a file, not a directory/)
  }, 360_000) // ten CLI starts in a row: a few seconds each when idle, over ten on a busy 2-core machine

  it("rejects a bad config with exit 1 and a message naming the field, the value and the rule", async () => {
    const run = sid(["distill", "--alpha", "-1", "--tmax", "1200"])
    expect(await run.exit).toBe(1)
    expect(run.output()).toMatch(/alpha = -1: must be/)
    expect(run.output()).toMatch(/tmax = 1200/)
  })

  it("exports an EDM-teacher run's generator in EDM format and an MLP run's in the sid-ts format, both loadable", async () => {
    const runDir = await mkdtemp(join(tmpdir(), "sid-export-"))
    const golden = new URL("./fixtures/edm/songunet-ddpmpp-tiny.safetensors", import.meta.url).pathname
    expect(await sid(["distill", "--teacher", `edm:${golden}`, "--steps", "1", "--batch", "2", "--run-dir", runDir]).exit).toBe(0)
    const out = join(runDir, "generator.safetensors")
    const exported = sid(["export", "--run-dir", runDir, "--out", out])
    expect(await exported.exit).toBe(0)
    expect(exported.output()).toContain("format edm-safetensors-v1")
    const again = sid(["distill", "--teacher", `edm:${out}`, "--steps", "1", "--batch", "2", "--run-dir", join(runDir, "second")])
    expect(await again.exit).toBe(0)
    const mlpRun = await mkdtemp(join(tmpdir(), "sid-export-mlp-"))
    expect(await sid(["distill", ...small, "--steps", "1", "--run-dir", mlpRun]).exit).toBe(0)
    const mlpOut = join(mlpRun, "g.safetensors")
    const mlp = sid(["export", "--run-dir", mlpRun, "--out", mlpOut])
    expect(await mlp.exit, mlp.output()).toBe(0)
    expect(mlp.output()).toContain("mlp generator, ema weights at step 1, format sid-ts-generator-v1")
    const loaded = await Effect.runPromise(Effect.scoped(Effect.map(loadGenerator(mlpOut), (g) => ({
      kind: g.architecture.kind,
      dataShape: g.dataShape,
      provenance: g.provenance
    }))).pipe(Effect.provide(Engine.cpu)))
    expect(loaded).toEqual({ kind: "mlp", dataShape: [2], provenance: { runDir: mlpRun, step: 1, teacher: "gmm:ring8", weights: "ema" } })
  })

  it("names the missing package when a native engine is not installed", async () => {
    const runDir = await mkdtemp(join(tmpdir(), "sid-engine-"))
    const run = sid(["distill", "--engine", "tfjs-node-gpu", ...small, "--steps", "1", "--run-dir", runDir])
    expect(await run.exit).toBe(1)
    expect(run.output()).toMatch(/@tensorflow\/tfjs-node-gpu.*not installed/)
    expect(await readdir(runDir)).toEqual([])
  })
})
