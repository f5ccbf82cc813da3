import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { ConfigProvider, Context, Deferred, Effect, Exit, Fiber, Layer, Option, Scope } from "effect"
import { beforeAll } from "vitest"
import * as EngineLayers from "../src/engine/node/Engine.js"
import { installCount } from "../src/engine/kernels/Patches.js"
import { Engine, EngineConflict, type EngineName, EngineNotActive } from "../src/engine/node/Engine.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

/** Builds `layer` in its own scope, runs `use` with the service, closes the scope, and returns both results. */
const withEngine = <A>(layer: Layer.Layer<Engine, unknown>, use: (engine: Context.Tag.Service<Engine>) => A) =>
  Effect.scoped(Effect.map(Layer.build(layer), (ctx) => use(Context.get(ctx, Engine))))

const failureOf = (layer: Layer.Layer<Engine, unknown>) =>
  Effect.gen(function*() {
    const backend = tf.getBackend()
    const tensors = tf.memory().numTensors
    const exit = yield* Effect.exit(withEngine(layer, () => undefined))
    expect(tf.getBackend()).toBe(backend)
    expect(tf.memory().numTensors).toBe(tensors)
    if (Exit.isSuccess(exit)) throw new Error("expected the layer to fail")
    const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
    if (failure === undefined) throw new Error(`expected a typed failure, got ${String(exit.cause)}`)
    return failure as { readonly _tag: string; readonly message: string } & Record<string, unknown>
  })

const rejectWith = (message: string, code?: string): EngineLayers.Importer => () =>
  Promise.reject(Object.assign(new Error(message), code === undefined ? {} : { code }))

const fakeTf = (isUsingGpuDevice: boolean | undefined, setBackendResult = true) => ({
  setBackend: () => Promise.resolve(setBackendResult),
  ready: () => Promise.resolve(),
  backend: () => (isUsingGpuDevice === undefined ? {} : { isUsingGpuDevice }),
  version_core: "4.22.0"
})

const convWeightGrad = () =>
  tf.tidy(() => {
    const x = tf.ones([1, 4, 4, 2]) as tf.Tensor4D
    return tf.grad((w: tf.Tensor) => tf.conv2d(x, w as tf.Tensor4D, 1, "same").sum())(tf.ones([3, 3, 2, 3]))
      .dataSync()
      .slice()
  })

describe("wasm engine layer", () => {
  it.effect("builds, reports its facts, trains a conv, and releases (kernels, backend, tensors restored)", () =>
    Effect.gen(function*() {
      const tensors = tf.memory().numTensors
      const seen = yield* withEngine(EngineLayers.wasm, (engine) => {
        expect(engine.name).toBe("wasm")
        expect(engine.backend).toBe("wasm")
        expect(engine.tf.getBackend()).toBe("wasm")
        expect(engine.facts.simd).toBe(true)
        expect(engine.facts.threads).toBe(1)
        expect(engine.facts.gpu).toBe(false)
        expect(engine.facts.tfjsVersion).toBe("4.22.0")
        expect(engine.facts.patchedKernels).toEqual(expect.arrayContaining([
          "wasm/Conv2DBackpropFilter",
          "wasm/Conv2DBackpropInput",
          "wasm/DepthwiseConv2dNativeBackpropFilter",
          "wasm/DepthwiseConv2dNativeBackpropInput",
          "wasm/UnsortedSegmentSum",
          "wasm/ResizeNearestNeighborGrad"
        ]))
        expect(tf.getKernel("Conv2DBackpropFilter", "wasm")).toBeDefined()
        return convWeightGrad()
      })
      expect(Array.from(seen.slice(0, 3))).toEqual([9, 9, 9])
      expect(tf.getBackend()).toBe("cpu")
      expect(tf.getKernel("Conv2DBackpropFilter", "wasm")).toBeUndefined()
      expect(installCount("wasm", "Conv2DBackpropInput")).toBe(0)
      expect(tf.memory().numTensors).toBe(tensors)
    }))

  it.effect("is shared when built twice in one process (nested: one engine, one patch install; sequential: rebuilt)", () =>
    Effect.gen(function*() {
      const stockDx = tf.getKernel("Conv2DBackpropInput", "wasm").kernelFunc
      yield* withEngine(EngineLayers.wasm, () => undefined)
      expect(Option.isNone(yield* EngineLayers.activeEngine)).toBe(true)
      yield* Effect.scoped(Effect.gen(function*() {
        const outer = Context.get(yield* Layer.build(EngineLayers.wasm), Engine)
        yield* withEngine(EngineLayers.makeWasm({}), (engine) => {
          expect(engine === outer).toBe(true)
          expect(installCount("wasm", "Conv2DBackpropFilter")).toBe(1)
        })
        expect(yield* EngineLayers.activeEngine).toEqual(Option.some({ name: "wasm", users: 1 }))
        expect(installCount("wasm", "Conv2DBackpropFilter")).toBe(1)
        expect(tf.getBackend()).toBe("wasm")
        expect(convWeightGrad()[0]).toBe(9)
      }))
      expect(installCount("wasm", "Conv2DBackpropFilter")).toBe(0)
      expect(tf.getKernel("Conv2DBackpropInput", "wasm").kernelFunc).toBe(stockDx)
      expect(tf.getKernel("Conv2DBackpropInput", "wasm").setupFunc).toBeDefined()
      expect(tf.getBackend()).toBe("cpu")
      expect(Option.isNone(yield* EngineLayers.activeEngine)).toBe(true)
    }))

  it.effect("maps a missing wasm package to EnginePackageNotInstalled and leaves nothing installed", () =>
    Effect.gen(function*() {
      const error = yield* failureOf(EngineLayers.makeWasm({
        importer: rejectWith(
          "Cannot find package '@tensorflow/tfjs-backend-wasm' imported from /app/x.js",
          "ERR_MODULE_NOT_FOUND"
        )
      }))
      expect(error._tag).toBe("EnginePackageNotInstalled")
      expect(error.message).toContain("npm install @tensorflow/tfjs-backend-wasm@4.22.0")
      expect(installCount("wasm", "Conv2DBackpropFilter")).toBe(0)
    }))
})

describe("cpu engine layer", () => {
  it.effect("builds with the fixed ResizeNearestNeighborGrad and restores the stock kernel on release", () =>
    Effect.gen(function*() {
      yield* Effect.promise(() => tf.setBackend("wasm"))
      const stock = tf.getKernel("ResizeNearestNeighborGrad", "cpu").kernelFunc
      const tensors = tf.memory().numTensors
      const grad = yield* withEngine(EngineLayers.cpu, (engine) => {
        expect(engine.name).toBe("cpu")
        expect(engine.backend).toBe("cpu")
        expect(tf.getBackend()).toBe("cpu")
        expect(engine.facts).toMatchObject({ simd: false, threads: 1, gpu: false })
        expect(engine.facts.patchedKernels).toEqual(["cpu/ResizeNearestNeighborGrad"])
        expect(tf.getKernel("ResizeNearestNeighborGrad", "cpu").kernelFunc).not.toBe(stock)
        return tf.tidy(() =>
          tf.grad((x: tf.Tensor) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [2, 2]).mul(tf.range(1, 9).reshape([2, 2, 2, 1])).sum())(
            tf.zeros([2, 1, 1, 1])
          ).dataSync().slice()
        )
      })
      expect(Array.from(grad)).toEqual([10, 26])
      expect(tf.getKernel("ResizeNearestNeighborGrad", "cpu").kernelFunc).toBe(stock)
      expect(tf.getBackend()).toBe("wasm")
      expect(tf.memory().numTensors).toBe(tensors)
      yield* Effect.promise(() => tf.setBackend("cpu"))
    }))
})

describe("native engine layers (optional peers, not installed here)", () => {
  for (const [name, layer] of [["tfjs-node", EngineLayers.tfjsNode], ["tfjs-node-gpu", EngineLayers.tfjsNodeGpu]] as const) {
    it.effect(`${name}: the real dynamic import fails with EnginePackageNotInstalled`, () =>
      Effect.gen(function*() {
        const error = yield* failureOf(layer)
        expect(error._tag).toBe("EnginePackageNotInstalled")
        expect(error["engine"]).toBe(name)
        expect(error["packageName"]).toBe(`@tensorflow/${name}`)
        expect(error.message).toContain(`npm install @tensorflow/${name}@4.22.0`)
        expect(error.message).toContain("not installed")
      }))
  }

  it.effect("a missing native addon gives EngineNativeAddonMissing with the rebuild command", () =>
    Effect.gen(function*() {
      const error = yield* failureOf(EngineLayers.makeTfjsNode({
        importer: rejectWith(
          "The Node.js native addon module (tfjs_binding.node) can not be found at path: /app/node_modules/" +
            "@tensorflow/tfjs-node/lib/napi-v8/tfjs_binding.node. \nPlease run command 'npm rebuild " +
            "@tensorflow/tfjs-node --build-addon-from-source' to rebuild the native addon module."
        )
      }))
      expect(error._tag).toBe("EngineNativeAddonMissing")
      expect(error.message).toContain("tfjs_binding.node")
      expect(error.message).toContain("npm rebuild @tensorflow/tfjs-node --build-addon-from-source")
    }))

  it.effect("an unloadable shared library gives EngineSharedLibraryMissing naming the library and the fix", () =>
    Effect.gen(function*() {
      const tf2 = yield* failureOf(EngineLayers.makeTfjsNode({
        importer: rejectWith("libtensorflow.so.2: cannot open shared object file: No such file or directory")
      }))
      expect(tf2._tag).toBe("EngineSharedLibraryMissing")
      expect(tf2["library"]).toBe("libtensorflow.so.2")
      expect(tf2.message).toContain("LD_LIBRARY_PATH")
      const cuda = yield* failureOf(EngineLayers.makeTfjsNodeGpu({
        importer: rejectWith("libcudart.so.11.0: cannot open shared object file: No such file or directory")
      }))
      expect(cuda._tag).toBe("EngineSharedLibraryMissing")
      expect(cuda["library"]).toBe("libcudart.so.11.0")
      expect(cuda.message).toContain("CUDA 11.2")
      expect(cuda.message).toContain("cuDNN 8.1")
    }))

  it.effect("the GPU package without a visible GPU fails with EngineGpuNotVisible instead of running on the CPU", () =>
    Effect.gen(function*() {
      const error = yield* failureOf(EngineLayers.makeTfjsNodeGpu({ importer: () => Promise.resolve(fakeTf(false)) }))
      expect(error._tag).toBe("EngineGpuNotVisible")
      expect(error.message).toContain("isUsingGpuDevice")
      const unknown = yield* failureOf(EngineLayers.makeTfjsNodeGpu({ importer: () => Promise.resolve(fakeTf(undefined)) }))
      expect(unknown._tag).toBe("EngineGpuNotVisible")
    }))

  it.effect("a loaded native module gives an engine with its own tf namespace and GPU facts", () =>
    Effect.gen(function*() {
      const gpuModule = fakeTf(true)
      const gpu = yield* withEngine(
        EngineLayers.makeTfjsNodeGpu({ importer: () => Promise.resolve(gpuModule) }),
        (engine) => engine
      )
      expect(gpu.tf).toBe(gpuModule)
      expect(gpu.name).toBe("tfjs-node-gpu")
      expect(gpu.backend).toBe("tensorflow")
      expect(gpu.facts.gpu).toBe(true)
      expect(gpu.facts.patchedKernels).toEqual([])
      const cpuNative = yield* withEngine(
        EngineLayers.makeTfjsNode({ importer: () => Promise.resolve(fakeTf(false)) }),
        (engine) => engine.facts
      )
      expect(cpuNative.gpu).toBe(false)
      expect(cpuNative.threads).toBeGreaterThanOrEqual(1)
    }))

  it.effect("any other failure gives EngineInitFailed (init error, missing dependency, bad module, setBackend false)", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<EngineLayers.Importer> = [
        rejectWith("Could not initialize TensorFlow backend."),
        rejectWith(
          "Cannot find package 'adm-zip' imported from /app/node_modules/@tensorflow/tfjs-node/dist/index.js",
          "ERR_MODULE_NOT_FOUND"
        ),
        () => Promise.resolve({ default: {} }),
        () => Promise.resolve(fakeTf(true, false))
      ]
      for (const importer of cases) {
        const error = yield* failureOf(EngineLayers.makeTfjsNode({ importer }))
        expect(error._tag).toBe("EngineInitFailed")
        expect(error.message).toContain(`Could not start the "tfjs-node" engine`)
      }
    }))
})

describe("engine selection", () => {
  const nameFrom = (layer: Layer.Layer<Engine, unknown>) => withEngine(layer, (engine) => engine.name)

  it.effect("layer(name) dispatches to each engine", () =>
    Effect.gen(function*() {
      expect(yield* nameFrom(EngineLayers.layer("wasm"))).toBe("wasm")
      expect(yield* nameFrom(EngineLayers.layer("cpu"))).toBe("cpu")
      for (const name of ["tfjs-node", "tfjs-node-gpu"] as const) {
        expect((yield* failureOf(EngineLayers.layer(name)))["engine"]).toBe(name)
      }
      const injected = EngineLayers.layer("tfjs-node-gpu", { importer: () => Promise.resolve(fakeTf(true)) })
      expect(yield* nameFrom(injected)).toBe("tfjs-node-gpu")
    }))

  it.effect("layerConfig reads SID_ENGINE (default auto: wasm-native where built, else wasm) and rejects unknown engines", () =>
    Effect.gen(function*() {
      const withEnv = (env: ReadonlyArray<readonly [string, string]>) =>
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map(env)))
      const fallback = yield* nameFrom(EngineLayers.auto)
      expect(["wasm", "wasm-native"]).toContain(fallback)
      expect(yield* nameFrom(EngineLayers.layerConfig).pipe(withEnv([]))).toBe(fallback)
      const named: EngineName = yield* nameFrom(EngineLayers.layerConfig).pipe(withEnv([["SID_ENGINE", "cpu"]]))
      expect(named).toBe("cpu")
      const bad = yield* Effect.flip(nameFrom(EngineLayers.layerConfig).pipe(withEnv([["SID_ENGINE", "gpu"]])))
      expect((bad as { _tag: string })._tag).toBe("ConfigError")
      expect(String(bad)).toContain("SID_ENGINE")
    }))
})

describe("one engine per process", () => {
  it.effect("two users of the same engine, built concurrently, share it; the backend stays until the last release", () =>
    Effect.gen(function*() {
      expect(tf.getBackend()).toBe("cpu")
      const tensors = tf.memory().numTensors
      const secondBuilt = yield* Deferred.make<void>()
      const firstReleased = yield* Deferred.make<void>()
      const first = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
        const engine = Context.get(yield* Layer.build(EngineLayers.wasm), Engine)
        yield* Deferred.await(secondBuilt)
        expect(yield* EngineLayers.activeEngine).toEqual(Option.some({ name: "wasm", users: 2 }))
        return engine
      })).pipe(Effect.ensuring(Deferred.succeed(firstReleased, undefined))))
      const second = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
        const engine = Context.get(yield* Layer.build(EngineLayers.layer("wasm")), Engine)
        yield* Deferred.succeed(secondBuilt, undefined)
        yield* Deferred.await(firstReleased)
        // The first user is gone; this one still computes on the engine it was given.
        expect(tf.getBackend()).toBe("wasm")
        expect(yield* EngineLayers.activeEngine).toEqual(Option.some({ name: "wasm", users: 1 }))
        expect(convWeightGrad()[0]).toBe(9)
        return engine
      })))
      const [a, b] = yield* Fiber.join(Fiber.zip(first, second))
      expect(a === b).toBe(true)
      expect(tf.getBackend()).toBe("cpu")
      expect(installCount("wasm", "Conv2DBackpropFilter")).toBe(0)
      expect(Option.isNone(yield* EngineLayers.activeEngine)).toBe(true)
      expect(tf.memory().numTensors).toBe(tensors)
    }))

  it.effect("another engine while one is active fails with EngineConflict naming the active one, and changes nothing", () =>
    Effect.gen(function*() {
      const stockCpu = tf.getKernel("ResizeNearestNeighborGrad", "cpu").kernelFunc
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Layer.build(EngineLayers.wasm)
        const error = yield* failureOf(EngineLayers.cpu)
        expect(error).toBeInstanceOf(EngineConflict)
        expect(error).toMatchObject({ _tag: "EngineConflict", requested: "cpu", active: "wasm", users: 1 })
        expect(error.message).toContain(`the "wasm" engine is already active`)
        expect(error.message).toContain(`Engine.layer("wasm")`)
        expect(error.message).toContain("release")
        expect(tf.getBackend()).toBe("wasm")
        expect(tf.getKernel("ResizeNearestNeighborGrad", "cpu").kernelFunc).toBe(stockCpu)
        const native = yield* failureOf(EngineLayers.makeTfjsNode({ importer: () => Promise.resolve(fakeTf(false)) }))
        expect(native).toMatchObject({ _tag: "EngineConflict", requested: "tfjs-node", active: "wasm" })
        expect(yield* EngineLayers.activeEngine).toEqual(Option.some({ name: "wasm", users: 1 }))
      }))
      expect(tf.getBackend()).toBe("cpu")
      // Released: now the other engine starts.
      expect(yield* withEngine(EngineLayers.cpu, (engine) => engine.name)).toBe("cpu")
    }))

  it.effect("auto is resolved before it is compared: it shares the engine it names", () =>
    Effect.gen(function*() {
      const resolved = yield* EngineLayers.resolveEngineName("auto")
      expect(["wasm", "wasm-native", "webgpu"]).toContain(resolved)
      expect(yield* EngineLayers.resolveEngineName("cpu")).toBe("cpu")
      yield* Effect.scoped(Effect.gen(function*() {
        const active = Context.get(yield* Layer.build(EngineLayers.layer(resolved)), Engine)
        expect((yield* withEngine(EngineLayers.auto, (engine) => engine)) === active).toBe(true)
        const other = resolved === "wasm" ? "wasm-native" : "wasm"
        const conflict = yield* failureOf(EngineLayers.layer(other))
        expect(conflict).toMatchObject({ _tag: "EngineConflict", active: resolved })
      }))
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Layer.build(EngineLayers.cpu)
        expect(yield* failureOf(EngineLayers.auto)).toMatchObject({ _tag: "EngineConflict", requested: resolved, active: "cpu" })
      }))
      expect(tf.getBackend()).toBe("cpu")
    }))

  it.effect("layerActive shares the active engine, and fails with EngineNotActive when there is none", () =>
    Effect.gen(function*() {
      const none = yield* failureOf(EngineLayers.layerActive)
      expect(none).toBeInstanceOf(EngineNotActive)
      expect(none.message).toContain("No engine is active")
      expect(none.message).toContain("Engine.layer")
      const scope = yield* Scope.make()
      const engine = Context.get(yield* Layer.buildWithScope(EngineLayers.wasm, scope), Engine)
      yield* Effect.scoped(Effect.gen(function*() {
        expect(Context.get(yield* Layer.build(EngineLayers.layerActive), Engine) === engine).toBe(true)
        expect(yield* EngineLayers.activeEngine).toEqual(Option.some({ name: "wasm", users: 2 }))
        // The first user releases; the shared one keeps the engine alive.
        yield* Scope.close(scope, Exit.void)
        expect(tf.getBackend()).toBe("wasm")
        expect(yield* EngineLayers.activeEngine).toEqual(Option.some({ name: "wasm", users: 1 }))
      }))
      expect(tf.getBackend()).toBe("cpu")
      expect(Option.isNone(yield* EngineLayers.activeEngine)).toBe(true)
    }))
})
