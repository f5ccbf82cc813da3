import * as tf from "@tensorflow/tfjs"
import { Effect, Exit, Layer, Scope } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { engineLayer } from "../src/browser/Engine.js"
import { replaceNaN, select } from "../src/domain/nn/Tensors.js"
import { castFreeGradients } from "../src/engine/kernels/Gradients.js"
import { useEngine } from "./support/distillation.js"
import { randoms } from "./support/random.js"
import { turn } from "./support/turn.js"

fc.configureGlobal({ asyncBeforeEach: turn })

/** TF.js's own gradients of the kernels {@link castFreeGradients} replaces, as registered before any engine starts. */
const stock = castFreeGradients.map((c) => tf.getGradient(c.kernelName)!)

const withGradients = <A>(configs: ReadonlyArray<tf.GradConfig>, f: () => A): A => {
  const current = configs.map((c) => tf.getGradient(c.kernelName)!)
  for (const c of configs) tf.registerGradient(c)
  try {
    return f()
  } finally {
    for (const c of current) tf.registerGradient(c)
  }
}

/** Kernel names dispatched while `f` runs, with their counts. */
const dispatches = async (f: () => unknown): Promise<Map<string, number>> => {
  const info = await tf.profile(() => {
    tf.tidy(() => {
      f()
    })
  })
  const counts = new Map<string, number>()
  for (const k of info.kernels) counts.set(k.name, (counts.get(k.name) ?? 0) + 1)
  return counts
}

const shapes = fc.record({
  m: fc.integer({ min: 1, max: 6 }),
  n: fc.integer({ min: 1, max: 6 }),
  broadcast: fc.constantFrom("none", "row", "column", "scalar"),
  seed: fc.nat({ max: 1 << 20 })
})

describe("element-wise gradients without float32 casts (wasm engine)", () => {
  let release: () => Promise<void>
  beforeAll(async () => {
    release = await useEngine("wasm")
  })
  afterAll(() => release())

  const composite = (a: tf.Tensor, b: tf.Tensor, r: tf.Tensor) => {
    const pos = tf.add(tf.square(b), 1)
    const terms = [
      tf.mul(a, b),
      tf.div(a, pos),
      tf.square(a),
      tf.sqrt(tf.add(tf.square(a), 0.5)),
      tf.sin(a),
      tf.cos(tf.mul(a, b)),
      tf.log(tf.add(tf.square(tf.mul(a, b)), 1))
    ]
    return tf.sum(tf.mul(terms.reduce((x, y) => tf.add(x, y)), r))
  }
  const gradients = (c: { m: number; n: number; broadcast: string; seed: number }) =>
    tf.tidy(() => {
      const bShape = { none: [c.m, c.n], row: [c.n], column: [c.m, 1], scalar: [] }[c.broadcast]!
      const a = tf.tensor(randoms(c.m * c.n, c.seed, 4), [c.m, c.n])
      const b = tf.tensor(randoms(bShape.reduce((p, q) => p * q, 1), c.seed + 1, 4), bShape)
      const r = tf.tensor(randoms(c.m * c.n, c.seed + 2, 2), [c.m, c.n])
      return tf.grads((a: tf.Tensor, b: tf.Tensor) => composite(a, b, r))([a, b]).map((g) => Array.from(g.dataSync()))
    })

  it("are installed by the engine and give TF.js's gradients bit for bit, broadcasting included", async () => {
    for (const c of castFreeGradients) expect(tf.getGradient(c.kernelName)).toBe(c)
    await fc.assert(
      fc.asyncProperty(shapes, async (c) => {
        const ours = gradients(c)
        const theirs = withGradients(stock, () => gradients(c))
        expect(ours).toEqual(theirs)
        expect(ours.flat().some((v) => v !== 0)).toBe(true)
      }),
      { numRuns: 25 }
    )
  })

  it("dispatch no Cast for float32 inputs, where TF.js's dispatch one per input read", async () => {
    const c = { m: 4, n: 3, broadcast: "row", seed: 7 }
    const ours = (await dispatches(() => gradients(c))).get("Cast") ?? 0
    const theirs = (await dispatches(() => withGradients(stock, () => gradients(c)))).get("Cast") ?? 0
    expect(ours).toBe(0)
    expect(theirs).toBeGreaterThanOrEqual(9)
  })
})

describe("select and replaceNaN (wasm engine)", () => {
  let release: () => Promise<void>
  beforeAll(async () => {
    release = await useEngine("wasm")
  })
  afterAll(() => release())

  const nanValues = (n: number, seed: number): Float32Array => {
    const v = randoms(n, seed, 4)
    for (let i = 0; i < n; i += 3) v[i] = Number.NaN
    return v
  }

  it("select gives tf.where's values and gradients bit for bit, without its three Identity dispatches", async () => {
    const run = (op: typeof select) =>
      tf.tidy(() => {
        const a = tf.tensor(randoms(12, 1, 4), [3, 4])
        const b = tf.tensor(randoms(12, 2, 4), [3, 4])
        const r = tf.tensor(randoms(12, 3, 2), [3, 4])
        const condition = tf.greater(a, b)
        const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(op(condition, tf.square(a), tf.mul(b, 3)), r))
        const { grads, value } = tf.valueAndGrads(f)([a, b])
        return [Array.from(value.dataSync()), ...grads.map((g) => Array.from(g.dataSync()))]
      })
    expect(run(select)).toEqual(run(tf.where))
    const identities = async (op: typeof select) => (await dispatches(() => run(op))).get("Identity") ?? 0
    expect((await identities(tf.where)) - (await identities(select))).toBeGreaterThanOrEqual(3)
    const broadcast = tf.tidy(() => Array.from(select(tf.tensor([true, false], [2, 1], "bool"), tf.ones([2, 3]), tf.zeros([2, 3])).dataSync()))
    expect(broadcast).toEqual([1, 1, 1, 0, 0, 0])
  })

  it("replaceNaN zeroes NaN entries and their gradient, passes the rest and its gradient through unchanged", () => {
    const [value, grad, composed] = tf.tidy(() => {
      const x = tf.tensor(nanValues(10, 5), [10])
      const r = tf.tensor(randoms(10, 6, 2), [10])
      const f = (x: tf.Tensor) => tf.sum(tf.mul(replaceNaN(x), r))
      const g = (x: tf.Tensor) => tf.sum(tf.mul(tf.where(tf.isNaN(x), tf.zerosLike(x), x), r))
      return [replaceNaN(x), tf.grad(f)(x), tf.grad(g)(x)].map((t) => Array.from(t.dataSync()))
    }) as [Array<number>, Array<number>, Array<number>]
    const x = Array.from(nanValues(10, 5))
    x.forEach((v, i) => {
      expect(value[i]).toBe(Number.isNaN(v) ? 0 : v)
      if (Number.isNaN(v)) expect(grad[i]).toBe(0)
    })
    expect(grad).toEqual(composed)
    expect(grad.some((v) => v !== 0)).toBe(true)
  })
})

describe("the page engine (sid-ts/browser)", () => {
  it("installs the same gradients while it is held and gives TF.js's back on release", async () => {
    const stockMultiply = stock[castFreeGradients.findIndex((c) => c.kernelName === "Multiply")]
    const scope = Effect.runSync(Scope.make())
    await Effect.runPromise(Layer.buildWithScope(engineLayer("cpu"), scope))
    try {
      for (const c of castFreeGradients) expect(tf.getGradient(c.kernelName)).toBe(c)
      const c = { m: 3, n: 5, broadcast: "column", seed: 11 }
      const grads = () =>
        tf.tidy(() => {
          const a = tf.tensor(randoms(15, c.seed, 4), [3, 5])
          const b = tf.tensor(randoms(3, c.seed + 1, 4), [3, 1])
          return tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.div(tf.mul(a, b), tf.add(tf.square(b), 1))))([a, b])
            .map((g) => Array.from(g.dataSync()))
        })
      expect(grads()).toEqual(withGradients(stock, grads))
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
    expect(tf.getGradient("Multiply")).toBe(stockMultiply)
  })
})
