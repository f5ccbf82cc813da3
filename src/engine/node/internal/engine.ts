/**
 * The Node-bound engine builders (docs/engines.md §2, §7, §8): `wasm-native` (the wasm engine with the native addon's
 * kernels), the optional native peers `tfjs-node` / `tfjs-node-gpu`, and what `auto` chooses here. They reuse the
 * portable helpers of `src/engine/internal/engine.ts` (backend loading, kernel patches, the registry).
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer } from "effect"
import { availableParallelism } from "node:os"
import {
  Engine,
  type EngineError,
  EngineFacts,
  EngineGpuNotVisible,
  EngineInitFailed,
  type EngineName,
  EngineNativeKernelsNotBuilt
} from "../../Engine.js"
import { keepBackend } from "../../BackendScope.js"
import {
  buildWasm,
  dynamicImport,
  type EngineOptions,
  initFailed,
  load,
  looksLikeTf,
  packageName,
  patch,
  useBackend
} from "../../internal/engine.js"
import { dispatchSavingGradients, installGradients } from "../../kernels/Gradients.js"
import { groupNormGradient, loadNativeAddon, nativeAddonPath, nativePatches } from "../../kernels/Native.js"
import { labels, wasmPatches } from "../../kernels/Patches.js"
import { hasNativeAdamAll, nativeAdamAllPatches } from "../../kernels/native/AdamAll.js"
import { conv2dBiasGradient, nativeConv2dBiasPatches } from "../../kernels/native/Conv2dBias.js"
import { hasNativeEmaAll, nativeEmaAllPatches } from "../../kernels/native/EmaAll.js"
import { denseGradient, hasNativeDense, nativeDensePatches } from "../../kernels/native/Dense.js"
import { hasNativeGradientStatistics, nativeGradientStatisticsPatches } from "../../kernels/native/GradientStatistics.js"
import { installSharedClone } from "../../SharedClone.js"
import { probeWebGpu } from "../WebGpu.js"
import { wasmThreadsWanted, withWasmThreads } from "./wasmThreads.js"

/**
 * The portable wasm engine started with XNNPACK's threads (`wasmThreads.ts`): `options.wasmThreads`, else
 * `SID_WASM_THREADS`, else the cores idle at its start (`idleCores`, `busyCoresNow`: at least 1, at most 4).
 */
export const buildWasmThreaded = (options?: EngineOptions): Layer.Layer<Engine, EngineError> =>
  buildWasm(options, (init, mod) =>
    Effect.flatMap(wasmThreadsWanted(options?.wasmThreads), (threads) => withWasmThreads(threads, mod)(init)))

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
        Effect.sync(() => installGradients([...dispatchSavingGradients, groupNormGradient, denseGradient, conv2dBiasGradient])),
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
