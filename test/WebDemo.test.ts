/**
 * The web demo (examples/web) in a real browser: Debian's Chromium driven by playwright-core against the Vite build,
 * served cross-origin isolated on loopback. Skipped, with the reason, where Chromium is not installed.
 */
import * as tf from "@tensorflow/tfjs"
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import type { Browser, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { loadOneStepGenerator } from "../src/browser/OneStepGenerator.js"
import { buildDemo, chromiumMissing, launchChromium, serveDemo } from "./support/webDemo.js"

// Page-side globals inside `page.evaluate` callbacks (this file compiles without the DOM lib).
declare const document: { readonly body: { readonly dataset: Record<string, string | undefined> } }
declare const localStorage: { clear(): void }
declare const window: unknown

const OUT = new URL("../test-output/web-demo/", import.meta.url).pathname
const missing = chromiumMissing()
if (missing !== undefined) console.log(`WebDemo: skipped: ${missing}`)

/** The page's `data-*` facts (see examples/web/main.ts). */
const facts = (page: Page) => page.evaluate(() => ({ ...document.body.dataset }))
const numberOf = async (page: Page, key: string) => Number((await facts(page))[key] ?? Number.NaN)

/** Waits until `data-<key>` satisfies `ok` (polling the page), failing with the page's state and message. */
const waitFor = async (page: Page, what: string, ok: (d: Record<string, string | undefined>) => boolean, timeoutMs: number) => {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    const d = await facts(page)
    if (ok(d)) return d
    if (d["state"] === "error" && !what.includes("error")) {
      throw new Error(`waiting for ${what}: the page reports an error: ${await page.textContent("#message")}`)
    }
    await page.waitForTimeout(250)
  }
  throw new Error(`waiting for ${what}: timed out after ${timeoutMs} ms; page: ${JSON.stringify(await facts(page))}`)
}

const download = async (page: Page, file: string): Promise<Uint8Array> => {
  const [event] = await Promise.all([page.waitForEvent("download"), page.click("#download")])
  const path = join(OUT, file)
  await event.saveAs(path)
  return new Uint8Array(readFileSync(path))
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true })

describe.skipIf(missing !== undefined)("the web demo in Chromium", () => {
  let browser: Browser
  let server: Awaited<ReturnType<typeof serveDemo>>
  let page: Page

  beforeAll(async () => {
    mkdirSync(OUT, { recursive: true })
    await buildDemo(join(OUT, "dist"))
    server = await serveDemo(join(OUT, "dist"))
    browser = await launchChromium()
    page = await browser.newPage({ viewport: { width: 1480, height: 1000 }, acceptDownloads: true })
    await page.goto(server.url)
    await page.evaluate(() => localStorage.clear())
  }, 600_000)

  afterAll(async () => {
    await browser?.close()
    await server?.close()
  })

  it("distils ring8 in a worker: FD falls below the bound in 300 iterations, and the page handles input while it trains", async () => {
    await page.fill("#steps", "300")
    await page.click("#start")
    const engine = await waitFor(page, "the engine", (d) => d["engine"] !== undefined, 120_000)
    console.log(`WebDemo: engine ${await page.textContent("#engine-info")}`)
    expect(engine["engine"]).toBe("wasm") // headless Chromium here has no WebGPU adapter (see the WebGPU test)
    const early = await waitFor(page, "training", (d) => Number(d["step"] ?? 0) >= 20, 300_000)
    // An input event while the worker trains: handled by the page (its counter and note change) and training goes on.
    const before = Number(early["inputEvents"] ?? 0)
    await page.fill("#alpha", "1.0")
    expect(await numberOf(page, "inputEvents")).toBeGreaterThan(before)
    expect(await page.textContent("#settings-note")).toMatch(/applies when the next run starts/)
    const stepAtInput = await numberOf(page, "step")
    await waitFor(page, "more iterations after the input", (d) => Number(d["step"]) > stepAtInput, 60_000)
    const done = await waitFor(page, "300 iterations", (d) => d["state"] === "done" && d["fdStep"] === "300", 600_000)
    const fd = Number(done["fd"])
    const teacherFd = Number(done["teacherFd"])
    console.log(`WebDemo: FD after 300 iterations ${fd.toExponential(3)} (teacher Heun-35: ${teacherFd.toExponential(3)})`)
    expect(fd).toBeLessThan(2e-3)
    expect(teacherFd).toBeLessThan(1e-3)
    await shot(page, "ring8-300")
  }, 900_000)

  it("pause checkpoints; a reload resumes from IndexedDB at the saved step with the same generator; the file samples alike in the page and in Node", async () => {
    await page.fill("#alpha", "1.2")
    await page.fill("#steps", "1000")
    await page.click("#start")
    await waitFor(page, "training", (d) => d["state"] === "running" && Number(d["step"] ?? 0) >= 30, 300_000)
    await page.click("#pause")
    const paused = await waitFor(page, "the pause", (d) => d["state"] === "paused", 60_000)
    const step = Number(paused["pausedAt"])
    expect(Number(paused["checkpoint"])).toBe(step)
    const before = await download(page, "generator-before-reload.safetensors")
    await page.reload()
    const resumed = await waitFor(page, "the resumed run", (d) => d["resumed"] !== undefined && d["state"] === "paused", 300_000)
    expect(Number(resumed["resumed"])).toBe(step)
    const after = await download(page, "generator-after-reload.safetensors")
    expect(after).toEqual(before)
    await shot(page, "resumed-paused")
    // The downloaded generator, loaded in the page with sid-ts/browser (cpu backend) and here: the same samples.
    await page.setInputFiles("#load", join(OUT, "generator-after-reload.safetensors"))
    await waitFor(page, "the loaded file", (d) => d["loaded"] !== undefined, 60_000)
    const inPage = await page.evaluate(() => (window as unknown as { sidDemo: { loadedSamples: Array<number> } }).sidDemo.loadedSamples)
    await tf.setBackend("cpu")
    const generator = loadOneStepGenerator(after)
    expect(generator.provenance).toMatchObject({ step, weights: "ema" })
    const samples = generator.generate(2000, 0)
    const inNode = Array.from((samples.dataSync() as Float32Array).subarray(0, 64))
    tf.dispose(samples)
    generator.dispose()
    expect(inPage).toEqual(inNode)
    await page.click("#resume")
    await waitFor(page, "iterations after the resume", (d) => d["state"] === "running" && Number(d["step"]) > step, 120_000)
  }, 900_000)

  it("bad input shows a message and keeps the last good checkpoint: a diverged run, an unloadable file, a mixture without modes", async () => {
    await waitFor(page, "a checkpoint", (d) => d["checkpoint"] !== undefined, 300_000)
    // A diverged run: the worker's generator weights become NaN (fault injection); the next evaluation fails.
    await page.evaluate(() => (window as unknown as { sidDemo: { worker: { postMessage(m: unknown): void } } }).sidDemo.worker.postMessage({ type: "poison" }))
    const failed = await waitFor(page, "the divergence error", (d) => d["state"] === "error", 300_000)
    const message = await page.textContent("#message")
    expect(message).toMatch(/NaN or Inf/)
    expect(message).toMatch(/last good checkpoint \(iteration \d+\) is kept/)
    const lastGood = Number(failed["lastGood"])
    expect(lastGood).toBeGreaterThan(0)
    await shot(page, "diverged")
    await page.click("#resume")
    const resumed = await waitFor(page, "the resume from the last good checkpoint", (d) => d["resumed"] === String(lastGood), 300_000)
    expect(Number(resumed["resumed"])).toBe(lastGood)
    await page.click("#pause")
    await waitFor(page, "the pause", (d) => d["state"] === "paused", 120_000)
    // An unloadable file.
    writeFileSync(join(OUT, "not-a-generator.safetensors"), "not a generator file")
    await page.setInputFiles("#load", join(OUT, "not-a-generator.safetensors"))
    await waitFor(page, "the load error", (d) => d["loadError"] === "1", 30_000)
    expect(await page.textContent("#message")).toMatch(/Cannot load not-a-generator\.safetensors/)
    // A drawn mixture without modes.
    await page.click("#reset")
    await page.selectOption("#preset", "drawn")
    await page.click("#clear")
    await page.click("#start")
    await waitFor(page, "the mixture error", (d) => d["state"] === "error", 120_000)
    expect(await page.textContent("#message")).toMatch(/no modes.*Place at least one mode/s)
    await shot(page, "no-modes")
  }, 900_000)
})

/** The MNIST tab samples the generator shipped in examples/web/public/mnist/ (committed with its provenance). */
const MNIST_DIR = new URL("../examples/web/public/mnist/", import.meta.url).pathname
const mnistMissing = existsSync(join(MNIST_DIR, "generator.safetensors"))
  ? undefined
  : "no MNIST generator at examples/web/public/mnist/generator.safetensors (an exported one-step generator and its provenance.json; docs/web-demo.md)"
if (missing === undefined && mnistMissing !== undefined) console.log(`WebDemo: the MNIST samples check is skipped: ${mnistMissing}`)

describe.skipIf(missing !== undefined)("the web demo's MNIST tab in Chromium", () => {
  let browser: Browser
  let server: Awaited<ReturnType<typeof serveDemo>>
  let page: Page

  beforeAll(async () => {
    mkdirSync(OUT, { recursive: true })
    const dist = join(OUT, "dist")
    if (!existsSync(join(dist, "index.html"))) await buildDemo(dist)
    server = await serveDemo(dist)
    browser = await launchChromium()
    page = await browser.newPage({ viewport: { width: 1100, height: 1000 } })
    await page.goto(server.url)
    await page.evaluate(() => localStorage.clear())
  }, 600_000)

  afterAll(async () => {
    await browser?.close()
    await server?.close()
  })

  /** The tab's samples for its current seed, and that seed. */
  const pageSamples = () =>
    page.evaluate(() => {
      const mnist = (window as unknown as { sidDemo: { mnist: { seed: number; values: Array<number> } } }).sidDemo.mnist
      return { seed: mnist.seed, values: mnist.values }
    })

  /** What sid-ts/browser gives in Node (cpu backend) for `seed`: 64 samples, flattened. */
  const nodeSamples = async (seed: number) => {
    await tf.setBackend("cpu")
    const generator = loadOneStepGenerator(new Uint8Array(readFileSync(join(MNIST_DIR, "generator.safetensors"))))
    const samples = generator.generate(64, seed)
    const values = Array.from(samples.dataSync())
    tf.dispose(samples)
    generator.dispose()
    return values
  }

  it.skipIf(mnistMissing !== undefined)(
    "samples the shipped generator exactly as sid-ts/browser does in Node for the same seed, shows its provenance, and reseeds",
    async () => {
      await page.click("#tab-mnist")
      await waitFor(page, "the MNIST samples", (d) => d["mnist"] === "ready" || d["mnist"] === "error", 300_000)
      expect((await facts(page))["mnist"], (await page.textContent("#mnist-message")) ?? "").toBe("ready")
      const first = await pageSamples()
      expect(first.seed).toBe(0)
      expect(first.values.length).toBeGreaterThan(0)
      expect(first.values).toEqual(await nodeSamples(0))
      const provenance = JSON.parse(readFileSync(join(MNIST_DIR, "provenance.json"), "utf8")) as { command: string; fid: number }
      const shown = (await page.textContent("#mnist-provenance")) ?? ""
      expect(shown).toContain(provenance.command)
      expect(shown).toContain(provenance.fid.toFixed(2))
      await shot(page, "mnist-seed-0")
      await page.click("#mnist-reseed")
      await waitFor(page, "the next seed", (d) => d["mnistSeed"] === "1", 120_000)
      const second = await pageSamples()
      expect(second.values).not.toEqual(first.values)
      expect(second.values).toEqual(await nodeSamples(1))
      await shot(page, "mnist-seed-1")
    },
    600_000
  )

  it.skipIf(mnistMissing === undefined)("says that no MNIST generator is shipped", async () => {
    await page.click("#tab-mnist")
    await waitFor(page, "the missing-file message", (d) => d["mnist"] === "missing", 120_000)
    expect(await page.textContent("#mnist-message")).toMatch(/No MNIST generator is shipped/)
  }, 300_000)
})

/**
 * WebGPU: opt-in (`SID_WEBGPU_TEST=1`), since on a machine without a GPU the adapter is SwiftShader's software Vulkan,
 * which takes minutes for what wasm does in seconds.
 */
const webGpuOptIn = process.env["SID_WEBGPU_TEST"] === "1"
if (missing === undefined && !webGpuOptIn) console.log("WebDemo: the WebGPU test is skipped (set SID_WEBGPU_TEST=1 to run it)")

describe.skipIf(missing !== undefined || !webGpuOptIn)("the web demo on WebGPU in Chromium", () => {
  it("trains on the webgpu engine where the browser gives an adapter (here: SwiftShader's software Vulkan), and says which", async () => {
    mkdirSync(OUT, { recursive: true })
    const dist = join(OUT, "dist")
    if (!existsSync(join(dist, "index.html"))) await buildDemo(dist)
    const server = await serveDemo(dist)
    const browser = await launchChromium(true)
    try {
      const page = await browser.newPage({ viewport: { width: 1480, height: 1000 } })
      await page.goto(server.url)
      await page.evaluate(() => localStorage.clear())
      await page.selectOption("#engine", "webgpu")
      await page.fill("#steps", "10")
      await page.click("#start")
      const started = await waitFor(page, "the engine or its error", (d) => d["engine"] !== undefined || d["state"] === "error", 120_000)
      if (started["engine"] === undefined) {
        console.log(`WebDemo: WebGPU not tested: ${await page.textContent("#message")}`)
        expect(await page.textContent("#message")).toMatch(/WebGPU/)
        return
      }
      console.log(`WebDemo: WebGPU engine ${await page.textContent("#engine-info")}`)
      expect(started["engine"]).toBe("webgpu")
      const done = await waitFor(page, "10 iterations on WebGPU", (d) => d["state"] === "done" && d["fdStep"] === "10", 840_000)
      console.log(`WebDemo: WebGPU: FD after 10 iterations ${Number(done["fd"]).toExponential(3)}, ${await page.textContent("#ms")} ms per iteration`)
      expect(Number.isFinite(Number(done["fd"]))).toBe(true)
      await shot(page, "webgpu-10")
    } finally {
      await browser.close()
      await server.close()
    }
  }, 900_000)
})
