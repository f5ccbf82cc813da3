/**
 * The contracts of sid-ts's own fused kernels: their names, inputs, attributes and outputs, in one place (as tfjs-core's
 * `kernel_names.ts` is for TF.js's kernels).
 *
 * The domain calls these kernels through `tf.engine().runKernel` only when the active backend registers them and
 * composes the same operations from stock TF.js ops otherwise, so every engine computes the same function. Engines
 * register implementations (`engine/kernels/Native.ts` for `wasm-native`); a new engine implements the same contract.
 * This module is a leaf: it imports nothing but TF.js types, so the pure `domain/` may depend on it.
 *
 * @since 0.2.0
 */
import type * as tf from "@tensorflow/tfjs"

/**
 * One Adam update of one parameter tensor (`domain/optim/Adam.ts`, docs/algorithm.md: Adam).
 *
 * @since 0.2.0
 * @category kernels
 */
export const SidAdam = "SidAdam"

/**
 * Inputs of {@link SidAdam}: float32 tensors of one shape.
 *
 * @since 0.2.0
 * @category kernels
 */
export interface SidAdamInputs {
  readonly param: tf.Tensor
  readonly grad: tf.Tensor
  readonly m: tf.Tensor
  readonly v: tf.Tensor
}

/**
 * Attributes of {@link SidAdam}: the Adam settings and `step`, this update's number t (from 1). The outputs are the new
 * `[param, m, v]`, each operation rounded to float32 in the order `adamUpdate` composes them.
 *
 * @since 0.2.0
 * @category kernels
 */
export interface SidAdamAttrs {
  readonly learningRate: number
  readonly beta1: number
  readonly beta2: number
  readonly epsilon: number
  readonly step: number
}

/**
 * Group normalisation with its affine map and optional SiLU, NHWC (`domain/nn/GroupNorm.ts`).
 * Outputs `y` [N,H,W,C], and per sample and group `mean` [N,G] and `rstd` = 1/√(var + ε) [N,G] (kept for the gradient).
 *
 * @since 0.2.0
 * @category kernels
 */
export const SidGroupNorm = "SidGroupNorm"

/**
 * The gradient of {@link SidGroupNorm}: inputs `dy`, `x`, `gamma`, `beta`, `mean`, `rstd`, the same attributes; outputs
 * `dx` [N,H,W,C], `dgamma` [C], `dbeta` [C].
 *
 * @since 0.2.0
 * @category kernels
 */
export const SidGroupNormGrad = "SidGroupNormGrad"

/**
 * The activation applied after the affine map: none, or SiLU z·sigmoid(z).
 *
 * @since 0.2.0
 * @category kernels
 */
export type GroupNormActivation = "linear" | "silu"

/**
 * Inputs of {@link SidGroupNorm}: `x` [N,H,W,C] float32, `gamma` [C], `beta` [C].
 *
 * @since 0.2.0
 * @category kernels
 */
export interface SidGroupNormInputs {
  readonly x: tf.Tensor4D
  readonly gamma: tf.Tensor1D
  readonly beta: tf.Tensor1D
}

/**
 * Attributes of {@link SidGroupNorm} and {@link SidGroupNormGrad}.
 *
 * @since 0.2.0
 * @category kernels
 */
export interface SidGroupNormAttrs {
  readonly groups: number
  readonly epsilon: number
  readonly activation: GroupNormActivation
}

/**
 * Name of the optional gradient-statistics kernel. Inputs: any number of float32 tensors (named `g0`, `g1`, … in
 * order); no attributes; outputs the global L2 norm (float32 scalar) and the number of NaN / ±Inf entries (int32
 * scalar).
 *
 * @since 0.2.0
 * @category kernels
 */
export const SidGradientStatistics = "SidGradientStatistics"

/**
 * Name of the optional all-parameters EMA kernel. Inputs, for n parameters i = 0 … n−1 of any shapes: `e{i}` (the
 * average) and `p{i}` (the parameter), float32 of one shape; attributes `beta` and `count` = n; outputs the n new
 * averages.
 *
 * @since 0.2.0
 * @category kernels
 */
export const SidEmaAll = "SidEmaAll"

/**
 * Name of the optional all-parameters Adam kernel. Inputs, for n parameters i = 0 … n−1 of any shapes: `p{i}`,
 * `g{i}`, `m{i}`, `v{i}` (float32, each parameter's four of one shape); attributes those of `ADAM_KERNEL`
 * (`learningRate`, `beta1`, `beta2`, `epsilon`, `step`) and `count` = n; outputs the n new parameters, then the n new
 * first moments, then the n new second moments.
 *
 * @since 0.2.0
 * @category kernels
 */
export const SidAdamAll = "SidAdamAll"

/**
 * Name of the optional fused dense kernel. Inputs `x` [M,K], `w` [K,N], `b` [N], all float32; attribute `activation`
 * ({@link DenseActivation}); outputs `y` [M,N] and, after SiLU only, the pre-activation `z` [M,N] and optionally
 * σ(z) [M,N] (kept for the gradient).
 *
 * @since 0.2.0
 * @category kernels
 */
export const SidDense = "SidDense"

/**
 * Name of the fused dense gradient kernel. Inputs `dy` [M,N], `x`, `w` and, after SiLU, `z` (as above); attribute
 * `activation`; outputs `dx` [M,K], `dw` [K,N], `db` [N].
 *
 * @since 0.2.0
 * @category kernels
 */
export const SidDenseGrad = "SidDenseGrad"

/**
 * Name of the SiLU gradient kernel that an engine's lazy {@link SidDense} gradient may use. Inputs `dy`, `z` and
 * optionally `s` = σ(z) as the engine's `Sigmoid` computes it (float32, one shape); no attributes; output ∂z = dy·s + (dy·z)·(s·(1 − s)) with s = σ(z), each operation rounded to
 * float32 as TF.js's gradient of the composed `mul(z, sigmoid(z))` rounds it.
 *
 * @since 0.2.0
 * @category kernels
 */
export const SidSiluGrad = "SidSiluGrad"

/**
 * Name of the optional convolution-with-bias kernel. Inputs `x` [N,H,W,Cin], `filter` [KH,KW,Cin,Cout], `bias`
 * [Cout], all float32; attributes `strides`, `pad` (`"same"` or `"valid"`), `dilations` (as `Conv2D`'s, NHWC);
 * output `y` [N,OH,OW,Cout].
 *
 * @since 0.2.0
 * @category kernels
 */
export const SidConv2DBias = "SidConv2DBias"

/**
 * Name of the kernel giving the filter and bias gradients of {@link CONV2D_BIAS_KERNEL} in one call. Inputs `x`,
 * `dy` [N,OH,OW,Cout]; the forward attributes, `filterShape` and optionally `only` (`"filter"` or `"bias"`); outputs
 * `dfilter` [KH,KW,Cin,Cout] and `dbias` [Cout], or only the one `only` names. The input gradient is the registered
 * `Conv2DBackpropInput`.
 *
 * @since 0.2.0
 * @category kernels
 */
export const SidConv2DFilterBiasGrad = "SidConv2DFilterBiasGrad"

/**
 * Every fused kernel name, for engines that register or audit them.
 *
 * @since 0.2.0
 * @category kernels
 */
export const FUSED_KERNELS = [
  SidAdam,
  SidAdamAll,
  SidEmaAll,
  SidGradientStatistics,
  SidGroupNorm,
  SidGroupNormGrad,
  SidDense,
  SidDenseGrad,
  SidSiluGrad,
  SidConv2DBias,
  SidConv2DFilterBiasGrad
] as const
