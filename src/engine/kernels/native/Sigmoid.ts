/**
 * `Sigmoid` (relative error about 3e-7).
 *
 * @since 0.2.0
 */
import * as tf from "@tensorflow/tfjs"
import type { RawKernelFunc } from "../Backend.js"
import { type NativeAddon, type WasmHeapBackend, view, isEmpty } from "./Addon.js"

export const makeSigmoid = (addon: NativeAddon, stock: RawKernelFunc): RawKernelFunc => (args) => {
  const { x } = args.inputs as Record<string, tf.TensorInfo | undefined>
  if (x === undefined || x.dtype !== "float32" || isEmpty(x.shape)) return stock(args)
  const be = args.backend as WasmHeapBackend
  const out = be.makeOutput([...x.shape], "float32")
  addon.sigmoid(view(be, x), view(be, out))
  return out
}
