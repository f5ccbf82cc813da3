/**
 * The `webgpu` engine (issue 16) on whatever adapter this machine has — in CI Mesa's llvmpipe (software; the tests
 * opt in with `allowSoftwareGpu`). Skipped, with the reason, where the optional `webgpu` package or an adapter is
 * missing. The software adapter is slow: shapes are tiny.
 *
 * Every host read here is asynchronous (`await t.data()`): synchronous reads cannot work on WebGPU in Node.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Exit, type Layer } from "effect"
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { ADAM_KERNEL, adamUpdateHost } from "../src/domain/optim/Adam.js"
import { countNonFinite, globalNorm } from "../src/domain/nn/Gradients.js"
import { GROUP_NORM_KERNEL, groupNorm, groupNormalize } from "../src/domain/nn/GroupNorm.js"
import { applyDhariwalUNet } from "../src/domain/edm/DhariwalUNet.js"
import { edmShapes, parseEdmConfig } from "../src/domain/edm/NetworkConfig.js"
import { applySongUNet } from "../src/domain/edm/SongUNet.js"
import { fromEdmStateDict } from "../src/domain/edm/StateDict.js"
import { edmDenoise } from "../src/domain/edm/Preconditioning.js"
import { decodeSafetensors } from "../src/domain/data/Safetensors.js"
import { probeWebGpu, vulkanLoaderProblem } from "../src/engine/node/WebGpu.js"
import * as EngineLayers from "../src/engine/node/Engine.js"
import { Engine, type EngineError, type EngineShape } from "../src/engine/node/Engine.js"
import { relativeL2 } from "./support/errors.js"

const probe = await probeWebGpu()
const reason = probe._tag === "None" ? probe.reason : ""
if (probe._tag === "None") console.log(`webgpu tests skipped: ${reason}`)
const gpuDescribe = probe._tag === "Adapter" ? describe : describe.skip

const webgpu = EngineLayers.makeWebGpu({ allowSoftwareGpu: true })

/** Runs `f` with `layer`'s engine; the engine is released when `f` settles. */
const withEngine = <A>(layer: Layer.Layer<Engine, EngineError>, f: (e: EngineShape) => Promise<A>): Promise<A> =>
  Effect.runPromise(Effect.scoped(Effect.provide(Effect.flatMap(Engine, (e) => Effect.promise(() => f(e))), layer)))

const read = async (t: tf.Tensor): Promise<Float32Array> => Float32Array.from(await t.data())

/** Largest |a − b| / max(|b|, floor) over the entries. */
const maxRelative = (a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-3): number => {
  expect(a.length).toBe(b.length)
  let worst = 0
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(b[i]!), floor))
  return worst
}


/** Seeded inputs (float32 values in [-1.5, 1.5)). */
const values = (n: number, seed: number): Float32Array => {
  let s = seed >>> 0
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return (s / 2 ** 32) * 3 - 1.5
  })
}

/** One op the library uses: its inputs' shapes and the function (reduced to a value by a weighted sum). */
interface OpCase {
  readonly name: string
  readonly shapes: ReadonlyArray<ReadonlyArray<number>>
  readonly f: (...xs: Array<tf.Tensor>) => tf.Tensor
  readonly positive?: boolean
}

const OPS: ReadonlyArray<OpCase> = [
  { name: "conv2d same", shapes: [[2, 6, 6, 3], [3, 3, 3, 4]], f: (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, "same") },
  { name: "conv2d stride 2", shapes: [[2, 6, 6, 3], [3, 3, 3, 4]], f: (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, "same") },
  { name: "conv2d 1x1", shapes: [[2, 4, 4, 5], [1, 1, 5, 3]], f: (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, "valid") },
  {
    name: "conv2dTranspose stride 2",
    shapes: [[2, 3, 3, 4], [3, 3, 2, 4]],
    f: (x, w) => tf.conv2dTranspose(x as tf.Tensor4D, w as tf.Tensor4D, [2, 6, 6, 2], 2, "same")
  },
  {
    name: "depthwiseConv2d",
    shapes: [[2, 6, 6, 3], [2, 2, 3, 1]],
    f: (x, w) => tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, "valid")
  },
  { name: "matMul", shapes: [[5, 7], [7, 3]], f: (a, b) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D) },
  { name: "matMul transposeB", shapes: [[5, 7], [3, 7]], f: (a, b) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D, false, true) },
  { name: "batch matMul", shapes: [[2, 4, 6], [2, 6, 4]], f: (a, b) => tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D) },
  { name: "broadcast add/sub/mul/div", shapes: [[3, 4, 5], [5]], f: (a, b) => tf.div(tf.mul(tf.sub(tf.add(a, b), 0.5), a), tf.add(tf.abs(b), 1)) },
  { name: "square/sqrt/rsqrt", shapes: [[4, 5]], f: (a) => tf.add(tf.sqrt(tf.add(tf.square(a), 0.1)), tf.rsqrt(tf.add(tf.square(a), 1))) },
  { name: "exp/log/sigmoid/tanh", shapes: [[4, 5]], f: (a) => tf.add(tf.add(tf.exp(a), tf.log(tf.add(tf.abs(a), 1))), tf.add(tf.sigmoid(a), tf.tanh(a))) },
  { name: "sin/cos", shapes: [[4, 5]], f: (a) => tf.add(tf.sin(a), tf.cos(tf.mul(a, 3))) },
  { name: "silu", shapes: [[4, 5]], f: (a) => tf.mul(a, tf.sigmoid(a)) },
  { name: "sum/mean over axes", shapes: [[2, 3, 4, 5]], f: (a) => tf.add(tf.sum(a, [1, 2]), tf.mean(tf.square(a), [1, 2])) },
  { name: "moments (GroupNorm statistics)", shapes: [[2, 3, 3, 2, 4]], f: (a) => {
    const { mean, variance } = tf.moments(a, [1, 2, 4], true)
    return tf.mul(tf.sub(a, mean), tf.rsqrt(tf.add(variance, 1e-5)))
  } },
  { name: "softmax", shapes: [[3, 7]], f: (a) => tf.softmax(a) },
  { name: "transpose/reshape", shapes: [[2, 3, 4]], f: (a) => tf.reshape(tf.transpose(a, [2, 0, 1]), [4, 6]) },
  { name: "concat/slice", shapes: [[2, 3], [2, 4]], f: (a, b) => tf.slice(tf.concat([a, b, a], 1), [0, 1], [2, 7]) },
  { name: "split", shapes: [[2, 6]], f: (a) => { const [p, q] = tf.split(a, [2, 4], 1); return tf.concat([tf.mul(p!, 2), q!], 1) } },
  { name: "pad", shapes: [[1, 3, 3, 2]], f: (a) => tf.pad(a, [[0, 0], [1, 1], [2, 0], [0, 0]]) },
  { name: "resizeNearestNeighbor", shapes: [[2, 3, 3, 2]], f: (a) => tf.image.resizeNearestNeighbor(a as tf.Tensor4D, [6, 6]) },
  { name: "avgPool", shapes: [[2, 4, 4, 3]], f: (a) => tf.avgPool(a as tf.Tensor4D, 2, 2, "valid") },
  { name: "maximum/minimum/clip", shapes: [[4, 5], [4, 5]], f: (a, b) => tf.add(tf.maximum(a, b), tf.clipByValue(tf.minimum(a, b), -0.5, 0.7)) },
  { name: "addN of 12", shapes: [[3, 4]], f: (a) => tf.addN(Array.from({ length: 12 }, (_, k) => tf.mul(a, k + 1))) }
]

interface OpResult {
  readonly value: Float32Array
  readonly grads: ReadonlyArray<Float32Array>
}

/** Value of f and the gradients of Σ f·w (w fixed, seeded) with respect to every input. */
const evaluate = async (op: OpCase): Promise<OpResult> => {
  const inputs = op.shapes.map((shape, i) => tf.tensor(values(shape.reduce((a, b) => a * b, 1), 11 + i), [...shape]))
  const y = tf.tidy(() => op.f(...inputs))
  const weight = tf.tensor(values(y.size, 97), y.shape)
  const g = tf.grads((...xs: Array<tf.Tensor>) => tf.sum(tf.mul(op.f(...xs), weight)))(inputs)
  const result = { value: await read(y), grads: await Promise.all(g.map(read)) }
  tf.dispose([...inputs, y, weight, ...g])
  return result
}

/** The failure of building `layer` (its error, or undefined when it builds). */
const failureOf = async (layer: Layer.Layer<Engine, EngineError>): Promise<unknown> => {
  const exit = await Effect.runPromiseExit(Effect.scoped(Effect.provide(Engine, layer)))
  return Exit.isFailure(exit) ? (exit.cause._tag === "Fail" ? exit.cause.error : exit.cause) : undefined
}

/** A fake `webgpu` module whose adapter request answers `adapter`. */
const fakeDawn = (adapter: unknown) => ({
  create: () => ({ requestAdapter: () => Promise.resolve(adapter) }),
  globals: {}
})

describe("webgpu engine errors (no GPU needed)", () => {
  it("names the package when webgpu is not installed, and leaves no navigator behind", async () => {
    const before = (globalThis as { navigator?: unknown }).navigator
    const error = await failureOf(EngineLayers.makeWebGpu({
      importer: (s) => Promise.reject(new Error(`Cannot find package '${s}' imported from /x.js`))
    }))
    expect(error).toMatchObject({ _tag: "EnginePackageNotInstalled", engine: "webgpu", packageName: "webgpu" })
    expect((error as Error).message).toContain("npm install webgpu@0.6.2")
    expect((globalThis as { navigator?: unknown }).navigator).toBe(before)
  })

  it("no adapter: WebGpuNoAdapter where the Vulkan loader loads, naming the driver to install", async () => {
    const before = (globalThis as { navigator?: unknown }).navigator
    const error = await failureOf(EngineLayers.makeWebGpu({ importer: () => Promise.resolve(fakeDawn(null)) }))
    const expected = vulkanLoaderProblem() === undefined ? "WebGpuNoAdapter" : "WebGpuVulkanMissing"
    expect(error).toMatchObject({ _tag: expected })
    expect((error as Error).message).toMatch(/vulkaninfo --summary/)
    expect((globalThis as { navigator?: unknown }).navigator).toBe(before)
  })

  it("a missing Vulkan loader is detected by name", () => {
    expect(vulkanLoaderProblem("libsid-no-such-vulkan.so.1")).toMatch(process.platform === "linux" ? /cannot open shared object/ : /^$/)
  })

  it("a software adapter is refused without the opt-in, accepted with it", async () => {
    const software = { info: { vendor: "mesa", architecture: "software", description: "llvmpipe", isFallbackAdapter: true }, limits: {}, features: [] }
    const previous = process.env["SID_WEBGPU_SOFTWARE"]
    delete process.env["SID_WEBGPU_SOFTWARE"]
    try {
      const error = await failureOf(EngineLayers.makeWebGpu({ importer: () => Promise.resolve(fakeDawn(software)) }))
      expect(error).toMatchObject({ _tag: "WebGpuSoftwareAdapter" })
      expect((error as Error).message).toContain("--allow-software-gpu")
      expect((error as Error).message).toContain("SID_WEBGPU_SOFTWARE=1")
    } finally {
      if (previous !== undefined) process.env["SID_WEBGPU_SOFTWARE"] = previous
    }
  })
})

gpuDescribe(`webgpu engine (${probe._tag === "Adapter" ? probe.report.summary : reason})`, () => {
  it("starts on the adapter it reports, and release destroys the device and restores the previous backend", async () => {
    await tf.setBackend("cpu")
    const before = (globalThis as { navigator?: unknown }).navigator
    let device: { lost: Promise<{ reason?: string }> } | undefined
    const facts = await withEngine(webgpu, async (e) => {
      expect(e.name).toBe("webgpu")
      expect(tf.getBackend()).toBe("webgpu")
      expect((globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu).toBeDefined()
      device = (tf.backend() as unknown as { device: { lost: Promise<{ reason?: string }> } }).device
      return e.facts
    })
    expect(facts.adapter).toBeDefined()
    expect(facts.adapter!.isFallbackAdapter).toBe(probe._tag === "Adapter" && probe.report.isFallbackAdapter)
    expect(facts.gpu).toBe(!facts.adapter!.isFallbackAdapter)
    expect(facts.adapter!.limits["maxStorageBuffersPerShaderStage"]).toBeGreaterThanOrEqual(8)
    expect(facts.patchedKernels).toContain("webgpu/AddN")
    expect(tf.getBackend()).toBe("cpu")
    expect(tf.findBackendFactory("webgpu")).toBeNull()
    expect((globalThis as { navigator?: unknown }).navigator).toBe(before)
    const lost = await Promise.race([device!.lost, new Promise<undefined>((r) => setTimeout(() => r(undefined), 5000))])
    expect(lost?.reason).toBe("destroyed")
  })

  it.runIf(probe._tag === "Adapter" && probe.report.isFallbackAdapter)(
    "refuses a software adapter unless the user opts in",
    async () => {
      const previous = process.env["SID_WEBGPU_SOFTWARE"]
      delete process.env["SID_WEBGPU_SOFTWARE"]
      try {
        const exit = await Effect.runPromiseExit(Effect.scoped(Effect.provide(Engine, EngineLayers.makeWebGpu())))
        expect(Exit.isFailure(exit)).toBe(true)
        if (Exit.isFailure(exit)) {
          const text = JSON.stringify(exit.cause)
          expect(text).toContain("WebGpuSoftwareAdapter")
        }
      } finally {
        if (previous !== undefined) process.env["SID_WEBGPU_SOFTWARE"] = previous
      }
    }
  )

  it("addN of many inputs is right (chunked under the storage-buffer limit), and so are the gradient norms", async () => {
    await withEngine(webgpu, async () => {
      const before = tf.memory().numTensors
      for (const n of [2, 7, 8, 9, 16, 40, 147]) {
        const xs = Array.from({ length: n }, (_, k) => tf.fill([3, 5], k + 1))
        const s = tf.addN(xs)
        const v = await read(s)
        expect(v.every((x) => x === (n * (n + 1)) / 2)).toBe(true)
        tf.dispose([...xs, s])
      }
      const grads = Object.fromEntries(Array.from({ length: 20 }, (_, k) => [`p${k}`, tf.fill([4], k % 3 === 0 ? NaN : 1)]))
      const [norm, bad] = [globalNorm(grads), countNonFinite(grads)]
      const nv = await read(norm)
      expect(Array.from(await bad.data())).toEqual([7 * 4])
      expect(Number.isNaN(nv[0])).toBe(true)
      tf.dispose([norm, bad, ...Object.values(grads)])
      expect(tf.memory().numTensors).toBe(before)
    })
  })

  it("a synchronous read is a typed error, and a device validation error fails the next read", async () => {
    await withEngine(webgpu, async () => {
      const t = tf.tidy(() => tf.add(tf.fill([4096], 2), tf.fill([4096], 1)))
      expect(() => t.dataSync()).toThrow(/synchronous read/)
      expect(Array.from((await t.data()).slice(0, 2))).toEqual([3, 3])
      const device = (tf.backend() as unknown as { device: { createBuffer: (d: object) => unknown } }).device
      const usage = (globalThis as unknown as { GPUBufferUsage: Record<string, number> }).GPUBufferUsage
      device.createBuffer({ size: 4, usage: usage["MAP_READ"]! | usage["STORAGE"]! })
      const u = tf.tidy(() => tf.mul(tf.fill([4096], 2), 3))
      await expect(u.data()).rejects.toMatchObject({ _tag: "WebGpuDeviceError" })
      tf.dispose([t, u])
    })
  })

  it("every kernel the library relies on matches cpu, value and gradient (relative L2 ≤ 1e-5)", async () => {
    const reference = await withEngine(EngineLayers.cpu, async () => {
      const out: Array<OpResult> = []
      for (const op of OPS) out.push(await evaluate(op))
      return out
    })
    const failures: Array<string> = []
    await withEngine(webgpu, async () => {
      for (const [i, op] of OPS.entries()) {
        const got = await evaluate(op)
        const ref = reference[i]!
        const errors = [relativeL2(got.value, ref.value), ...got.grads.map((g, k) => relativeL2(g, ref.grads[k]!))]
        if (errors.some((e) => !(e <= 1e-5))) failures.push(`${op.name}: ${errors.map((e) => e.toExponential(2)).join(", ")}`)
      }
    })
    expect(failures).toEqual([])
  })

  it("the fused SidAdam kernel is within 1e-6 relative of the composed float32 update", async () => {
    const n = 1000
    const [p, g, m, v] = [values(n, 1), values(n, 2), values(n, 3).map((x) => x * 0.1), values(n, 4).map((x) => x * x * 0.01)]
    const config = { learningRate: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 }
    const step = 4
    const [hp, hm, hv] = [Float32Array.from(p), Float32Array.from(m), Float32Array.from(v)]
    adamUpdateHost(config, step, hp, g, hm, hv)
    await withEngine(webgpu, async () => {
      expect(tf.getKernel(ADAM_KERNEL, "webgpu")).toBeDefined()
      const ts = [p, g, m, v].map((x) => tf.tensor1d(x))
      const out = tf.engine().runKernel(
        ADAM_KERNEL,
        { param: ts[0]!, grad: ts[1]!, m: ts[2]!, v: ts[3]! },
        { ...config, step: step + 1 }
      ) as unknown as Array<tf.Tensor>
      const [np, nm, nv] = await Promise.all(out.map(read))
      expect(maxRelative(np!, hp, 1e-30)).toBeLessThanOrEqual(1e-6)
      expect(maxRelative(nm!, hm, 1e-30)).toBeLessThanOrEqual(1e-6)
      expect(maxRelative(nv!, hv, 1e-30)).toBeLessThanOrEqual(1e-6)
      tf.dispose([...ts, ...out])
    })
  })

  it("the fused GroupNorm (+ SiLU) and its gradient are within 1e-6 relative (L2) of the composed ops", async () => {
    const measured: Array<string> = []
    await withEngine(webgpu, async () => {
      expect(tf.getKernel(GROUP_NORM_KERNEL, "webgpu")).toBeDefined()
      for (const [shape, groups] of [[[2, 5, 6, 8], 4], [[3, 16, 16, 32], 8]] as const) {
        for (const activation of ["linear", "silu"] as const) {
          const c = shape[3]
          const x = tf.tensor4d(values(shape.reduce((a, b) => a * b, 1), 5), [...shape])
          const w = tf.tensor1d(values(c, 6).map((v) => 1 + v / 3))
          const b = tf.tensor1d(values(c, 7).map((v) => v / 3))
          const weight = tf.tensor4d(values(x.size, 8), [...shape])
          const composed = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => {
            const z = tf.add(tf.mul(groupNormalize(xi as tf.Tensor4D, groups), wi), bi)
            return activation === "silu" ? tf.mul(z, tf.sigmoid(z)) : z
          }
          const fused = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => groupNorm(xi as tf.Tensor4D, groups, wi, bi, 1e-5, activation)
          const run = async (f: typeof composed) => {
            const y = tf.tidy(() => f(x, w, b))
            const g = tf.grads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => tf.sum(tf.mul(f(xi, wi, bi), weight)))([x, w, b])
            const out = await Promise.all([y, ...g].map(read))
            tf.dispose([y, ...g])
            return out
          }
          const profile = await tf.profile(() => fused(x, w, b))
          expect(profile.kernelNames).toContain(GROUP_NORM_KERNEL)
          tf.dispose(profile.result as tf.Tensor)
          const [want, got] = [await run(composed), await run(fused)]
          const errors = got.map((v, i) => relativeL2(v, want[i]!))
          measured.push(`[${shape}] G=${groups} ${activation}: y ${errors[0]!.toExponential(1)}, dx ${errors[1]!.toExponential(1)}, ` +
            `dγ ${errors[2]!.toExponential(1)}, dβ ${errors[3]!.toExponential(1)}`)
          for (const e of errors) expect(e).toBeLessThanOrEqual(1e-6)
          tf.dispose([x, w, b, weight])
        }
      }
    })
    console.log(`fused GroupNorm on webgpu vs composed:\n${measured.join("\n")}`)
  })

  it("the four golden EDM networks give output.F and output.D within 1e-4 relative (L2, total and per sample)", async () => {
    const measured: Array<string> = []
    await withEngine(webgpu, async () => {
      for (const name of GOLDEN) {
        const f = decodeSafetensors(new Uint8Array(readFileSync(new URL(`./fixtures/edm/${name}.safetensors`, import.meta.url))))
        const config = parseEdmConfig(f.metadata["config"]!)
        const arr = (n: string) => f.tensors.get(n)!
        const t = (n: string) => tf.tensor(arr(n).values, [...arr(n).shape])
        const nhwc = (n: string) => tf.tidy(() => tf.transpose(t(n), [0, 2, 3, 1]) as tf.Tensor4D)
        const params = fromEdmStateDict(edmShapes(config.architecture), f.tensors)
        const x = nhwc("input.x")
        const sigma = t("input.sigma") as tf.Tensor1D
        const labels = {
          ...(f.tensors.has("input.class_labels") ? { classLabels: t("input.class_labels") as tf.Tensor2D } : {}),
          ...(f.tensors.has("input.augment_labels") ? { augmentLabels: t("input.augment_labels") as tf.Tensor2D } : {})
        }
        let F: tf.Tensor | undefined
        const D = edmDenoise(x, sigma, (xIn, cNoise) => {
          const arch = config.architecture
          const out = arch.kind === "songunet"
            ? applySongUNet(arch.spec, params, xIn as tf.Tensor4D, cNoise, labels)
            : applyDhariwalUNet(arch.spec, params, xIn as tf.Tensor4D, cNoise, labels)
          F = tf.keep(out.clone())
          return out
        }, config.sigmaData)
        const [wantF, wantD] = [nhwc("output.F"), nhwc("output.D")]
        const [gotF, gotD, refF, refD] = await Promise.all([F!, D, wantF, wantD].map(read))
        const n = x.shape[0]
        const per = (a: Float32Array, b: Float32Array) =>
          Array.from({ length: n }, (_, k) => relativeL2(a.subarray(k * (a.length / n), (k + 1) * (a.length / n)), b.subarray(k * (b.length / n), (k + 1) * (b.length / n))))
        const errors = [relativeL2(gotF!, refF!), relativeL2(gotD!, refD!), ...per(gotF!, refF!), ...per(gotD!, refD!)]
        measured.push(`${name}: F ${errors[0]!.toExponential(2)}, D ${errors[1]!.toExponential(2)}, worst ${Math.max(...errors).toExponential(2)}`)
        for (const e of errors) expect(e).toBeLessThanOrEqual(1e-4)
        tf.dispose([x, sigma, F!, D, wantF, wantD, ...Object.values(labels), ...Object.values(params)])
      }
    })
    console.log(`EDM golden relative errors on webgpu:\n${measured.join("\n")}`)
  })
})

const GOLDEN = ["songunet-ddpmpp-tiny", "songunet-ncsnpp-tiny", "dhariwalunet-adm-tiny", "dhariwalunet-adm-attn"] as const
