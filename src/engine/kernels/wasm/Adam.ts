/**
 * Adam on the plain `wasm` engine, in JavaScript on the wasm heap: {@link SidAdam} (one parameter) and
 * {@link SidAdamAll} (every parameter of a step in one dispatch, where the composed update takes about a dozen per
 * parameter). Each operation is rounded to float32 in the order `adamUpdate` composes them, so the same bits
 * (`domain/optim/Adam.ts`, docs/algorithm.md §14).
 *
 * @since 0.2.0
 */
import type * as tf from "@tensorflow/tfjs"
import { adamUpdateHost } from "../../../domain/optim/Adam.js"
import { SidAdam, SidAdamAll, type SidAdamAttrs } from "../KernelNames.js"
import type { RawKernelFunc } from "../Backend.js"
import type { KernelPatch } from "../Patches.js"
import { f32, type WasmHeap } from "./Heap.js"

/**
 * One update into fresh outputs: the inputs are copied there and updated in place by the domain's host Adam, whose
 * float32 operations follow `adamUpdate`'s order (attribute `step` is t, the host update takes the t − 1 before it).
 */
const update = (
  a: SidAdamAttrs,
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  pOut: Float32Array,
  mOut: Float32Array,
  vOut: Float32Array
): void => {
  pOut.set(p)
  mOut.set(m)
  vOut.set(v)
  adamUpdateHost(a, a.step - 1, pOut, g, mOut, vOut)
}

const adam: RawKernelFunc = (args) => {
  const { grad, m, param, v } = args.inputs as Record<string, tf.TensorInfo>
  const heap = args.backend as WasmHeap
  const outs = [0, 1, 2].map(() => heap.makeOutput([...param!.shape], "float32"))
  const [pOut, mOut, vOut] = outs.map((t) => f32(heap, t))
  update(
    args.attrs as unknown as SidAdamAttrs,
    f32(heap, param!),
    f32(heap, grad!),
    f32(heap, m!),
    f32(heap, v!),
    pOut!,
    mOut!,
    vOut!
  )
  return outs
}

const adamAll: RawKernelFunc = (args) => {
  const inputs = args.inputs as Record<string, tf.TensorInfo>
  const attrs = args.attrs as unknown as SidAdamAttrs & { readonly count: number }
  const heap = args.backend as WasmHeap
  const indices = Array.from({ length: attrs.count }, (_, i) => i)
  const params = indices.map((i) => inputs[`p${i}`]!)
  const outs = [0, 1, 2].map(() => params.map((p) => heap.makeOutput([...p.shape], "float32")))
  for (const i of indices) {
    update(
      attrs,
      f32(heap, params[i]!),
      f32(heap, inputs[`g${i}`]!),
      f32(heap, inputs[`m${i}`]!),
      f32(heap, inputs[`v${i}`]!),
      f32(heap, outs[0]![i]!),
      f32(heap, outs[1]![i]!),
      f32(heap, outs[2]![i]!)
    )
  }
  return outs.flat()
}

/**
 * The plain-wasm registrations of {@link SidAdam} and {@link SidAdamAll}.
 *
 * @since 0.2.0
 * @category patches
 */
export const wasmAdamPatches: ReadonlyArray<KernelPatch> = [
  { kernelName: SidAdam, backendName: "wasm", id: "wasm-js", make: () => adam },
  { kernelName: SidAdamAll, backendName: "wasm", id: "wasm-js", make: () => adamAll }
]
