/**
 * `BatchMatMul` on the addon (OpenBLAS), for batch shapes that broadcast one way.
 *
 * @since 0.2.0
 */
import * as tf from "@tensorflow/tfjs"
import type { RawKernelFunc } from "../Backend.js"
import { type NativeAddon, type WasmHeapBackend, allFloat, view, product } from "./Addon.js"

export const makeBatchMatMul = (addon: NativeAddon, stock: RawKernelFunc): RawKernelFunc => (args) => {
  const attrs = (args.attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean }
  const { a, b } = args.inputs as Record<string, tf.TensorInfo | undefined>
  if (a === undefined || b === undefined || a.shape.length < 2 || b.shape.length < 2 || !allFloat(a, b)) {
    return stock(args)
  }
  const ta = attrs.transposeA === true
  const tb = attrs.transposeB === true
  const ra = a.shape.length
  const rb = b.shape.length
  const m = ta ? a.shape[ra - 1]! : a.shape[ra - 2]!
  const k = ta ? a.shape[ra - 2]! : a.shape[ra - 1]!
  const kb = tb ? b.shape[rb - 1]! : b.shape[rb - 2]!
  const n = tb ? b.shape[rb - 2]! : b.shape[rb - 1]!
  if (k !== kb || m === 0 || n === 0 || k === 0) return stock(args)
  const aBatch = a.shape.slice(0, -2)
  const bBatch = b.shape.slice(0, -2)
  let outBatch: Array<number>
  try {
    outBatch = tf.backend_util.assertAndGetBroadcastShape(aBatch, bBatch)
  } catch {
    return stock(args)
  }
  const batch = product(outBatch)
  const batchA = product(aBatch)
  const batchB = product(bBatch)
  if ((batchA !== 1 && batchA !== batch) || (batchB !== 1 && batchB !== batch) || batch === 0) return stock(args)
  const be = args.backend as WasmHeapBackend
  const out = be.makeOutput([...outBatch, m, n], "float32")
  addon.batchMatMul(view(be, a), view(be, b), view(be, out), [batch, batchA, batchB, m, k, n, ta ? 1 : 0, tb ? 1 : 0])
  return out
}
