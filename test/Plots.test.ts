import { Effect, Either } from "effect"
import { inflateSync } from "node:zlib"
import { describe, expect, it } from "vitest"
import { linePlot, scatterPanels } from "../src/report/Plots.js"

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]

interface Chunk {
  readonly type: string
  readonly data: Uint8Array
}

const chunks = (png: Uint8Array): Array<Chunk> => {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength)
  const out: Array<Chunk> = []
  let at = 8
  while (at + 8 <= png.length) {
    const length = view.getUint32(at)
    const type = String.fromCharCode(...png.subarray(at + 4, at + 8))
    out.push({ type, data: png.subarray(at + 8, at + 8 + length) })
    at += 12 + length
  }
  return out
}

/** Decodes the header and the (filtered) pixel rows: enough to check size, format and content. */
const decode = (png: Uint8Array) => {
  expect(Array.from(png.subarray(0, 8))).toEqual(PNG_SIGNATURE)
  const all = chunks(png)
  const header = all[0]!
  expect(header.type).toBe("IHDR")
  const h = new DataView(header.data.buffer, header.data.byteOffset, header.data.byteLength)
  expect(all.at(-1)!.type).toBe("IEND")
  const idat = Buffer.concat(all.filter((c) => c.type === "IDAT").map((c) => c.data))
  return {
    width: h.getUint32(0),
    height: h.getUint32(4),
    bitDepth: header.data[8]!,
    colorType: header.data[9]!,
    raw: inflateSync(idat)
  }
}

const ring = (n: number, radius: number, jitter: number): Array<readonly [number, number]> =>
  Array.from({ length: n }, (_, i) => {
    const a = (2 * Math.PI * i) / n
    return [radius * Math.cos(a) + jitter * Math.sin(7 * i), radius * Math.sin(a) + jitter * Math.cos(11 * i)] as const
  })

const run = <A, E>(e: Effect.Effect<A, E>) => Effect.runPromise(e)

describe("Plots", () => {
  it("scatterPanels gives a valid PNG of exactly the requested size", async () => {
    const png = await run(
      scatterPanels([{ title: "a", points: ring(500, 0.7, 0.05) }, { title: "b", points: ring(500, 0.5, 0.1) }], {
        width: 640,
        height: 300
      })
    )
    const d = decode(png)
    expect([d.width, d.height]).toEqual([640, 300])
    expect(d.bitDepth).toBe(8)
    const bytesPerPixel = d.colorType === 6 ? 4 : d.colorType === 2 ? 3 : NaN
    expect(d.raw.length).toBe(d.height * (1 + d.width * bytesPerPixel))
  })

  it("accepts flat Float32Array points like pairs", async () => {
    const pts = ring(300, 0.6, 0.02)
    const flat = Float32Array.from(pts.flat())
    const a = await run(scatterPanels([{ title: "p", points: pts }], { width: 200, height: 200, domain: [-1, 1] }))
    const b = await run(scatterPanels([{ title: "p", points: flat }], { width: 200, height: 200, domain: [-1, 1] }))
    expect(decode(a).raw.equals(decode(b).raw)).toBe(true)
  })

  it("different data gives different images", async () => {
    const opts = { width: 300, height: 300, domain: [-1, 1] as const }
    const a = await run(scatterPanels([{ title: "same", points: ring(400, 0.7, 0.02) }], opts))
    const b = await run(scatterPanels([{ title: "same", points: ring(400, 0.3, 0.02) }], opts))
    const a2 = await run(scatterPanels([{ title: "same", points: ring(400, 0.7, 0.02) }], opts))
    expect(decode(a).raw.equals(decode(a2).raw)).toBe(true)
    expect(decode(a).raw.equals(decode(b).raw)).toBe(false)
  })

  it("linePlot gives a PNG of the requested size, tolerates non-positive values on a log axis, and depends on the data", async () => {
    const series = (scale: number) => [
      { name: "generator", points: [[0, 0.3 * scale], [100, 0.01 * scale], [200, -1e-4]] as const },
      { name: "teacher", points: [[0, 1e-3], [200, 1e-3]] as const, dashed: true }
    ]
    const a = await run(linePlot(series(1), { width: 500, height: 260, xTitle: "iteration", yTitle: "FD" }))
    const b = await run(linePlot(series(10), { width: 500, height: 260, xTitle: "iteration", yTitle: "FD" }))
    const da = decode(a)
    expect([da.width, da.height]).toEqual([500, 260])
    expect(da.raw.equals(decode(b).raw)).toBe(false)
  })

  it("rejects empty input and impossible sizes with a PlotError", async () => {
    const empty = await run(Effect.either(scatterPanels([])))
    expect(Either.isLeft(empty) && empty.left._tag).toBe("PlotError")
    const tiny = await run(Effect.either(linePlot([{ name: "x", points: [[0, 1]] }], { width: 3, height: 3 })))
    expect(Either.isLeft(tiny) && tiny.left.message).toMatch(/size/)
  })
})
