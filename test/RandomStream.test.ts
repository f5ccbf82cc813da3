import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { makeStream, normals, permutation, split, uniforms } from "../src/domain/data/RandomStream.js"

describe("RandomStream", () => {
  it("is deterministic in the seed and label, and different seeds or labels give different numbers", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 }), fc.string(), (seed, label) => {
        const a = uniforms(makeStream(seed, label), 16).values
        expect(uniforms(makeStream(seed, label), 16).values).toEqual(a)
        expect(uniforms(makeStream(seed + 1, label), 16).values).not.toEqual(a)
        expect(uniforms(makeStream(seed, label + "x"), 16).values).not.toEqual(a)
      }),
      { numRuns: 50 }
    )
  })

  it("drawing in two chunks gives the same numbers as one draw (resume continues the stream)", () => {
    fc.assert(
      fc.property(fc.integer(), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 64 }), (seed, n, m) => {
        const s = makeStream(seed)
        const whole = uniforms(s, n + m).values
        const first = uniforms(s, n)
        const second = uniforms(first.state, m)
        expect(Array.from(first.values).concat(Array.from(second.values))).toEqual(Array.from(whole))
      }),
      { numRuns: 50 }
    )
  })

  it("uniforms lie in (0, 1) with mean 1/2 and variance 1/12", () => {
    const n = 200_000
    const u = uniforms(makeStream(7), n).values
    let s = 0
    let s2 = 0
    let outside = 0
    for (const v of u) {
      if (!(v > 0 && v < 1)) outside++
      s += v
      s2 += v * v
    }
    expect(outside).toBe(0)
    const mean = s / n
    const variance = s2 / n - mean * mean
    expect(Math.abs(mean - 0.5)).toBeLessThan(5 * Math.sqrt(1 / 12 / n))
    expect(Math.abs(variance - 1 / 12)).toBeLessThan(0.002)
  })

  it("normals have mean 0, variance 1 and a normal fourth moment", () => {
    const n = 200_000
    const z = normals(makeStream(11), n).values
    let m1 = 0
    let m2 = 0
    let m4 = 0
    for (const v of z) {
      m1 += v
      m2 += v * v
      m4 += v ** 4
    }
    expect(Math.abs(m1 / n)).toBeLessThan(5 / Math.sqrt(n))
    expect(Math.abs(m2 / n - 1)).toBeLessThan(5 * Math.sqrt(2 / n))
    expect(Math.abs(m4 / n - 3)).toBeLessThan(5 * Math.sqrt(96 / n))
  })

  it("split streams are independent of each other and of the parent", () => {
    const parent = makeStream(3)
    const a = normals(split(parent, "latents"), 50_000).values
    const b = normals(split(parent, "noise"), 50_000).values
    const p = normals(parent, 50_000).values
    const corr = (x: Float32Array, y: Float32Array) => {
      let s = 0
      for (let i = 0; i < x.length; i++) s += x[i]! * y[i]!
      return s / x.length
    }
    expect(Math.abs(corr(a, b))).toBeLessThan(5 / Math.sqrt(50_000))
    expect(Math.abs(corr(a, p))).toBeLessThan(5 / Math.sqrt(50_000))
    expect(normals(split(parent, "latents"), 8).values).toEqual(a.slice(0, 8))
  })

  it("permutation holds every index once, is deterministic in the stream, and puts each index everywhere equally often", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 }), fc.integer({ min: 1, max: 200 }), (seed, n) => {
        const p = permutation(makeStream(seed, "perm"), n)
        expect(Array.from(p).sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i))
        expect(permutation(makeStream(seed, "perm"), n)).toEqual(p)
      }),
      { numRuns: 50 }
    )
    const counts = new Float64Array(4)
    for (let s = 0; s < 4000; s++) counts[permutation(makeStream(s, "perm"), 4)[0]!]! += 1
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(5 * Math.sqrt(4000 * 0.25 * 0.75))
  })
})
