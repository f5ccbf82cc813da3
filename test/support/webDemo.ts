/**
 * The web demo for tests and benchmarks: build it with Vite, serve the build cross-origin isolated (`vite preview`
 * with the demo's headers) on loopback, and drive Debian's Chromium with playwright-core.
 *
 * @module
 */
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import type { Browser } from "playwright-core"

/** Where Debian's `chromium` package puts the browser. */
export const CHROMIUM = process.env["SID_CHROMIUM"] ?? "/usr/bin/chromium"

/** Why the browser tests cannot run here, or undefined when they can. */
export const chromiumMissing = (): string | undefined =>
  existsSync(CHROMIUM)
    ? undefined
    : `no Chromium at ${CHROMIUM} (Debian: apt-get install chromium; or set SID_CHROMIUM to a Chromium binary)`

/**
 * Chromium's flags on this kind of machine: headless as root, no sandbox, and no background connections (the closed
 * network refuses them, many at a time). `gpu`: leave the GPU process on and allow WebGPU (with a software adapter
 * where the browser has one), else `--disable-gpu`.
 */
export const chromiumArgs = (gpu: boolean): Array<string> => [
  "--no-sandbox",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  ...(gpu ? ["--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-angle=swiftshader", "--use-webgpu-adapter=swiftshader"] : ["--disable-gpu"])
]

const configFile = fileURLToPath(new URL("../../examples/web/vite.config.ts", import.meta.url))

/** Builds the demo into `outDir`. */
export const buildDemo = async (outDir: string): Promise<void> => {
  const { build } = await import("vite")
  await build({ configFile, logLevel: "error", build: { outDir, emptyOutDir: true } })
}

/** Serves a build on 127.0.0.1 (a free port) with the demo's COOP/COEP headers; `close` stops it. */
export const serveDemo = async (outDir: string): Promise<{ readonly url: string; readonly close: () => Promise<void> }> => {
  const { preview } = await import("vite")
  const server = await preview({ configFile, logLevel: "error", build: { outDir }, preview: { port: 0, strictPort: false, host: "127.0.0.1" } })
  const url = server.resolvedUrls?.local[0]
  if (url === undefined) throw new Error("vite preview reported no local URL")
  return { url, close: () => server.close() }
}

/** Launches Chromium (headless) through playwright-core. */
export const launchChromium = async (gpu = false): Promise<Browser> => {
  const { chromium } = await import("playwright-core")
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: chromiumArgs(gpu) })
}
