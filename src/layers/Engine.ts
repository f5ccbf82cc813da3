/**
 * Engine layers (tensor-engine note §6, §7): `wasm` (default), `cpu` (reference for tests), and the optional native
 * engines `tfjs-node` / `tfjs-node-gpu`, loaded by dynamic `import()` only when chosen.
 *
 * Each layer is scoped: acquiring remembers the current TF.js backend, loads the backend package, installs the
 * engine's kernel patches and sets the backend; releasing restores the replaced kernels and the previous backend.
 * Backend packages (and their wasm binary) are loaded once per process and stay registered: a module import cannot be
 * undone, and a later build reuses them.
 *
 * One engine per process (issue 17 §5): TF.js computes on one global backend, so every engine layer goes through a
 * process-wide registry. Building a layer while the same engine is active shares it (reference counted: the engine is
 * released, and the previous backend restored, when its last user releases it); building a different one fails with
 * `EngineConflict`, naming the active engine. `auto` is resolved to `wasm-native` or `wasm` before it is compared.
 * `layerActive` shares whichever engine is active (`EngineNotActive` when none is). Options (`importer`,
 * `nativeAddonPath`) only matter to the layer that actually starts the engine; a layer that shares ignores them.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { type ConfigError, Context, Effect, Exit, Layer, Option, Scope } from "effect"
import { availableParallelism } from "node:os"
import {
  Engine,
  EngineConflict,
  type EngineError,
  EngineFacts,
  EngineGpuNotVisible,
  EngineInitFailed,
  type EngineName,
  EngineNameConfig,
  EngineNativeAddonMissing,
  EngineNativeKernelsNotBuilt,
  EngineNotActive,
  EnginePackageNotInstalled,
  EngineSharedLibraryMissing
} from "../services/Engine.js"
import { fastReduceGradients, installGradients } from "./kernels/Gradients.js"
import { hasNativeAdamAll, nativeAdamAllPatches } from "../engine/kernels/NativeAdamAll.js"
import { conv2dBiasGradient, nativeConv2dBiasPatches } from "../engine/kernels/NativeConv2dBias.js"
import { hasNativeEmaAll, nativeEmaAllPatches } from "../engine/kernels/NativeEmaAll.js"
import { denseGradient, hasNativeDense, nativeDensePatches } from "../engine/kernels/NativeDense.js"
import { hasNativeGradientStatistics, nativeGradientStatisticsPatches } from "../engine/kernels/NativeGradientStatistics.js"
import { installSharedClone } from "../engine/SharedClone.js"
import { groupNormGradient, loadNativeAddon, nativeAddonPath, nativePatches } from "./kernels/Native.js"
import { cpuPatches, install, type KernelPatch, labels, wasmPatches } from "./kernels/Patches.js"

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
  "tfjs-node-gpu": "@tensorflow/tfjs-node-gpu"
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
 * failure (note §1, §5, §7). A missing dependency *of* an installed package is an init failure, not "not installed".
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
 * What `auto` chooses here and why, in words (for the start of a run): `wasm-native` where the native addon loads,
 * else `wasm`, with the reason the addon did not load and how to build it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const explainAuto = (
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
 * patches of note §2 (`Conv2DBackpropFilter`, fast stride-1 `Conv2DBackpropInput`, cpu delegates for depthwise
 * gradients and `UnsortedSegmentSum`, fixed `ResizeNearestNeighborGrad`).
 */
const buildWasm = (options?: EngineOptions): Layer.Layer<Engine, EngineError> =>
  Layer.scoped(
    Engine,
    Effect.gen(function*() {
      yield* keepBackend
      const mod = yield* load("wasm", options?.importer ?? dynamicImport)
      yield* patch("wasm", wasmPatches)
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
          patchedKernels: labels(wasmPatches),
          tfjsVersion: tf.version_core
        })
      })
    })
  )

/**
 * The wasm engine with the optional native kernels of issue 6 on top of its patches: convolution forward and both
 * gradients (oneDNN, or OpenBLAS im2col), batched matrix products, broadcast elementwise ops, sums and means, split /
 * concat and the nearest-neighbour resize gradient run by the addon in `native/` on all cores, directly on the wasm
 * heap; `Sum` / `Mean` gradients broadcast with a backend kernel instead of a JavaScript-filled `ones` tensor. Fails
 * with `EngineNativeKernelsNotBuilt` (before touching the TF.js backend) when the addon is not built.
 */
const buildWasmNative = (options?: EngineOptions): Layer.Layer<Engine, EngineError> =>
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
 * The pure-JS cpu engine: a slow reference for tests (note §0), with the fixed `ResizeNearestNeighborGrad`.
 */
const buildCpu = (_options?: EngineOptions): Layer.Layer<Engine, EngineError> =>
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

const buildNative = (engine: "tfjs-node" | "tfjs-node-gpu", options?: EngineOptions): Layer.Layer<Engine, EngineError> =>
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
// One engine per process (issue 17 §5). TF.js computes on one global backend, so the engine layers share a registry:
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

const registry: Registry = (() => {
  const holder = globalThis as { [registryKey]?: Registry }
  return holder[registryKey] ??= { active: undefined, lock: Effect.unsafeMakeSemaphore(1) }
})()

const locked = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> => registry.lock.withPermits(1)(effect)

/** Takes one more reference on the active engine. */
const retain = (entry: ActiveEngine): ActiveEngine => {
  entry.users += 1
  return entry
}

/** Drops one reference; the last one closes the engine's scope (kernels and previous backend restored). */
const release = (entry: ActiveEngine): Effect.Effect<void> =>
  locked(Effect.suspend(() => {
    entry.users -= 1
    if (entry.users > 0) return Effect.void
    if (registry.active === entry) registry.active = undefined
    return Scope.close(entry.scope, Exit.void)
  }))

/** Builds `build` as the process's engine `name`, or shares it when it is already active. */
const acquire = (name: EngineName, build: Layer.Layer<Engine, EngineError>): Effect.Effect<ActiveEngine, EngineError> =>
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

/** The engine layer `name` built by `build`, through the process-wide registry. */
const shared = (name: EngineName, build: Layer.Layer<Engine, EngineError>): Layer.Layer<Engine, EngineError> =>
  Layer.scoped(Engine, Effect.map(Effect.acquireRelease(acquire(name, build), release), (entry) => entry.service))

/**
 * The engine already active in this process, shared (reference counted) for as long as the layer is in use; fails with
 * `EngineNotActive` when there is none. For tests and for code that runs inside a program that set up its engine.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerActive: Layer.Layer<Engine, EngineNotActive> = Layer.scoped(
  Engine,
  Effect.map(
    Effect.acquireRelease(
      locked(Effect.suspend(() =>
        registry.active === undefined ? Effect.fail(new EngineNotActive()) : Effect.succeed(retain(registry.active))
      )),
      release
    ),
    (entry) => entry.service
  )
)

/**
 * The engine active in this process and how many layers hold it, if any.
 *
 * @since 0.1.0
 * @category getters
 */
export const activeEngine: Effect.Effect<Option.Option<{ readonly name: EngineName; readonly users: number }>> =
  Effect.sync(() =>
    Option.map(Option.fromNullable(registry.active), (entry) => ({ name: entry.name, users: entry.users }))
  )

/**
 * The concrete engine `name` stands for: `auto` is `wasm-native` where its addon is built and loads, else `wasm`;
 * every other name is itself. Sharing an active engine compares resolved names.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolveEngineName = (
  name: EngineName,
  options?: EngineOptions
): Effect.Effect<Exclude<EngineName, "auto">> =>
  name !== "auto" ? Effect.succeed(name) : Effect.sync(() => {
    try {
      loadNativeAddon(options?.nativeAddonPath ?? nativeAddonPath())
      return "wasm-native" as const
    } catch {
      return "wasm" as const
    }
  })

/**
 * The wasm engine (default): `@tensorflow/tfjs-backend-wasm` (XNNPACK, SIMD, one thread in Node) with the training
 * patches of note §2. Shares the process's engine when `wasm` is active; fails with `EngineConflict` when another is.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWasm = (options?: EngineOptions): Layer.Layer<Engine, EngineError> => shared("wasm", buildWasm(options))

/**
 * The wasm engine with the native kernels of issue 6 (see the module docs); fails with `EngineNativeKernelsNotBuilt`
 * (before touching the TF.js backend) when the addon is not built, with `EngineConflict` when another engine is active.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWasmNative = (options?: EngineOptions): Layer.Layer<Engine, EngineError> =>
  shared("wasm-native", buildWasmNative(options))

/**
 * `wasm-native` where its addon is built and loads, else the plain `wasm` engine ({@link resolveEngineName}). The
 * service's `name` tells which one runs; sharing and conflicts are decided on that resolved name.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeAuto = (options?: EngineOptions): Layer.Layer<Engine, EngineError> =>
  Layer.unwrapEffect(
    Effect.map(resolveEngineName("auto", options), (name) => name === "wasm-native" ? makeWasmNative(options) : makeWasm(options))
  )

/**
 * The pure-JS cpu engine: a slow reference for tests (note §0), with the fixed `ResizeNearestNeighborGrad`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeCpu = (options?: EngineOptions): Layer.Layer<Engine, EngineError> => shared("cpu", buildCpu(options))

/**
 * The native CPU engine from the optional peer `@tensorflow/tfjs-node` (libtensorflow 2.9.1; note §1, §5).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeTfjsNode = (options?: EngineOptions): Layer.Layer<Engine, EngineError> =>
  shared("tfjs-node", buildNative("tfjs-node", options))

/**
 * The native GPU engine from the optional peer `@tensorflow/tfjs-node-gpu` (CUDA 11.2 + cuDNN 8.1; note §5). Fails
 * with `EngineGpuNotVisible` rather than running on the CPU when TensorFlow sees no GPU.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeTfjsNodeGpu = (options?: EngineOptions): Layer.Layer<Engine, EngineError> =>
  shared("tfjs-node-gpu", buildNative("tfjs-node-gpu", options))

/**
 * The default wasm engine layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const wasm: Layer.Layer<Engine, EngineError> = makeWasm()

/**
 * The wasm engine with native kernels (issue 6); fails with `EngineNativeKernelsNotBuilt` where the addon is not built.
 *
 * @since 0.1.0
 * @category layers
 */
export const wasmNative: Layer.Layer<Engine, EngineError> = makeWasmNative()

/**
 * `wasm-native` where built, else `wasm`.
 *
 * @since 0.1.0
 * @category layers
 */
export const auto: Layer.Layer<Engine, EngineError> = makeAuto()

/**
 * The cpu reference engine layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const cpu: Layer.Layer<Engine, EngineError> = makeCpu()

/**
 * The tfjs-node engine layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const tfjsNode: Layer.Layer<Engine, EngineError> = makeTfjsNode()

/**
 * The tfjs-node-gpu engine layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const tfjsNodeGpu: Layer.Layer<Engine, EngineError> = makeTfjsNodeGpu()

/**
 * The engine layer for `name`. Without options it returns the shared layer values above (layers memoize by reference).
 * Like every engine layer it shares the process's engine when `name` (resolved, for `auto`) is active, and fails with
 * `EngineConflict` when another engine is.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (name: EngineName, options?: EngineOptions): Layer.Layer<Engine, EngineError> => {
  switch (name) {
    case "wasm":
      return options === undefined ? wasm : makeWasm(options)
    case "wasm-native":
      return options === undefined ? wasmNative : makeWasmNative(options)
    case "auto":
      return options === undefined ? auto : makeAuto(options)
    case "cpu":
      return options === undefined ? cpu : makeCpu(options)
    case "tfjs-node":
      return options === undefined ? tfjsNode : makeTfjsNode(options)
    case "tfjs-node-gpu":
      return options === undefined ? tfjsNodeGpu : makeTfjsNodeGpu(options)
  }
}

/**
 * The engine named by the `SID_ENGINE` config (default `"auto"`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: Layer.Layer<Engine, EngineError | ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(EngineNameConfig, (name) => layer(name))
)
