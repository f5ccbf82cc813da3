/**
 * The fused dense layer ({@link DENSE_KERNEL}, `src/domain/nn/Dense.ts`) on the native addon for the wasm backend:
 * one addon call forward (sgemm, bias, SiLU) and one backward (dx, dw and db), and the gradient that runs it.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { DENSE_GRAD_KERNEL, DENSE_KERNEL, type DenseActivation } from "../../../domain/nn/Dense.js"
import type { RawKernelFunc } from "../Backend.js"
import type { KernelPatch } from "../Patches.js"

/**
 * The addon's dense functions; dims are `[M, K, N]`. Every call writes its output arrays in place.
 *
 * @since 0.1.0
 * @category models
 */
export interface NativeDenseAddon {
  /** `z = x·w + b`, `y = z` or `z·σ(z)`; `z` is written when given. */
  readonly dense: (
    x: Float32Array,
    w: Float32Array,
    b: Float32Array,
    y: Float32Array,
    z: Float32Array | null,
    dims: ReadonlyArray<number>,
    silu: boolean
  ) => void
  /** dx, dw, db of `dense` given dy (and z after SiLU). */
  readonly denseGrad: (
    dy: Float32Array,
    x: Float32Array,
    w: Float32Array,
    z: Float32Array | null,
    dx: Float32Array,
    dw: Float32Array,
    db: Float32Array,
    dims: ReadonlyArray<number>,
    silu: boolean
  ) => void
}

/**
 * Whether a loaded addon has the dense functions (an addon built before them has not).
 *
 * @since 0.1.0
 * @category utils
 */
export const hasNativeDense = (addon: object): addon is NativeDenseAddon =>
  typeof (addon as Partial<NativeDenseAddon>).dense === "function" &&
  typeof (addon as Partial<NativeDenseAddon>).denseGrad === "function"

interface WasmHeapBackend {
  readonly makeOutput: (shape: Array<number>, dtype: tf.DataType) => tf.TensorInfo
  readonly typedArrayFromHeap: (info: tf.TensorInfo) => tf.backend_util.TypedArray
}

const view = (be: WasmHeapBackend, t: tf.TensorInfo): Float32Array => be.typedArrayFromHeap(t) as Float32Array

const activationOf = (attrs: unknown): DenseActivation => (attrs as { activation?: DenseActivation }).activation ?? "linear"

const makeDense = (addon: NativeDenseAddon): RawKernelFunc => (args) => {
  const { b, w, x } = args.inputs as Record<string, tf.TensorInfo>
  const silu = activationOf(args.attrs) === "silu"
  const be = args.backend as WasmHeapBackend
  const [m, k] = x!.shape as [number, number]
  const n = w!.shape[1]!
  const y = be.makeOutput([m, n], "float32")
  const z = silu ? be.makeOutput([m, n], "float32") : undefined
  addon.dense(view(be, x!), view(be, w!), view(be, b!), view(be, y), z === undefined ? null : view(be, z), [m, k, n], silu)
  return z === undefined ? [y] : [y, z]
}

const makeDenseGrad = (addon: NativeDenseAddon): RawKernelFunc => (args) => {
  const { dy, w, x, z } = args.inputs as Record<string, tf.TensorInfo | undefined>
  const silu = activationOf(args.attrs) === "silu"
  const be = args.backend as WasmHeapBackend
  const [m, k] = x!.shape as [number, number]
  const n = w!.shape[1]!
  const dx = be.makeOutput([m, k], "float32")
  const dw = be.makeOutput([k, n], "float32")
  const db = be.makeOutput([n], "float32")
  addon.denseGrad(
    view(be, dy!),
    view(be, x!),
    view(be, w!),
    z === undefined ? null : view(be, z),
    view(be, dx),
    view(be, dw),
    view(be, db),
    [m, k, n],
    silu
  )
  return [dx, dw, db]
}

/**
 * The gradient of {@link DENSE_KERNEL}: one {@link DENSE_GRAD_KERNEL} call gives dx, dw and db. Like the fused
 * GroupNorm's, it runs when the gradient function is called (outside the per-input scopes of the tape walk), so the
 * gradients nobody asks for are freed with the backward pass.
 *
 * @since 0.1.0
 * @category gradients
 */
export const denseGradient: tf.GradConfig = {
  kernelName: DENSE_KERNEL,
  inputsToSave: ["x", "w"],
  outputsToSave: [false, true],
  gradFunc: (dys, saved, attrs) => {
    const [x, w, z] = saved
    const dy = Array.isArray(dys) ? dys[0]! : dys
    const [dx, dw, db] = tf.engine().runKernel(
      DENSE_GRAD_KERNEL,
      { dy, x: x!, w: w!, ...(z === undefined ? {} : { z }) },
      attrs as unknown as tf.NamedAttrMap
    ) as unknown as [tf.Tensor, tf.Tensor, tf.Tensor]
    return { x: () => dx, w: () => dw, b: () => db }
  }
}

/**
 * The wasm-backend registrations of the dense kernels on the addon.
 *
 * @since 0.1.0
 * @category patches
 */
export const nativeDensePatches = (addon: NativeDenseAddon): ReadonlyArray<KernelPatch> => [
  { kernelName: DENSE_KERNEL, backendName: "wasm", id: "native", make: () => makeDense(addon) },
  { kernelName: DENSE_GRAD_KERNEL, backendName: "wasm", id: "native", make: () => makeDenseGrad(addon) }
]
