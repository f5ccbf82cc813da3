/**
 * `Identity` and same-dtype `Cast`: they share the input's data instead of copying it (tensors are immutable).
 *
 * @since 0.2.0
 */
import * as tf from "@tensorflow/tfjs"
import type { RawKernelFunc } from "../Backend.js"
import { type WasmHeapBackend, shareInput } from "./Addon.js"

export const makeIdentity = (stock: RawKernelFunc): RawKernelFunc => (args) => {
  const { x } = args.inputs as Record<string, tf.TensorInfo | undefined>
  if (x === undefined || x.dtype === "string") return stock(args)
  return shareInput(args.backend as WasmHeapBackend, x)
}

export const makeCast = (stock: RawKernelFunc): RawKernelFunc => (args) => {
  const { x } = args.inputs as Record<string, tf.TensorInfo | undefined>
  const dtype = (args.attrs as { dtype?: string } | undefined)?.dtype
  if (x === undefined || x.dtype === "string" || dtype !== x.dtype) return stock(args)
  return shareInput(args.backend as WasmHeapBackend, x)
}
