/**
 * ms per SiD iteration of the 2-D MLP (the CLI's `lowDimensional` preset: 4 × 128, batch 1024, ring8, exact teacher)
 * in the web demo (Chromium, the page's engine: wasm, threaded where the page gets threads) beside Node (the `wasm`
 * engine, same config, same composition) on the same machine, one after the other.
 *
 *   npm run bench:web [-- --steps 300 --skip-build --threads N --engine auto|wasm|webgpu --out file.json]
 *
 * Writes bench/results/web-<date>.json. Needs Debian's chromium (see test/support/webDemo.ts).
 *
 * `--target` measures the target instead: the real demo page, its defaults (ring8, exact teacher), started and
 * left running; every FD the page reports (every 100 iterations) is recorded against the wall time since Start, until
 * FD ≤ the teacher's Heun-35 FD or `--limit` seconds (default 300). The load average is recorded at start and end
 * (the machine is shared). Writes bench/results/web-target-<date>.json.
 *
 * @module
 */
import { Chunk, Effect, Either, Layer, Stream } from "effect"
import { loadavg } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { layerMemory } from "../src/browser/CheckpointStore.js"
import * as BrowserRun from "../src/browser/Distillation.js"
import { decodeDistillConfig, DISTILL_PRESETS } from "../src/domain/config/DistillConfig.js"
import { ring } from "../src/domain/data/GaussianMixture.js"
import * as Engine from "../src/engine/node/Engine.js"
import { distill, StepReport } from "../src/pipeline/Distill.js"
import { buildDemo, chromiumMissing, launchChromium, serveDemo } from "../test/support/webDemo.js"
import { flag, log, median, option, writeReport } from "./Support.js"

// Page-side globals inside `page.evaluate` callbacks (this file compiles without the DOM lib).
declare const document: { readonly body: { readonly dataset: Record<string, string | undefined> } }
declare const localStorage: { clear(): void }
declare const window: unknown

const steps = Number(option("steps") ?? 300)
const evalEvery = 100
const warmup = 20
const dist = join(fileURLToPath(new URL("..", import.meta.url)), "test-output", "web-bench", "dist")

/** Iteration times without the warm-up and without the iterations that carried an evaluation or a checkpoint. */
const steady = (ms: ReadonlyArray<number>) => ms.filter((_, i) => i >= warmup && (i + 1) % evalEvery !== 0)

const summary = (ms: ReadonlyArray<number>) => {
  const s = steady(ms)
  return { iterations: ms.length, medianMs: median(s), meanMs: s.reduce((a, b) => a + b, 0) / Math.max(1, s.length) }
}

const inPage = async () => {
  const missing = chromiumMissing()
  if (missing !== undefined) throw new Error(missing)
  if (!flag("skip-build")) {
    log("building the demo…")
    await buildDemo(dist)
  }
  const server = await serveDemo(dist)
  const browser = await launchChromium()
  try {
    const page = await browser.newPage()
    const threads = option("threads")
    await page.goto(threads === undefined ? server.url : `${server.url}?threads=${threads}`)
    await page.evaluate(() => localStorage.clear())
    await page.fill("#steps", String(steps))
    await page.selectOption("#engine", option("engine") ?? "auto")
    const began = Date.now()
    await page.click("#start")
    for (;;) {
      await page.waitForTimeout(1000)
      const state = await page.evaluate(() => document.body.dataset["state"])
      if (state === "done") break
      if (state === "error") throw new Error(`the page failed: ${await page.textContent("#message")}`)
      if (Date.now() - began > 1_800_000) throw new Error("the page did not finish in 30 minutes")
    }
    const wallS = (Date.now() - began) / 1000
    const ms = await page.evaluate(() => (window as unknown as { sidDemo: { iterationMs: Array<number> } }).sidDemo.iterationMs)
    const engine = await page.textContent("#engine-info")
    const used = await page.evaluate(() => document.body.dataset["threads"])
    const fd = await page.evaluate(() => Number(document.body.dataset["fd"]))
    const teacherFd = await page.evaluate(() => Number(document.body.dataset["teacherFd"]))
    return { engine, threads: Number(used), wallSeconds: wallS, fd, teacherFd, ...summary(ms) }
  } finally {
    await browser.close()
    await server.close()
  }
}

const inNode = async () => {
  const mixture = ring()
  const config = Either.getOrThrow(decodeDistillConfig({ ...DISTILL_PRESETS.lowDimensional.config, steps, evalEvery: 100_000, checkpointEvery: 100_000 }))
  const run = BrowserRun.layer(config, {
    teacher: BrowserRun.mixtureTeacher(mixture, "exact", { steps: 300, hidden: 128, depth: 4 }),
    metrics: BrowserRun.mixtureMetrics(mixture),
    checkpoints: layerMemory()
  })
  const reports = await Effect.runPromise(
    Stream.runCollect(distill(config, { evaluate: false })).pipe(Effect.provide(Layer.provide(run, Engine.wasm)))
  )
  const ms = Chunk.toReadonlyArray(reports).flatMap((r) => (r instanceof StepReport ? [r.iterationMs] : []))
  return { engine: "wasm (Node, 1 thread)", threads: 1, ...summary(ms) }
}

/** The demo with its defaults until FD ≤ the teacher's or `limit` seconds: FD against wall time and iterations. */
const target = async () => {
  const missing = chromiumMissing()
  if (missing !== undefined) throw new Error(missing)
  const limit = Number(option("limit") ?? 300)
  if (!flag("skip-build")) {
    log("building the demo…")
    await buildDemo(dist)
  }
  const server = await serveDemo(dist)
  const browser = await launchChromium()
  const loadAtStart = loadavg().map((x) => Math.round(x * 100) / 100)
  try {
    const page = await browser.newPage()
    await page.goto(server.url)
    await page.evaluate(() => localStorage.clear())
    const settings = Object.fromEntries(
      await Promise.all(["alpha", "tmax", "lr", "steps", "teacher", "preset"].map(async (id) => [id, await page.inputValue(`#${id}`)] as const))
    )
    const began = Date.now()
    await page.click("#start")
    const trace: Array<{ readonly seconds: number; readonly step: number; readonly fd: number }> = []
    let teacherFd = Number.NaN
    let teacherAtS = Number.NaN
    let reached: { readonly seconds: number; readonly step: number; readonly fd: number } | undefined
    while (reached === undefined && Date.now() - began < limit * 1000) {
      await page.waitForTimeout(500)
      const d = await page.evaluate(() => ({ ...document.body.dataset }))
      const seconds = (Date.now() - began) / 1000
      if (d["state"] === "error") throw new Error(`the page failed: ${await page.textContent("#message")}`)
      if (Number.isNaN(teacherFd) && d["teacherFd"] !== undefined) {
        teacherFd = Number(d["teacherFd"])
        teacherAtS = seconds
        log(`teacher Heun-35 FD ${teacherFd.toExponential(3)} at ${seconds.toFixed(1)} s`)
      }
      const step = Number(d["fdStep"] ?? Number.NaN)
      if (Number.isFinite(step) && step !== trace.at(-1)?.step) {
        const point = { seconds, step, fd: Number(d["fd"]) }
        trace.push(point)
        log(`step ${step}: FD ${point.fd.toExponential(3)} at ${seconds.toFixed(1)} s`)
        if (point.fd <= teacherFd) reached = point
      }
      if (d["state"] === "done") break
    }
    return {
      settings,
      engine: await page.textContent("#engine-info"),
      teacherFd,
      teacherReadyAfterSeconds: teacherAtS,
      limitSeconds: limit,
      reached: reached ?? null,
      trace,
      loadAverage: { atStart: loadAtStart, atEnd: loadavg().map((x) => Math.round(x * 100) / 100) }
    }
  } finally {
    await browser.close()
    await server.close()
  }
}

if (flag("target")) {
  const measured = await target()
  const targetReport = {
    date: new Date().toISOString(),
    what: "the web demo (defaults, ring8, exact teacher) in headless Chromium: the EMA generator's FD against wall time " +
      "since Start, until FD <= the teacher's Heun-35 FD or the limit; the machine has 2 cores and is shared",
    machine: { cores: 2 },
    ...measured
  }
  writeReport("web-target", targetReport)
  process.exit(0)
}

log(`page: ${steps} iterations…`)
const page = await inPage()
log(`page: median ${page.medianMs.toFixed(1)} ms; Node: ${steps} iterations…`)
const node = await inNode()
log(`node: median ${node.medianMs.toFixed(1)} ms`)
const report = {
  date: new Date().toISOString(),
  what: "ms per SiD iteration (fake-score step + generator step + EMA) of the 4x128 MLP, batch 1024, ring8 exact teacher",
  machine: { cores: 2, loadAverageAtEnd: loadavg().map((x) => Math.round(x * 100) / 100) },
  steps,
  note: `medians over iterations ${warmup + 1}..${steps}, without the evaluation/checkpoint iterations`,
  page,
  node
}
writeReport("web", report)
