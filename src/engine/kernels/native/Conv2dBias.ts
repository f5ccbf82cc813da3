/**
 * {@link CONV2D_BIAS_KERNEL} (`src/domain/nn/Conv2d.ts`) on the native addon for the wasm backend: the forward
 * convolution with its bias in one addon call, the filter and bias gradients in one dispatch (or either alone), and the
 * gradient that runs them (the input gradient is the registered `Conv2DBackpropInput`, the addon's on this engine).
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { CONV2D_BIAS_KERNEL, CONV2D_FILTER_BIAS_GRAD_KERNEL } from "../../../domain/nn/Conv2d.js"
import type { RawKernelFunc } from "../Backend.js"
import { type NativeAddon, view, type WasmHeapBackend } from "./Addon.js"
import { dims, info4, type Pair, type Shape4 } from "./Conv2D.js"
import type { KernelPatch } from "../Patches.js"

interface Conv2dAttrs {
  readonly strides: Pair
  readonly pad: "same" | "valid"
  readonly dilations: Pair
  readonly filterShape?: Shape4
  readonly only?: "filter" | "bias"
}

const makeConv2dBias = (addon: NativeAddon): RawKernelFunc => (args) => {
  const { bias, filter, x } = args.inputs as Record<string, tf.TensorInfo>
  const c = info4(x!.shape as Shape4, filter!.shape as Shape4, args.attrs as unknown as Conv2dAttrs)
  const be = args.backend as WasmHeapBackend
  const y = be.makeOutput(c.outShape, "float32")
  addon.conv2d(view(be, x!), view(be, filter!), view(be, bias!), view(be, y), dims(c))
  return y
}

const makeFilterBiasGrad = (addon: NativeAddon): RawKernelFunc => (args) => {
  const { dy, x } = args.inputs as Record<string, tf.TensorInfo>
  const a = args.attrs as unknown as Conv2dAttrs
  const c = info4(x!.shape as Shape4, a.filterShape!, a)
  const be = args.backend as WasmHeapBackend
  // Every output is allocated before any heap view is taken: an allocation may grow the heap and detach the views.
  const dfilter = a.only === "bias" ? undefined : be.makeOutput([...a.filterShape!], "float32")
  const dbias = a.only === "filter" ? undefined : be.makeOutput([c.outChannels], "float32")
  const dyView = view(be, dy!)
  if (dfilter !== undefined) addon.conv2dBackpropFilter(view(be, x!), dyView, view(be, dfilter), dims(c))
  if (dbias !== undefined) addon.sum(dyView, [c.batchSize * c.outHeight * c.outWidth, c.outChannels], [0], view(be, dbias), 1)
  return [dfilter, dbias].filter((t): t is tf.TensorInfo => t !== undefined)
}

/**
 * The gradient of {@link CONV2D_BIAS_KERNEL}: each input's gradient only when the tape asks for it (a frozen
 * network's convolutions, the teacher's and ψ's in the generator step, need only the input gradient): the input
 * gradient from `Conv2DBackpropInput`, the filter's and the bias's each from one
 * {@link CONV2D_FILTER_BIAS_GRAD_KERNEL} call restricted to it (`only`), the same bits as the call giving both.
 *
 * @since 0.1.0
 * @category gradients
 */
export const conv2dBiasGradient: tf.GradConfig = {
  kernelName: CONV2D_BIAS_KERNEL,
  inputsToSave: ["x", "filter"],
  gradFunc: (dys, saved, attrs) => {
    const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D]
    const dy = (Array.isArray(dys) ? dys[0]! : dys) as tf.Tensor4D
    const a = attrs as unknown as Conv2dAttrs
    const part = (only: "filter" | "bias") =>
      (tf.engine().runKernel(
        CONV2D_FILTER_BIAS_GRAD_KERNEL,
        { x, dy },
        { ...a, filterShape: filter.shape, only } as unknown as tf.NamedAttrMap
      ) as unknown as [tf.Tensor])[0]
    return {
      x: () =>
        tf.engine().runKernel(
          "Conv2DBackpropInput",
          { dy, filter },
          { strides: a.strides, pad: a.pad, dataFormat: "NHWC", dilations: a.dilations, inputShape: x.shape } as unknown as tf.NamedAttrMap
        ) as tf.Tensor,
      filter: () => part("filter"),
      bias: () => part("bias")
    }
  }
}

/**
 * The wasm-backend registrations of the convolution-with-bias kernels on the addon.
 *
 * @since 0.1.0
 * @category patches
 */
export const nativeConv2dBiasPatches = (addon: NativeAddon): ReadonlyArray<KernelPatch> => [
  { kernelName: CONV2D_BIAS_KERNEL, backendName: "wasm", id: "native", make: () => makeConv2dBias(addon) },
  { kernelName: CONV2D_FILTER_BIAS_GRAD_KERNEL, backendName: "wasm", id: "native", make: () => makeFilterBiasGrad(addon) }
]
