/**
 * Conversions between tensor maps and the plain named arrays that safetensors files hold.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import type { Parameters } from "../nn/Parameters.js"
import type { NamedArray } from "./Safetensors.js"

/** Reads every tensor (prefixing its name) into named arrays, in name order. */
export const toNamedArrays = (params: Parameters, prefix = ""): Array<readonly [string, NamedArray]> =>
  Object.keys(params).sort().map((name) => {
    const t = params[name]!
    const values = t.dtype === "int32" ? Int32Array.from(t.dataSync() as Int32Array) : Float32Array.from(t.dataSync())
    return [prefix + name, { dtype: t.dtype === "int32" ? "int32" : "float32", shape: t.shape, values }] as const
  })

/** The named arrays whose names start with `prefix`, as new tensors named without it. The caller owns them. */
export const fromNamedArrays = (arrays: ReadonlyMap<string, NamedArray>, prefix = ""): Record<string, tf.Tensor> => {
  const out: Record<string, tf.Tensor> = {}
  for (const [name, a] of arrays) {
    if (name.startsWith(prefix)) out[name.slice(prefix.length)] = tf.tensor(a.values, [...a.shape], a.dtype)
  }
  return out
}

/** The shapes of the named arrays whose names start with `prefix`, named without it. */
export const shapesWithPrefix = (
  arrays: ReadonlyMap<string, NamedArray>,
  prefix: string
): Record<string, ReadonlyArray<number>> => {
  const out: Record<string, ReadonlyArray<number>> = {}
  for (const [name, a] of arrays) if (name.startsWith(prefix)) out[name.slice(prefix.length)] = a.shape
  return out
}
