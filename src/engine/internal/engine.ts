/**
 * The portable engine layers (docs/engines.md §1, §2): `wasm` (default) and `cpu` (reference for tests), with what
 * every engine layer shares: loading a backend package, patching kernels, the process-wide registry. The Node-bound
 * engines (`wasm-native`, `tfjs-node`, `tfjs-node-gpu`, Dawn's `webgpu`, `auto`) are built in
 * `src/engine/node/internal/engine.ts` on these helpers.
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
import {
  Engine,
  EngineConflict,
  type EngineError,
  EngineFacts,
  EngineInitFailed,
  type EngineName,
  EngineNativeAddonMissing,
  EnginePackageNotInstalled,
  EngineSharedLibraryMissing
} from "../Engine.js"
import { keepBackend } from "../BackendScope.js"
import { installGradients } from "../kernels/Gradients.js"
import { cpuPatches, install, type KernelPatch, labels, wasmPatches } from "../kernels/Patches.js"
import { wasmFusedGradients, wasmFusedPatches } from "../kernels/Wasm.js"
import { installSharedClone } from "../SharedClone.js"

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
   * `wasm`: install the engine's own kernels (docs/engines.md §3.5; default true, false with
   * `SID_WASM_KERNELS=stock`). False leaves the stock wasm kernels and the wasm patches only, for A/B measurements.
   */
  readonly wasmKernels?: boolean
  /**
   * `wasm` in Node: XNNPACK's thread count (default `SID_WASM_THREADS`, else the cores idle at its start, 1–4;
   * docs/engines.md §2.1). Fixed by the first wasm engine a process starts.
   */
  readonly wasmThreads?: number
}

/** `SID_WASM_KERNELS` where there is a process environment (Node), else undefined (a browser). */
const wasmKernelsVariable = (): string | undefined =>
  (globalThis as { readonly process?: { readonly env?: Record<string, string | undefined> } }).process?.env?.["SID_WASM_KERNELS"]

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

export const errorText = (cause: unknown): string => {
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

export const load = (engine: EngineName, importer: Importer) =>
  Effect.tryPromise({
    try: () => importer(packageName[engine]),
    catch: (cause) => classifyLoadError(engine, packageName[engine], cause)
  })

export const initFailed = (engine: EngineName, detail: string) => (cause: unknown) =>
  new EngineInitFailed({ engine, detail: `${detail}: ${errorText(cause).split("\n")[0]}`, cause })

export const patch = (engine: EngineName, patches: ReadonlyArray<KernelPatch>) =>
  Effect.acquireRelease(
    Effect.try({ try: () => install(patches), catch: initFailed(engine, "installing kernel patches failed") }),
    (restore) => Effect.sync(restore)
  )

export const useBackend = (engine: EngineName, tfns: typeof tf, backend: string) =>
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

export const looksLikeTf = (mod: unknown): mod is typeof tf =>
  typeof mod === "object" && mod !== null && typeof (mod as { setBackend?: unknown }).setBackend === "function" &&
  typeof (mod as { backend?: unknown }).backend === "function" && typeof (mod as { ready?: unknown }).ready === "function"

/**
 * Wraps a backend's initialisation (`tf.setBackend` and `tf.ready()`), given the loaded backend package: how a
 * platform prepares what must be set before the backend starts (Node: XNNPACK's threads, `engine/node/internal`).
 */
export type BackendInit = (
  init: Effect.Effect<void, EngineError>,
  mod: unknown
) => Effect.Effect<void, EngineError>

/**
 * The wasm engine (default): `@tensorflow/tfjs-backend-wasm` (XNNPACK, SIMD; threads as `initWith` prepares them) with the training
 * patches of docs/engines.md §3.2 (`Conv2DBackpropFilter`, fast stride-1 `Conv2DBackpropInput`, cpu delegates for
 * depthwise
 * gradients and `UnsortedSegmentSum`, fixed `ResizeNearestNeighborGrad`).
 */
export const buildWasm = (options?: EngineOptions, initWith: BackendInit = (init) => init): Layer.Layer<Engine, EngineError> =>
  Layer.scoped(
    Engine,
    Effect.gen(function*() {
      yield* keepBackend
      const mod = yield* load("wasm", options?.importer ?? dynamicImport)
      yield* patch("wasm", wasmPatches)
      const own = options?.wasmKernels ?? wasmKernelsVariable() !== "stock"
      if (own) {
        yield* patch("wasm", wasmFusedPatches)
        yield* Effect.acquireRelease(Effect.sync(() => installGradients(wasmFusedGradients)), (restore) => Effect.sync(restore))
        yield* Effect.acquireRelease(Effect.sync(() => installSharedClone("wasm")), (restore) => Effect.sync(restore))
      }
      yield* initWith(useBackend("wasm", tf, "wasm"), mod)
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

/** The engine layer `name` built by `build`, through the process-wide registry. */
export const shared = (name: EngineName, build: Layer.Layer<Engine, EngineError>): Layer.Layer<Engine, EngineError> =>
  Layer.scoped(Engine, Effect.map(Effect.acquireRelease(acquire(name, build), release), (entry) => entry.service))
