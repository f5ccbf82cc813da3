/**
 * {@link SidEmaAll} on the plain `wasm` engine, in JavaScript on the wasm heap: `e·β + p·(1 − β)` for every parameter
 * in one dispatch (three per parameter composed), each product and the sum rounded to float32 as the composed ops
 * round them, so the same bits (`domain/optim/EmaAll.ts`).
 *
 * @since 0.2.0
 */
import type * as tf from "@tensorflow/tfjs"
import { SidEmaAll } from "../KernelNames.js"
import type { RawKernelFunc } from "../Backend.js"
import type { KernelPatch } from "../Patches.js"
import { f32, type WasmHeap } from "./Heap.js"

const emaAll: RawKernelFunc = (args) => {
  const inputs = args.inputs as Record<string, tf.TensorInfo>
  const { beta, count } = args.attrs as unknown as { readonly beta: number; readonly count: number }
  const heap = args.backend as WasmHeap
  const indices = Array.from({ length: count }, (_, i) => i)
  const outs = indices.map((i) => heap.makeOutput([...inputs[`e${i}`]!.shape], "float32"))
  const b = Math.fround(beta)
  const c = Math.fround(1 - beta)
  const f = Math.fround
  for (const i of indices) {
    const e = f32(heap, inputs[`e${i}`]!)
    const p = f32(heap, inputs[`p${i}`]!)
    const o = f32(heap, outs[i]!)
    for (let j = 0; j < o.length; j++) o[j] = f(e[j]! * b) + f(p[j]! * c)
  }
  return outs
}

/**
 * The plain-wasm registration of {@link SidEmaAll}.
 *
 * @since 0.2.0
 * @category patches
 */
export const wasmEmaAllPatches: ReadonlyArray<KernelPatch> = [
  { kernelName: SidEmaAll, backendName: "wasm", id: "wasm-js", make: () => emaAll }
]
