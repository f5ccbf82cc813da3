import * as tf from "@tensorflow/tfjs"
import { readFileSync } from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { applyDhariwalUNet } from "../src/domain/edm/DhariwalUNet.js"
import { type EdmArchitecture, edmNetwork, edmShapes, parseEdmConfig } from "../src/domain/edm/NetworkConfig.js"
import { downsample2x, type EdmLabels, resampleFilterValues, upsample2x } from "../src/domain/edm/Blocks.js"
import { applySongUNet, songUNetSpec } from "../src/domain/edm/SongUNet.js"
import { EdmStateDictError, fromEdmStateDict, toEdmStateDict } from "../src/domain/edm/StateDict.js"
import { denoiseWith, networkFromDescription } from "../src/domain/nn/Network.js"
import { disposeParameters, type Parameters } from "../src/domain/nn/Parameters.js"
import { edmDenoise } from "../src/domain/edm/Preconditioning.js"
import { decodeSafetensors, type NamedArray, type SafetensorsFile } from "../src/domain/data/Safetensors.js"
import { cpuPatches, install, wasmPatches } from "../src/engine/kernels/Patches.js"
import { turn } from "./support/turn.js"

const NAMES = ["songunet-ddpmpp-tiny", "songunet-ncsnpp-tiny", "dhariwalunet-adm-tiny", "dhariwalunet-adm-attn"] as const
type Name = typeof NAMES[number]
const TOLERANCE = 1e-4

const files = new Map<Name, SafetensorsFile>(
  NAMES.map((name) => [
    name,
    decodeSafetensors(new Uint8Array(readFileSync(new URL(`./fixtures/edm/${name}.safetensors`, import.meta.url))))
  ])
)

let restore: () => void = () => {}

beforeAll(async () => {
  await import("@tensorflow/tfjs-backend-wasm")
  restore = install([...wasmPatches, ...cpuPatches])
  await tf.setBackend("wasm")
  await tf.setBackend("cpu")
  await tf.ready()
})

afterAll(() => restore())

const on = async (backend: "cpu" | "wasm"): Promise<void> => {
  await tf.setBackend(backend)
  await tf.ready()
}

const file = (name: Name): SafetensorsFile => files.get(name)!
const array = (f: SafetensorsFile, name: string): NamedArray => {
  const a = f.tensors.get(name)
  if (a === undefined) throw new Error(`golden tensor ${name} is missing`)
  return a
}
const tensor = (f: SafetensorsFile, name: string): tf.Tensor => tf.tensor(array(f, name).values, [...array(f, name).shape])
const nchwToNhwc = (t: tf.Tensor): tf.Tensor4D => tf.tidy(() => tf.transpose(t, [0, 2, 3, 1]) as tf.Tensor4D)

/** Relative L2 error ‖a − b‖/‖b‖ over the whole tensor and per sample (rows of the leading axis), in float64. */
const relativeErrors = (a: tf.Tensor, b: tf.Tensor): { readonly total: number; readonly perSample: ReadonlyArray<number> } => {
  expect(a.shape).toEqual(b.shape)
  const av = a.dataSync()
  const bv = b.dataSync()
  const n = a.shape[0]!
  const per = av.length / n
  let num = 0
  let den = 0
  const perSample: Array<number> = []
  for (let s = 0; s < n; s++) {
    let ns = 0
    let ds = 0
    for (let i = s * per; i < (s + 1) * per; i++) {
      ns += (av[i]! - bv[i]!) ** 2
      ds += bv[i]! ** 2
    }
    perSample.push(Math.sqrt(ns / ds))
    num += ns
    den += ds
  }
  return { total: Math.sqrt(num / den), perSample }
}

interface Golden {
  readonly architecture: EdmArchitecture
  readonly sigmaData: number
  readonly params: Record<string, tf.Tensor>
  readonly x: tf.Tensor4D
  readonly sigma: tf.Tensor1D
  readonly labels: EdmLabels
  readonly F: tf.Tensor4D
  readonly D: tf.Tensor4D
}

/** Loads a golden file onto the current backend: NCHW inputs/outputs become NHWC, weights go through the converter. */
const loadGolden = (name: Name): Golden => {
  const f = file(name)
  const config = parseEdmConfig(f.metadata["config"]!)
  const has = (n: string) => f.tensors.has(n)
  return {
    architecture: config.architecture,
    sigmaData: config.sigmaData,
    params: fromEdmStateDict(edmShapes(config.architecture), f.tensors),
    x: tf.tidy(() => nchwToNhwc(tensor(f, "input.x"))),
    sigma: tensor(f, "input.sigma") as tf.Tensor1D,
    labels: {
      ...(has("input.class_labels") ? { classLabels: tensor(f, "input.class_labels") as tf.Tensor2D } : {}),
      ...(has("input.augment_labels") ? { augmentLabels: tensor(f, "input.augment_labels") as tf.Tensor2D } : {})
    },
    F: tf.tidy(() => nchwToNhwc(tensor(f, "output.F"))),
    D: tf.tidy(() => nchwToNhwc(tensor(f, "output.D")))
  }
}

const disposeGolden = (g: Golden): void => {
  disposeParameters(g.params)
  tf.dispose([g.x, g.sigma, g.F, g.D, ...Object.values(g.labels)])
}

const applyWith = (
  architecture: EdmArchitecture,
  params: Parameters,
  xIn: tf.Tensor4D,
  cNoise: tf.Tensor1D,
  labels: EdmLabels
): tf.Tensor4D =>
  architecture.kind === "songunet"
    ? applySongUNet(architecture.spec, params, xIn, cNoise, labels)
    : applyDhariwalUNet(architecture.spec, params, xIn, cNoise, labels)

/** D(x; σ) through EDM preconditioning, and F as seen inside it (docs/algorithm.md §2.3). */
const runGolden = (g: Golden): { readonly F: tf.Tensor4D; readonly D: tf.Tensor4D } => {
  let F: tf.Tensor4D | undefined
  const D = edmDenoise(g.x, g.sigma, (xIn, cNoise) => {
    const out = applyWith(g.architecture, g.params, xIn as tf.Tensor4D, cNoise, g.labels)
    F = tf.keep(out.clone())
    return out
  }, g.sigmaData) as tf.Tensor4D
  return { F: F!, D }
}

const measured: Array<string> = []

afterAll(() => {
  if (measured.length > 0) console.log(`EDM golden max relative errors:\n${measured.join("\n")}`)
})

describe("EDM golden agreement (NVlabs/edm networks, EDMPrecond σ_data 0.5)", () => {
  for (const backend of ["cpu", "wasm"] as const) {
    for (const name of NAMES) {
      it(`${name} reproduces output.F and output.D on ${backend} (relative L2 ≤ 1e-4, total and per sample)`, async () => {
        await on(backend)
        const g = loadGolden(name)
        const { D, F } = runGolden(g)
        const errF = relativeErrors(F, g.F)
        const errD = relativeErrors(D, g.D)
        measured.push(
          `${backend} ${name}: F ${errF.total.toExponential(2)} (worst sample ${Math.max(...errF.perSample).toExponential(2)}), ` +
            `D ${errD.total.toExponential(2)} (worst sample ${Math.max(...errD.perSample).toExponential(2)})`
        )
        expect(errF.total).toBeLessThanOrEqual(TOLERANCE)
        expect(errD.total).toBeLessThanOrEqual(TOLERANCE)
        for (const e of [...errF.perSample, ...errD.perSample]) expect(e).toBeLessThanOrEqual(TOLERANCE)
        tf.dispose([F, D])
        disposeGolden(g)
      })
    }
  }

  it("a perturbed weight breaks the agreement (the comparison can fail)", async () => {
    await on("cpu")
    const g = loadGolden("songunet-ncsnpp-tiny")
    const key = "enc.8x8_aux_residual.weight"
    const original = g.params[key]!
    g.params[key] = tf.mul(original, 1.01)
    const { D, F } = runGolden(g)
    expect(relativeErrors(F, g.F).total).toBeGreaterThan(1e-3)
    tf.dispose([F, D, original])
    disposeGolden(g)
  })
})

describe("EDM resampling filters", () => {
  beforeAll(() => on("cpu"))

  /** PyTorch's conv_transpose2d(x, 4·f, groups=C, stride=2, padding=pad) written as a scatter over one channel. */
  const naiveUp = (x: ArrayLike<number>, h: number, f: Float32Array, k: number, pad: number): Array<number> => {
    const size = (h - 1) * 2 + k - 2 * pad
    const out = new Array<number>(size * size).fill(0)
    for (let iy = 0; iy < h; iy++) {
      for (let ix = 0; ix < h; ix++) {
        for (let ky = 0; ky < k; ky++) {
          for (let kx = 0; kx < k; kx++) {
            const oy = 2 * iy + ky - pad
            const ox = 2 * ix + kx - pad
            if (oy >= 0 && oy < size && ox >= 0 && ox < size) out[oy * size + ox]! += x[iy * h + ix]! * 4 * f[ky * k + kx]!
          }
        }
      }
    }
    return out
  }

  it("upsampling equals a transposed grouped conv, for EDM's filters and the fused paddings", () => {
    for (const [taps, pad] of [[[1, 1], 0], [[1, 1], 1], [[1, 3, 3, 1], 1], [[1, 3, 3, 1], 2]] as const) {
      const k = taps.length
      const f = resampleFilterValues(taps)
      const x = tf.randomNormal([1, 5, 5, 2], 0, 1, "float32", 5) as tf.Tensor4D
      const y = upsample2x(x, tf.tensor4d(f, [k, k, 1, 1]), pad)
      const size = 8 + k - 2 * pad
      expect(y.shape).toEqual([1, size, size, 2])
      for (let c = 0; c < 2; c++) {
        const xc = tf.tidy(() => tf.slice(x, [0, 0, 0, c], [1, 5, 5, 1]).dataSync())
        const yc = tf.tidy(() => tf.slice(y, [0, 0, 0, c], [1, size, size, 1]).dataSync())
        const expected = naiveUp(xc, 5, f, k, pad)
        expected.forEach((v, i) => expect(yc[i]).toBeCloseTo(v, 5))
      }
      tf.dispose([x, y])
    }
  })

  it("[1,1] resampling is 2×2 average pooling down and nearest-neighbour up", () => {
    const x = tf.randomNormal([2, 6, 6, 3], 0, 1, "float32", 9) as tf.Tensor4D
    const f = tf.tensor4d(resampleFilterValues([1, 1]), [2, 2, 1, 1])
    const down = downsample2x(x, f, 0)
    const pooled = tf.avgPool(x, 2, 2, "valid")
    expect(tf.max(tf.abs(tf.sub(down, pooled))).dataSync()[0]).toBeLessThan(1e-6)
    const up = upsample2x(x, f, 0)
    const nearest = tf.image.resizeNearestNeighbor(x, [12, 12])
    expect(tf.max(tf.abs(tf.sub(up, nearest))).dataSync()[0]).toBeLessThan(1e-6)
    tf.dispose([x, f, down, pooled, up, nearest])
  })
})

describe("EDM state dict conversion", () => {
  beforeAll(() => on("cpu"))

  it("round-trips every golden state dict bit for bit, in state_dict() order", () => {
    for (const name of NAMES) {
      const f = file(name)
      const architecture = parseEdmConfig(f.metadata["config"]!).architecture
      const shapes = edmShapes(architecture)
      const params = fromEdmStateDict(shapes, f.tensors)
      const back = toEdmStateDict(shapes, params)
      const weights = [...f.tensors.entries()].filter(([n]) => n.startsWith("model."))
      expect(back.map(([n]) => n)).toEqual(weights.map(([n]) => n))
      for (const [n, a] of back) {
        const ref = f.tensors.get(n)!
        expect(a.shape).toEqual(ref.shape)
        expect(Buffer.compare(Buffer.from(a.values.buffer), Buffer.from(Float32Array.from(ref.values).buffer)), n).toBe(0)
      }
      disposeParameters(params)
    }
  })

  it("maps layouts: Linear [out,in] → [in,out], conv OIHW → HWIO, 1-D as is", () => {
    const f = file("songunet-ddpmpp-tiny")
    const shapes = edmShapes(parseEdmConfig(f.metadata["config"]!).architecture)
    const params = fromEdmStateDict(shapes, f.tensors)
    const linear = array(f, "model.map_layer0.weight")
    const conv = array(f, "model.enc.16x16_conv.weight")
    expect(params["map_layer0.weight"]!.shape).toEqual([16, 32])
    expect(params["enc.16x16_conv.weight"]!.shape).toEqual([3, 3, 3, 16])
    const w = params["map_layer0.weight"]!.arraySync() as Array<Array<number>>
    expect(w[5]![7]).toBe(linear.values[7 * 16 + 5])
    const c = params["enc.16x16_conv.weight"]!.arraySync() as Array<Array<Array<Array<number>>>>
    // torch [o=9, i=2, kh=1, kw=0] is TF.js [kh=1, kw=0, i=2, o=9]
    expect(c[1]![0]![2]![9]).toBe(conv.values[((9 * 3 + 2) * 3 + 1) * 3 + 0])
    disposeParameters(params)
  })

  it("lists every missing, unexpected and mis-shaped weight by name in one error", () => {
    const f = file("dhariwalunet-adm-tiny")
    const shapes = edmShapes(parseEdmConfig(f.metadata["config"]!).architecture)
    const broken = new Map(f.tensors)
    broken.delete("model.enc.8x8_down.conv0.weight")
    broken.delete("model.out_norm.bias")
    broken.set("model.dec.8x8_in0.qkv.weight", { dtype: "float32", shape: [96, 32, 1, 1], values: new Float32Array(3072) })
    broken.set("model.map_layer1.weight", { dtype: "float32", shape: [32, 31], values: new Float32Array(32 * 31) })
    const before = tf.memory().numTensors
    let error: unknown
    try {
      fromEdmStateDict(shapes, broken)
    } catch (e) {
      error = e
    }
    expect(tf.memory().numTensors).toBe(before)
    expect(error).toBeInstanceOf(EdmStateDictError)
    const message = (error as Error).message
    expect(message).toMatch(/missing: model\.enc\.8x8_down\.conv0\.weight, model\.out_norm\.bias/)
    expect(message).toMatch(/unexpected: model\.dec\.8x8_in0\.qkv\.weight/)
    expect(message).toMatch(/mis-shaped: model\.map_layer1\.weight \(expected \[32,32\], got \[32,31\]\)/)
    const mismatch = (error as EdmStateDictError).mismatch
    expect(mismatch.missing).toEqual(["enc.8x8_down.conv0.weight", "out_norm.bias"])
    expect(mismatch.unexpected).toEqual(["dec.8x8_in0.qkv.weight"])
    expect(mismatch.misShaped.map((m) => m.name)).toEqual(["map_layer1.weight"])
  })

  it("declares exactly the golden files' weights, with their shapes, for every configuration", () => {
    for (const name of NAMES) {
      const f = file(name)
      const shapes = edmShapes(parseEdmConfig(f.metadata["config"]!).architecture)
      const weights = [...f.tensors.entries()].filter(([n]) => n.startsWith("model."))
      expect(Object.keys(shapes).map((n) => `model.${n}`)).toEqual(weights.map(([n]) => n))
    }
  })
})

describe("EDM configuration parsing", () => {
  it("reads the golden configs, with EDMPrecond's defaults", () => {
    const c = parseEdmConfig(file("songunet-ncsnpp-tiny").metadata["config"]!)
    expect(c.sigmaData).toBe(0.5)
    expect(c.architecture.kind).toBe("songunet")
    expect(c.architecture.spec).toMatchObject({
      imgResolution: 16,
      imgChannels: 3,
      labelDim: 10,
      augmentDim: 9,
      embeddingType: "fourier",
      channelMultNoise: 2,
      encoderType: "residual",
      resampleFilter: [1, 3, 3, 1]
    })
    expect(parseEdmConfig({ img_resolution: 8, img_channels: 1, model_channels: 32, channel_mult: [1] }).architecture.kind)
      .toBe("dhariwalunet")
  })

  it("rejects unknown model types, unknown keys, wrong types and impossible architectures", () => {
    expect(() => parseEdmConfig({ img_resolution: 8, img_channels: 3, model_type: "VPUNet" })).toThrow(/model_type "VPUNet"/)
    expect(() => parseEdmConfig({ img_resolution: 8, img_channels: 3, model_type: "DhariwalUNet", encoder_type: "skip" }))
      .toThrow(/unknown keys for DhariwalUNet: encoder_type/)
    expect(() => parseEdmConfig({ img_resolution: 8, img_channels: 3, model_type: "SongUNet", channel_mult: "1,2" }))
      .toThrow(/channel_mult must be a list/)
    expect(() => parseEdmConfig({ img_resolution: 10, img_channels: 3, model_type: "SongUNet", channel_mult: [1, 2, 2] }))
      .toThrow(/divisible by 4/)
    expect(() => parseEdmConfig("{not json")).toThrow(/not valid JSON/)
  })
})

describe("EDM networks as sid-ts Networks", () => {
  beforeAll(() => on("cpu"))

  it("Network.apply is the unconditional network: zero class labels, no (= zero) augment labels", () => {
    for (const name of ["songunet-ncsnpp-tiny", "dhariwalunet-adm-attn"] as const) {
      const g = loadGolden(name)
      const network = networkFromDescription(JSON.parse(JSON.stringify(edmNetwork(g.architecture).description)))
      expect(network.description.kind).toBe(g.architecture.kind)
      expect(network.dataShape).toEqual(g.x.shape.slice(1))
      const n = g.x.shape[0]
      const spec = g.architecture.spec
      const cNoise = tf.tensor1d([-1.2, -0.3, 0.4, 1.1])
      const viaNetwork = network.apply(g.params, g.x, cNoise)
      const zeros = applyWith(g.architecture, g.params, g.x, cNoise, {
        classLabels: tf.zeros([n, spec.labelDim]),
        augmentLabels: tf.zeros([n, spec.augmentDim])
      })
      const labelled = applyWith(g.architecture, g.params, g.x, cNoise, g.labels)
      expect(tf.max(tf.abs(tf.sub(viaNetwork, zeros))).dataSync()[0]).toBeLessThan(1e-5)
      expect(relativeErrors(viaNetwork, labelled).total).toBeGreaterThan(1e-3)
      const d = denoiseWith(network, g.params, g.x, g.sigma, g.sigmaData)
      expect(d.shape).toEqual(g.x.shape)
      tf.dispose([cNoise, viaNetwork, zeros, labelled, d])
      disposeGolden(g)
    }
  })

  it("init gives the declared shapes, is deterministic in the seed, and exports to the EDM layout", () => {
    const spec = songUNetSpec(8, 3, {
      modelChannels: 16,
      channelMult: [1, 2],
      numBlocks: 1,
      attnResolutions: [4],
      encoderType: "skip",
      decoderType: "skip",
      resampleFilter: [1, 3, 3, 1],
      labelDim: 4
    })
    const network = edmNetwork({ kind: "songunet", spec })
    const a = network.init(7)
    const b = network.init(7)
    const c = network.init(8)
    expect(Object.fromEntries(Object.entries(a).map(([n, t]) => [n, t.shape]))).toEqual(network.shapes)
    expect(tf.max(tf.abs(tf.sub(a["map_layer0.weight"]!, b["map_layer0.weight"]!))).dataSync()[0]).toBe(0)
    expect(tf.max(tf.abs(tf.sub(a["map_layer0.weight"]!, c["map_layer0.weight"]!))).dataSync()[0]).toBeGreaterThan(0)
    expect(Array.from(a["enc.4x4_aux_down.resample_filter"]!.dataSync())).toEqual(
      [1, 3, 3, 1].flatMap((i) => [1, 3, 3, 1].map((j) => Math.fround((i * j) / 64)))
    )
    const exported = toEdmStateDict(network.shapes, a)
    const again = fromEdmStateDict(network.shapes, exported)
    const x = tf.randomNormal([2, 8, 8, 3], 0, 1, "float32", 3) as tf.Tensor4D
    const out1 = network.apply(a, x, tf.tensor1d([0.1, -0.5]))
    const out2 = network.apply(again, x, tf.tensor1d([0.1, -0.5]))
    expect(out1.shape).toEqual([2, 8, 8, 3])
    expect(tf.max(tf.abs(tf.sub(out1, out2))).dataSync()[0]).toBe(0)
    for (const p of [a, b, c, again]) disposeParameters(p)
    tf.dispose([x, out1, out2])
  })

  it("leaks no tensors over repeated applies", async () => {
    for (const backend of ["cpu", "wasm"] as const) {
      await on(backend)
      for (const name of backend === "cpu" ? (["songunet-ncsnpp-tiny"] as const) : NAMES) {
        const g = loadGolden(name)
        const network = edmNetwork(g.architecture)
        const cNoise = tf.tensor1d([0.1, 0.2, 0.3, 0.4])
        const warm = applyWith(g.architecture, g.params, g.x, cNoise, g.labels)
        warm.dispose()
        const before = tf.memory().numTensors
        for (let i = 0; i < 2; i++) {
          await turn()
          applyWith(g.architecture, g.params, g.x, cNoise, g.labels).dispose()
          network.apply(g.params, g.x, cNoise).dispose()
          denoiseWith(network, g.params, g.x, g.sigma, g.sigmaData).dispose()
        }
        expect(tf.memory().numTensors).toBe(before)
        cNoise.dispose()
        disposeGolden(g)
      }
    }
    await on("cpu")
  })
})

describe("EDM network gradients (needed by SiD)", () => {
  // One sample of the golden batch: the cpu backend's gradient of a whole UNet is slow, and one sample checks the wiring.
  const gradients = (name: Name): { readonly dx: Float32Array; readonly dParams: Record<string, Float32Array> } => {
    const whole = loadGolden(name)
    const first = <T extends tf.Tensor>(t: T): T => {
      const one = tf.slice(t, 0, 1) as T
      t.dispose()
      return one
    }
    const g = {
      ...whole,
      x: first(whole.x),
      sigma: first(whole.sigma),
      labels: Object.fromEntries(Object.entries(whole.labels).map(([k, v]) => [k, first(v)])) as typeof whole.labels
    }
    const weight = tf.tidy(() => tf.randomNormal(g.x.shape, 0, 1, "float32", 11))
    const names = Object.keys(g.params)
    const loss = (x: tf.Tensor, ...ps: Array<tf.Tensor>): tf.Scalar => {
      const params = Object.fromEntries(names.map((n, i) => [n, ps[i]!]))
      const d = edmDenoise(x, g.sigma, (xIn, cNoise) =>
        applyWith(g.architecture, params, xIn as tf.Tensor4D, cNoise, g.labels), g.sigmaData)
      return tf.sum(tf.mul(d, weight))
    }
    const grads = tf.grads(loss)([g.x, ...names.map((n) => g.params[n]!)])
    const dx = Float32Array.from(grads[0]!.dataSync())
    const dParams = Object.fromEntries(names.map((n, i) => [n, Float32Array.from(grads[i + 1]!.dataSync())]))
    tf.dispose([...grads, weight])
    disposeGolden(g)
    return { dx, dParams }
  }

  const rel = (a: Float32Array, b: Float32Array): number => {
    let num = 0
    let den = 0
    for (let i = 0; i < a.length; i++) {
      num += (a[i]! - b[i]!) ** 2
      den += b[i]! ** 2
    }
    return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den)
  }

  for (const name of ["songunet-ncsnpp-tiny", "dhariwalunet-adm-attn"] as const) {
    it(`${name}: input and weight gradients on wasm are finite and match cpu; buffers get zero gradient`, async () => {
      await on("wasm")
      const before = tf.memory().numTensors
      const w = gradients(name)
      expect(tf.memory().numTensors).toBe(before)
      await turn()
      await on("cpu")
      const c = gradients(name)
      expect(w.dx.every(Number.isFinite)).toBe(true)
      expect(w.dx.some((v) => v !== 0)).toBe(true)
      expect(rel(w.dx, c.dx)).toBeLessThan(1e-4)
      for (const [n, gw] of Object.entries(w.dParams)) {
        expect(gw.every(Number.isFinite), n).toBe(true)
        if (n.endsWith("resample_filter") || n.endsWith("freqs")) {
          expect(gw.every((v) => v === 0), n).toBe(true)
        } else {
          expect(rel(gw, c.dParams[n]!), n).toBeLessThan(1e-3)
        }
      }
    })
  }
})
