/**
 * `Conv2D`, `FusedConv2D` (bias, linear activation), `Conv2DBackpropInput` and `Conv2DBackpropFilter` on the addon: oneDNN
 * where it was built in, else OpenBLAS sgemm over im2col.
 *
 * @since 0.2.0
 */
import * as tf from "@tensorflow/tfjs"
import type { RawKernelFunc } from "../Backend.js"
import { type NativeAddon, type WasmHeapBackend, allFloat, view, isEmpty } from "./Addon.js"

export type Pair = number | [number, number]
export type Padding = "valid" | "same" | number | tf.backend_util.ExplicitPadding

export interface ConvAttrs {
  readonly strides: Pair
  readonly pad: Padding
  readonly dataFormat?: string
  readonly dimRoundingMode?: "floor" | "round" | "ceil"
  readonly dilations?: Pair
  readonly activation?: string
  readonly inputShape?: [number, number, number, number]
  readonly filterShape?: [number, number, number, number]
}

export type Shape4 = [number, number, number, number]

export const info4 = (xShape: Shape4, filterShape: Shape4, a: ConvAttrs): tf.backend_util.Conv2DInfo =>
  tf.backend_util.computeConv2DInfo(xShape, filterShape, a.strides, a.dilations ?? 1, a.pad, a.dimRoundingMode, false, "channelsLast")

export const dims = (c: tf.backend_util.Conv2DInfo): Array<number> => [
  c.batchSize,
  c.inHeight,
  c.inWidth,
  c.inChannels,
  c.outHeight,
  c.outWidth,
  c.outChannels,
  c.filterHeight,
  c.filterWidth,
  c.strideHeight,
  c.strideWidth,
  c.padInfo.top,
  c.padInfo.left,
  c.dilationHeight,
  c.dilationWidth
]


export const makeConv2D = (addon: NativeAddon, stock: RawKernelFunc, fused: boolean): RawKernelFunc => (args) => {
  const a = args.attrs as unknown as ConvAttrs
  const { bias, filter, preluActivationWeights, x } = args.inputs as Record<string, tf.TensorInfo | undefined>
  if (
    x === undefined || filter === undefined || (a.dataFormat !== undefined && a.dataFormat !== "NHWC") ||
    (fused && ((a.activation ?? "linear") !== "linear" || preluActivationWeights !== undefined)) ||
    !allFloat(x, filter, bias) || (bias !== undefined && bias.shape.length !== 1)
  ) return stock(args)
  const c = info4(x.shape as Shape4, filter.shape as Shape4, a)
  if (isEmpty(c.outShape) || isEmpty(x.shape) || (bias !== undefined && bias.shape[0] !== c.outChannels)) {
    return stock(args)
  }
  const be = args.backend as WasmHeapBackend
  const out = be.makeOutput(c.outShape, "float32")
  addon.conv2d(view(be, x), view(be, filter), bias === undefined ? null : view(be, bias), view(be, out), dims(c))
  return out
}

export const makeBackpropInput = (addon: NativeAddon, stock: RawKernelFunc): RawKernelFunc => (args) => {
  const a = args.attrs as unknown as ConvAttrs
  const { dy, filter } = args.inputs as Record<string, tf.TensorInfo | undefined>
  if (
    dy === undefined || filter === undefined || a.inputShape === undefined ||
    (a.dataFormat !== undefined && a.dataFormat !== "NHWC") || !allFloat(dy, filter)
  ) return stock(args)
  const c = info4(a.inputShape, filter.shape as Shape4, a)
  if (isEmpty(c.outShape) || isEmpty(a.inputShape)) return stock(args)
  const be = args.backend as WasmHeapBackend
  const out = be.makeOutput([...a.inputShape], "float32")
  addon.conv2dBackpropInput(view(be, dy), view(be, filter), view(be, out), dims(c))
  return out
}

export const makeBackpropFilter = (addon: NativeAddon, stock: RawKernelFunc): RawKernelFunc => (args) => {
  const a = args.attrs as unknown as ConvAttrs
  const { dy, x } = args.inputs as Record<string, tf.TensorInfo | undefined>
  if (
    dy === undefined || x === undefined || a.filterShape === undefined ||
    (a.dataFormat !== undefined && a.dataFormat !== "NHWC") || !allFloat(dy, x)
  ) return stock(args)
  const c = info4(x.shape as Shape4, a.filterShape, a)
  if (isEmpty(c.outShape) || isEmpty(x.shape) || isEmpty(a.filterShape)) return stock(args)
  const be = args.backend as WasmHeapBackend
  const out = be.makeOutput([...a.filterShape], "float32")
  addon.conv2dBackpropFilter(view(be, x), view(be, dy), view(be, out), dims(c))
  return out
}
