/**
 * Convolution gradient kernels for the wasm backend (docs/engines.md §3.1 patterns 2 and 3, §3.2).
 *
 * - `Conv2DBackpropFilter` (absent from stock wasm): x is padded and transposed once to `[Cin, B, Hp, Wp]`; then for
 *   every filter tap a strided slice gives `[Cin, M]` (M = B·OH·OW) and one XNNPACK matMul without transpose flags
 *   gives `dW[tap] = xTapᵀ · dy` of shape `[Cin, Cout]`; the taps are concatenated along axis 0 into the
 *   `[KH, KW, Cin, Cout]` filter gradient. Per-tap matMuls measured about 2× faster than one im2col matMul.
 * - `Conv2DBackpropInput` for stride 1: dX is the forward (XNNPACK) convolution of dy with the filter flipped in H and W
 *   and its in/out channels swapped, padded by `k − 1 − pad`. Other strides, NCHW and paddings that would become
 *   negative fall through to the stock kernel.
 *
 * Both handle 'same' / 'valid' / explicit padding, `dimRoundingMode`, any kernel size and stride, and dilations when
 * present in the attrs. The filter gradient accepts NCHW by transposing x and dy to NHWC first.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { type RawKernelFunc, run, type WasmBackendLike } from "./Backend.js"

type Pair = number | [number, number]
type Padding = "valid" | "same" | number | tf.backend_util.ExplicitPadding

interface BackpropFilterAttrs {
  readonly strides: Pair
  readonly pad: Padding
  readonly dataFormat?: "NHWC" | "NCHW"
  readonly dimRoundingMode?: "floor" | "round" | "ceil"
  readonly filterShape: [number, number, number, number]
  readonly dilations?: Pair
}

interface BackpropInputAttrs {
  readonly strides: Pair
  readonly pad: Padding
  readonly dataFormat?: "NHWC" | "NCHW"
  readonly dimRoundingMode?: "floor" | "round" | "ceil"
  readonly inputShape: [number, number, number, number]
  readonly dilations?: Pair
}

const W = "wasm"

const convInfo = (
  xShape: [number, number, number, number],
  filterShape: [number, number, number, number],
  strides: Pair,
  dilations: Pair,
  pad: Padding,
  dimRoundingMode: "floor" | "round" | "ceil" | undefined
): tf.backend_util.Conv2DInfo =>
  tf.backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    strides,
    dilations,
    pad,
    dimRoundingMode,
    false,
    "channelsLast"
  )

const toNhwc = (backend: WasmBackendLike, t: tf.TensorInfo): tf.TensorInfo =>
  run("Transpose", W, backend, { x: t }, { perm: [0, 2, 3, 1] })

/**
 * The wasm `Conv2DBackpropFilter` kernel function (filter gradient of conv2d / fused.conv2d / conv2dTranspose).
 *
 * @since 0.1.0
 * @category kernels
 */
export const conv2DBackpropFilter: RawKernelFunc = ({ attrs, backend, inputs }) => {
  const be = backend as WasmBackendLike
  const a = attrs as unknown as BackpropFilterAttrs
  const channelsFirst = a.dataFormat === "NCHW"
  const temps: Array<tf.TensorInfo> = []
  const keep = (t: tf.TensorInfo): tf.TensorInfo => {
    temps.push(t)
    return t
  }
  try {
    const x = channelsFirst ? keep(toNhwc(be, inputs["x"]!)) : inputs["x"]!
    const dy = channelsFirst ? keep(toNhwc(be, inputs["dy"]!)) : inputs["dy"]!
    const info = convInfo(
      x.shape as [number, number, number, number],
      a.filterShape,
      a.strides,
      a.dilations ?? 1,
      a.pad,
      a.dimRoundingMode
    )
    const { batchSize, dilationHeight, dilationWidth, filterHeight, filterWidth, inChannels, inHeight, inWidth } = info
    const { outChannels, outHeight, outWidth, padInfo, strideHeight, strideWidth } = info
    const spanH = (outHeight - 1) * strideHeight + 1
    const spanW = (outWidth - 1) * strideWidth + 1
    const needH = spanH + (filterHeight - 1) * dilationHeight
    const needW = spanW + (filterWidth - 1) * dilationWidth
    const bottom = Math.max(0, needH - padInfo.top - inHeight)
    const right = Math.max(0, needW - padInfo.left - inWidth)
    const padded = padInfo.top + bottom + padInfo.left + right > 0
      ? keep(run("PadV2", W, be, { x }, {
        paddings: [[0, 0], [padInfo.top, bottom], [padInfo.left, right], [0, 0]],
        constantValue: 0
      }))
      : x
    const xt = keep(run("Transpose", W, be, { x: padded }, { perm: [3, 0, 1, 2] }))
    const m = batchSize * outHeight * outWidth
    const dy2 = keep(run("Reshape", W, be, { x: dy }, { shape: [m, outChannels] }))
    const taps: Array<tf.TensorInfo> = []
    for (let i = 0; i < filterHeight; i++) {
      for (let j = 0; j < filterWidth; j++) {
        const r0 = i * dilationHeight
        const c0 = j * dilationWidth
        const tap = keep(run("StridedSlice", W, be, { x: xt }, {
          begin: [0, 0, r0, c0],
          end: [inChannels, batchSize, r0 + spanH, c0 + spanW],
          strides: [1, 1, strideHeight, strideWidth],
          beginMask: 0,
          endMask: 0,
          ellipsisMask: 0,
          newAxisMask: 0,
          shrinkAxisMask: 0
        }))
        const tap2 = keep(run("Reshape", W, be, { x: tap }, { shape: [inChannels, m] }))
        taps.push(keep(run("BatchMatMul", W, be, { a: tap2, b: dy2 }, { transposeA: false, transposeB: false })))
      }
    }
    const stacked = taps.length === 1 ? taps[0]! : keep(run("Concat", W, be, taps, { axis: 0 }))
    return run("Reshape", W, be, { x: stacked }, { shape: [filterHeight, filterWidth, inChannels, outChannels] })
  } finally {
    for (const t of temps) be.disposeData(t.dataId)
  }
}

/**
 * Builds the wasm `Conv2DBackpropInput` kernel function: the fast stride-1 path, else `stock`.
 *
 * @since 0.1.0
 * @category kernels
 */
export const makeConv2DBackpropInput = (stock: RawKernelFunc): RawKernelFunc => (args) => {
  const { attrs, backend, inputs } = args
  const be = backend as WasmBackendLike
  const a = attrs as unknown as BackpropInputAttrs
  if (a.dataFormat === "NCHW") return stock(args)
  const filter = inputs["filter"]!
  const dy = inputs["dy"]!
  const info = convInfo(
    a.inputShape,
    filter.shape as [number, number, number, number],
    a.strides,
    a.dilations ?? 1,
    a.pad,
    a.dimRoundingMode
  )
  const { dilationHeight, dilationWidth, effectiveFilterHeight, effectiveFilterWidth, inHeight, inWidth } = info
  const { outHeight, outWidth, padInfo, strideHeight, strideWidth } = info
  if (strideHeight !== 1 || strideWidth !== 1) return stock(args)
  const top = effectiveFilterHeight - 1 - padInfo.top
  const left = effectiveFilterWidth - 1 - padInfo.left
  const bottom = inHeight - outHeight + padInfo.top
  const right = inWidth - outWidth + padInfo.left
  if (top < 0 || left < 0 || bottom < 0 || right < 0) return stock(args)
  const temps: Array<tf.TensorInfo> = []
  try {
    const flipped = run("Reverse", W, be, { x: filter }, { dims: [0, 1] })
    temps.push(flipped)
    const swapped = run("Transpose", W, be, { x: flipped }, { perm: [0, 1, 3, 2] })
    temps.push(swapped)
    return run("Conv2D", W, be, { x: dy, filter: swapped }, {
      strides: [1, 1],
      pad: [[0, 0], [top, bottom], [left, right], [0, 0]],
      dataFormat: "NHWC",
      dilations: [dilationHeight, dilationWidth]
    })
  } finally {
    for (const t of temps) be.disposeData(t.dataId)
  }
}
