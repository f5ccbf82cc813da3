/**
 * The tensor engine service: which TF.js namespace, backend and kernel patches the library computes with
 * (docs/engines.md §1, §2), its typed errors and its portable layers (`wasm`, `cpu`), which run in Node and in web
 * pages alike. The Node-bound engines (`wasm-native`, `auto`, `tfjs-node`, `tfjs-node-gpu`, and `webgpu` through Dawn)
 * are in `node/Engine.ts`, which re-exports this module. How an engine is loaded, patched and shared in a process is
 * in `internal/engine.ts`.
 *
 * @since 0.1.0
 */
import type * as Tf from "@tensorflow/tfjs"
import { Config, Context, Effect, Layer, Option, Schema } from "effect"
import { WebGpuAdapterReport } from "./WebGpuAdapter.js"
import type { WebGpuError } from "./WebGpuErrors.js"
import { buildCpu, buildWasm, type EngineOptions, locked, registry, release, retain, shared } from "./internal/engine.js"

export { classifyLoadError, dynamicImport, type EngineOptions, type Importer, packageName } from "./internal/engine.js"

/**
 * The selectable engines: `wasm` (default; XNNPACK SIMD, one thread, patched for training), `wasm-native` (the wasm
 * engine with its convolutions, matrix products and heavy elementwise kernels run by the optional addon in `native/`
 * on all cores), `auto` (`webgpu` on a hardware GPU adapter, else `wasm-native` where its addon is built, else
 * `wasm`), `cpu` (pure-JS reference for tests), the optional native peers `tfjs-node` / `tfjs-node-gpu` (docs/engines.md §2.2, §7), and `webgpu` (a GPU
 * through WebGPU: Dawn in Node from the optional `webgpu` package; `src/engine/node/WebGpu.ts`, docs/engines.md §8).
 *
 * @since 0.1.0
 * @category models
 */
export const EngineName = Schema.Literal("wasm", "wasm-native", "auto", "cpu", "tfjs-node", "tfjs-node-gpu", "webgpu").annotations({
  message: () => ({ message: "must be one of auto, wasm, wasm-native, webgpu, cpu, tfjs-node, tfjs-node-gpu", override: true })
})

/**
 * @since 0.1.0
 * @category models
 */
export type EngineName = typeof EngineName.Type

/**
 * Facts about a running engine.
 *
 * - `simd`: vector instructions in use (wasm: the SIMD binary was chosen; native TensorFlow: true; pure-JS cpu: false).
 * - `threads`: compute threads (wasm: XNNPACK's pool, which the Node engine module starts threaded, docs/engines.md
 * §2.1; native: TensorFlow's default intra-op pool).
 * - `gpu`: TensorFlow runs on a GPU (`isUsingGpuDevice`).
 * - `patchedKernels`: `backend/Kernel` entries this engine registered (docs/engines.md §3).
 * - `adapter`: the `webgpu` engine's adapter (vendor, architecture, description, fallback or not, limits).
 *
 * @since 0.1.0
 * @category models
 */
export class EngineFacts extends Schema.Class<EngineFacts>("EngineFacts")({
  simd: Schema.Boolean,
  threads: Schema.Int.pipe(Schema.positive()),
  gpu: Schema.Boolean,
  patchedKernels: Schema.Array(Schema.String),
  tfjsVersion: Schema.String,
  adapter: Schema.optional(WebGpuAdapterReport)
}) {}

/**
 * The service value: the `tf` namespace to compute with (for the native engines, the one the native package
 * re-exports), the engine's name, the TF.js backend name, and its facts.
 *
 * @since 0.1.0
 * @category models
 */
export interface EngineShape {
  readonly tf: typeof Tf
  readonly name: EngineName
  readonly backend: string
  readonly facts: EngineFacts
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Engine extends Context.Tag("sid-ts/Engine")<Engine, EngineShape>() {}

/**
 * `layer`, requiring the {@link Engine} service: for layers that create or own tensors, so that a program that builds
 * them without an engine does not compile. The engine itself is not used; requiring it is what makes the
 * backend explicit instead of TF.js's silent `cpu` default.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withEngine = <A, E, R>(layer: Layer.Layer<A, E, R>): Layer.Layer<A, E, R | Engine> =>
  Layer.unwrapEffect(Effect.as(Engine, layer))

/**
 * `effect`, requiring the {@link Engine} service: for effects that create tensors outside a layer (reading a teacher or
 * generator file, trainable weights), like {@link withEngine} for layers.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withEngineEffect = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R | Engine> =>
  Effect.zipRight(Engine, effect)

/**
 * The engine chosen through the environment: `SID_ENGINE` (default `"auto"`: `wasm-native` where its addon is built,
 * else `wasm`). A CLI flag can fall back to it with
 * `Options.withFallbackConfig(EngineNameConfig)`.
 *
 * @since 0.1.0
 * @category config
 */
export const EngineNameConfig: Config.Config<EngineName> = Schema.Config("SID_ENGINE", EngineName).pipe(
  Config.withDefault<EngineName>("auto")
)

const install = (_engine: EngineName, packageName: string): string =>
  packageName === "webgpu"
    ? `npm install webgpu@0.6.2 (an optional dependency of sid-ts: npm skips it where its prebuilt Dawn binary ` +
      `does not fit the platform or the install failed)`
    : packageName === "@tensorflow/tfjs-node-gpu"
    ? `npm install ${packageName}@4.22.0 (Linux x64 only; it downloads the libtensorflow 2.9.1 GPU build at install ` +
      `time and needs CUDA 11.2 + cuDNN 8.1 at run time)`
    : packageName === "@tensorflow/tfjs-node"
    ? `npm install ${packageName}@4.22.0 (its install script downloads libtensorflow 2.9.1, so it needs internet access)`
    : `npm install ${packageName}@4.22.0`

const describe = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause)).split("\n")[0]!

/**
 * The package an engine loads is not installed: the optional native peer of `tfjs-node` / `tfjs-node-gpu`
 * (docs/engines.md §2.2), or `@tensorflow/tfjs-backend-wasm` for `wasm`.
 *
 * @since 0.1.0
 * @category errors
 */
export class EnginePackageNotInstalled extends Schema.TaggedError<EnginePackageNotInstalled>()(
  "EnginePackageNotInstalled",
  { engine: EngineName, packageName: Schema.String, cause: Schema.Defect }
) {
  override get message(): string {
    return `The "${this.engine}" engine needs the package ${this.packageName}, which is not ` +
      `installed. Install it next to sid-ts with \`${install(this.engine, this.packageName)}\`, or choose another ` +
      `engine (SID_ENGINE=wasm).`
  }
}

/**
 * The native package is installed but its N-API addon `tfjs_binding.node` is missing (installed with
 * `--ignore-scripts`, or the prebuilt download failed; docs/engines.md §2.1).
 *
 * @since 0.1.0
 * @category errors
 */
export class EngineNativeAddonMissing extends Schema.TaggedError<EngineNativeAddonMissing>()(
  "EngineNativeAddonMissing",
  { engine: EngineName, packageName: Schema.String, cause: Schema.Defect }
) {
  override get message(): string {
    return `${this.packageName} is installed but its native addon (tfjs_binding.node) was not found, usually because ` +
      `it was installed with --ignore-scripts or its libtensorflow download failed. Fix: reinstall it with internet ` +
      `access (\`${install(this.engine, this.packageName)}\`) or run \`npm rebuild ${this.packageName} ` +
      `--build-addon-from-source\` (needs python3, make, g++). Original error: ${describe(this.cause)}`
  }
}

/**
 * A shared library the native addon links against could not be loaded (libtensorflow, or the CUDA 11.2 / cuDNN 8.1
 * runtime for the GPU build; docs/engines.md §7).
 *
 * @since 0.1.0
 * @category errors
 */
export class EngineSharedLibraryMissing extends Schema.TaggedError<EngineSharedLibraryMissing>()(
  "EngineSharedLibraryMissing",
  { engine: EngineName, packageName: Schema.String, library: Schema.String, cause: Schema.Defect }
) {
  override get message(): string {
    const fix = /cud|nvidia|cublas|cufft|curand|cusolver|cusparse/i.test(this.library)
      ? `tfjs-node-gpu 4.22 uses libtensorflow 2.9.1, which needs the CUDA 11.2 runtime (libcudart.so.11.0) and ` +
        `cuDNN 8.1 (libcudnn.so.8); install them (side by side with a newer CUDA if needed) and put their lib ` +
        `directories on LD_LIBRARY_PATH`
      : `libtensorflow (libtensorflow.so.2) ships in ${this.packageName}/deps/lib after a successful install; reinstall ` +
        `the package with internet access (\`${install(this.engine, this.packageName)}\`) or add the directory that ` +
        `holds it to LD_LIBRARY_PATH`
    return `${this.packageName} could not load the shared library ${this.library}. Fix: ${fix}. Original error: ` +
      describe(this.cause)
  }
}

/**
 * The GPU package loaded but TensorFlow reports no GPU (`isUsingGpuDevice` is false): the engine refuses to run
 * silently on the CPU (docs/engines.md §7).
 *
 * @since 0.1.0
 * @category errors
 */
export class EngineGpuNotVisible extends Schema.TaggedError<EngineGpuNotVisible>()(
  "EngineGpuNotVisible",
  { engine: EngineName, packageName: Schema.String }
) {
  override get message(): string {
    return `${this.packageName} loaded, but TensorFlow sees no GPU (backend.isUsingGpuDevice is false), so it would ` +
      `silently run on the CPU. Check that \`nvidia-smi\` sees the GPU and that the CUDA 11.2 runtime ` +
      `(libcudart.so.11.0) and cuDNN 8.1 (libcudnn.so.8) are on LD_LIBRARY_PATH (TensorFlow logs "Could not load ` +
      `dynamic library ..." when they are not; CUDA 12+ machines need the CUDA 11 libraries installed side by side). ` +
      `To run on the CPU on purpose, choose SID_ENGINE=tfjs-node or SID_ENGINE=wasm.`
  }
}

/**
 * The `wasm-native` engine's addon (`native/build/Release/sid_native.node`) is not built, or it does not load
 * (usually because OpenBLAS is not installed).
 *
 * @since 0.1.0
 * @category errors
 */
export class EngineNativeKernelsNotBuilt extends Schema.TaggedError<EngineNativeKernelsNotBuilt>()(
  "EngineNativeKernelsNotBuilt",
  { engine: EngineName, path: Schema.String, cause: Schema.Defect }
) {
  override get message(): string {
    return `The "${this.engine}" engine needs the sid-ts native kernels at ${this.path}, which could not be loaded ` +
      `(${describe(this.cause)}). Fix: install OpenBLAS and a C++ toolchain (Debian/Ubuntu: \`apt-get install ` +
      `libopenblas-dev g++ make python3\`), then run \`npm run build:native\` in the sid-ts checkout; or choose ` +
      `another engine (SID_ENGINE=wasm).`
  }
}

/**
 * Any other failure while starting an engine (backend initialisation, an unexpected module shape, ...).
 *
 * @since 0.1.0
 * @category errors
 */
export class EngineInitFailed extends Schema.TaggedError<EngineInitFailed>()(
  "EngineInitFailed",
  { engine: EngineName, detail: Schema.String, cause: Schema.Defect }
) {
  override get message(): string {
    return `Could not start the "${this.engine}" engine: ${this.detail}`
  }
}

/**
 * An engine layer was built while another engine is active in this process. TF.js computes on one global backend, so
 * one process runs one engine at a time: layers asking for the active engine share it (reference counted), a different
 * one is refused instead of switching the backend under the running program.
 *
 * - `requested`: the engine asked for (`auto` already resolved to `wasm-native` or `wasm`).
 * - `active`: the engine in use, and `users`: how many layers currently hold it.
 *
 * @since 0.1.0
 * @category errors
 */
export class EngineConflict extends Schema.TaggedError<EngineConflict>()(
  "EngineConflict",
  { requested: EngineName, active: EngineName, users: Schema.Int }
) {
  override get message(): string {
    return `Cannot start the "${this.requested}" engine: the "${this.active}" engine is already active in this process ` +
      `(held by ${this.users} layer${this.users === 1 ? "" : "s"}), and TF.js runs one backend per process. Fix: use ` +
      `the same engine (provide Engine.layer("${this.active}"), or Engine.layerActive to share whichever is active), ` +
      `or release the "${this.active}" engine first (close the scope or finish the program that provided it) and then ` +
      `start "${this.requested}".`
  }
}

/**
 * `Engine.layerActive` was built while no engine is active in this process, so there is none to share.
 *
 * @since 0.1.0
 * @category errors
 */
export class EngineNotActive extends Schema.TaggedError<EngineNotActive>()("EngineNotActive", {}) {
  override get message(): string {
    return `No engine is active in this process, so Engine.layerActive has none to share. Fix: provide an engine ` +
      `layer instead (Engine.layer("wasm"), Engine.wasm, or Engine.layerConfig for SID_ENGINE), or build one around ` +
      `this program first.`
  }
}

/**
 * Every way building an engine can fail.
 *
 * @since 0.1.0
 * @category errors
 */
export type EngineError =
  | EnginePackageNotInstalled
  | EngineNativeAddonMissing
  | EngineSharedLibraryMissing
  | EngineGpuNotVisible
  | EngineNativeKernelsNotBuilt
  | EngineInitFailed
  | EngineConflict
  | WebGpuError

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
 * The wasm engine (default): `@tensorflow/tfjs-backend-wasm` (XNNPACK, SIMD; in Node one thread from this module,
 * threads from the Node engine module's `makeWasm`) with the training patches of docs/engines.md §3.2. Shares the
 * process's engine when `wasm` is active; fails with `EngineConflict` when another is.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWasm = (options?: EngineOptions): Layer.Layer<Engine, EngineError> => shared("wasm", buildWasm(options))

/**
 * The pure-JS cpu engine: a slow reference for tests (docs/engines.md §1), with the fixed `ResizeNearestNeighborGrad`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeCpu = (options?: EngineOptions): Layer.Layer<Engine, EngineError> => shared("cpu", buildCpu(options))

/**
 * The default wasm engine layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const wasm: Layer.Layer<Engine, EngineError> = makeWasm()

/**
 * The cpu reference engine layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const cpu: Layer.Layer<Engine, EngineError> = makeCpu()
