/**
 * `Sum` over the rows of a float32 matrix (axis 0 of a rank-2 tensor: a bias gradient) on the plain `wasm` engine,
 * in JavaScript on the heap: the stock kernel transposes first and then adds; the column sums here add in the same
 * order with the same float32 rounding (`Heap.columnSumsInto`), so the same bits, without the transpose. Every other
 * case goes to the kernel registered before.
 *
 * @since 0.2.0
 */
import type * as tf from "@tensorflow/tfjs"
import type { RawKernelFunc } from "../Backend.js"
import type { KernelPatch } from "../Patches.js"
import { columnSumsInto, f32, type WasmHeap } from "./Heap.js"

const axesOf = (axis: unknown, rank: number): Array<number> =>
  (Array.isArray(axis) ? (axis as Array<number>) : [axis as number]).map((a) => (a < 0 ? a + rank : a))

const makeSum = (stock: RawKernelFunc): RawKernelFunc => (args) => {
  const { x } = args.inputs as Record<string, tf.TensorInfo | undefined>
  const attrs = (args.attrs ?? {}) as { axis?: number | Array<number>; keepDims?: boolean }
  if (x === undefined || x.dtype !== "float32" || x.shape.length !== 2 || x.shape[0] === 0 || x.shape[1] === 0) {
    return stock(args)
  }
  const axes = axesOf(attrs.axis, 2)
  if (axes.length !== 1 || axes[0] !== 0) return stock(args)
  const [rows, cols] = x.shape as [number, number]
  const heap = args.backend as WasmHeap
  const out = heap.makeOutput(attrs.keepDims === true ? [1, cols] : [cols], "float32")
  columnSumsInto(f32(heap, x), rows, cols, f32(heap, out))
  return out
}

/**
 * The plain-wasm registration of the row-sum `Sum`.
 *
 * @since 0.2.0
 * @category patches
 */
export const wasmSumPatches: ReadonlyArray<KernelPatch> = [
  {
    kernelName: "Sum",
    backendName: "wasm",
    id: "wasm-js",
    make: (stock) => {
      if (stock === undefined) throw new Error("Cannot patch 'Sum': no wasm kernel is registered before it")
      return makeSum(stock)
    }
  }
]
