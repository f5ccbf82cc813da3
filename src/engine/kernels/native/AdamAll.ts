/**
 * {@link ADAM_ALL_KERNEL} (`src/domain/optim/AdamAll.ts`) on the native addon for the wasm backend: Adam over every
 * parameter in one addon call.
 *
 * @since 0.1.0
 */
import type * as tf from "@tensorflow/tfjs"
import { ADAM_ALL_KERNEL } from "../../../domain/optim/AdamAll.js"
import type { RawKernelFunc } from "../Backend.js"
import type { KernelPatch } from "../Patches.js"
import { adamHyperParameters } from "./Adam.js"

/**
 * The addon's function: `adam` (the per-parameter kernel) for each parameter; every argument but `h` holds one array
 * per parameter, `h` = float32 `[lr, β₁, β₂, ε, 1 − β₁, 1 − β₂, 1 − β₁ᵗ, 1 − β₂ᵗ]`.
 *
 * @since 0.1.0
 * @category models
 */
export interface NativeAdamAllAddon {
  readonly adamAll: (
    p: ReadonlyArray<Float32Array>,
    g: ReadonlyArray<Float32Array>,
    m: ReadonlyArray<Float32Array>,
    v: ReadonlyArray<Float32Array>,
    pOut: ReadonlyArray<Float32Array>,
    mOut: ReadonlyArray<Float32Array>,
    vOut: ReadonlyArray<Float32Array>,
    h: Float32Array
  ) => void
}

/**
 * Whether a loaded addon has `adamAll` (an addon built before it has not).
 *
 * @since 0.1.0
 * @category utils
 */
export const hasNativeAdamAll = (addon: object): addon is NativeAdamAllAddon =>
  typeof (addon as Partial<NativeAdamAllAddon>).adamAll === "function"

interface WasmHeapBackend {
  readonly makeOutput: (shape: Array<number>, dtype: tf.DataType) => tf.TensorInfo
  readonly typedArrayFromHeap: (info: tf.TensorInfo) => tf.backend_util.TypedArray
}

interface AdamAllAttrs {
  readonly learningRate: number
  readonly beta1: number
  readonly beta2: number
  readonly epsilon: number
  readonly step: number
  readonly count: number
}

const makeAdamAll = (addon: NativeAdamAllAddon): RawKernelFunc => (args) => {
  const inputs = args.inputs as Record<string, tf.TensorInfo>
  const a = args.attrs as unknown as AdamAllAttrs
  const be = args.backend as WasmHeapBackend
  const view = (t: tf.TensorInfo) => be.typedArrayFromHeap(t) as Float32Array
  const indices = Array.from({ length: a.count }, (_, i) => i)
  const of = (k: string) => indices.map((i) => inputs[`${k}${i}`]!)
  const params = of("p")
  const outs = [0, 1, 2].map(() => params.map((p) => be.makeOutput([...p.shape], "float32")))
  const h = adamHyperParameters(a)
  addon.adamAll(
    params.map(view),
    of("g").map(view),
    of("m").map(view),
    of("v").map(view),
    outs[0]!.map(view),
    outs[1]!.map(view),
    outs[2]!.map(view),
    h
  )
  return outs.flat()
}

/**
 * The wasm-backend registration of the all-parameters Adam kernel on the addon.
 *
 * @since 0.1.0
 * @category patches
 */
export const nativeAdamAllPatches = (addon: NativeAdamAllAddon): ReadonlyArray<KernelPatch> => [
  { kernelName: ADAM_ALL_KERNEL, backendName: "wasm", id: "native", make: () => makeAdamAll(addon) }
]
