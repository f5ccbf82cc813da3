/**
 * The `wasm-native` engine's kernels: the optional Node-API addon in `native/` runs, on all cores and directly on the
 * wasm heap with no copies, the heavy kernels of training — convolutions and their gradients, matrix products,
 * broadcasting element-wise ops, reductions, splits and concatenations, the fused Adam and GroupNorm kernels — one
 * kernel per file in `native/`. Each falls back to the kernel registered before it (stock or the wasm patch) for
 * anything the addon does not cover: NCHW, non-float32 dtypes, fused activations other than `linear`, batch shapes
 * that broadcast both ways.
 *
 * @since 0.1.0
 */
import { ADAM_KERNEL } from "../../domain/optim/Adam.js"
import { GROUP_NORM_GRAD_KERNEL, GROUP_NORM_KERNEL } from "../../domain/nn/GroupNorm.js"
import type { KernelPatch } from "./Patches.js"
import { type NativeAddon, requireStock } from "./native/Addon.js"
import { makeConv2D, makeBackpropInput, makeBackpropFilter } from "./native/Conv2D.js"
import { makeBatchMatMul } from "./native/BatchMatMul.js"
import { BINARY_OPS, makeBinary } from "./native/Binary.js"
import { makeReduce } from "./native/Reduce.js"
import { makeSplitV } from "./native/SplitV.js"
import { makeConcat } from "./native/Concat.js"
import { makeIdentity, makeCast } from "./native/Views.js"
import { makeResizeNearestGrad } from "./native/ResizeNearestNeighborGrad.js"
import { makeSigmoid } from "./native/Sigmoid.js"
import { makeAvgPoolGrad } from "./native/AvgPoolGrad.js"
import { makeAdam } from "./native/Adam.js"
import { makeGroupNorm, makeGroupNormGrad } from "./native/GroupNorm.js"

export { loadNativeAddon, type NativeAddon, nativeAddonPath } from "./native/Addon.js"
export { groupNormGradient } from "./native/GroupNorm.js"

/**
 * Kernel patches that route the heavy wasm kernels through the addon, each falling back to the kernel registered
 * before it. Installed on top of the wasm patches (their `id` keeps them apart in the install bookkeeping).
 *
 * @since 0.1.0
 * @category patches
 */
export const nativePatches = (addon: NativeAddon): ReadonlyArray<KernelPatch> => [
  {
    kernelName: "Conv2D",
    backendName: "wasm",
    id: "native",
    make: (stock) => makeConv2D(addon, requireStock("Conv2D", stock), false)
  },
  {
    kernelName: "FusedConv2D",
    backendName: "wasm",
    id: "native",
    make: (stock) => makeConv2D(addon, requireStock("FusedConv2D", stock), true)
  },
  {
    kernelName: "Conv2DBackpropInput",
    backendName: "wasm",
    id: "native",
    make: (stock) => makeBackpropInput(addon, requireStock("Conv2DBackpropInput", stock))
  },
  {
    kernelName: "Conv2DBackpropFilter",
    backendName: "wasm",
    id: "native",
    make: (stock) => makeBackpropFilter(addon, requireStock("Conv2DBackpropFilter", stock))
  },
  {
    kernelName: "BatchMatMul",
    backendName: "wasm",
    id: "native",
    make: (stock) => makeBatchMatMul(addon, requireStock("BatchMatMul", stock))
  },
  ...Object.entries(BINARY_OPS).map(([kernelName, op]): KernelPatch => ({
    kernelName,
    backendName: "wasm",
    id: "native",
    make: (stock) => makeBinary(addon, op, requireStock(kernelName, stock))
  })),
  { kernelName: "Sum", backendName: "wasm", id: "native", make: (stock) => makeReduce(addon, false, requireStock("Sum", stock)) },
  { kernelName: "Mean", backendName: "wasm", id: "native", make: (stock) => makeReduce(addon, true, requireStock("Mean", stock)) },
  { kernelName: "SplitV", backendName: "wasm", id: "native", make: (stock) => makeSplitV(addon, requireStock("SplitV", stock)) },
  { kernelName: "Concat", backendName: "wasm", id: "native", make: (stock) => makeConcat(addon, requireStock("Concat", stock)) },
  { kernelName: "Identity", backendName: "wasm", id: "native", make: (stock) => makeIdentity(requireStock("Identity", stock)) },
  { kernelName: "Cast", backendName: "wasm", id: "native", make: (stock) => makeCast(requireStock("Cast", stock)) },
  {
    kernelName: "ResizeNearestNeighborGrad",
    backendName: "wasm",
    id: "native",
    make: (stock) => makeResizeNearestGrad(addon, requireStock("ResizeNearestNeighborGrad", stock))
  },
  { kernelName: "Sigmoid", backendName: "wasm", id: "native", make: (stock) => makeSigmoid(addon, requireStock("Sigmoid", stock)) },
  {
    kernelName: "AvgPoolGrad",
    backendName: "wasm",
    id: "native",
    make: (stock) => makeAvgPoolGrad(addon, requireStock("AvgPoolGrad", stock))
  },
  { kernelName: ADAM_KERNEL, backendName: "wasm", id: "native", make: () => makeAdam(addon) },
  { kernelName: GROUP_NORM_KERNEL, backendName: "wasm", id: "native", make: () => makeGroupNorm(addon) },
  { kernelName: GROUP_NORM_GRAD_KERNEL, backendName: "wasm", id: "native", make: () => makeGroupNormGrad(addon) }
]
