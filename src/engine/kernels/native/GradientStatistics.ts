/**
 * {@link GRADIENT_STATISTICS_KERNEL} (`src/domain/optim/GradientStatistics.ts`) on the native addon for the wasm
 * backend: the global norm and the non-finite count of every gradient of a step in one addon call.
 *
 * @since 0.1.0
 */
import type * as tf from "@tensorflow/tfjs"
import { GRADIENT_STATISTICS_KERNEL } from "../../../domain/optim/GradientStatistics.js"
import type { RawKernelFunc } from "../Backend.js"
import type { KernelPatch } from "../Patches.js"

/**
 * The addon's function: `out = [Σ x² over all arrays (double), number of NaN / ±Inf entries]`.
 *
 * @since 0.1.0
 * @category models
 */
export interface NativeGradientStatisticsAddon {
  readonly gradientStats: (arrays: ReadonlyArray<Float32Array>, out: Float64Array) => void
}

/**
 * Whether a loaded addon has `gradientStats` (an addon built before it has not).
 *
 * @since 0.1.0
 * @category utils
 */
export const hasNativeGradientStatistics = (addon: object): addon is NativeGradientStatisticsAddon =>
  typeof (addon as Partial<NativeGradientStatisticsAddon>).gradientStats === "function"

interface WasmHeapBackend {
  readonly makeOutput: (shape: Array<number>, dtype: tf.DataType) => tf.TensorInfo
  readonly typedArrayFromHeap: (info: tf.TensorInfo) => tf.backend_util.TypedArray
}

const makeGradientStatistics = (addon: NativeGradientStatisticsAddon): RawKernelFunc => (args) => {
  const be = args.backend as WasmHeapBackend
  const arrays = Object.values(args.inputs as Record<string, tf.TensorInfo>).map((t) => be.typedArrayFromHeap(t) as Float32Array)
  const out = new Float64Array(2)
  addon.gradientStats(arrays, out)
  const norm = be.makeOutput([], "float32")
  const count = be.makeOutput([], "int32")
  ;(be.typedArrayFromHeap(norm) as Float32Array)[0] = Math.sqrt(out[0]!)
  ;(be.typedArrayFromHeap(count) as Int32Array)[0] = out[1]!
  return [norm, count]
}

/**
 * The wasm-backend registration of the gradient-statistics kernel on the addon.
 *
 * @since 0.1.0
 * @category patches
 */
export const nativeGradientStatisticsPatches = (addon: NativeGradientStatisticsAddon): ReadonlyArray<KernelPatch> => [
  { kernelName: GRADIENT_STATISTICS_KERNEL, backendName: "wasm", id: "native", make: () => makeGradientStatistics(addon) }
]
