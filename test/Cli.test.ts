import { type ChildProcess, spawn } from "node:child_process"
import { mkdtemp, readdir, readFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { loadGenerator } from "../src/layers/GeneratorLoader.js"

// One process (node with tsx's loader), as a user's shell would signal it: the `tsx` wrapper process relays signals
// to its child and SIGKILLs it if the child does not acknowledge within 30 ms, which a busy machine can miss.

const sid = (args: ReadonlyArray<string>): { child: ChildProcess; output: () => string; exit: Promise<number | null> } => {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/bin.ts", ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, SID_ENGINE: "wasm" } })
  let out = ""
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()))
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()))
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  return { child, output: () => out, exit }
}

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
    expect(JSON.parse(await readFile(join(runDir, "config.json"), "utf8")).batchSize).toBe(64)

    const resumed = sid(["distill", ...small, "--steps", String(stopped.step + 3), "--run-dir", runDir, "--resume"])
    expect(await resumed.exit).toBe(0)
    expect(resumed.output()).toContain(`resumed from`)
    const after = (await readFile(join(runDir, "log.jsonl"), "utf8")).trim().split("\n").map((l) => JSON.parse(l) as { step: number })
    expect(after.slice(-3).map((r) => r.step)).toEqual([stopped.step + 1, stopped.step + 2, stopped.step + 3])
  })

  it("rejects a bad config with exit 1 and a message naming the field, the value and the rule", async () => {
    const run = sid(["distill", "--alpha", "-1", "--tmax", "1200"])
    expect(await run.exit).toBe(1)
    expect(run.output()).toMatch(/alpha = -1: must be/)
    expect(run.output()).toMatch(/tmax = 1200/)
  })

  it("exports an EDM-teacher run's generator in EDM format and an MLP run's in the sid-ts format, both loadable", async () => {
    const runDir = await mkdtemp(join(tmpdir(), "sid-export-"))
    const golden = new URL("../../shared/golden/edm/songunet-ddpmpp-tiny.safetensors", import.meta.url).pathname
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
    }))))
    expect(loaded).toEqual({ kind: "mlp", dataShape: [2], provenance: { runDir: mlpRun, step: 1, teacher: "gmm:ring8", weights: "ema" } })
  })

  it("names the missing package when a native engine is not installed", async () => {
    const run = sid(["distill", "--engine", "tfjs-node-gpu", ...small, "--steps", "1"])
    expect(await run.exit).toBe(1)
    expect(run.output()).toMatch(/@tensorflow\/tfjs-node-gpu.*not installed/)
  })
})
