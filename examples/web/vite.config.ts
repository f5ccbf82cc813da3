/**
 * Vite for the web demo: `npm run demo` serves it (http://127.0.0.1:5317), `npm run demo:build` builds it into
 * `examples/web/dist`. Both the dev server and `vite preview` send COOP `same-origin` and COEP `require-corp`, so the
 * page is cross-origin isolated and the wasm backend can use threads (SharedArrayBuffer).
 */
import { fileURLToPath } from "node:url"
import { defineConfig } from "vite"

/** The headers that make the page cross-origin isolated. */
export const isolation = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp"
} as const

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "./",
  server: { host: "127.0.0.1", port: 5317, headers: isolation },
  preview: { host: "127.0.0.1", port: 5318, headers: isolation },
  worker: { format: "es" },
  build: { outDir: "dist", emptyOutDir: true, target: "es2022", chunkSizeWarningLimit: 5000 },
  optimizeDeps: { exclude: ["@tensorflow/tfjs-backend-wasm", "@tensorflow/tfjs-backend-webgpu"] },
  logLevel: "warn"
})
