/**
 * The fused dense layer ({@link SidDense}, `src/domain/nn/Dense.ts`) on the plain `wasm` engine, without the native
 * addon: the forward pass runs the wasm backend's own `BatchMatMul`, `Add`, `Sigmoid` and `Multiply` kernels directly
 * (one dispatch instead of four, and no tape records or saved-tensor clones for the intermediates), so its values
 * are the composed ops' bits. After SiLU it also returns z and σ(z), which the gradient reuses (σ is the dearest pass
 * of the SiLU gradient). The gradient is lazy per input (docs/engines.md §3.5): one {@link SidSiluGrad} call for
 * ∂z after SiLU, then only the products the tape asks for — a network whose weights are not being differentiated
 * (the fake score in the generator step) computes no weight gradient, the first layer no input gradient.
 *
 * @since 0.2.0
 */
import * as tf from "@tensorflow/tfjs"
import type { DenseActivation } from "../../../domain/nn/Dense.js"
import { SidDense, SidSiluGrad } from "../KernelNames.js"
import { kernelFunc, type RawKernelFunc } from "../Backend.js"
import type { KernelPatch } from "../Patches.js"
import { f32, type WasmHeap } from "./Heap.js"

const activationOf = (attrs: unknown): DenseActivation => (attrs as { activation?: DenseActivation }).activation ?? "linear"

/** Runs a registered wasm kernel on `TensorInfo`s (it sees the kernels registered now, patches included). */
const call = (name: string, backend: object, inputs: Record<string, tf.TensorInfo>, attrs: Record<string, unknown> = {}) =>
  kernelFunc(name, "wasm")({ inputs, backend, attrs: attrs as tf.NamedAttrMap }) as tf.TensorInfo

const denseForward: RawKernelFunc = (args) => {
  const { b, w, x } = args.inputs as Record<string, tf.TensorInfo>
  const heap = args.backend as WasmHeap
  const product = call("BatchMatMul", heap, { a: x!, b: w! }, { transposeA: false, transposeB: false })
  let z: tf.TensorInfo
  try {
    z = call("Add", heap, { a: product, b: b! })
  } finally {
    heap.disposeData(product.dataId)
  }
  if (activationOf(args.attrs) !== "silu") return [z]
  const s = call("Sigmoid", heap, { x: z })
  return [call("Multiply", heap, { a: z, b: s }), z, s]
}

/**
 * ∂z of y = z·σ(z) given dy, as TF.js's gradient of the composed `mul(z, sigmoid(z))` computes it —
 * dy·s + (dy·z)·(s·(1 − s)) with s the wasm `Sigmoid` of z (the forward pass's, when given) — by the same wasm
 * kernels in the same order (the SIMD kernels are about ten times faster than a JavaScript loop over the heap), so
 * the same bits.
 */
const siluGrad: RawKernelFunc = (args) => {
  const { dy, s: saved, z } = args.inputs as Record<string, tf.TensorInfo | undefined>
  const heap = args.backend as WasmHeap
  const temps: Array<tf.TensorInfo> = []
  const keep = (t: tf.TensorInfo) => (temps.push(t), t)
  try {
    const one = keep(heap.makeOutput([], "float32"))
    f32(heap, one)[0] = 1
    const s = saved ?? keep(call("Sigmoid", heap, { x: z! }))
    const direct = keep(call("Multiply", heap, { a: dy!, b: s }))
    const viaSigmoid = keep(call("Multiply", heap, { a: dy!, b: z! }))
    const slope = keep(call("Multiply", heap, { a: s, b: keep(call("Sub", heap, { a: one, b: s })) }))
    return call("Add", heap, { a: direct, b: keep(call("Multiply", heap, { a: viaSigmoid, b: slope })) })
  } finally {
    for (const t of temps) heap.disposeData(t.dataId)
  }
}

/**
 * The lazy gradient of {@link SidDense} on the plain `wasm` engine: ∂z by one {@link SidSiluGrad} call after SiLU,
 * from the forward pass's z and σ(z) (dy itself when linear), then dx = ∂z·wᵀ, dw = xᵀ·∂z and db = Σ_rows ∂z each only when the tape asks for it — the
 * ops TF.js's gradients of `matMul` and `add` run, so the same bits as the composed layer.
 *
 * @since 0.2.0
 * @category gradients
 */
export const wasmDenseGradient: tf.GradConfig = {
  kernelName: SidDense,
  inputsToSave: ["x", "w"],
  outputsToSave: [false, true, true],
  gradFunc: (dys, saved, attrs) => {
    const [x, w, z, s] = saved
    const dy = Array.isArray(dys) ? dys[0]! : dys
    const dz = activationOf(attrs) === "silu" && z !== undefined
      ? (tf.engine().runKernel(SidSiluGrad, s === undefined ? { dy, z } : { dy, z, s }, {}) as tf.Tensor)
      : dy
    return {
      x: () => tf.matMul(dz, w!, false, true),
      w: () => tf.matMul(x!, dz, true, false),
      b: () => tf.sum(dz, 0)
    }
  }
}

/**
 * The plain-wasm registrations of {@link SidDense} and {@link SidSiluGrad}.
 *
 * @since 0.2.0
 * @category patches
 */
export const wasmDensePatches: ReadonlyArray<KernelPatch> = [
  { kernelName: SidDense, backendName: "wasm", id: "wasm-js", make: () => denseForward },
  { kernelName: SidSiluGrad, backendName: "wasm", id: "wasm-js", make: () => siluGrad }
]
