/**
 * {@link EMA_ALL_KERNEL} (`src/domain/optim/EmaAll.ts`) on the native addon for the wasm backend: the EMA of every
 * parameter in one addon call.
 *
 * @since 0.1.0
 */
import type * as tf from "@tensorflow/tfjs"
import { EMA_ALL_KERNEL } from "../../../domain/optim/EmaAll.js"
import type { RawKernelFunc } from "../Backend.js"
import type { KernelPatch } from "../Patches.js"

/**
 * The addon's function: `out = e·h[0] + p·h[1]` per parameter (`h` = float32 `[β, 1 − β]`).
 *
 * @since 0.1.0
 * @category models
 */
export interface NativeEmaAllAddon {
  readonly emaAll: (
    e: ReadonlyArray<Float32Array>,
    p: ReadonlyArray<Float32Array>,
    out: ReadonlyArray<Float32Array>,
    h: Float32Array
  ) => void
}

/**
 * Whether a loaded addon has `emaAll` (an addon built before it has not).
 *
 * @since 0.1.0
 * @category utils
 */
export const hasNativeEmaAll = (addon: object): addon is NativeEmaAllAddon =>
  typeof (addon as Partial<NativeEmaAllAddon>).emaAll === "function"

interface WasmHeapBackend {
  readonly makeOutput: (shape: Array<number>, dtype: tf.DataType) => tf.TensorInfo
  readonly typedArrayFromHeap: (info: tf.TensorInfo) => tf.backend_util.TypedArray
}

const makeEmaAll = (addon: NativeEmaAllAddon): RawKernelFunc => (args) => {
  const inputs = args.inputs as Record<string, tf.TensorInfo>
  const { beta, count } = args.attrs as unknown as { beta: number; count: number }
  const be = args.backend as WasmHeapBackend
  const view = (t: tf.TensorInfo) => be.typedArrayFromHeap(t) as Float32Array
  const indices = Array.from({ length: count }, (_, i) => i)
  const es = indices.map((i) => inputs[`e${i}`]!)
  const outs = es.map((e) => be.makeOutput([...e.shape], "float32"))
  addon.emaAll(es.map(view), indices.map((i) => view(inputs[`p${i}`]!)), outs.map(view), Float32Array.of(beta, 1 - beta))
  return outs
}

/**
 * The wasm-backend registration of the all-parameters EMA kernel on the addon.
 *
 * @since 0.1.0
 * @category patches
 */
export const nativeEmaAllPatches = (addon: NativeEmaAllAddon): ReadonlyArray<KernelPatch> => [
  { kernelName: EMA_ALL_KERNEL, backendName: "wasm", id: "native", make: () => makeEmaAll(addon) }
]
