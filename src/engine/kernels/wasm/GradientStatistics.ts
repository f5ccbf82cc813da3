/**
 * {@link SidGradientStatistics} on the plain `wasm` engine, in JavaScript on the wasm heap: the global L2 norm (squares
 * summed in double precision, as the native kernel sums them; NaN or Inf where an entry is) and the number of NaN / ±Inf entries of every gradient of
 * a step, in one dispatch (`domain/optim/GradientStatistics.ts`).
 *
 * @since 0.2.0
 */
import type * as tf from "@tensorflow/tfjs"
import { SidGradientStatistics } from "../KernelNames.js"
import type { RawKernelFunc } from "../Backend.js"
import type { KernelPatch } from "../Patches.js"
import { f32, type WasmHeap } from "./Heap.js"

const gradientStatistics: RawKernelFunc = (args) => {
  const heap = args.backend as WasmHeap
  const inputs = Object.values(args.inputs as Record<string, tf.TensorInfo>)
  const norm = heap.makeOutput([], "float32")
  const count = heap.makeOutput([], "int32")
  let squares = 0
  let bad = 0
  for (const t of inputs) {
    const x = f32(heap, t)
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!
      squares += v * v
      if (v - v !== 0) bad++
    }
  }
  f32(heap, norm)[0] = Math.sqrt(squares)
  ;(heap.typedArrayFromHeap(count) as Int32Array)[0] = bad
  return [norm, count]
}

/**
 * The plain-wasm registration of {@link SidGradientStatistics}.
 *
 * @since 0.2.0
 * @category patches
 */
export const wasmGradientStatisticsPatches: ReadonlyArray<KernelPatch> = [
  { kernelName: SidGradientStatistics, backendName: "wasm", id: "wasm-js", make: () => gradientStatistics }
]
