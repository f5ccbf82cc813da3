/**
 * A faster wasm `BatchMatMul` for transposed operands.
 *
 * The stock wasm kernel is fast (XNNPACK) only without `transposeA`/`transposeB`; with a flag it is about 7× slower
 * (docs/engines.md §3.2: 2.3 vs 30 GFLOP/s), and every backward pass of a dense layer multiplies by a transpose.
 * Transposing the operand explicitly (a memory copy) and multiplying without flags is far cheaper. A float32 operand is
 * transposed in JavaScript on the heap (about a third faster than the wasm `Transpose` kernel at the MLP's shapes).
 *
 * @since 0.1.0
 */
import type * as tf from "@tensorflow/tfjs"
import { type RawKernelFunc, run, type WasmBackendLike } from "./Backend.js"
import { f32, transposeInto, type WasmHeap } from "./wasm/Heap.js"

const swapLastTwo = (rank: number): Array<number> => {
  const perm = Array.from({ length: rank }, (_, i) => i)
  perm[rank - 2] = rank - 1
  perm[rank - 1] = rank - 2
  return perm
}

/** The float32 tensor with its last two axes swapped, matrix by matrix, as a new heap tensor. */
const transposeOnHeap = (heap: WasmHeap, t: tf.TensorInfo): tf.TensorInfo => {
  const rank = t.shape.length
  const rows = t.shape[rank - 2]!
  const cols = t.shape[rank - 1]!
  const shape = [...t.shape]
  shape[rank - 2] = cols
  shape[rank - 1] = rows
  const out = heap.makeOutput(shape, "float32")
  const x = f32(heap, t)
  const y = f32(heap, out)
  const size = rows * cols
  for (let offset = 0; offset < x.length; offset += size) {
    transposeInto(x.subarray(offset, offset + size), rows, cols, y.subarray(offset, offset + size))
  }
  return out
}

/**
 * Builds the wasm `BatchMatMul` kernel function: operands with a transpose flag are transposed first, then `stock`
 * multiplies without flags.
 *
 * @since 0.1.0
 * @category kernels
 */
export const makeBatchMatMul = (stock: RawKernelFunc): RawKernelFunc => (args) => {
  const attrs = (args.attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean }
  if (attrs.transposeA !== true && attrs.transposeB !== true) return stock(args)
  const backend = args.backend as WasmBackendLike
  const temps: Array<tf.TensorInfo> = []
  const plain = (t: tf.TensorInfo, transpose: boolean | undefined): tf.TensorInfo => {
    if (transpose !== true) return t
    const out = t.dtype === "float32" && t.shape.length >= 2
      ? transposeOnHeap(args.backend as WasmHeap, t)
      : run("Transpose", "wasm", backend, { x: t }, { perm: swapLastTwo(t.shape.length) })
    temps.push(out)
    return out
  }
  try {
    return stock({
      ...args,
      inputs: { ...args.inputs, a: plain(args.inputs["a"]!, attrs.transposeA), b: plain(args.inputs["b"]!, attrs.transposeB) },
      attrs: { ...args.attrs, transposeA: false, transposeB: false }
    })
  } finally {
    for (const t of temps) backend.disposeData(t.dataId)
  }
}
