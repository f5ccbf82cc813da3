/**
 * `Identity` and same-dtype `Cast` on the plain `wasm` engine: they share the input's data instead of copying it
 * (tensors are immutable), so the engine can clone saved tensors without a dispatch (`SharedClone.ts`). Other cases go
 * to the kernel registered before.
 *
 * @since 0.2.0
 */
import type * as tf from "@tensorflow/tfjs"
import type { RawKernelFunc } from "../Backend.js"
import type { KernelPatch } from "../Patches.js"
import type { WasmHeap } from "./Heap.js"

const share = (heap: WasmHeap, x: tf.TensorInfo): tf.TensorInfo => {
  heap.incRef(x.dataId)
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype }
}

const identity = (stock: RawKernelFunc): RawKernelFunc => (args) => {
  const { x } = args.inputs as Record<string, tf.TensorInfo | undefined>
  return x === undefined || x.dtype === "string" ? stock(args) : share(args.backend as WasmHeap, x)
}

const cast = (stock: RawKernelFunc): RawKernelFunc => (args) => {
  const { x } = args.inputs as Record<string, tf.TensorInfo | undefined>
  const dtype = (args.attrs as { dtype?: string } | undefined)?.dtype
  return x === undefined || x.dtype === "string" || dtype !== x.dtype ? stock(args) : share(args.backend as WasmHeap, x)
}

const requireStock = (name: string, stock: RawKernelFunc | undefined): RawKernelFunc => {
  if (stock === undefined) throw new Error(`Cannot patch '${name}': no wasm kernel is registered before it`)
  return stock
}

/**
 * The plain-wasm registrations of the sharing `Identity` and `Cast`.
 *
 * @since 0.2.0
 * @category patches
 */
export const wasmViewPatches: ReadonlyArray<KernelPatch> = [
  { kernelName: "Identity", backendName: "wasm", id: "wasm-js", make: (stock) => identity(requireStock("Identity", stock)) },
  { kernelName: "Cast", backendName: "wasm", id: "wasm-js", make: (stock) => cast(requireStock("Cast", stock)) }
]
