/**
 * Engine layers for web pages and Web Workers: `webgpu` (TF.js's WebGPU backend on the user's GPU, where an adapter
 * exists), `wasm` (XNNPACK SIMD, multi-threaded when the page is cross-origin isolated) and `cpu` (pure JS, the slow
 * reference). Nothing here imports Node: the Node engines (`wasm-native`, `tfjs-node`, the process-wide registry) are
 * in `src/layers/Engine.ts`.
 *
 * A page runs one engine: build one of these layers once (e.g. in the worker that trains) and keep it. Releasing the
 * layer restores the replaced kernels and the previous backend.
 *
 * `webgpu` is built as Node's `webgpu` engine is (`engine/WebGpuDevice.ts`): the engine requests the device itself with
 * the adapter's limits (storage buffers per shader included), registers TF.js's WebGPU backend on it with the
 * project's kernels (chunked `AddN`, fused Adam, fused GroupNorm (+ SiLU) and its gradient), and watches the device:
 * an uncaptured device error or a device loss fails the next host read with `WebGpuDeviceError` / `WebGpuDeviceLost`
 * instead of returning a result computed by failed work. Releasing it restores the kernels, the gradient, the
 * previous `webgpu` backend registration and backend, and destroys the device.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer, Option, type Scope } from "effect"
import { keepBackend } from "../engine/BackendScope.js"
import { dispatchSavingGradients as gradientConfigs, installGradients } from "../engine/kernels/Gradients.js"
import { cpuPatches, install, type KernelPatch, labels, wasmPatches } from "../engine/kernels/Patches.js"
import { Engine, EngineFacts, EngineInitFailed, EnginePackageNotInstalled } from "../engine/Engine.js"
import {
  guardReads,
  installWebGpuKernels,
  requiredLimits,
  watchDevice,
  type WatchedDevice,
  webGpuPatches
} from "../engine/WebGpuDevice.js"

/**
 * The engines a page can run.
 *
 * @since 0.1.0
 * @category models
 */
export type BrowserEngineName = "webgpu" | "wasm" | "cpu"

/**
 * Options of the browser engine layers.
 *
 * @since 0.1.0
 * @category models
 */
export interface BrowserEngineOptions {
  /**
   * Where the wasm backend finds its binaries: a URL prefix ending in `/`, or a map from file name
   * (`tfjs-backend-wasm.wasm`, `tfjs-backend-wasm-simd.wasm`, `tfjs-backend-wasm-threaded-simd.wasm`) to URL, as
   * `setWasmPaths` takes it. A bundler gives these URLs (Vite: `import url from "…/file.wasm?url"`). Default: the
   * backend's own default (next to the script).
   */
  readonly wasmPaths?: string | { readonly [file: string]: string }
  /**
   * wasm compute threads, at most 8. Default: TF.js's own choice, half of `navigator.hardwareConcurrency` (one
   * thread on a 2-core machine). Given explicitly, the backend gets that many even where TF.js would take fewer
   * (it is shown `2 × threads` logical cores while it starts). Threads need a cross-origin isolated page (COOP
   * `same-origin` + COEP `require-corp`); elsewhere the backend runs one thread.
   */
  readonly threads?: number
}

/**
 * What a running browser engine reports beside the service: the engine and, for WebGPU, the adapter.
 *
 * @since 0.2.0
 * @category models
 */
export interface BrowserEngineInfo {
  readonly name: BrowserEngineName
  /** The GPU adapter in words (vendor, architecture, device), for `webgpu`. */
  readonly adapter?: string
  /** Whether the page is cross-origin isolated (wasm threads need it). */
  readonly crossOriginIsolated: boolean
}

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split("\n")[0]!

const initFailed = (engine: BrowserEngineName, detail: string) => (cause: unknown) =>
  new EngineInitFailed({ engine, detail: `${detail}: ${errorText(cause)}`, cause })

interface GpuAdapterInfo {
  readonly vendor?: string
  readonly architecture?: string
  readonly device?: string
  readonly description?: string
}
interface GpuDevice extends WatchedDevice {
  readonly destroy: () => void
}
interface GpuAdapter {
  readonly info?: GpuAdapterInfo
  readonly requestAdapterInfo?: () => Promise<GpuAdapterInfo>
  readonly limits?: object
  readonly requestDevice?: (descriptor?: { requiredLimits?: Record<string, number> }) => Promise<GpuDevice>
}
interface GpuNavigator {
  readonly gpu?: { readonly requestAdapter: (options?: unknown) => Promise<GpuAdapter | null> }
  readonly hardwareConcurrency?: number
}

const nav = (): GpuNavigator | undefined => (globalThis as { navigator?: GpuNavigator }).navigator

/**
 * Whether this page or worker is cross-origin isolated (SharedArrayBuffer available, so wasm can use threads).
 *
 * @since 0.2.0
 * @category getters
 */
export const isCrossOriginIsolated = (): boolean => (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true

/**
 * The WebGPU adapter of this page in words, or none when the browser has no `navigator.gpu` or gives no adapter
 * (no GPU, or WebGPU disabled).
 *
 * @since 0.1.0
 * @category constructors
 */
export const webGpuAdapter: Effect.Effect<Option.Option<string>> = Effect.promise(async () => {
  const gpu = nav()?.gpu
  if (gpu === undefined) return Option.none()
  try {
    const adapter = await gpu.requestAdapter()
    if (adapter === null) return Option.none()
    const info = adapter.info ?? (adapter.requestAdapterInfo === undefined ? {} : await adapter.requestAdapterInfo())
    const words = [info.vendor, info.architecture, info.device, info.description].filter((w) => w !== undefined && w !== "")
    return Option.some(words.length === 0 ? "unnamed adapter" : words.join(" "))
  } catch {
    return Option.none()
  }
})

/**
 * The engine a page should train on: `webgpu` where an adapter exists, else `wasm`; with the reason, for the page.
 *
 * @since 0.1.0
 * @category constructors
 */
export const chooseEngine: Effect.Effect<{ readonly name: BrowserEngineName; readonly reason: string }> = Effect.map(
  webGpuAdapter,
  Option.match({
    onNone: () => ({
      name: "wasm" as const,
      reason: nav()?.gpu === undefined ? "this browser has no WebGPU (navigator.gpu)" : "WebGPU gave no adapter"
    }),
    onSome: (adapter) => ({ name: "webgpu" as const, reason: `WebGPU adapter: ${adapter}` })
  })
)

const patch = (engine: BrowserEngineName, patches: ReadonlyArray<KernelPatch>) =>
  Effect.acquireRelease(
    Effect.try({ try: () => install(patches), catch: initFailed(engine, "installing kernel patches failed") }),
    (restore) => Effect.sync(restore)
  )

const useBackend = (engine: BrowserEngineName, backend: string) =>
  Effect.tryPromise({
    try: async () => {
      tf.env().set("PROD", true)
      const ok = await tf.setBackend(backend)
      if (!ok) throw new Error(`tf.setBackend("${backend}") returned false (TF.js logs the reason as a warning)`)
      await tf.ready()
    },
    catch: initFailed(engine, `starting the ${backend} backend failed`)
  })

const facts = (simd: boolean, threads: number, gpu: boolean, patched: ReadonlyArray<KernelPatch>) =>
  new EngineFacts({ simd, threads: Math.max(1, threads), gpu, patchedKernels: labels(patched), tfjsVersion: tf.version_core })

const buildWasm = (options: BrowserEngineOptions) =>
  Effect.gen(function*() {
    yield* keepBackend
    const wasm = yield* Effect.tryPromise({
      try: () => import("@tensorflow/tfjs-backend-wasm"),
      catch: (cause) => new EnginePackageNotInstalled({ engine: "wasm", packageName: "@tensorflow/tfjs-backend-wasm", cause })
    })
    yield* Effect.try({
      try: () => {
        if (options.wasmPaths !== undefined) wasm.setWasmPaths(options.wasmPaths as string | Record<string, string>)
        const cores = nav()?.hardwareConcurrency ?? 1
        const threads = Math.max(1, Math.min(8, options.threads ?? cores))
        wasm.setThreadsCount(threads)
        // TF.js 4.22 caps its XNNPACK pool at half the logical cores (it assumes two hardware threads per core), so
        // a 2-core machine gets one thread. Asked for more threads explicitly, the backend is shown enough cores.
        const shown = nav()
        if (options.threads !== undefined && shown !== undefined && threads > Math.floor(cores / 2)) {
          Object.defineProperty(shown, "hardwareConcurrency", { value: 2 * threads, configurable: true })
        }
      },
      catch: initFailed("wasm", "configuring the wasm backend failed")
    })
    yield* patch("wasm", wasmPatches)
    yield* useBackend("wasm", "wasm")
    const simd = yield* Effect.promise(() => tf.env().getAsync("WASM_HAS_SIMD_SUPPORT"))
    const threaded = yield* Effect.promise(() => tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT"))
    const threads = threaded === true ? wasm.getThreadsCount() : 1
    return { service: facts(simd === true, threads, false, wasmPatches), info: { name: "wasm" as const } }
  })

const buildCpu = Effect.gen(function*() {
  yield* keepBackend
  yield* patch("cpu", cpuPatches)
  yield* useBackend("cpu", "cpu")
  return { service: facts(false, 1, false, cpuPatches), info: { name: "cpu" as const } }
})

const adapterWords = async (adapter: GpuAdapter): Promise<string> => {
  const info = adapter.info ?? (adapter.requestAdapterInfo === undefined ? {} : await adapter.requestAdapterInfo())
  const words = [info.vendor, info.architecture, info.device, info.description].filter((w) => w !== undefined && w !== "")
  return words.length === 0 ? "unnamed adapter" : words.join(" ")
}

type BackendClass = new(device: GpuDevice, adapterInfo: unknown) => tf.KernelBackend

const noAdapter = (detail: string) => new EngineInitFailed({ engine: "webgpu", detail, cause: null })

/** Registers `factory` as the `webgpu` backend for the scope, restoring the registration it replaces on release. */
const registerWebGpu = (factory: () => tf.KernelBackend) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        const previous = tf.findBackendFactory("webgpu") ?? undefined
        if (previous !== undefined) tf.removeBackend("webgpu")
        tf.registerBackend("webgpu", factory, 0)
        return previous
      },
      catch: initFailed("webgpu", "registering the webgpu backend failed")
    }),
    (previous) =>
      Effect.sync(() => {
        if (tf.findBackendFactory("webgpu") != null) tf.removeBackend("webgpu")
        if (previous !== undefined) tf.registerBackend("webgpu", previous as () => tf.KernelBackend, 0)
      })
  )

const buildWebGpu = Effect.gen(function*() {
  const gpu = nav()?.gpu
  if (gpu === undefined) return yield* noAdapter("this browser has no WebGPU (navigator.gpu is missing); use the wasm engine")
  const adapter = yield* Effect.tryPromise({
    try: () => gpu.requestAdapter({ powerPreference: "high-performance" }),
    catch: initFailed("webgpu", "navigator.gpu.requestAdapter() threw")
  })
  if (adapter === null || adapter.requestDevice === undefined) {
    return yield* noAdapter("WebGPU gave no adapter (no usable GPU, or WebGPU is disabled); use the wasm engine")
  }
  const words = yield* Effect.promise(() => adapterWords(adapter))
  const limits = requiredLimits(adapter.limits ?? {})
  const device = yield* Effect.tryPromise({
    try: () => adapter.requestDevice!({ requiredLimits: limits }),
    catch: initFailed("webgpu", "requestDevice() failed")
  })
  const health = watchDevice(device)
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      health.released = true
      device.destroy()
    })
  )
  yield* keepBackend
  const mod = yield* Effect.tryPromise({
    try: () => import("@tensorflow/tfjs-backend-webgpu"),
    catch: (cause) =>
      new EnginePackageNotInstalled({ engine: "webgpu", packageName: "@tensorflow/tfjs-backend-webgpu", cause })
  })
  const Backend = mod.WebGPUBackend as unknown as BackendClass
  yield* registerWebGpu(() => {
    const backend = new Backend(device, adapter.info)
    guardReads(backend, health)
    return backend
  })
  const maxStorageBuffers = limits["maxStorageBuffersPerShaderStage"] ?? 8
  yield* Effect.acquireRelease(
    Effect.try({ try: () => installWebGpuKernels(maxStorageBuffers), catch: initFailed("webgpu", "installing kernel patches failed") }),
    (restore) => Effect.sync(restore)
  )
  yield* useBackend("webgpu", "webgpu")
  return {
    service: facts(true, 1, true, webGpuPatches(maxStorageBuffers)),
    info: { name: "webgpu" as const, adapter: words }
  }
})

/**
 * TF.js's `Sum`/`Mean` gradients without the array of ones and its element-wise gradients without float32 casts
 * (docs/engines.md §3.6): the same bits with fewer dispatches, for as long as the engine is held.
 */
const dispatchSavingGradients = Effect.acquireRelease(
  Effect.sync(() => installGradients(gradientConfigs)),
  (restore) => Effect.sync(restore)
)

/**
 * The engine `name` for a page or worker, and what it reports ({@link BrowserEngineInfo}). Fails with
 * `EngineInitFailed` (WebGPU without an adapter, a backend that does not start) or `EnginePackageNotInstalled`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeEngine = (
  name: BrowserEngineName,
  options: BrowserEngineOptions = {}
): Effect.Effect<
  { readonly engine: Engine["Type"]; readonly info: BrowserEngineInfo },
  EngineInitFailed | EnginePackageNotInstalled,
  Scope.Scope
> =>
  Effect.map(
    Effect.zipRight(
      dispatchSavingGradients,
      (name === "wasm" ? buildWasm(options) : name === "cpu" ? buildCpu : buildWebGpu) as Effect.Effect<
        { readonly service: EngineFacts; readonly info: { readonly name: BrowserEngineName; readonly adapter?: string } },
        EngineInitFailed | EnginePackageNotInstalled,
        Scope.Scope
      >
    ),
    ({ info, service }) => ({
      engine: Engine.of({ tf, name, backend: name, facts: service }),
      info: { ...info, crossOriginIsolated: isCrossOriginIsolated() }
    })
  )

/**
 * The engine layer `name` for a page or worker (see {@link makeEngine}).
 *
 * @since 0.1.0
 * @category layers
 */
export const engineLayer = (
  name: BrowserEngineName,
  options: BrowserEngineOptions = {}
): Layer.Layer<Engine, EngineInitFailed | EnginePackageNotInstalled> =>
  Layer.scoped(Engine, Effect.map(makeEngine(name, options), (e) => e.engine))
