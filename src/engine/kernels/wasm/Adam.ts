/**
 * Adam on the plain `wasm` engine, in JavaScript on the wasm heap: {@link SidAdam} (one parameter) and
 * {@link SidAdamAll} (every parameter of a step in one dispatch, where the composed update takes about a dozen per
 * parameter). Each operation is rounded to float32 in the order `adamUpdate` composes them, so the same bits
 * (`domain/optim/Adam.ts`, docs/algorithm.md §14).
 *
 * @since 0.2.0
 */
import type * as tf from "@tensorflow/tfjs"
import { SidAdam, SidAdamAll, type SidAdamAttrs } from "../KernelNames.js"
import type { RawKernelFunc } from "../Backend.js"
import type { KernelPatch } from "../Patches.js"
import { f32, type WasmHeap } from "./Heap.js"

const f = Math.fround

/** Float32 constants of one step: β₁, β₂, 1 − β₁, 1 − β₂, 1 − β₁ᵗ, 1 − β₂ᵗ, ε, lr. */
const constants = (a: SidAdamAttrs) => ({
  b1: f(a.beta1),
  b2: f(a.beta2),
  g1: f(1 - a.beta1),
  g2: f(1 - a.beta2),
  c1: f(1 - Math.pow(a.beta1, a.step)),
  c2: f(1 - Math.pow(a.beta2, a.step)),
  eps: f(a.epsilon),
  lr: f(a.learningRate)
})

const update = (
  k: ReturnType<typeof constants>,
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  pOut: Float32Array,
  mOut: Float32Array,
  vOut: Float32Array
): void => {
  const { b1, b2, c1, c2, eps, g1, g2, lr } = k
  for (let i = 0; i < p.length; i++) {
    const gi = g[i]!
    const m1 = f(f(m[i]! * b1) + f(gi * g1))
    const v1 = f(f(v[i]! * b2) + f(f(gi * gi) * g2))
    const u = f(f(m1 / c1) / f(f(Math.sqrt(f(v1 / c2))) + eps))
    pOut[i] = p[i]! - f(u * lr)
    mOut[i] = m1
    vOut[i] = v1
  }
}

const adam: RawKernelFunc = (args) => {
  const { grad, m, param, v } = args.inputs as Record<string, tf.TensorInfo>
  const heap = args.backend as WasmHeap
  const outs = [0, 1, 2].map(() => heap.makeOutput([...param!.shape], "float32"))
  const [pOut, mOut, vOut] = outs.map((t) => f32(heap, t))
  update(
    constants(args.attrs as unknown as SidAdamAttrs),
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
  const k = constants(attrs)
  for (const i of indices) {
    update(
      k,
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
