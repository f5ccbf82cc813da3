/**
 * Native kernels for the wasm backend (issue 6): the optional Node-API addon in `native/` (built by
 * `npm run build:native`; OpenBLAS sgemm over im2col, parallel over all cores) computes the convolution forward pass,
 * both convolution gradients and batched matrix products directly on the wasm heap, with no copies: inputs and the
 * freshly allocated output are handed to the addon as `Float32Array` views into the heap.
 *
 * Kernels fall back to the kernel registered before them (stock or the wasm patch) for anything the addon does not
 * cover: NCHW, non-float32 dtypes, fused activations other than `linear`, batch shapes that broadcast both ways.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { existsSync } from "node:fs"
import { createRequire } from "node:module"
import { fileURLToPath } from "node:url"
import type { RawKernelFunc } from "./Backend.js"
import type { KernelPatch } from "./Patches.js"

/**
 * The addon's functions. Convolution dimensions are
 * `[B, H, W, Cin, OH, OW, Cout, KH, KW, strideH, strideW, padTop, padLeft, dilationH, dilationW]` (NHWC input,
 * `[KH, KW, Cin, Cout]` filter); matrix-product dimensions are `[batch, batchA, batchB, M, K, N, transposeA,
 * transposeB]` with `batchA`, `batchB` ∈ {1, batch}. Every call writes its last array argument in place.
 *
 * @since 0.1.0
 * @category models
 */
export interface NativeAddon {
  readonly conv2d: (
    x: Float32Array,
    filter: Float32Array,
    bias: Float32Array | null,
    y: Float32Array,
    dims: ReadonlyArray<number>
  ) => void
  readonly conv2dBackpropInput: (dy: Float32Array, filter: Float32Array, dx: Float32Array, dims: ReadonlyArray<number>) => void
  readonly conv2dBackpropFilter: (x: Float32Array, dy: Float32Array, df: Float32Array, dims: ReadonlyArray<number>) => void
  readonly batchMatMul: (a: Float32Array, b: Float32Array, c: Float32Array, dims: ReadonlyArray<number>) => void
  readonly threads: () => number
}

/**
 * Where the addon is looked for: `SID_NATIVE_ADDON` if set, else `native/build/Release/sid_native.node` at the
 * package root.
 *
 * @since 0.1.0
 * @category utils
 */
export const nativeAddonPath = (): string =>
  process.env["SID_NATIVE_ADDON"] ??
    fileURLToPath(new URL("../../../native/build/Release/sid_native.node", import.meta.url))

const cache = new Map<string, NativeAddon>()

const looksLikeAddon = (mod: unknown): mod is NativeAddon =>
  typeof mod === "object" && mod !== null &&
  ["conv2d", "conv2dBackpropInput", "conv2dBackpropFilter", "batchMatMul", "threads"].every((k) =>
    typeof (mod as Record<string, unknown>)[k] === "function"
  )

/**
 * Loads the addon (once per process). Throws when the file is missing or does not load (e.g. libopenblas is not
 * installed); the engine layer maps that to a typed error.
 *
 * @since 0.1.0
 * @category constructors
 */
export const loadNativeAddon = (path: string = nativeAddonPath()): NativeAddon => {
  const hit = cache.get(path)
  if (hit !== undefined) return hit
  if (!existsSync(path)) throw new Error(`native addon not found at ${path}`)
  const mod: unknown = createRequire(import.meta.url)(path)
  if (!looksLikeAddon(mod)) throw new Error(`${path} does not export the sid-ts native kernels`)
  cache.set(path, mod)
  return mod
}

/**
 * The parts of the wasm backend the native kernels use.
 *
 * @since 0.1.0
 * @category models
 */
interface WasmHeapBackend {
  readonly makeOutput: (shape: Array<number>, dtype: tf.DataType) => tf.TensorInfo
  readonly typedArrayFromHeap: (info: tf.TensorInfo) => tf.backend_util.TypedArray
}

type Pair = number | [number, number]
type Padding = "valid" | "same" | number | tf.backend_util.ExplicitPadding

interface ConvAttrs {
  readonly strides: Pair
  readonly pad: Padding
  readonly dataFormat?: string
  readonly dimRoundingMode?: "floor" | "round" | "ceil"
  readonly dilations?: Pair
  readonly activation?: string
  readonly inputShape?: [number, number, number, number]
  readonly filterShape?: [number, number, number, number]
}

type Shape4 = [number, number, number, number]

const info4 = (xShape: Shape4, filterShape: Shape4, a: ConvAttrs): tf.backend_util.Conv2DInfo =>
  tf.backend_util.computeConv2DInfo(xShape, filterShape, a.strides, a.dilations ?? 1, a.pad, a.dimRoundingMode, false, "channelsLast")

const dims = (c: tf.backend_util.Conv2DInfo): Array<number> => [
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

const allFloat = (...ts: ReadonlyArray<tf.TensorInfo | undefined>) => ts.every((t) => t === undefined || t.dtype === "float32")

const view = (be: WasmHeapBackend, t: tf.TensorInfo): Float32Array => be.typedArrayFromHeap(t) as Float32Array

const requireStock = (name: string, stock: RawKernelFunc | undefined): RawKernelFunc => {
  if (stock === undefined) throw new Error(`Cannot patch '${name}': no wasm kernel is registered before it`)
  return stock
}

const isEmpty = (shape: ReadonlyArray<number>) => shape.some((d) => d === 0)

const makeConv2D = (addon: NativeAddon, stock: RawKernelFunc, fused: boolean): RawKernelFunc => (args) => {
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

const makeBackpropInput = (addon: NativeAddon, stock: RawKernelFunc): RawKernelFunc => (args) => {
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

const makeBackpropFilter = (addon: NativeAddon, stock: RawKernelFunc): RawKernelFunc => (args) => {
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

const product = (xs: ReadonlyArray<number>) => xs.reduce((p, d) => p * d, 1)

const makeBatchMatMul = (addon: NativeAddon, stock: RawKernelFunc): RawKernelFunc => (args) => {
  const attrs = (args.attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean }
  const { a, b } = args.inputs as Record<string, tf.TensorInfo | undefined>
  if (a === undefined || b === undefined || a.shape.length < 2 || b.shape.length < 2 || !allFloat(a, b)) {
    return stock(args)
  }
  const ta = attrs.transposeA === true
  const tb = attrs.transposeB === true
  const ra = a.shape.length
  const rb = b.shape.length
  const m = ta ? a.shape[ra - 1]! : a.shape[ra - 2]!
  const k = ta ? a.shape[ra - 2]! : a.shape[ra - 1]!
  const kb = tb ? b.shape[rb - 1]! : b.shape[rb - 2]!
  const n = tb ? b.shape[rb - 2]! : b.shape[rb - 1]!
  if (k !== kb || m === 0 || n === 0 || k === 0) return stock(args)
  const aBatch = a.shape.slice(0, -2)
  const bBatch = b.shape.slice(0, -2)
  let outBatch: Array<number>
  try {
    outBatch = tf.backend_util.assertAndGetBroadcastShape(aBatch, bBatch)
  } catch {
    return stock(args)
  }
  const batch = product(outBatch)
  const batchA = product(aBatch)
  const batchB = product(bBatch)
  if ((batchA !== 1 && batchA !== batch) || (batchB !== 1 && batchB !== batch) || batch === 0) return stock(args)
  const be = args.backend as WasmHeapBackend
  const out = be.makeOutput([...outBatch, m, n], "float32")
  addon.batchMatMul(view(be, a), view(be, b), view(be, out), [batch, batchA, batchB, m, k, n, ta ? 1 : 0, tb ? 1 : 0])
  return out
}

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
  }
]
