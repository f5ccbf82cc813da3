/**
 * XNNPACK's threads for the `wasm` engine in Node (docs/engines.md §2.1). TF.js ships a threaded SIMD binary but
 * turns it off in Node: its pthread workers would start from `blob:` URLs (Node's `worker_threads` refuse them), the
 * worker evaluates the module's factory from another `blob:` URL, and the pool is capped at half the logical cores
 * (one thread on two cores). For the few milliseconds of the backend's initialisation this module
 *
 * - records the text of the two scripts TF.js builds as `Blob`s and answers `URL.createObjectURL` for the worker
 *   script with a file it writes (the worker reading the factory from a file beside it; the factory's free names, the
 *   Node modules the bundle imported, are defined at its top),
 * - reports twice the requested thread count as the logical cores, so the pool has the requested size,
 *
 * then restores `Blob`, `URL.createObjectURL` and `os.cpus`, and unreferences the pthread workers, so an idle pool
 * does not keep the process alive. Matrix products and convolutions are split by output tiles, each output computed
 * by one thread in the same order: results do not depend on the thread count (checked by `test/WasmThreads.test.ts`).
 *
 * @since 0.2.0
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import { join } from "node:path"
import { EngineInitFailed } from "../../Engine.js"

const require = createRequire(import.meta.url)

/** The mutable CommonJS `os` module (the object the TF.js bundle calls `cpus()` on). */
const osModule = require("node:os") as { cpus: typeof os.cpus }

const FACTORY = "WasmBackendModuleThreadedSimd"
const WORKER_LOADS_FACTORY = "var objectUrl=URL.createObjectURL(e.data.urlOrBlob);importScripts(objectUrl);URL.revokeObjectURL(objectUrl)"
const FACTORY_PRELUDE =
  "var require$$0 = require(\"fs\"), require$$1 = require(\"path\"), require$$3 = require(\"perf_hooks\"), " +
  "require$$4 = require(\"os\"), commonjsGlobal = globalThis;\n"

/**
 * The cores nobody else is using: `cores` less the `busy` cores, rounded, at least 1 and at most 4. XNNPACK's pool
 * waits for all its threads at every operation, so a thread that must share its core with another busy process stalls
 * the others: on two cores at load 5 two threads made the MLP iteration 1.7× slower than one
 * (`bench/results/wasm-threads-2026-12-03-loaded.json`), while on an idle machine they make it faster.
 *
 * @since 0.2.0
 * @category utils
 */
export const idleCores = (cores: number, busy: number): number => Math.max(1, Math.min(4, Math.round(cores - busy)))

const cpuTimes = (): Array<{ readonly idle: number; readonly total: number }> =>
  os.cpus().map(({ times }) => ({ idle: times.idle, total: times.user + times.nice + times.sys + times.idle + times.irq }))

/**
 * The cores busy right now: the machine's CPU times sampled `windowMs` apart (this process waits meanwhile, so it
 * counts only what others run), Σ over cores of the busy share. Not the load average: that lags by a minute, and
 * `npm ci && npm start` would count the install's own build.
 *
 * @since 0.2.0
 * @category utils
 */
export const busyCoresNow = (windowMs = 200): Effect.Effect<number> =>
  Effect.gen(function*() {
    const before = cpuTimes()
    yield* Effect.sleep(windowMs)
    const after = cpuTimes()
    let busy = 0
    after.forEach((a, i) => {
      const b = before[i]
      const total = b === undefined ? 0 : a.total - b.total
      if (b !== undefined && total > 0) busy += 1 - (a.idle - b.idle) / total
    })
    return busy
  })

/** Whether TF.js has already initialised its wasm backend in this process (threads are fixed from then on). */
const initialised = (): boolean => {
  try {
    return tf.engine().registry["wasm"] !== undefined
  } catch {
    return false
  }
}

/**
 * The thread count the `wasm` engine asks for in Node: `requested`, else `SID_WASM_THREADS` when set (1 turns threads
 * off), else the idle cores ({@link idleCores} of the available parallelism and {@link busyCoresNow}); nothing is
 * measured once the backend has started (its pool is fixed then).
 *
 * @since 0.2.0
 * @category constructors
 */
export const wasmThreadsWanted = (requested?: number): Effect.Effect<number> => {
  const fromEnv = Number(process.env["SID_WASM_THREADS"])
  const given = requested ?? (Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : undefined)
  if (given !== undefined) return Effect.succeed(Math.max(1, Math.floor(given)))
  if (initialised()) return Effect.succeed(1)
  return Effect.map(busyCoresNow(), (busy) => idleCores(os.availableParallelism(), busy))
}

interface PThreadWorker {
  readonly unref?: () => void
}

interface WasmModule {
  readonly PThread?: { readonly unusedWorkers: Array<PThreadWorker>; readonly runningWorkers: Array<PThreadWorker> }
}

const installShims = (threads: number, setThreadsCount: (n: number) => void): () => void => {
  const NativeBlob = globalThis.Blob
  const nativeCreate = URL.createObjectURL
  const nativeCpus = osModule.cpus
  const texts = new WeakMap<Blob, string>()
  let factory: string | undefined
  let workerFile: string | undefined
  class RecordingBlob extends NativeBlob {
    constructor(...args: ConstructorParameters<typeof NativeBlob>) {
      super(...args)
      const parts = args[0]
      if (parts !== undefined && parts.every((p) => typeof p === "string")) {
        const text = parts.join("")
        texts.set(this, text)
        if (text.startsWith(`var ${FACTORY}`)) factory = text
      }
    }
  }
  // TF.js asks once per pooled worker, with the same script: the files are written on the first request.
  const createObjectURL = (blob: Blob): string => {
    const text = texts.get(blob)
    if (text === undefined || factory === undefined || !text.includes(WORKER_LOADS_FACTORY)) return nativeCreate(blob)
    if (workerFile === undefined) {
      const dir = mkdtempSync(join(os.tmpdir(), "sid-ts-wasm-threads-"))
      process.once("exit", () => rmSync(dir, { recursive: true, force: true }))
      const factoryFile = join(dir, "factory.js")
      writeFileSync(factoryFile, FACTORY_PRELUDE + factory)
      writeFileSync(join(dir, "worker.js"), text.replace(WORKER_LOADS_FACTORY, `importScripts(${JSON.stringify(factoryFile)})`))
      workerFile = join(dir, "worker.js")
    }
    return workerFile
  }
  setThreadsCount(threads)
  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", true)
  const cpus = nativeCpus()
  globalThis.Blob = RecordingBlob
  URL.createObjectURL = createObjectURL
  osModule.cpus = () => Array.from({ length: 2 * threads }, (_, i) => cpus[i % Math.max(1, cpus.length)]!)
  return () => {
    globalThis.Blob = NativeBlob
    URL.createObjectURL = nativeCreate
    osModule.cpus = nativeCpus
  }
}

/** Lets an idle pthread pool end with the process. */
const unrefWorkers = (): void => {
  const wasm = (tf.backend() as unknown as { readonly wasm?: WasmModule }).wasm
  const pool = wasm?.PThread
  if (pool === undefined) return
  for (const worker of [...pool.unusedWorkers, ...pool.runningWorkers]) worker.unref?.()
}

/**
 * Runs `init` (the backend's initialisation: `tf.setBackend("wasm")` and `tf.ready()`) with XNNPACK's pool of
 * `threads` threads. `mod` is the loaded `@tensorflow/tfjs-backend-wasm`. Runs `init` unchanged for one thread, when
 * the backend is already initialised, or when the package lacks `setThreadsCount`; where the threaded start fails
 * (no writable temporary directory, a TF.js whose scripts differ), warns and starts on one thread.
 *
 * @since 0.2.0
 * @category combinators
 */
export const withWasmThreads = (threads: number, mod: unknown) =>
<A, E, R>(init: Effect.Effect<A, E, R>): Effect.Effect<A, E | EngineInitFailed, R> => {
  const setThreadsCount = (mod as { setThreadsCount?: unknown } | null)?.setThreadsCount
  if (threads <= 1 || initialised() || typeof setThreadsCount !== "function") return init
  const setCount = setThreadsCount as (n: number) => void
  const threaded = Effect.acquireUseRelease(
    Effect.try({
      try: () => installShims(threads, setCount),
      catch: (cause) =>
        new EngineInitFailed({ engine: "wasm", detail: `preparing ${threads} wasm threads failed: ${String(cause)}`, cause })
    }),
    () => Effect.zipLeft(init, Effect.sync(unrefWorkers)),
    (restore) => Effect.sync(restore)
  )
  const single = Effect.suspend(() => {
    tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false)
    setCount(1)
    return init
  })
  return Effect.catchAll(threaded, (error) =>
    Effect.zipRight(
      Effect.logWarning(
        `wasm threads could not start (${error instanceof Error ? error.message : String(error)}); running on one ` +
          "thread (SID_WASM_THREADS=1 skips the attempt)"
      ),
      single
    ))
}
