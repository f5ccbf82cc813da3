/**
 * A page that loads the library without the demo: `test/support/webGpuPage.ts` bundled by esbuild (Vite's own
 * bundler) and served on loopback (a secure context, so WebGPU is offered) with the wasm backend's binaries under
 * `/wasm/`. Cheaper to build than the demo; for checks that drive the library directly in Chromium.
 *
 * @module
 */
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { readFile } from "node:fs/promises"
import { fileURLToPath } from "node:url"

const entry = fileURLToPath(new URL("./webGpuPage.ts", import.meta.url))
const wasmDir = fileURLToPath(new URL("../../node_modules/@tensorflow/tfjs-backend-wasm/dist/", import.meta.url))

/** Bundles the page's script and serves it; `close` stops the server. */
export const serveLibraryPage = async (): Promise<{ readonly url: string; readonly close: () => Promise<void> }> => {
  const { build } = await import("esbuild")
  const bundled = await build({ entryPoints: [entry], bundle: true, format: "esm", platform: "browser", target: "es2022", write: false, logLevel: "error" })
  const script = bundled.outputFiles[0]!.contents
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? "/", "http://localhost").pathname
    const send = (type: string, body: Uint8Array | string) => {
      response.writeHead(200, { "content-type": type })
      response.end(body)
    }
    if (path === "/") return send("text/html", `<!doctype html><title>sid-ts check</title><script type="module" src="/check.js"></script>`)
    if (path === "/check.js") return send("text/javascript", script)
    if (/^\/wasm\/[\w.-]+\.wasm$/.test(path)) {
      return void readFile(`${wasmDir}${path.slice("/wasm/".length)}`).then(
        (bytes) => send("application/wasm", bytes),
        () => {
          response.writeHead(404)
          response.end()
        }
      )
    }
    response.writeHead(404)
    response.end()
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((resolve) => server.close(() => resolve())) }
}
