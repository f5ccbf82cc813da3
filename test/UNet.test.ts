import * as tf from "@tensorflow/tfjs"
import { beforeAll, describe, expect, it } from "vitest"
import { groupNorm, groupNormalize } from "../src/domain/nn/GroupNorm.js"
import { countParameters, disposeParameters, shapesOf } from "../src/domain/nn/Parameters.js"
import type { UNetSpec } from "../src/domain/nn/UNet.js"
import { applyUNet, initUNet, sinusoidalEmbedding, unetShapes, unetSpec, upsampleNearest2x } from "../src/domain/nn/UNet.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

/** Parameter count from the architecture description alone (docs/engines.md §4 layout). */
const handCount = (s: UNetSpec): number => {
  const conv = (k: number, i: number, o: number) => k * k * i * o + o
  const lin = (i: number, o: number) => i * o + o
  const res = (i: number, o: number) =>
    2 * i + conv(3, i, o) + lin(s.embedChannels, o) + 2 * o + conv(3, o, o) + (i !== o ? conv(1, i, o) : 0)
  const ch = s.channelMult.map((m) => m * s.baseChannels)
  let total = s.labelDim * s.noiseChannels + lin(s.noiseChannels, s.embedChannels) + lin(s.embedChannels, s.embedChannels)
  total += conv(3, s.channels, s.baseChannels)
  let prev = s.baseChannels
  for (const c of ch) {
    total += res(prev, c) + (s.blocksPerResolution - 1) * res(c, c)
    prev = c
  }
  for (let l = ch.length - 2; l >= 0; l--) {
    total += res(ch[l + 1]! + ch[l]!, ch[l]!) + (s.blocksPerResolution - 1) * res(ch[l]!, ch[l]!)
  }
  return total + 2 * ch[0]! + conv(3, ch[0]!, s.channels)
}

const small: ReadonlyArray<UNetSpec> = [
  unetSpec([8, 8, 1], { baseChannels: 8, channelMult: [1, 2], groups: 4 }),
  unetSpec([8, 8, 2], { baseChannels: 8, channelMult: [1, 2, 2], blocksPerResolution: 2, groups: 2, labelDim: 3 }),
  unetSpec([12, 4, 3], { baseChannels: 4, channelMult: [1, 1, 2], groups: 2, noiseChannels: 6, embedChannels: 10 }),
  unetSpec([6, 10, 1], { baseChannels: 6, channelMult: [2], groups: 3 })
]

const oneHot = (classes: ReadonlyArray<number>, dim: number): tf.Tensor2D =>
  tf.oneHot(tf.tensor1d(classes as Array<number>, "int32"), dim).toFloat() as tf.Tensor2D

const maxAbs = (a: tf.Tensor): number => tf.tidy(() => a.abs().max().dataSync()[0]!)
const maxDiff = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => tf.sub(a, b).abs().max().dataSync()[0]!)

describe("unetSpec", () => {
  it("defaults to the network of docs/engines.md §4 (364,545 / 365,699 parameters)", () => {
    for (const [shape, count] of [[[16, 16, 1], 364_545], [[28, 28, 1], 364_545], [[32, 32, 3], 365_699]] as const) {
      const spec = unetSpec(shape)
      expect(spec.channelMult).toEqual([1, 2, 2])
      const shapes = unetShapes(spec)
      expect(Object.values(shapes).reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0)).toBe(count)
      expect(handCount(spec)).toBe(count)
    }
  })

  it("rejects sizes not divisible by 2^(levels−1), groups that do not divide, and bad fields", () => {
    expect(() => unetSpec([28, 28, 1], { channelMult: [1, 2, 2, 2] })).toThrow(/divisible by 8/)
    expect(() => unetSpec([16, 18, 1], { channelMult: [1, 2, 2] })).toThrow(/divisible by 4/)
    expect(() => unetSpec([16, 16, 1], { baseChannels: 12, groups: 8 })).toThrow(/groups do not divide/)
    expect(() => unetSpec([16, 16, 1], { channelMult: [] })).toThrow(/channelMult/)
    expect(() => unetSpec([16, 16, 1], { noiseChannels: 7 })).toThrow(/noiseChannels/)
    expect(() => unetSpec([16, 16, 1], { dropout: 1 })).toThrow(/dropout/)
    expect(() => unetSpec([0, 16, 1])).toThrow(/height/)
  })

  it("follows baseChannels in the embedding defaults", () => {
    const s = unetSpec([8, 8, 1], { baseChannels: 16 })
    expect([s.noiseChannels, s.embedChannels]).toEqual([16, 64])
  })
})

describe("GroupNorm", () => {
  it("gives each sample's group mean ≈ 0 and variance ≈ 1 before the affine map", () => {
    const [n, h, w, c, g] = [3, 4, 5, 6, 3]
    const x = tf.tidy(() =>
      tf.add(tf.mul(tf.randomNormal([n, h, w, c], 0, 1, "float32", 3), tf.tensor1d([1, 5, 0.2, 3, 2, 7])), tf.tensor1d([4, -2, 0, 9, 1, -6]))
    ) as tf.Tensor4D
    const y = groupNormalize(x, g)
    const v = y.arraySync()
    const cg = c / g
    for (let s = 0; s < n; s++) {
      for (let k = 0; k < g; k++) {
        const vals: Array<number> = []
        for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) for (let q = 0; q < cg; q++) vals.push(v[s]![i]![j]![k * cg + q]!)
        const mean = vals.reduce((a, b) => a + b, 0) / vals.length
        const variance = vals.reduce((a, b) => a + (b - mean) ** 2, 0) / vals.length
        expect(Math.abs(mean)).toBeLessThan(1e-5)
        expect(variance).toBeCloseTo(1, 3)
      }
    }
    const alone = groupNormalize(x.slice([1, 0, 0, 0], [1, h, w, c]), g)
    expect(maxDiff(alone, y.slice([1, 0, 0, 0], [1, h, w, c]))).toBeLessThan(1e-5)
    const weight = tf.tensor1d([1, 2, 3, 4, 5, 6])
    const bias = tf.tensor1d([0, -1, 1, 0.5, 0, 2])
    const z = groupNorm(x, g, weight, bias)
    const expected = tf.tidy(() => tf.add(tf.mul(y, weight), bias))
    expect(maxDiff(z, expected)).toBeLessThan(1e-5)
    expect(() => groupNormalize(x, 4)).toThrow(/groups do not divide/)
    tf.dispose([x, y, alone, weight, bias, z, expected])
  })
})

describe("building blocks", () => {
  it("upsamples by nearest neighbour and sums gradients over each 2×2 block, per sample", () => {
    const x = tf.randomNormal([2, 3, 2, 2], 0, 1, "float32", 4) as tf.Tensor4D
    const y = upsampleNearest2x(x)
    expect(y.shape).toEqual([2, 6, 4, 2])
    const xv = x.arraySync()
    const yv = y.arraySync()
    for (let s = 0; s < 2; s++) for (let i = 0; i < 6; i++) for (let j = 0; j < 4; j++) for (let c = 0; c < 2; c++) {
      expect(yv[s]![i]![j]![c]).toBe(xv[s]![Math.floor(i / 2)]![Math.floor(j / 2)]![c])
    }
    const dy = tf.randomNormal([2, 6, 4, 2], 0, 1, "float32", 5)
    const dx = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(upsampleNearest2x(t as tf.Tensor4D), dy)))(x)
    const expected = tf.tidy(() => tf.mul(tf.avgPool(dy as tf.Tensor4D, 2, 2, "valid"), 4))
    expect(maxDiff(dx, expected)).toBeLessThan(1e-5)
    tf.dispose([x, y, dy, dx, expected])
  })

  it("embeds c_noise as [cos, sin] of geometric frequencies from 1 down to 10000^(−(half−1)/half)", () => {
    const e = sinusoidalEmbedding(tf.tensor1d([0.5, -1]), 4)
    const f = [1, Math.pow(1e-4, 0.5)]
    const expected = [0.5, -1].map((c) => [Math.cos(c * f[0]!), Math.cos(c * f[1]!), Math.sin(c * f[0]!), Math.sin(c * f[1]!)])
    e.arraySync().forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo(expected[i]![j]!, 6)))
    e.dispose()
  })
})

describe("UNet", () => {
  it("maps [N,H,W,C] to [N,H,W,C] with the hand-counted number of parameters", () => {
    small.forEach((spec, k) => {
      const params = initUNet(spec, k)
      expect(countParameters(params)).toBe(handCount(spec))
      expect(shapesOf(params)).toEqual(unetShapes(spec))
      const x = tf.randomNormal([2, spec.height, spec.width, spec.channels], 0, 1, "float32", k) as tf.Tensor4D
      const cn = tf.tensor1d([-0.5, 0.7])
      const y = applyUNet(spec, params, x, cn)
      expect(y.shape).toEqual(x.shape)
      expect(Number.isFinite(maxAbs(y))).toBe(true)
      tf.dispose([x, cn, y])
      disposeParameters(params)
    })
  })

  it("uses stable dotted names (HWIO conv weights)", () => {
    const shapes = unetShapes(small[0]!)
    expect(shapes["enc.0.0.norm0.weight"]).toEqual([8])
    expect(shapes["enc.0.0.conv0.weight"]).toEqual([3, 3, 8, 8])
    expect(shapes["enc.1.0.skip.weight"]).toEqual([1, 1, 8, 16])
    expect(shapes["dec.0.0.conv0.weight"]).toEqual([3, 3, 24, 8])
    expect(shapes["out.conv.weight"]).toEqual([3, 3, 8, 1])
    expect(shapes["emb.label.weight"]).toBeUndefined()
    expect(unetShapes(small[1]!)["emb.label.weight"]).toEqual([3, 8])
  })

  it("is deterministic in its seed", () => {
    const spec = small[0]!
    const a = initUNet(spec, 11)
    const b = initUNet(spec, 11)
    const c = initUNet(spec, 12)
    for (const name of Object.keys(a)) expect(Array.from(a[name]!.dataSync())).toEqual(Array.from(b[name]!.dataSync()))
    const x = tf.randomNormal([2, 8, 8, 1], 0, 1, "float32", 1) as tf.Tensor4D
    const cn = tf.tensor1d([0.1, 0.2])
    const [ya, yb, yc] = [a, b, c].map((p) => applyUNet(spec, p, x, cn))
    expect(Array.from(ya!.dataSync())).toEqual(Array.from(yb!.dataSync()))
    expect(maxDiff(ya!, yc!)).toBeGreaterThan(1e-4)
    tf.dispose([x, cn, ya!, yb!, yc!])
    for (const p of [a, b, c]) disposeParameters(p)
  })

  it("starts with a small output (head ×outputScale) that still depends on x and c_noise", () => {
    const spec = unetSpec([8, 8, 1], { baseChannels: 8, channelMult: [1, 2], groups: 4 })
    const params = initUNet(spec, 0)
    const x = tf.randomNormal([2, 8, 8, 1], 0, 1, "float32", 9) as tf.Tensor4D
    const y0 = applyUNet(spec, params, x, tf.tensor1d([0, 0]))
    const y1 = applyUNet(spec, params, x, tf.tensor1d([1, 1]))
    expect(maxAbs(y0)).toBeGreaterThan(0)
    expect(maxAbs(y0)).toBeLessThan(1)
    expect(maxDiff(y0, y1)).toBeGreaterThan(1e-5)
    tf.dispose([x, y0, y1])
    disposeParameters(params)
  })

  it("uses labels when labelDim > 0 (missing labels = all-zero labels) and rejects misfits", () => {
    const spec = small[1]!
    const params = initUNet(spec, 2)
    const x = tf.randomNormal([2, 8, 8, 2], 0, 1, "float32", 2) as tf.Tensor4D
    const cn = tf.tensor1d([0.3, 0.3])
    const l01 = oneHot([0, 1], 3)
    const l22 = oneHot([2, 2], 3)
    const zeros = tf.zeros([2, 3]) as tf.Tensor2D
    const ya = applyUNet(spec, params, x, cn, l01)
    const yb = applyUNet(spec, params, x, cn, l22)
    const yz = applyUNet(spec, params, x, cn, zeros)
    const yn = applyUNet(spec, params, x, cn)
    expect(maxDiff(ya, yb)).toBeGreaterThan(1e-4)
    expect(maxDiff(ya.slice([0], [1]), yb.slice([0], [1]))).toBeGreaterThan(1e-4)
    expect(maxDiff(yz, yn)).toBeLessThan(1e-6)
    expect(() => applyUNet(spec, params, x, cn, oneHot([0, 1], 2))).toThrow(/labels/)
    expect(() => applyUNet(spec, params, x, tf.tensor1d([1, 2, 3]))).toThrow(/c_noise/)
    expect(() => applyUNet(spec, params, tf.zeros([1, 8, 8, 1]) as tf.Tensor4D, tf.tensor1d([1]))).toThrow(/x_in/)
    const unconditional = small[0]!
    const p0 = initUNet(unconditional, 0)
    expect(() => applyUNet(unconditional, p0, tf.zeros([2, 8, 8, 1]) as tf.Tensor4D, cn, l01)).toThrow(/unconditional/)
    const { "enc.0.0.conv0.weight": _dropped, ...missing } = p0
    expect(() => applyUNet(unconditional, missing, tf.zeros([2, 8, 8, 1]) as tf.Tensor4D, cn)).toThrow(/enc\.0\.0\.conv0\.weight/)
    tf.dispose([x, cn, l01, l22, zeros, ya, yb, yz, yn])
    disposeParameters(params)
    disposeParameters(p0)
  })

  it("applies dropout only with a seed, deterministically in that seed", () => {
    const spec = unetSpec([8, 8, 1], { baseChannels: 8, channelMult: [1, 2], groups: 4, dropout: 0.5 })
    const params = initUNet(spec, 0)
    const x = tf.randomNormal([2, 8, 8, 1], 0, 1, "float32", 6) as tf.Tensor4D
    const cn = tf.tensor1d([0.2, -0.2])
    const evalA = applyUNet(spec, params, x, cn)
    const evalB = applyUNet(spec, params, x, cn, undefined, {})
    const d1 = applyUNet(spec, params, x, cn, undefined, { dropoutSeed: 1 })
    const d1b = applyUNet(spec, params, x, cn, undefined, { dropoutSeed: 1 })
    const d2 = applyUNet(spec, params, x, cn, undefined, { dropoutSeed: 2 })
    expect(maxDiff(evalA, evalB)).toBe(0)
    expect(maxDiff(d1, d1b)).toBe(0)
    expect(maxDiff(d1, evalA)).toBeGreaterThan(1e-5)
    expect(maxDiff(d1, d2)).toBeGreaterThan(1e-5)
    tf.dispose([x, cn, evalA, evalB, d1, d1b, d2])
    disposeParameters(params)
  })

  it("gives sample i in a batch the same gradients (input and parameters) as sample i alone", () => {
    const spec = small[1]!
    const params = initUNet(spec, 3)
    const names = Object.keys(params).sort()
    const n = 3
    const x = tf.randomNormal([n, 8, 8, 2], 0, 1, "float32", 7) as tf.Tensor4D
    const cn = tf.tensor1d([-0.8, 0.1, 0.9])
    const labels = oneHot([2, 0, 1], 3)
    const r = tf.randomNormal([n, 8, 8, 2], 0, 1, "float32", 8)
    const gradsOf = (xs: tf.Tensor4D, c: tf.Tensor1D, l: tf.Tensor2D, weights: tf.Tensor) =>
      tf.grads((xt: tf.Tensor, ...ps: Array<tf.Tensor>) => {
        const p = Object.fromEntries(names.map((name, k) => [name, ps[k]!]))
        return tf.sum(tf.mul(applyUNet(spec, p, xt as tf.Tensor4D, c, l), weights))
      })([xs, ...names.map((name) => params[name]!)])
    for (const i of [0, 2]) {
      const mask = tf.tidy(() => tf.oneHot(tf.tensor1d([i], "int32"), n).reshape([n, 1, 1, 1]))
      const weights = tf.mul(r, mask)
      const batched = gradsOf(x, cn, labels, weights)
      const xi = x.slice([i], [1])
      const ci = cn.slice([i], [1])
      const li = labels.slice([i], [1])
      const solo = gradsOf(xi, ci, li, r.slice([i], [1]))
      const gx = batched[0]!
      expect(maxDiff(gx.slice([i], [1]), solo[0]!)).toBeLessThan(1e-4 * Math.max(1, maxAbs(solo[0]!)))
      const others = tf.tidy(() => tf.mul(gx, tf.sub(1, mask)))
      expect(maxAbs(others)).toBe(0)
      names.forEach((name, k) => {
        const b = batched[k + 1]!
        const s = solo[k + 1]!
        expect(maxDiff(b, s), name).toBeLessThan(1e-4 * Math.max(1, maxAbs(s)))
      })
      tf.dispose([mask, weights, ...batched, ...solo, xi, ci, li, others])
    }
    tf.dispose([x, cn, labels, r])
    disposeParameters(params)
  })

  it("leaks no tensors over repeated apply and repeated variableGrads; every gradient is finite and non-zero", () => {
    const spec = unetSpec([8, 8, 1], { baseChannels: 8, channelMult: [1, 2, 2], groups: 4, labelDim: 2 })
    const init = initUNet(spec, 4)
    const vars = Object.fromEntries(Object.entries(init).map(([name, t]) => [name, tf.variable(t, true, `unet-test/${name}`)]))
    disposeParameters(init)
    const x = tf.randomNormal([2, 8, 8, 1], 0, 1, "float32", 10) as tf.Tensor4D
    const target = tf.randomNormal([2, 8, 8, 1], 0, 1, "float32", 11)
    const cn = tf.tensor1d([-0.3, 0.4])
    const labels = oneHot([0, 1], 2)
    const before = tf.memory().numTensors
    for (let k = 0; k < 3; k++) applyUNet(spec, vars, x, cn, labels).dispose()
    expect(tf.memory().numTensors).toBe(before)
    for (let k = 0; k < 2; k++) {
      const { grads, value } = tf.variableGrads(() => tf.mean(tf.square(tf.sub(applyUNet(spec, vars, x, cn, labels), target))) as tf.Scalar)
      if (k === 0) {
        expect(Object.keys(grads).sort()).toEqual(Object.keys(vars).map((name) => `unet-test/${name}`).sort())
        for (const [name, g] of Object.entries(grads)) {
          const finite = tf.tidy(() => tf.all(tf.isFinite(g)).dataSync()[0])
          expect(finite, name).toBe(1)
          expect(maxAbs(g), name).toBeGreaterThan(0)
        }
      }
      tf.dispose([value, ...Object.values(grads)])
    }
    expect(tf.memory().numTensors).toBe(before)
    tf.dispose([x, target, cn, labels, ...Object.values(vars)])
  })

  it("trains: Adam steps on a fixed tiny batch reduce an MSE loss", () => {
    const spec = unetSpec([8, 8, 1], { baseChannels: 8, channelMult: [1, 2], groups: 4 })
    const init = initUNet(spec, 5)
    const vars = Object.fromEntries(Object.entries(init).map(([name, t]) => [name, tf.variable(t, true, `unet-train/${name}`)]))
    disposeParameters(init)
    const target = tf.tidy(() => tf.sign(tf.randomNormal([4, 8, 8, 1], 0, 1, "float32", 12)).mul(0.5))
    const x = tf.tidy(() => tf.add(target, tf.randomNormal([4, 8, 8, 1], 0, 0.5, "float32", 13))) as tf.Tensor4D
    const cn = tf.tensor1d([0, 0.1, 0.2, 0.3])
    const optimizer = tf.train.adam(3e-3)
    const loss = () => tf.mean(tf.square(tf.sub(applyUNet(spec, vars, x, cn), target))) as tf.Scalar
    const losses: Array<number> = []
    for (let k = 0; k < 15; k++) {
      const l = optimizer.minimize(loss, true)!
      losses.push(l.dataSync()[0]!)
      l.dispose()
    }
    expect(losses[losses.length - 1]!).toBeLessThan(0.7 * losses[0]!)
    optimizer.dispose()
    tf.dispose([target, x, cn, ...Object.values(vars)])
  })
})
