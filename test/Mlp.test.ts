import * as tf from "@tensorflow/tfjs"
import { beforeAll, describe, expect, it } from "vitest"
import { applyMlp, initMlp, mlpShapes, mlpSpec } from "../src/domain/nn/Mlp.js"
import { compareShapes, countParameters, disposeParameters, shapesMatch, shapesOf } from "../src/domain/nn/Parameters.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

describe("Mlp", () => {
  it("has the 52,354 parameters of docs/algorithm.md §12.3 for 2-D data", () => {
    const params = initMlp(mlpSpec(2), 0)
    expect(countParameters(params)).toBe(52_354)
    expect(shapesMatch(compareShapes(mlpShapes(mlpSpec(2)), shapesOf(params)))).toBe(true)
    disposeParameters(params)
  })

  it("is deterministic in its seed, maps [N,d] to [N,d] and leaks nothing", () => {
    const spec = mlpSpec(3, { hidden: 16, depth: 2 })
    const a = initMlp(spec, 0)
    const b = initMlp(spec, 0)
    const c = initMlp(spec, 1)
    const x = tf.randomNormal([7, 3], 0, 1, "float32", 1) as tf.Tensor2D
    const cn = tf.linspace(-1, 1, 7) as tf.Tensor1D
    const before = tf.memory().numTensors
    const ya = applyMlp(spec, a, x, cn)
    const yb = applyMlp(spec, b, x, cn)
    const yc = applyMlp(spec, c, x, cn)
    expect(ya.shape).toEqual([7, 3])
    expect(Array.from(ya.dataSync())).toEqual(Array.from(yb.dataSync()))
    expect(Array.from(ya.dataSync())).not.toEqual(Array.from(yc.dataSync()))
    tf.dispose([ya, yb, yc])
    expect(tf.memory().numTensors).toBe(before)
    for (const p of [a, b, c]) disposeParameters(p)
    tf.dispose([x, cn])
  })

  it("reports missing, unexpected and mis-shaped parameters by name", () => {
    const expected = mlpShapes(mlpSpec(2, { depth: 1, hidden: 4 }))
    const actual = { ...expected, "layers.0.weight": [3, 4], extra: [1] }
    delete (actual as Record<string, unknown>)["layers.1.bias"]
    const m = compareShapes(expected, actual)
    expect(m.missing).toEqual(["layers.1.bias"])
    expect(m.unexpected).toEqual(["extra"])
    expect(m.misShaped).toEqual([{ name: "layers.0.weight", expected: [19, 4], actual: [3, 4] }])
  })
})
