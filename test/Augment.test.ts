import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  applyAugment,
  augment,
  AUGMENT_LABEL_DIM,
  type AugmentParams,
  type AugmentSettings,
  drawAugmentParams,
  identityParams,
  inverseTransform,
  type Matrix3,
  sidAugmentSettings,
  SYM6,
  transformPoint
} from "../src/domain/sid/Augment.js"
import { distillConfig } from "../src/domain/config/DistillConfig.js"
import { songUNetNetwork, songUNetSpec } from "../src/domain/edm/SongUNet.js"
import { dhariwalUNetNetwork, dhariwalUNetSpec } from "../src/domain/edm/DhariwalUNet.js"
import { mlpNetwork, unetNetwork } from "../src/domain/nn/Network.js"
import { mlpSpec } from "../src/domain/nn/Mlp.js"
import { makeStream } from "../src/domain/data/RandomStream.js"
import { unetSpec } from "../src/domain/nn/UNet.js"
import * as DataFreeSampler from "../src/services/DataFreeSampler.js"
import { augmentSettingsOf } from "../src/domain/sid/Augment.js"
import { tf, useEngine } from "./support/distillation.js"

let release: () => Promise<void>
beforeAll(async () => {
  release = await useEngine("wasm")
})
afterAll(async () => {
  await release()
})

const maxAbs = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!)

/** Only the transforms named switched on (multiplier 1, p = 1); the others off. */
const only = (...names: ReadonlyArray<"xflip" | "yflip" | "scale" | "rotateFrac" | "aniso" | "translateFrac">): AugmentSettings => ({
  ...sidAugmentSettings(1),
  xflip: names.includes("xflip") ? 1 : 0,
  yflip: names.includes("yflip") ? 1 : 0,
  scale: names.includes("scale") ? 1 : 0,
  rotateFrac: names.includes("rotateFrac") ? 1 : 0,
  aniso: names.includes("aniso") ? 1 : 0,
  translateFrac: names.includes("translateFrac") ? 1 : 0
})

const withParams = (batch: number, set: Partial<Record<keyof Omit<AugmentParams, "batch">, ReadonlyArray<number>>>): AugmentParams => {
  const p = identityParams(batch)
  for (const [k, v] of Object.entries(set)) (p[k as keyof Omit<AugmentParams, "batch">] as Float64Array).set(v)
  return p
}

/** A smooth test image: Gaussian blobs (band-limited enough for the resampling to be near exact inside). */
const blobs = (
  n: number,
  h: number,
  w: number,
  c: number,
  centres: ReadonlyArray<readonly [number, number]>,
  width = 2,
  background = -0.3
): tf.Tensor4D => {
  const data = new Float32Array(n * h * w * c)
  for (let b = 0; b < n; b++) {
    const [x0, y0] = centres[b % centres.length]!
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        const v = Math.exp(-((j - x0) ** 2 + (i - y0) ** 2) / (2 * width * width))
        for (let k = 0; k < c; k++) data[((b * h + i) * w + j) * c + k] = v * (k + 1) + background
      }
    }
  }
  return tf.tensor4d(data, [n, h, w, c])
}

/** Centroid of the positive part of an image above `offset`, within `radius` px of `near` (reflect padding can mirror
 * a blob into the frame when the transform zooms out, as in EDM). */
const centroid = (
  img: Float32Array,
  h: number,
  w: number,
  offset: number,
  near: readonly [number, number] = [(w - 1) / 2, (h - 1) / 2],
  radius = Infinity
): readonly [number, number] => {
  let sx = 0
  let sy = 0
  let m = 0
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      if (Math.hypot(j - near[0], i - near[1]) > radius) continue
      const v = Math.max(0, img[i * w + j]! - offset)
      sx += v * j
      sy += v * i
      m += v
    }
  }
  return [sx / m, sy / m]
}

const invert = (m: Matrix3): Matrix3 => {
  const [a, b, c, d, e, f] = m
  const det = a * e - b * d
  const ia = e / det, ib = -b / det, id = -d / det, ie = a / det
  return [ia, ib, -(ia * c + ib * f), id, ie, -(id * c + ie * f), 0, 0, 1]
}

describe("EDM's augmentation pipe (docs/algorithm.md §13.4, docs/sida.md §2)", () => {
  it("the sym6 filter is orthonormal, and the labels have EDM's 9 entries", () => {
    expect(SYM6.reduce((a, b) => a + b * b, 0)).toBeCloseTo(1, 10)
    for (const shift of [2, 4, 6, 8, 10]) {
      expect(SYM6.reduce((a, v, k) => a + v * (SYM6[k + shift] ?? 0), 0)).toBeCloseTo(0, 10)
    }
    const { params } = drawAugmentParams(makeStream(1, "augment"), 5, sidAugmentSettings(0.5))
    const labels = augment(tf.zeros([5, 8, 8, 1]), params, sidAugmentSettings(0.5))
    expect(labels.labels.shape).toEqual([5, AUGMENT_LABEL_DIM])
    tf.dispose([labels.images, labels.labels])
  })

  it("p = 0 is the identity: no run setting, no sampler stream, and every drawn transform and label is zero", () => {
    expect(augmentSettingsOf(distillConfig({}))).toBeUndefined()
    expect(augmentSettingsOf(distillConfig({ augment: 0.12 }))).toEqual(sidAugmentSettings(0.12))
    const plain = DataFreeSampler.makeSampler({ seed: 1, dataShape: [8, 8, 1] })
    expect(plain.augmentation).toBeUndefined()
    expect(Object.keys(plain.state())).not.toContain("augment")
    const { params } = drawAugmentParams(makeStream(3, "augment"), 64, sidAugmentSettings(0))
    for (const [k, v] of Object.entries(params)) {
      if (k !== "batch" && k !== "anisoAngle") expect(Array.from(v as Float64Array).every((x) => x === 0)).toBe(true)
    }
    const labels = augment(tf.zeros([64, 8, 8, 1]), params, sidAugmentSettings(0))
    expect(Array.from(labels.labels.dataSync()).every((x) => x === 0)).toBe(true)
    tf.dispose([labels.images, labels.labels])
  })

  it("untransformed samples come back unchanged up to float rounding (the up/down resampling is orthonormal)", () => {
    for (const [h, w, c] of [[8, 8, 1], [16, 12, 3], [28, 28, 1], [13, 17, 2]] as const) {
      const x = tf.randomNormal([3, h, w, c], 0, 1, "float32", 7)
      const y = applyAugment(x, identityParams(3), sidAugmentSettings(0.5))
      expect(y.shape).toEqual([3, h, w, c])
      expect(maxAbs(x, y)).toBeLessThan(2e-5)
      tf.dispose([x, y])
    }
  })

  it("flips are exact pixel permutations and their own inverses", () => {
    const x = tf.randomNormal([4, 6, 5, 2], 0, 1, "float32", 3)
    const params = withParams(4, { xflip: [1, 0, 1, 0], yflip: [0, 1, 1, 0] })
    const flips = only("xflip", "yflip")
    const y = applyAugment(x, params, flips)
    const expected = tf.tidy(() =>
      tf.stack([tf.reverse(x.slice(0, 1), 2), tf.reverse(x.slice(1, 1), 1), tf.reverse(x.slice(2, 1), [1, 2]), x.slice(3, 1)].map((t) => t.squeeze([0])))
    )
    expect(maxAbs(y, expected)).toBe(0)
    const back = applyAugment(y, params, flips)
    expect(maxAbs(back, x)).toBe(0)
    tf.dispose([x, y, expected, back])
  })

  it("the label vector is the parameters, in EDM's layout", () => {
    const params = withParams(2, {
      xflip: [1, 0],
      yflip: [0, 1],
      scale: [0.5, -1],
      rotate: [0.3, -2],
      aniso: [0.7, 0],
      anisoAngle: [1.1, 0.4],
      translateX: [0.2, 0],
      translateY: [-0.4, 0]
    })
    const { images, labels } = augment(tf.zeros([2, 8, 8, 1]), params, sidAugmentSettings(1))
    const l = Array.from(labels.dataSync())
    const expected = [
      [1, 0, 0.5, Math.cos(0.3) - 1, Math.sin(0.3), 0.7 * Math.cos(1.1), 0.7 * Math.sin(1.1), 0.2, -0.4],
      [0, 1, -1, Math.cos(-2) - 1, Math.sin(-2), 0, 0, 0, 0]
    ].flat()
    l.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 6))
    tf.dispose([images, labels])
  })

  it("a random transform moves a blob to where its labels say (flips, scale, rotation, translation)", () => {
    const [h, w] = [28, 28]
    const settings = { ...sidAugmentSettings(0.9), aniso: 0 }
    const { params } = drawAugmentParams(makeStream(11, "augment"), 24, settings)
    const start: readonly [number, number] = [16, 11]
    const x = blobs(24, h, w, 1, [start], 1.5, 0)
    const { images, labels } = augment(x, params, settings)
    const out = images.dataSync() as Float32Array
    const l = labels.dataSync()
    let checked = 0
    for (let n = 0; n < 24; n++) {
      const row = (k: number) => l[n * AUGMENT_LABEL_DIM + k]!
      const decoded = withParams(1, {
        scale: [row(2)],
        rotate: [Math.atan2(row(4), row(3) + 1)],
        translateX: [row(7)],
        translateY: [row(8)]
      })
      const cx = (w - 1) / 2
      const cy = (h - 1) / 2
      const u = row(0) === 1 ? cx - (start[0] - cx) : start[0]
      const v = row(1) === 1 ? cy - (start[1] - cy) : start[1]
      const [px, py] = transformPoint(invert(inverseTransform(decoded, 0, settings, w, h)), u - cx, v - cy)
      const predicted = [px + cx, py + cy]
      if (predicted.some((p) => p < 6 || p > 21)) continue
      const [gx, gy] = centroid(out.subarray(n * h * w, (n + 1) * h * w), h, w, 0.02, [predicted[0]!, predicted[1]!], 5)
      expect(Math.hypot(gx - predicted[0]!, gy - predicted[1]!)).toBeLessThan(0.35)
      checked++
    }
    expect(checked).toBeGreaterThan(10)
    tf.dispose([x, images, labels])
  })

  it("anisotropic scaling moves points as its parameters say", () => {
    const [h, w] = [28, 28]
    const settings = only("aniso")
    const params = withParams(3, { aniso: [1.5, -1.2, 2], anisoAngle: [0.6, -1, 0] })
    const start: readonly [number, number] = [17, 12]
    const x = blobs(3, h, w, 1, [start], 1.2, 0)
    const out = applyAugment(x, params, settings).dataSync() as Float32Array
    for (let n = 0; n < 3; n++) {
      const cx = (w - 1) / 2
      const [px, py] = transformPoint(invert(inverseTransform(params, n, settings, w, h)), start[0] - cx, start[1] - cx)
      const [gx, gy] = centroid(out.subarray(n * h * w, (n + 1) * h * w), h, w, 0.02, [px + cx, py + cx], 5)
      expect(Math.hypot(gx - (px + cx), gy - (py + cx))).toBeLessThan(0.35)
    }
    x.dispose()
  })

  it("is invertible where EDM's is: a rotation, scaling or translation undone recovers a smooth image's interior", () => {
    const x = blobs(3, 24, 24, 1, [[11, 12], [13, 10], [12, 13]], 3)
    for (const [settings, there, back] of [
      [only("rotateFrac"), { rotate: [0.7, -1.3, 2.5] }, { rotate: [-0.7, 1.3, -2.5] }],
      [only("scale"), { scale: [1, -1, 0.5] }, { scale: [-1, 1, -0.5] }],
      [only("translateFrac"), { translateX: [0.5, -0.3, 0.8], translateY: [-0.6, 0.2, 0] }, {
        translateX: [-0.5, 0.3, -0.8],
        translateY: [0.6, -0.2, 0]
      }]
    ] as const) {
      const y = applyAugment(x, withParams(3, there), settings)
      const z = applyAugment(y, withParams(3, back), settings)
      const inner = (t: tf.Tensor) => t.slice([0, 6, 6, 0], [3, 12, 12, 1])
      expect(tf.tidy(() => maxAbs(inner(x), inner(z)))).toBeLessThan(0.02)
      expect(tf.tidy(() => maxAbs(inner(x), inner(y)))).toBeGreaterThan(0.05)
      tf.dispose([y, z])
    }
    x.dispose()
  })

  it("is deterministic per seed: the same stream gives the same parameters and images; another seed others", () => {
    const x = tf.randomNormal([6, 12, 12, 3], 0, 1, "float32", 5)
    const settings = sidAugmentSettings(0.6)
    const a = DataFreeSampler.makeSampler({ seed: 4, dataShape: [12, 12, 3], augment: settings })
    const b = DataFreeSampler.makeSampler({ seed: 4, dataShape: [12, 12, 3], augment: settings })
    const c = DataFreeSampler.makeSampler({ seed: 5, dataShape: [12, 12, 3], augment: settings })
    expect(Object.keys(a.state())).toContain("augment")
    for (let round = 0; round < 2; round++) {
      const pa = a.augmentation!(6)
      const pb = b.augmentation!(6)
      const pc = c.augmentation!(6)
      expect(pb).toEqual(pa)
      expect(pc).not.toEqual(pa)
      const ya = applyAugment(x, pa, settings)
      const yb = applyAugment(x, pb, settings)
      expect(maxAbs(ya, yb)).toBe(0)
      tf.dispose([ya, yb])
    }
    const saved = a.state()
    const next = a.augmentation!(6)
    b.restore(saved)
    expect(b.augmentation!(6)).toEqual(next)
    x.dispose()
  })

  it("leaks no tensors", () => {
    const x = tf.randomNormal([4, 10, 10, 1])
    const before = tf.memory().numTensors
    const { params } = drawAugmentParams(makeStream(2, "augment"), 4, sidAugmentSettings(1))
    const r = augment(x, params, sidAugmentSettings(1))
    tf.dispose([r.images, r.labels])
    expect(tf.memory().numTensors).toBe(before)
    x.dispose()
  })
})

describe("augmentation labels reach the networks (docs/algorithm.md §2.3, §15, item 11)", () => {
  const xIn = () => tf.randomNormal([2, 8, 8, 1], 0, 1, "float32", 9)
  for (const network of [
    songUNetNetwork(songUNetSpec(8, 1, { modelChannels: 16, channelMult: [1, 2], numBlocks: 1, attnResolutions: [4], augmentDim: 9 })),
    dhariwalUNetNetwork(dhariwalUNetSpec(8, 1, { modelChannels: 16, channelMult: [1, 2], numBlocks: 1, attnResolutions: [], augmentDim: 9 }))
  ]) {
    it(`${network.description.kind} with augment_dim 9: the zero vector is the same as none; labels change F`, () => {
      expect(network.augmentDim).toBe(9)
      const params = Object.fromEntries(
        Object.entries(network.shapes).map(([name, shape], i) => [name, tf.randomNormal([...shape], 0, 0.2, "float32", i + 1)])
      )
      const x = xIn()
      const c = tf.tensor1d([0.1, -0.4])
      const none = network.applyLogits!(params, x, c)
      const zero = network.applyLogits!(params, x, c, undefined, { augmentLabels: tf.zeros([2, 9]) })
      const { params: p } = drawAugmentParams(makeStream(1, "augment"), 2, sidAugmentSettings(1))
      const labels = augment(tf.zeros([2, 8, 8, 1]), p, sidAugmentSettings(1)).labels
      const some = network.applyLogits!(params, x, c, undefined, { augmentLabels: labels })
      const noneF = network.apply(params, x, c)
      const zeroF = network.apply(params, x, c, undefined, { augmentLabels: tf.zeros([2, 9]) })
      expect(maxAbs(noneF, zeroF)).toBe(0)
      tf.dispose([noneF, zeroF, labels])
      expect(maxAbs(none, zero)).toBe(0)
      expect(maxAbs(none, some)).toBeGreaterThan(0)
      tf.dispose([x, c, none, zero, some, ...Object.values(params)])
    })
  }

  it("networks without augment conditioning refuse labels (the pipeline gives them only the images)", () => {
    const unet = unetNetwork(unetSpec([8, 8, 1], { baseChannels: 8, channelMult: [1, 2], groups: 4 }))
    const mlp = mlpNetwork(mlpSpec(2, { hidden: 8, depth: 2 }))
    expect(unet.augmentDim ?? 0).toBe(0)
    const params = unet.init(1)
    expect(() => unet.apply(params, tf.zeros([1, 8, 8, 1]), tf.zeros([1]), undefined, { augmentLabels: tf.zeros([1, 9]) }))
      .toThrow(/no augmentation labels/)
    const mp = mlp.init(1)
    expect(() => mlp.apply(mp, tf.zeros([1, 2]), tf.zeros([1]), undefined, { augmentLabels: tf.zeros([1, 9]) }))
      .toThrow(/no augmentation labels/)
    tf.dispose([...Object.values(params), ...Object.values(mp)])
  })
})

describe("augmentation properties (fast-check)", () => {
  it("per seed: parameters are deterministic, within EDM's ranges, zero at p = 0, and the labels are exactly those parameters", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 1, max: 6 }), fc.double({ min: 0, max: 1, noNaN: true }), (seed, batch, p) => {
        const settings = sidAugmentSettings(p)
        const a = drawAugmentParams(makeStream(seed, "augment"), batch, settings)
        const b = drawAugmentParams(makeStream(seed, "augment"), batch, settings)
        expect(b).toEqual(a)
        const q = a.params
        for (let i = 0; i < batch; i++) {
          expect([0, 1]).toContain(q.xflip[i])
          expect([0, 1]).toContain(q.yflip[i])
          expect(Math.abs(q.rotate[i]!)).toBeLessThanOrEqual(Math.PI)
          expect(Math.abs(q.anisoAngle[i]!)).toBeLessThanOrEqual(Math.PI)
          if (p === 0) {
            for (const v of [q.xflip[i], q.yflip[i], q.scale[i], q.rotate[i], q.aniso[i], q.translateX[i], q.translateY[i]]) expect(v).toBe(0)
          }
        }
        const labels = tf.tidy(() => Array.from(augment(tf.zeros([batch, 4, 4, 1]), q, settings).labels.dataSync()))
        for (let i = 0; i < batch; i++) {
          const row = labels.slice(i * AUGMENT_LABEL_DIM, (i + 1) * AUGMENT_LABEL_DIM)
          const expected = [
            q.xflip[i]!,
            q.yflip[i]!,
            q.scale[i]!,
            Math.cos(q.rotate[i]!) - 1,
            Math.sin(q.rotate[i]!),
            q.aniso[i]! * Math.cos(q.anisoAngle[i]!),
            q.aniso[i]! * Math.sin(q.anisoAngle[i]!),
            q.translateX[i]!,
            q.translateY[i]!
          ]
          row.forEach((v, k) => expect(v).toBeCloseTo(expected[k]!, 5))
        }
      }),
      { numRuns: 40 }
    )
  })

  it("flips drawn from any seed are exact involutions", () => {
    const x = tf.randomNormal([5, 7, 6, 3], 0, 1, "float32", 21)
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), (seed) => {
        const flips = only("xflip", "yflip")
        const { params } = drawAugmentParams(makeStream(seed, "augment"), 5, { ...flips, p: 1 })
        const y = applyAugment(x, params, flips)
        const back = applyAugment(y, params, flips)
        expect(maxAbs(back, x)).toBe(0)
        tf.dispose([y, back])
      }),
      { numRuns: 20 }
    )
    x.dispose()
  })

  it("any rotation is undone by its opposite in a smooth image's interior", () => {
    const x = blobs(1, 24, 24, 1, [[12, 11]], 3)
    fc.assert(
      fc.property(fc.double({ min: -Math.PI, max: Math.PI, noNaN: true }), (theta) => {
        const settings = only("rotateFrac")
        const y = applyAugment(x, withParams(1, { rotate: [theta] }), settings)
        const z = applyAugment(y, withParams(1, { rotate: [-theta] }), settings)
        expect(tf.tidy(() => maxAbs(x.slice([0, 6, 6, 0], [1, 12, 12, 1]), z.slice([0, 6, 6, 0], [1, 12, 12, 1])))).toBeLessThan(0.02)
        tf.dispose([y, z])
      }),
      { numRuns: 10 }
    )
    x.dispose()
  })
})

