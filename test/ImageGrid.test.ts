import * as tf from "@tensorflow/tfjs"
import { PNG } from "pngjs"
import { beforeAll, describe, expect, it } from "vitest"
import { gridSize, imageGrid } from "../src/report/ImageGrid.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

const decode = (bytes: Uint8Array) => PNG.sync.read(Buffer.from(bytes))
const pixel = (png: PNG, x: number, y: number) => {
  const i = (y * png.width + x) * 4
  return [png.data[i]!, png.data[i + 1]!, png.data[i + 2]!]
}

describe("imageGrid", () => {
  it("lays out N images in rows × columns with padding, and the PNG decodes to that size", () => {
    const images = tf.zeros([5, 4, 6, 3]) as tf.Tensor4D
    const png = decode(imageGrid(images, { columns: 2, padding: 3 }))
    expect(png.width).toBe(2 * 6 + 3 * 3)
    expect(png.height).toBe(3 * 4 + 4 * 3)
    const scaled = decode(imageGrid(images, { columns: 5, padding: 0, scale: 2 }))
    expect([scaled.width, scaled.height]).toEqual([5 * 12, 8])
    const square = decode(imageGrid(images))
    expect(gridSize(5, 4, 6)).toMatchObject({ columns: 3, rows: 2 })
    expect([square.width, square.height]).toEqual([3 * 6 + 4 * 2, 2 * 4 + 3 * 2])
    images.dispose()
  })

  it("maps −1 → 0, 0 → 128, 1 → 255, clips outside [−1, 1], truncates, and keeps channels in order", () => {
    const values = [-1, 0, 1, -3, 3, 0.5]
    const images = tf.tensor4d(values.flatMap((v) => [v, 0, -1]), [6, 1, 1, 3])
    const png = decode(imageGrid(images, { columns: 6, padding: 1 }))
    const red = values.map((_, k) => pixel(png, 1 + k * 2, 1)[0])
    expect(red).toEqual([0, 128, 255, 0, 255, Math.floor(0.5 * 127.5 + 128)])
    expect(pixel(png, 1, 1).slice(1)).toEqual([128, 0])
    expect(pixel(png, 0, 0)).toEqual([0, 0, 0])
    images.dispose()
  })

  it("replicates grayscale to RGB and places image k at row ⌊k/columns⌋, column k mod columns", () => {
    const images = tf.tensor4d([-1, -0.5, 0, 1], [4, 1, 1, 1])
    const png = decode(imageGrid(images, { columns: 2, padding: 1, scale: 2 }))
    expect([png.width, png.height]).toEqual([7, 7])
    const at = (k: number) => pixel(png, 1 + (k % 2) * 3 + 1, 1 + Math.floor(k / 2) * 3 + 1)
    expect([0, 1, 2, 3].map(at)).toEqual([[0, 0, 0], [64, 64, 64], [128, 128, 128], [255, 255, 255]])
    images.dispose()
  })

  it("rejects other channel counts and empty batches, and leaks no tensors", () => {
    const bad = tf.zeros([2, 3, 3, 2]) as tf.Tensor4D
    expect(() => imageGrid(bad)).toThrow(/C = 1 or 3/)
    bad.dispose()
    const images = tf.randomUniform([3, 5, 5, 3], -1, 1) as tf.Tensor4D
    const before = tf.memory().numTensors
    for (let i = 0; i < 10; i++) imageGrid(images, { columns: 2 })
    expect(tf.memory().numTensors).toBe(before)
    images.dispose()
  })
})
