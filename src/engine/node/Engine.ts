/**
 * The Node-bound engine layers: `wasm-native` (the wasm engine with the optional addon's kernels), `auto`, the
 * optional native peers `tfjs-node` / `tfjs-node-gpu`, and `webgpu` through Dawn (`WebGpu.ts`), with `layer(name)`
 * over every engine name and `layerConfig` (`SID_ENGINE`). Re-exports the portable `engine/Engine.ts` (the service,
 * its errors, `wasm`, `cpu`), so Node programs import this one module; web pages use the portable one
 * (docs/architecture.md, "Portable and Node-bound modules").
 *
 * @since 0.1.0
 */
import { type ConfigError, Effect, Layer } from "effect"
import { loadNativeAddon, nativeAddonPath } from "../kernels/Native.js"
import { type Engine, type EngineError, type EngineName, EngineNameConfig, cpu, makeCpu } from "../Engine.js"
import { type EngineOptions, shared } from "../internal/engine.js"
import { buildNative, buildWasmNative, buildWasmThreaded } from "./internal/engine.js"
import { buildWebGpu, probeWebGpu } from "./WebGpu.js"

export * from "../Engine.js"
export { explainAuto } from "./internal/engine.js"

/**
 * The concrete engine `name` stands for: `auto` is `webgpu` where a hardware (non-fallback) WebGPU adapter exists
 * (`probeWebGpu`, once per process), else `wasm-native` where its addon is built and loads, else `wasm`; every other
 * name is itself. Sharing an active engine compares resolved names.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolveEngineName = (
  name: EngineName,
  options?: EngineOptions
): Effect.Effect<Exclude<EngineName, "auto">> =>
  name !== "auto" ? Effect.succeed(name) : Effect.flatMap(
    Effect.promise(() => probeWebGpu({ hardwareOnly: true })),
    (probe) => probe._tag === "Adapter" && !probe.report.isFallbackAdapter ? Effect.succeed("webgpu" as const) : resolveCpu(options)
  )

const resolveCpu = (options?: EngineOptions): Effect.Effect<"wasm-native" | "wasm"> =>
  Effect.sync(() => {
    try {
      loadNativeAddon(options?.nativeAddonPath ?? nativeAddonPath())
      return "wasm-native" as const
    } catch {
      return "wasm" as const
    }
  })

/**
 * The wasm engine in Node: the portable one (`engine/Engine.ts`) with XNNPACK's threads, which TF.js leaves off in
 * Node (docs/engines.md §2.1): `options.wasmThreads`, else `SID_WASM_THREADS`, else the cores found idle at its start
 * (at least 1, at most 4). The thread count is fixed by the first wasm engine a process starts; results do not depend
 * on it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWasm = (options?: EngineOptions): Layer.Layer<Engine, EngineError> =>
  shared("wasm", buildWasmThreaded(options))

/**
 * The default wasm engine layer in Node (threaded, {@link makeWasm}).
 *
 * @since 0.1.0
 * @category layers
 */
export const wasm: Layer.Layer<Engine, EngineError> = makeWasm()

/**
 * The wasm engine with the native kernels (see the module docs); fails with `EngineNativeKernelsNotBuilt`
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
    Effect.map(resolveEngineName("auto", options), (name) =>
      name === "webgpu" ? makeWebGpu(options) : name === "wasm-native" ? makeWasmNative(options) : makeWasm(options))
  )

/**
 * The native CPU engine from the optional peer `@tensorflow/tfjs-node` (libtensorflow 2.9.1; docs/engines.md §2.2, §7).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeTfjsNode = (options?: EngineOptions): Layer.Layer<Engine, EngineError> =>
  shared("tfjs-node", buildNative("tfjs-node", options))

/**
 * The native GPU engine from the optional peer `@tensorflow/tfjs-node-gpu` (CUDA 11.2 + cuDNN 8.1; docs/engines.md
 * §7). Fails
 * with `EngineGpuNotVisible` rather than running on the CPU when TensorFlow sees no GPU.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeTfjsNodeGpu = (options?: EngineOptions): Layer.Layer<Engine, EngineError> =>
  shared("tfjs-node-gpu", buildNative("tfjs-node-gpu", options))

/**
 * The GPU engine through WebGPU (`engine/node/WebGpu.ts`): Dawn from the optional `webgpu` package and
 * `@tensorflow/tfjs-backend-webgpu`. Refuses a software adapter unless `allowSoftwareGpu` (or `SID_WEBGPU_SOFTWARE=1`).
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeWebGpu = (options?: EngineOptions): Layer.Layer<Engine, EngineError> =>
  shared(
    "webgpu",
    Layer.suspend(() =>
      buildWebGpu({
        ...(options?.importer === undefined ? {} : { importer: options.importer }),
        ...(options?.allowSoftwareGpu === undefined ? {} : { allowSoftware: options.allowSoftwareGpu })
      })
    )
  )

/**
 * The wasm engine with native kernels; fails with `EngineNativeKernelsNotBuilt` where the addon is not built.
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
 * The webgpu engine layer (software adapters refused unless `SID_WEBGPU_SOFTWARE=1`).
 *
 * @since 0.2.0
 * @category layers
 */
export const webgpu: Layer.Layer<Engine, EngineError> = makeWebGpu()

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
    case "webgpu":
      return options === undefined ? webgpu : makeWebGpu(options)
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
