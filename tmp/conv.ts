import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import * as EngineLayers from "../src/layers/Engine.js"
import { Engine } from "../src/services/Engine.js"
const vals = (n: number, seed: number) => { let s = seed >>> 0; return Float32Array.from({ length: n }, () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return (s / 2 ** 32) * 3 - 1.5 }) }
const run = async () => {
  const x = tf.tensor4d(vals(2 * 6 * 6 * 3, 11), [2, 6, 6, 3]); const w = tf.tensor4d(vals(3 * 3 * 3 * 4, 12), [3, 3, 3, 4])
  const dy = tf.tensor4d(vals(2 * 3 * 3 * 4, 97), [2, 3, 3, 4])
  const dw = tf.conv2dTranspose ? tf.grad((w2: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x, w2 as tf.Tensor4D, 2, "same"), dy)))(w) : w
  return Array.from(await dw.data())
}
const layer = (l: any) => Effect.runPromise(Effect.scoped(Effect.provide(Effect.flatMap(Engine, () => Effect.promise(run)), l)))
const a = await layer(EngineLayers.cpu) as number[]
const b = await layer(EngineLayers.makeWebGpu({ allowSoftwareGpu: true })) as number[]
let worst = 0, wi = 0
a.forEach((v, i) => { const e = Math.abs(v - b[i]!); if (e > worst) { worst = e; wi = i } })
console.log("max abs", worst, "at", wi, a[wi], b[wi], "maxabs value", Math.max(...a.map(Math.abs)))
console.log(a.slice(0, 8).map((v) => v.toFixed(5)).join(" ")); console.log(b.slice(0, 8).map((v) => v.toFixed(5)).join(" "))
