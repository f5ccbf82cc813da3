/**
 * The `webgpu` engine: TF.js's `@tensorflow/tfjs-backend-webgpu` on a GPU reached through WebGPU — in Node,
 * Dawn from the optional `webgpu` package (Vulkan on Linux, Metal on macOS, D3D12 on Windows).
 *
 * Building the layer (docs/engines.md §8):
 * 1. sets `XDG_RUNTIME_DIR` to a private temporary directory when it is unset (Dawn warns without it);
 * 2. loads `webgpu` and installs its `navigator.gpu` and WebGPU globals (`GPUBufferUsage`, ...) for the layer's
 *    lifetime, restoring whatever was there before on release;
 * 3. asks for a high-performance adapter; refuses a software (fallback) adapter unless the caller opts in
 *    (`allowSoftware`, `SID_WEBGPU_SOFTWARE=1`, the CLI's `--allow-software-gpu`);
 * 4. requests a device with the adapter's limits (buffer sizes, workgroups, and its storage buffers per shader stage:
 *    WebGPU's default of 8 is what broke `AddN`), and watches it: uncaptured device errors and a device loss are
 *    recorded and turn the next host read into a typed error ({@link WebGpuDeviceError}, {@link WebGpuDeviceLost}), so
 *    a result computed by failed work is never returned;
 * 5. imports `@tensorflow/tfjs-backend-webgpu` (dynamically, after `navigator.gpu` exists: the module registers its
 *    backend only then) and registers the `webgpu` backend on this device, with the engine's kernel patches;
 * 6. releasing restores the kernels and the previous backend, removes the backend, destroys the device and restores
 *    `navigator` and the globals.
 *
 * Host reads must be asynchronous on this engine (`await t.data()`): a synchronous read that would need the GPU fails
 * with {@link WebGpuSyncRead} instead of tfjs's `OffscreenCanvas is not defined`.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer } from "effect"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { createRequire } from "node:module"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { keepBackend } from "../BackendScope.js"
import { labels } from "../kernels/Patches.js"
import { Engine, EngineFacts, EngineInitFailed, EnginePackageNotInstalled } from "../Engine.js"
import { WebGpuAdapterReport } from "../WebGpuAdapter.js"
import {
  guardReads,
  installWebGpuKernels,
  numericLimits,
  requiredLimits,
  watchDevice,
  type WatchedDevice,
  webGpuPatches
} from "../WebGpuDevice.js"
import {
  type WebGpuError,
  WebGpuDeviceError,
  WebGpuDeviceLost,
  WebGpuNoAdapter,
  WebGpuSoftwareAdapter,
  WebGpuVulkanMissing
} from "../WebGpuErrors.js"

// ---------------------------------------------------------------------------------------------------------------
// The few WebGPU types used here, structurally (the engine does not depend on the DOM or @webgpu/types typings).

interface GpuAdapterInfo {
  readonly vendor?: string
  readonly architecture?: string
  readonly device?: string
  readonly description?: string
  readonly isFallbackAdapter?: boolean
}

/** The part of `GPUDevice` the engine uses. */
export interface GpuDevice extends WatchedDevice {
  readonly limits: object
  readonly destroy: () => void
}

interface GpuAdapter {
  readonly info?: GpuAdapterInfo
  readonly isFallbackAdapter?: boolean
  readonly limits: object
  readonly features: Iterable<string>
  readonly requestDevice: (descriptor?: { requiredLimits?: Record<string, number> }) => Promise<GpuDevice>
}

interface Gpu {
  readonly requestAdapter: (options?: { powerPreference?: "high-performance" | "low-power" }) => Promise<GpuAdapter | null>
}

interface DawnModule {
  readonly create: (flags: Array<string>) => Gpu
  readonly globals: Record<string, unknown>
}

type BackendClass = new(device: GpuDevice, adapterInfo: unknown) => tf.KernelBackend

// ---------------------------------------------------------------------------------------------------------------

/**
 * Options of the `webgpu` engine.
 *
 * - `importer`: loads a module by name (default: the real dynamic `import()`; tests inject fakes).
 * - `allowSoftware`: accept a software (fallback) adapter; default: `SID_WEBGPU_SOFTWARE=1`.
 * - `powerPreference`: default `"high-performance"`.
 *
 * @since 0.1.0
 * @category models
 */
export interface WebGpuOptions {
  readonly importer?: (specifier: string) => Promise<unknown>
  readonly allowSoftware?: boolean
  readonly powerPreference?: "high-performance" | "low-power"
}

/**
 * The npm package that gives Node a `navigator.gpu` (Dawn's binding), and the TF.js backend.
 *
 * @since 0.1.0
 * @category constants
 */
export const WEBGPU_PACKAGE = "webgpu"

/**
 * @since 0.1.0
 * @category constants
 */
export const WEBGPU_BACKEND_PACKAGE = "@tensorflow/tfjs-backend-webgpu"

/**
 * Whether the environment opts in to a software adapter (`SID_WEBGPU_SOFTWARE=1` or `true`).
 *
 * @since 0.1.0
 * @category config
 */
export const softwareAllowedByEnv = (): boolean => /^(1|true|yes)$/i.test(process.env["SID_WEBGPU_SOFTWARE"] ?? "")

const defaultImporter = (specifier: string): Promise<unknown> => import(specifier)

const text = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause)).split("\n")[0]!

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")

const notFound = (pkg: string, cause: unknown): boolean =>
  new RegExp(
    `(Cannot find (package|module) ['"]${escapeRegExp(pkg)}(/[^'"]*)?['"])|(Could not resolve ['"]${escapeRegExp(pkg)}['"])|` +
      `(Failed to (load|resolve) (url|import) ['"]?${escapeRegExp(pkg)}(['"\\s(]|$))`
  ).test(cause instanceof Error ? cause.message : String(cause))

const loadPackage = (importer: (s: string) => Promise<unknown>, pkg: string) =>
  Effect.tryPromise({
    try: () => importer(pkg),
    catch: (cause) =>
      notFound(pkg, cause)
        ? new EnginePackageNotInstalled({ engine: "webgpu", packageName: pkg, cause })
        : new EngineInitFailed({ engine: "webgpu", detail: `loading ${pkg} failed: ${text(cause)}`, cause })
  })

const isDawn = (mod: unknown): mod is DawnModule =>
  typeof mod === "object" && mod !== null && typeof (mod as { create?: unknown }).create === "function" &&
  typeof (mod as { globals?: unknown }).globals === "object"

/** Sets `XDG_RUNTIME_DIR` to a private temporary directory while the scope is open, when it is unset. */
const runtimeDir = Effect.acquireRelease(
  Effect.sync(() => {
    if ((process.env["XDG_RUNTIME_DIR"] ?? "") !== "") return undefined
    const dir = mkdtempSync(join(tmpdir(), "sid-xdg-"))
    process.env["XDG_RUNTIME_DIR"] = dir
    return dir
  }),
  (dir) =>
    Effect.sync(() => {
      if (dir === undefined) return
      if (process.env["XDG_RUNTIME_DIR"] === dir) delete process.env["XDG_RUNTIME_DIR"]
      rmSync(dir, { recursive: true, force: true })
    })
)

/** Defines `values` on `globalThis` for the scope's lifetime, restoring the previous property descriptors. */
const globalsFor = (values: Record<string, unknown>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const saved = Object.keys(values).map((key) => [key, Object.getOwnPropertyDescriptor(globalThis, key)] as const)
      for (const [key, value] of Object.entries(values)) {
        Object.defineProperty(globalThis, key, { value, configurable: true, writable: true, enumerable: false })
      }
      return saved
    }),
    (saved) =>
      Effect.sync(() => {
        for (const [key, descriptor] of saved) {
          if (descriptor === undefined) Reflect.deleteProperty(globalThis, key)
          else Object.defineProperty(globalThis, key, descriptor)
        }
      })
  )

/** `navigator` with `gpu` set: the existing navigator (Node ≥ 21 has one) as prototype, or a plain object. */
const navigatorWith = (gpu: Gpu): object => {
  const previous = (globalThis as { navigator?: unknown }).navigator
  const base = typeof previous === "object" && previous !== null ? previous : {}
  return Object.create(base, { gpu: { value: gpu, enumerable: true } }) as object
}

/**
 * Whether the Vulkan loader can be loaded on this machine (Linux only; elsewhere Dawn uses Metal or D3D12): `undefined`
 * when it can, else the loader's error. `process.dlopen` of a plain shared library fails after loading it ("did not
 * self-register"), which proves it loads; a missing library fails with "cannot open shared object file".
 *
 * @since 0.1.0
 * @category utils
 */
export const vulkanLoaderProblem = (library = "libvulkan.so.1"): string | undefined => {
  if (process.platform !== "linux") return undefined
  try {
    process.dlopen({ exports: {} } as NodeJS.Module, library)
    return undefined
  } catch (e) {
    const message = text(e)
    return /cannot open shared object|no such file|not found/i.test(message) ? message : undefined
  }
}

/**
 * The report of `adapter` ({@link WebGpuAdapterReport}).
 *
 * @since 0.1.0
 * @category constructors
 */
export const adapterReport = (
  adapter: GpuAdapter,
  requested: Record<string, number> = {}
): WebGpuAdapterReport => {
  const info = adapter.info ?? {}
  return new WebGpuAdapterReport({
    vendor: info.vendor ?? "",
    architecture: info.architecture ?? "",
    device: info.device ?? "",
    description: info.description ?? "",
    isFallbackAdapter: info.isFallbackAdapter === true || adapter.isFallbackAdapter === true,
    limits: numericLimits(adapter.limits),
    requested,
    features: [...adapter.features].sort()
  })
}

const requestAdapter = (gpu: Gpu, options: WebGpuOptions | undefined) =>
  Effect.tryPromise({
    try: () => gpu.requestAdapter({ powerPreference: options?.powerPreference ?? "high-performance" }),
    catch: (cause) => new EngineInitFailed({ engine: "webgpu", detail: `requestAdapter() threw: ${text(cause)}`, cause })
  }).pipe(
    Effect.flatMap((adapter) => {
      if (adapter !== null) return Effect.succeed(adapter)
      const problem = vulkanLoaderProblem()
      return Effect.fail(
        problem !== undefined
          ? new WebGpuVulkanMissing({ library: "libvulkan.so.1", detail: problem })
          : new WebGpuNoAdapter({
            detail: "navigator.gpu.requestAdapter() returned null: no Vulkan/Metal/D3D12 driver offered a device " +
              "Dawn accepts"
          })
      )
    })
  )

export { checkHealth, type DeviceHealth, webGpuPatches } from "../WebGpuDevice.js"

const initFailed = (detail: string) => (cause: unknown) =>
  new EngineInitFailed({ engine: "webgpu", detail: `${detail}: ${text(cause)}`, cause })

/**
 * The `webgpu` engine's layer, unshared (the engine registry in `src/layers/Engine.ts` shares it): see the module
 * documentation for what building and releasing it do.
 *
 * @since 0.1.0
 * @category constructors
 */
export const buildWebGpu = (options?: WebGpuOptions): Layer.Layer<Engine, EnginePackageNotInstalled | EngineInitFailed | WebGpuError> =>
  Layer.scoped(
    Engine,
    Effect.gen(function*() {
      const importer = options?.importer ?? defaultImporter
      const allowSoftware = options?.allowSoftware ?? softwareAllowedByEnv()
      yield* runtimeDir
      const dawn = yield* loadPackage(importer, WEBGPU_PACKAGE)
      if (!isDawn(dawn)) {
        return yield* new EngineInitFailed({
          engine: "webgpu",
          detail: `${WEBGPU_PACKAGE} loaded but does not export create() and globals`,
          cause: dawn
        })
      }
      const gpu = yield* Effect.try({ try: () => dawn.create([]), catch: initFailed("webgpu's create([]) threw") })
      yield* globalsFor({ ...dawn.globals, navigator: navigatorWith(gpu) })
      const adapter = yield* requestAdapter(gpu, options)
      const probe = adapterReport(adapter)
      if (probe.isFallbackAdapter && !allowSoftware) {
        return yield* new WebGpuSoftwareAdapter({ description: probe.summary })
      }
      const limits = requiredLimits(adapter.limits)
      const device = yield* Effect.tryPromise({
        try: () => adapter.requestDevice({ requiredLimits: limits }),
        catch: initFailed("requestDevice() failed")
      })
      const health = watchDevice(device)
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          health.released = true
          device.destroy()
        })
      )
      const report = adapterReport(adapter, limits)
      yield* keepBackend
      const mod = yield* loadPackage(importer, WEBGPU_BACKEND_PACKAGE)
      const Backend = (mod as { WebGPUBackend?: unknown } | null)?.WebGPUBackend
      if (typeof Backend !== "function") {
        return yield* new EngineInitFailed({
          engine: "webgpu",
          detail: `${WEBGPU_BACKEND_PACKAGE} loaded but does not export WebGPUBackend`,
          cause: mod
        })
      }
      yield* Effect.acquireRelease(
        Effect.try({
          try: () => {
            if (tf.findBackendFactory("webgpu") != null) tf.removeBackend("webgpu")
            tf.registerBackend("webgpu", () => {
              const backend = new (Backend as BackendClass)(device, adapter.info)
              guardReads(backend, health)
              return backend
            }, 0)
          },
          catch: initFailed("registering the webgpu backend failed")
        }),
        () =>
          Effect.sync(() => {
            if (tf.findBackendFactory("webgpu") != null) tf.removeBackend("webgpu")
          })
      )
      const maxStorageBuffers = limits["maxStorageBuffersPerShaderStage"] ?? 8
      const patches = webGpuPatches(maxStorageBuffers)
      yield* Effect.acquireRelease(
        Effect.try({ try: () => installWebGpuKernels(maxStorageBuffers), catch: initFailed("installing kernel patches failed") }),
        (restore) => Effect.sync(restore)
      )
      const ok = yield* Effect.tryPromise({
        try: () => {
          tf.env().set("PROD", true)
          return tf.setBackend("webgpu")
        },
        catch: initFailed(`tf.setBackend("webgpu") threw`)
      })
      if (!ok) {
        return yield* new EngineInitFailed({
          engine: "webgpu",
          detail: `tf.setBackend("webgpu") returned false (TF.js logs the reason as a warning)`,
          cause: ok
        })
      }
      yield* Effect.tryPromise({ try: () => tf.ready(), catch: initFailed("tf.ready() failed") })
      yield* Effect.logInfo(`webgpu engine on ${report.summary}`)
      return Engine.of({
        tf,
        name: "webgpu",
        backend: "webgpu",
        facts: new EngineFacts({
          simd: false,
          threads: 1,
          gpu: !report.isFallbackAdapter,
          patchedKernels: labels(patches),
          tfjsVersion: tf.version_core,
          adapter: report
        })
      })
    })
  )

/**
 * What a machine offers the `webgpu` engine, without starting it: the adapter's report, or why there is none.
 *
 * @since 0.1.0
 * @category models
 */
export type WebGpuProbe =
  | { readonly _tag: "Adapter"; readonly report: WebGpuAdapterReport }
  | { readonly _tag: "None"; readonly reason: string }

const probed = new Map<boolean, Promise<WebGpuProbe>>()

/**
 * Whether this Linux machine has a GPU device node (`/dev/dri/renderD*`, `/dev/nvidia<N>`): without one no hardware
 * adapter can exist. Elsewhere (macOS, Windows) true.
 *
 * @since 0.1.0
 * @category utils
 */
export const gpuDeviceNodes = (): boolean => {
  if (process.platform !== "linux") return true
  const has = (dir: string, name: RegExp) => {
    try {
      return readdirSync(dir).some((f) => name.test(f))
    } catch {
      return false
    }
  }
  return has("/dev/dri", /^renderD\d+$/) || has("/dev", /^nvidia\d+$/)
}

/**
 * Looks for a WebGPU adapter (once per process and mode; the answer is cached): loads `webgpu` if installed, asks for
 * a high-performance adapter and reports it. Installs no globals and keeps no device. With `hardwareOnly` (what `auto`
 * uses) a Linux machine without a GPU device node is answered without loading Dawn at all (no Vulkan start-up, none
 * of the driver's messages on stderr).
 *
 * @since 0.1.0
 * @category constructors
 */
export const probeWebGpu = (options?: { readonly hardwareOnly?: boolean }): Promise<WebGpuProbe> => {
  const hardwareOnly = options?.hardwareOnly === true
  if (hardwareOnly && !gpuDeviceNodes()) {
    return Promise.resolve({ _tag: "None", reason: "no GPU device node (/dev/dri/renderD*, /dev/nvidia*)" })
  }
  let answer = probed.get(hardwareOnly)
  if (answer === undefined) {
    answer = probeOnce()
    probed.set(hardwareOnly, answer)
  }
  return answer
}

const probeOnce = async (): Promise<WebGpuProbe> => {
  let resolved: string
  try {
    resolved = createRequire(import.meta.url).resolve(`${WEBGPU_PACKAGE}/package.json`)
  } catch {
    return { _tag: "None", reason: `the optional package ${WEBGPU_PACKAGE} is not installed` }
  }
  const setXdg = (process.env["XDG_RUNTIME_DIR"] ?? "") === ""
  const dir = setXdg ? mkdtempSync(join(tmpdir(), "sid-xdg-")) : undefined
  if (dir !== undefined) process.env["XDG_RUNTIME_DIR"] = dir
  try {
    const dawn = await defaultImporter(WEBGPU_PACKAGE)
    if (!isDawn(dawn)) return { _tag: "None", reason: `${resolved} does not export create()` }
    const adapter = await dawn.create([]).requestAdapter({ powerPreference: "high-performance" })
    if (adapter === null) {
      const problem = vulkanLoaderProblem()
      return { _tag: "None", reason: problem ?? "no WebGPU adapter (no Vulkan/Metal/D3D12 driver Dawn accepts)" }
    }
    return { _tag: "Adapter", report: adapterReport(adapter) }
  } catch (e) {
    return { _tag: "None", reason: `webgpu could not be loaded: ${text(e)}` }
  } finally {
    if (dir !== undefined) {
      if (process.env["XDG_RUNTIME_DIR"] === dir) delete process.env["XDG_RUNTIME_DIR"]
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
