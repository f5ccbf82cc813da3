/**
 * Engine layers (docs/engines.md §1, §2): `wasm` (default), `cpu` (reference for tests), the optional native
 * engines `tfjs-node` / `tfjs-node-gpu`, loaded by dynamic `import()` only when chosen, and `webgpu` (built
 * in `src/engine/WebGpu.ts`, registered here).
 *
 * Each layer is scoped: acquiring remembers the current TF.js backend, loads the backend package, installs the
 * engine's kernel patches and sets the backend; releasing restores the replaced kernels and the previous backend.
 * Backend packages (and their wasm binary) are loaded once per process and stay registered: a module import cannot be
 * undone, and a later build reuses them.
 *
 * One engine per process: TF.js computes on one global backend, so every engine layer goes through a
 * process-wide registry. Building a layer while the same engine is active shares it (reference counted: the engine is
 * released, and the previous backend restored, when its last user releases it); building a different one fails with
 * `EngineConflict`, naming the active engine. `auto` is resolved to `webgpu`, `wasm-native` or `wasm` before it is compared.
 * `layerActive` shares whichever engine is active (`EngineNotActive` when none is). Options (`importer`,
 * `nativeAddonPath`) only matter to the layer that actually starts the engine; a layer that shares ignores them.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { availableParallelism } from "node:os"
import {
  Engine,
  EngineConflict,
  type EngineError,
  EngineFacts,
  EngineGpuNotVisible,
  EngineInitFailed,
  type EngineName,
  EngineNativeAddonMissing,
  EngineNativeKernelsNotBuilt,
  EnginePackageNotInstalled,
  EngineSharedLibraryMissing
} from "../Engine.js"
import { probeWebGpu } from "../WebGpu.js"
import { fastReduceGradients, installGradients } from "../kernels/Gradients.js"
import { groupNormGradient, loadNativeAddon, nativeAddonPath, nativePatches } from "../kernels/Native.js"
import { cpuPatches, install, type KernelPatch, labels, wasmPatches } from "../kernels/Patches.js"
import { hasNativeAdamAll, nativeAdamAllPatches } from "../kernels/native/AdamAll.js"
import { conv2dBiasGradient, nativeConv2dBiasPatches } from "../kernels/native/Conv2dBias.js"
import { hasNativeEmaAll, nativeEmaAllPatches } from "../kernels/native/EmaAll.js"
import { denseGradient, hasNativeDense, nativeDensePatches } from "../kernels/native/Dense.js"
import { hasNativeGradientStatistics, nativeGradientStatisticsPatches } from "../kernels/native/GradientStatistics.js"
import { installSharedClone } from "../SharedClone.js"
import { wasmFusedGradients, wasmFusedPatches } from "../kernels/Wasm.js"

/**
 * Loads a module by name. The default is the real dynamic `import()`; tests inject fakes to reach every failure branch.
 *
 * @since 0.1.0
 * @category models
 */
export type Importer = (specifier: string) => Promise<unknown>

/**
 * The real dynamic import (the specifier is a variable, so bundlers and tsc never resolve the optional peers).
 *
 * @since 0.1.0
 * @category constructors
 */
export const dynamicImport: Importer = (specifier) => import(specifier)

/**
 * Options of the layer constructors.
 *
 * @since 0.1.0
 * @category models
 */
export interface EngineOptions {
  readonly importer?: Importer
  /** Where `wasm-native` loads its addon from (default: `nativeAddonPath()`). */
  readonly nativeAddonPath?: string
  /** `webgpu`: accept a software (fallback) adapter (default: `SID_WEBGPU_SOFTWARE=1`). */
  readonly allowSoftwareGpu?: boolean
  /**
   * `wasm`: install the engine's JavaScript kernels (docs/engines.md §3.5; default true, false with
   * `SID_WASM_KERNELS=stock`). False leaves the stock wasm kernels and the wasm patches only, for A/B measurements.
   */
  readonly wasmKernels?: boolean
}

/**
 * The package each engine loads.
 *
 * @since 0.1.0
 * @category constants
 */
export const packageName: Record<EngineName, string> = {
  "wasm": "@tensorflow/tfjs-backend-wasm",
  "wasm-native": "@tensorflow/tfjs-backend-wasm",
  "auto": "@tensorflow/tfjs-backend-wasm",
  "cpu": "@tensorflow/tfjs",
  "tfjs-node": "@tensorflow/tfjs-node",
  "tfjs-node-gpu": "@tensorflow/tfjs-node-gpu",
  "webgpu": "webgpu"
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")

const errorText = (cause: unknown): string => {
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code
    return `${typeof code === "string" ? `${code}: ` : ""}${cause.message}`
  }
  return String(cause)
}

const sharedLibrary = /\b((?:lib[\w+-]+|[\w+-]+\.framework\/[\w+-]+)(?:\.so(?:\.[\d]+)*|\.dylib)|[\w+-]+\.dll)\b/

/**
 * Maps a failure to load `pkg` to a typed error: addon missing, shared library not loadable, package not installed
 * (Node's "Cannot find package 'pkg'", or Vite's "Could not resolve \"pkg\"" under vitest), else a generic init
 * failure (docs/engines.md §2.2, §7). A missing dependency *of* an installed package is an init failure, not "not
 * installed".
 *
 * @since 0.1.0
 * @category errors
 */
export const classifyLoadError = (engine: EngineName, pkg: string, cause: unknown): EngineError => {
  const text = errorText(cause)
  if (/tfjs_binding\.node/.test(text)) return new EngineNativeAddonMissing({ engine, packageName: pkg, cause })
  const lib = sharedLibrary.exec(text)
  if (lib !== null || /cannot open shared object file|dlopen|Library not loaded/i.test(text)) {
    return new EngineSharedLibraryMissing({ engine, packageName: pkg, library: lib?.[1] ?? "unknown", cause })
  }
  const name = escapeRegExp(pkg)
  const notFound = new RegExp(
    `(Cannot find (package|module) ['"]${name}(/[^'"]*)?['"])|(Could not resolve ['"]${name}['"])|` +
      `(Failed to (load|resolve) (url|import) ['"]?${name}(['"\\s(]|$))`
  )
  if (notFound.test(text)) return new EnginePackageNotInstalled({ engine, packageName: pkg, cause })
  return new EngineInitFailed({ engine, detail: `loading ${pkg} failed: ${text.split("\n")[0]}`, cause })
}

const load = (engine: EngineName, importer: Importer) =>
  Effect.tryPromise({
    try: () => importer(packageName[engine]),
    catch: (cause) => classifyLoadError(engine, packageName[engine], cause)
  })

const initFailed = (engine: EngineName, detail: string) => (cause: unknown) =>
  new EngineInitFailed({ engine, detail: `${detail}: ${errorText(cause).split("\n")[0]}`, cause })

/** Remembers the backend in use and restores it when the scope closes (if it is still registered). */
const keepBackend = Effect.acquireRelease(
  Effect.sync(() => (tf.getBackend() as string | null | undefined) ?? undefined),
  (previous) =>
    previous === undefined || tf.getBackend() === previous || tf.findBackendFactory(previous) == null
      ? Effect.void
      : Effect.tryPromise(() => tf.setBackend(previous)).pipe(
        Effect.catchAll((error) => Effect.logWarning(`could not restore TF.js backend "${previous}"`, error))
      )
)

const patch = (engine: EngineName, patches: ReadonlyArray<KernelPatch>) =>
  Effect.acquireRelease(
    Effect.try({ try: () => install(patches), catch: initFailed(engine, "installing kernel patches failed") }),
    (restore) => Effect.sync(restore)
  )

const useBackend = (engine: EngineName, tfns: typeof tf, backend: string) =>
  Effect.tryPromise({
    try: () => {
      tf.env().set("PROD", true)
      return tfns.setBackend(backend)
    },
    catch: initFailed(engine, `tf.setBackend("${backend}") threw`)
  }).pipe(
    Effect.filterOrFail(
      (ok) => ok,
      (ok) =>
        new EngineInitFailed({
          engine,
          detail: `tf.setBackend("${backend}") returned false (TF.js logs the reason as a warning)`,
          cause: ok
        })
    ),
    Effect.zipRight(Effect.tryPromise({ try: () => tfns.ready(), catch: initFailed(engine, "tf.ready() failed") }))
  )

const looksLikeTf = (mod: unknown): mod is typeof tf =>
  typeof mod === "object" && mod !== null && typeof (mod as { setBackend?: unknown }).setBackend === "function" &&
  typeof (mod as { backend?: unknown }).backend === "function" && typeof (mod as { ready?: unknown }).ready === "function"

/**
 * What `auto` chooses here and why, in words (for the start of a run): `webgpu` on a hardware WebGPU adapter, else
 * `wasm-native` where the native addon loads, else `wasm`, with the reason the addon did not load and how to build it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const explainAuto = (
  options?: EngineOptions
): Effect.Effect<{ readonly name: Exclude<EngineName, "auto">; readonly reason: string }> =>
  Effect.flatMap(Effect.promise(() => probeWebGpu({ hardwareOnly: true })), (probe) =>
    probe._tag === "Adapter" && !probe.report.isFallbackAdapter
      ? Effect.succeed({ name: "webgpu" as const, reason: `a hardware WebGPU adapter exists: ${probe.report.summary}` })
      : explainCpuAuto(options))

const explainCpuAuto = (
  options?: EngineOptions
): Effect.Effect<{ readonly name: Exclude<EngineName, "auto">; readonly reason: string }> =>
  Effect.sync(() => {
    try {
      loadNativeAddon(options?.nativeAddonPath ?? nativeAddonPath())
      return { name: "wasm-native" as const, reason: "the native CPU kernels are built" }
    } catch (e) {
      const why = (e instanceof Error ? e.message : String(e)).split("\n")[0]!.slice(0, 120)
      return {
        name: "wasm" as const,
        reason: `the native CPU kernels are not built (${why}); for 5-8x faster CPU training: apt-get install g++ make ` +
          "python3 libopenblas-dev libdnnl-dev && npm run build:native"
      }
    }
  })

/**
 * The wasm engine (default): `@tensorflow/tfjs-backend-wasm` (XNNPACK, SIMD, one thread in Node) with the training
 * patches of docs/engines.md §3.2 (`Conv2DBackpropFilter`, fast stride-1 `Conv2DBackpropInput`, cpu delegates for
 * depthwise
 * gradients and `UnsortedSegmentSum`, fixed `ResizeNearestNeighborGrad`).
 */
export const buildWasm = (options?: EngineOptions): Layer.Layer<Engine, EngineError> =>
  Layer.scoped(
    Engine,
    Effect.gen(function*() {
      yield* keepBackend
      const mod = yield* load("wasm", options?.importer ?? dynamicImport)
      yield* patch("wasm", wasmPatches)
      const own = options?.wasmKernels ?? process.env["SID_WASM_KERNELS"] !== "stock"
      if (own) {
        yield* patch("wasm", wasmFusedPatches)
        yield* Effect.acquireRelease(Effect.sync(() => installGradients(wasmFusedGradients)), (restore) => Effect.sync(restore))
        yield* Effect.acquireRelease(Effect.sync(() => installSharedClone("wasm")), (restore) => Effect.sync(restore))
      }
      yield* useBackend("wasm", tf, "wasm")
      const simd = yield* Effect.tryPromise({
        try: () => tf.env().getAsync("WASM_HAS_SIMD_SUPPORT"),
        catch: initFailed("wasm", "reading WASM_HAS_SIMD_SUPPORT failed")
      })
      const getThreadsCount = (mod as { getThreadsCount?: unknown } | null)?.getThreadsCount
      const threads = typeof getThreadsCount === "function" ? Number(getThreadsCount()) : 1
      return Engine.of({
        tf,
        name: "wasm",
        backend: "wasm",
        facts: new EngineFacts({
          simd: simd === true,
          threads: Math.max(1, threads),
          gpu: false,
          patchedKernels: [...labels(wasmPatches), ...(own ? labels(wasmFusedPatches) : [])],
          tfjsVersion: tf.version_core
        })
      })
    })
  )

/**
 * The wasm engine with the optional native kernels on top of its patches: convolution forward and both
 * gradients (oneDNN, or OpenBLAS im2col), batched matrix products, broadcast elementwise ops, sums and means, split /
 * concat and the nearest-neighbour resize gradient run by the addon in `native/` on all cores, directly on the wasm
 * heap; `Sum` / `Mean` gradients broadcast with a backend kernel instead of a JavaScript-filled `ones` tensor. Fails
 * with `EngineNativeKernelsNotBuilt` (before touching the TF.js backend) when the addon is not built.
 */
export const buildWasmNative = (options?: EngineOptions): Layer.Layer<Engine, EngineError> =>
  Layer.scoped(
    Engine,
    Effect.gen(function*() {
      const path = options?.nativeAddonPath ?? nativeAddonPath()
      const addon = yield* Effect.try({
        try: () => loadNativeAddon(path),
        catch: (cause) => new EngineNativeKernelsNotBuilt({ engine: "wasm-native", path, cause })
      })
      yield* keepBackend
      yield* load("wasm-native", options?.importer ?? dynamicImport)
      yield* patch("wasm-native", wasmPatches)
      const native = [
        ...nativePatches(addon),
        ...(hasNativeDense(addon) ? nativeDensePatches(addon) : []),
        ...(hasNativeGradientStatistics(addon) ? nativeGradientStatisticsPatches(addon) : []),
        ...(hasNativeAdamAll(addon) ? nativeAdamAllPatches(addon) : []),
        ...(hasNativeEmaAll(addon) ? nativeEmaAllPatches(addon) : []),
        ...nativeConv2dBiasPatches(addon)
      ]
      yield* patch("wasm-native", native)
      yield* Effect.acquireRelease(
        Effect.sync(() => installGradients([...fastReduceGradients, groupNormGradient, denseGradient, conv2dBiasGradient])),
        (restore) => Effect.sync(restore)
      )
      yield* Effect.acquireRelease(Effect.sync(() => installSharedClone("wasm")), (restore) => Effect.sync(restore))
      yield* useBackend("wasm-native", tf, "wasm")
      const simd = yield* Effect.tryPromise({
        try: () => tf.env().getAsync("WASM_HAS_SIMD_SUPPORT"),
        catch: initFailed("wasm-native", "reading WASM_HAS_SIMD_SUPPORT failed")
      })
      return Engine.of({
        tf,
        name: "wasm-native",
        backend: "wasm",
        facts: new EngineFacts({
          simd: simd === true,
          threads: Math.max(1, addon.threads()),
          gpu: false,
          patchedKernels: [...labels(wasmPatches), ...labels(native)],
          tfjsVersion: tf.version_core
        })
      })
    })
  )

/**
 * The pure-JS cpu engine: a slow reference for tests (docs/engines.md §1), with the fixed `ResizeNearestNeighborGrad`.
 */
export const buildCpu = (_options?: EngineOptions): Layer.Layer<Engine, EngineError> =>
  Layer.scoped(
    Engine,
    Effect.gen(function*() {
      yield* keepBackend
      yield* patch("cpu", cpuPatches)
      yield* useBackend("cpu", tf, "cpu")
      return Engine.of({
        tf,
        name: "cpu",
        backend: "cpu",
        facts: new EngineFacts({
          simd: false,
          threads: 1,
          gpu: false,
          patchedKernels: labels(cpuPatches),
          tfjsVersion: tf.version_core
        })
      })
    })
  )

export const buildNative = (engine: "tfjs-node" | "tfjs-node-gpu", options?: EngineOptions): Layer.Layer<Engine, EngineError> =>
  Layer.scoped(
    Engine,
    Effect.gen(function*() {
      const pkg = packageName[engine]
      yield* keepBackend
      const mod = yield* load(engine, options?.importer ?? dynamicImport)
      if (!looksLikeTf(mod)) {
        return yield* new EngineInitFailed({
          engine,
          detail: `${pkg} loaded but does not export the TF.js API (setBackend, backend, ready)`,
          cause: mod
        })
      }
      yield* useBackend(engine, mod, "tensorflow")
      const backend = yield* Effect.try({ try: () => mod.backend(), catch: initFailed(engine, "tf.backend() threw") })
      const gpu = (backend as { isUsingGpuDevice?: unknown }).isUsingGpuDevice === true
      if (engine === "tfjs-node-gpu" && !gpu) return yield* new EngineGpuNotVisible({ engine, packageName: pkg })
      const version = (mod as { version_core?: unknown }).version_core
      return Engine.of({
        tf: mod,
        name: engine,
        backend: "tensorflow",
        facts: new EngineFacts({
          simd: true,
          threads: Math.max(1, availableParallelism()),
          gpu,
          patchedKernels: [],
          tfjsVersion: typeof version === "string" ? version : tf.version_core
        })
      })
    })
  )

// ---------------------------------------------------------------------------------------------------------------
// One engine per process. TF.js computes on one global backend, so the engine layers share a registry:
// the first layer builds the engine in a scope of its own; a layer asking for the same (resolved) engine while it is
// active shares it; a different engine is refused with EngineConflict; the last release closes the engine's scope,
// which restores the kernels and the backend that were in use before it. A semaphore serialises builds and releases,
// so concurrent programs never initialise a backend twice at the same time (TF.js then answers `false`).
// The registry lives on `globalThis`, so two copies of this module in one process (sources and a build) share it too.

interface ActiveEngine {
  readonly name: EngineName
  readonly service: Engine["Type"]
  readonly scope: Scope.CloseableScope
  users: number
}

interface Registry {
  active: ActiveEngine | undefined
  readonly lock: Effect.Semaphore
}

const registryKey = Symbol.for("sid-ts/EngineRegistry")

export const registry: Registry = (() => {
  const holder = globalThis as { [registryKey]?: Registry }
  return holder[registryKey] ??= { active: undefined, lock: Effect.unsafeMakeSemaphore(1) }
})()

export const locked = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> => registry.lock.withPermits(1)(effect)

/** Takes one more reference on the active engine. */
export const retain = (entry: ActiveEngine): ActiveEngine => {
  entry.users += 1
  return entry
}

/** Drops one reference; the last one closes the engine's scope (kernels and previous backend restored). */
export const release = (entry: ActiveEngine): Effect.Effect<void> =>
  locked(Effect.suspend(() => {
    entry.users -= 1
    if (entry.users > 0) return Effect.void
    if (registry.active === entry) registry.active = undefined
    return Scope.close(entry.scope, Exit.void)
  }))

/** Builds `build` as the process's engine `name`, or shares it when it is already active. */
export const acquire = (name: EngineName, build: Layer.Layer<Engine, EngineError>): Effect.Effect<ActiveEngine, EngineError> =>
  locked(Effect.suspend(() => {
    const active = registry.active
    if (active !== undefined) {
      return active.name === name
        ? Effect.succeed(retain(active))
        : Effect.fail(new EngineConflict({ requested: name, active: active.name, users: active.users }))
    }
    return Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(build, scope).pipe(
        Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : Scope.close(scope, exit))
      )
      const entry: ActiveEngine = { name, service: Context.get(context, Engine), scope, users: 1 }
      registry.active = entry
      return entry
    })
  }))
