/**
 * `Add`, `Sub`, `Multiply`, `RealDiv`, `SquaredDifference` with broadcasting, on all cores.
 *
 * @since 0.2.0
 */
import * as tf from "@tensorflow/tfjs"
import type { RawKernelFunc } from "../Backend.js"
import { type NativeAddon, type WasmHeapBackend, view, isEmpty } from "./Addon.js"

export const BINARY_OPS = { Add: 0, Sub: 1, Multiply: 2, RealDiv: 3, SquaredDifference: 4 } as const

export const makeBinary = (addon: NativeAddon, op: number, stock: RawKernelFunc): RawKernelFunc => (args) => {
  const { a, b } = args.inputs as Record<string, tf.TensorInfo | undefined>
  if (a === undefined || b === undefined || a.dtype !== "float32" || b.dtype !== "float32") return stock(args)
  let shape: Array<number>
  try {
    shape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape)
  } catch {
    return stock(args)
  }
  if (isEmpty(shape) || shape.length > 16) return stock(args)
  const be = args.backend as WasmHeapBackend
  const out = be.makeOutput(shape, "float32")
  addon.binary(op, view(be, a), a.shape, view(be, b), b.shape, view(be, out), shape)
  return out
}
