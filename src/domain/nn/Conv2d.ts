/**
 * A 2-D convolution with a bias, NHWC: `conv2d(x, filter) + bias` for x [N,H,W,Cin], filter [KH,KW,Cin,Cout],
 * bias [Cout].
 *
 * An engine may register the kernel {@link CONV2D_BIAS_KERNEL} with the one-call filter-and-bias gradient
 * {@link CONV2D_FILTER_BIAS_GRAD_KERNEL}; {@link conv2dBias} uses them where the active backend has them and
 * `tf.fused.conv2d` otherwise. Both compute the same function up to float32 rounding. The fused op's gradient takes
 * four kernel dispatches per convolution (input and filter gradients, the bias gradient's sum and a reshape) and a
 * custom-gradient scope; this one at most three, one per input whose gradient the tape asks for (issue 18 point 5).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { SidConv2DBias, SidConv2DFilterBiasGrad } from "../../engine/kernels/KernelNames.js"

/** Name of the `SidConv2DBias` kernel (contract in `engine/kernels/KernelNames.ts`). */
export const CONV2D_BIAS_KERNEL = SidConv2DBias

/** Name of the `SidConv2DFilterBiasGrad` kernel (contract in `engine/kernels/KernelNames.ts`). */
export const CONV2D_FILTER_BIAS_GRAD_KERNEL = SidConv2DFilterBiasGrad

/**
 * Padding of {@link conv2dBias}.
 *
 * @since 0.1.0
 * @category models
 */
export type Conv2dPadding = "same" | "valid"

/**
 * `conv2d(x, filter, strides, pad) + bias` (NHWC, dilation 1). Runs {@link CONV2D_BIAS_KERNEL} where the active
 * backend registers it.
 *
 * @since 0.1.0
 * @category layers
 */
export const conv2dBias = (
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias: tf.Tensor,
  strides: number | [number, number] = 1,
  pad: Conv2dPadding = "same"
): tf.Tensor4D => {
  const fits = x.rank === 4 && filter.rank === 4 && bias.rank === 1 && x.shape[3] === filter.shape[2] &&
    bias.shape[0] === filter.shape[3] && [x, filter, bias].every((t) => t.dtype === "float32" && t.size > 0)
  if (fits && tf.getKernel(CONV2D_BIAS_KERNEL, tf.getBackend()) !== undefined) {
    return tf.engine().runKernel(CONV2D_BIAS_KERNEL, { x, filter, bias }, { strides, pad, dilations: 1 }) as tf.Tensor4D
  }
  return tf.fused.conv2d({ x, filter, bias, strides, pad })
}
