/**
 * Native kernels for the wasm backend. The optional Node-API addon in `native/` (built by
 * `npm run build:native`) runs, on all cores and directly on the wasm heap with no copies (inputs and the freshly
 * allocated output are handed over as `Float32Array` views into the heap):
 *
 * - `Conv2D`, `FusedConv2D` (bias, linear activation), `Conv2DBackpropInput`, `Conv2DBackpropFilter`: oneDNN where
 *   Debian's libdnnl-dev was installed at build time, else (and for shapes oneDNN rejects) OpenBLAS sgemm over im2col;
 * - `BatchMatMul` (OpenBLAS);
 * - `Add`, `Sub`, `Multiply`, `RealDiv`, `SquaredDifference` with broadcasting, `Sum`, `Mean`, `SplitV`, `Concat`,
 *   `Sigmoid`, `ResizeNearestNeighborGrad`, `AvgPoolGrad` (windows that tile the input); `Identity` and same-dtype `Cast` share
 *   the input's data instead of copying it.
 *
 * Each kernel falls back to the kernel registered before it (stock or the wasm patch) for anything the addon does not
 * cover: NCHW, non-float32 dtypes, fused activations other than `linear`, batch shapes that broadcast both ways.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { existsSync } from "node:fs"
import { createRequire } from "node:module"
import { fileURLToPath } from "node:url"
import { ADAM_KERNEL } from "../../domain/optim/Adam.js"
import { GROUP_NORM_GRAD_KERNEL, GROUP_NORM_KERNEL, type GroupNormActivation } from "../../domain/nn/GroupNorm.js"
import type { RawKernelFunc } from "./Backend.js"
import type { KernelPatch } from "./Patches.js"
import { resizeNearestSourceIndices } from "./ResizeNearestNeighborGrad.js"

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
  /** `out = a op b` with broadcasting (shapes right-aligned); op 0 add, 1 sub, 2 mul, 3 div, 4 squared difference. */
  readonly binary: (
    op: number,
    a: Float32Array,
    aShape: ReadonlyArray<number>,
    b: Float32Array,
    bShape: ReadonlyArray<number>,
    out: Float32Array,
    outShape: ReadonlyArray<number>
  ) => void
  /** `out = scale · Σ_axes x`. */
  readonly sum: (x: Float32Array, shape: ReadonlyArray<number>, axes: ReadonlyArray<number>, out: Float32Array, scale: number) => void
  /** `y = 1 / (1 + e^-x)` (relative error about 3e-7). */
  readonly sigmoid: (x: Float32Array, y: Float32Array) => void
  /**
   * One Adam update into `pOut`, `mOut`, `vOut`; `h` = float32 `[lr, β₁, β₂, ε, 1 − β₁, 1 − β₂, 1 − β₁ᵗ, 1 − β₂ᵗ]`
   * (the kernel contract of `Adam.ADAM_KERNEL`).
   */
  readonly adam: (
    p: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    pOut: Float32Array,
    mOut: Float32Array,
    vOut: Float32Array,
    h: Float32Array
  ) => void
  /** GroupNorm (+ SiLU) of NHWC `x` with dims `[N, H·W, C, G]`; writes `y`, `mean` and `rstd` [N, G]. */
  readonly groupNorm: (
    x: Float32Array,
    gamma: Float32Array,
    beta: Float32Array,
    y: Float32Array,
    mean: Float32Array,
    rstd: Float32Array,
    dims: ReadonlyArray<number>,
    epsilon: number,
    silu: boolean
  ) => void
  /** The gradient of `groupNorm`: writes `dx`, `dgamma`, `dbeta`. */
  readonly groupNormGrad: (
    dy: Float32Array,
    x: Float32Array,
    gamma: Float32Array,
    beta: Float32Array,
    mean: Float32Array,
    rstd: Float32Array,
    dx: Float32Array,
    dgamma: Float32Array,
    dbeta: Float32Array,
    dims: ReadonlyArray<number>,
    silu: boolean
  ) => void
  /** `dst[r·dstStride + dstOffset + i] = src[r·srcStride + srcOffset + i]` for `r < rows`, `i < rowLength`. */
  readonly copyRows: (
    src: Float32Array,
    srcStride: number,
    srcOffset: number,
    dst: Float32Array,
    dstStride: number,
    dstOffset: number,
    rows: number,
    rowLength: number
  ) => void
  /** `dx[b, rows[y], cols[x], c] += dy[b, y, x, c]` with dims `[B, inH, inW, outH, outW, C]`. */
  readonly resizeNearestGrad: (
    dy: Float32Array,
    dx: Float32Array,
    dims: ReadonlyArray<number>,
    rows: Int32Array,
    cols: Int32Array
  ) => void
  readonly threads: () => number
  /** Switches the convolutions between oneDNN and OpenBLAS; returns whether oneDNN is in use (false if not compiled in). */
  readonly useOneDnn: (enabled: boolean) => boolean
  /** The convolution library in use: `"onednn+openblas"` (oneDNN first, OpenBLAS for shapes it rejects) or `"openblas"`. */
  readonly convLibrary: () => string
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
  [
    "conv2d",
    "conv2dBackpropInput",
    "conv2dBackpropFilter",
    "batchMatMul",
    "binary",
    "sum",
    "sigmoid",
    "adam",
    "groupNorm",
    "groupNormGrad",
    "copyRows",
    "resizeNearestGrad",
    "threads",
    "useOneDnn",
    "convLibrary"
  ].every((k) =>
    typeof (mod as Record<string, unknown>)[k] === "function"
  )

/**
 * OpenMP (the addon's threads, shared with oneDNN) reads its wait policy once, when the addon loads it. Idle threads
 * that sleep at once pay tens of microseconds to wake for every kernel (most of a small network's step); threads that
 * spin long (libgomp's default, up to 300,000 pauses) take the cores from other processes on a shared machine and
 * halve the speed there. Unless the caller set `OMP_WAIT_POLICY` or `GOMP_SPINCOUNT`, the addon is loaded with a short
 * spin (2,000 pauses, tens of microseconds): measured on 2 cores, as fast as the long spin when idle and as fast as
 * sleeping at once under load. The variable is restored afterwards.
 */
const withShortOpenMpSpin = <A>(f: () => A): A => {
  if (process.env["OMP_WAIT_POLICY"] !== undefined || process.env["GOMP_SPINCOUNT"] !== undefined) return f()
  process.env["GOMP_SPINCOUNT"] = "2000"
  try {
    return f()
  } finally {
    delete process.env["GOMP_SPINCOUNT"]
  }
}

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
  const mod = withShortOpenMpSpin(() => createRequire(import.meta.url)(path) as unknown)
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
  readonly incRef: (dataId: tf.DataId) => void
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

const BINARY_OPS = { Add: 0, Sub: 1, Multiply: 2, RealDiv: 3, SquaredDifference: 4 } as const

const makeBinary = (addon: NativeAddon, op: number, stock: RawKernelFunc): RawKernelFunc => (args) => {
  const { a, b } = args.inputs as Record<string, tf.TensorInfo | undefined>
  if (a === undefined || b === undefined || a.dtype !== "float32" || b.dtype !== "float32") return stock(args)
  let shape: Array<number>
  try {
    shape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape)
  } catch {
    return stock(args)
  }
  if (isEmpty(shape) || shape.length > 16) return stock(args)
  const be = args.backend as WasmHeapBackend
  const out = be.makeOutput(shape, "float32")
  addon.binary(op, view(be, a), a.shape, view(be, b), b.shape, view(be, out), shape)
  return out
}

const makeReduce = (addon: NativeAddon, mean: boolean, stock: RawKernelFunc): RawKernelFunc => (args) => {
  const { x } = args.inputs as Record<string, tf.TensorInfo | undefined>
  const attrs = (args.attrs ?? {}) as { axis?: number | Array<number> | null; keepDims?: boolean }
  if (x === undefined || x.dtype !== "float32" || isEmpty(x.shape)) return stock(args)
  const axes = tf.util.parseAxisParam(attrs.axis ?? x.shape.map((_, i) => i), x.shape)
  const reduced = new Set(axes)
  const outShape = x.shape.flatMap((d, i) => (reduced.has(i) ? (attrs.keepDims === true ? [1] : []) : [d]))
  const count = axes.reduce((p, ax) => p * x.shape[ax]!, 1)
  const be = args.backend as WasmHeapBackend
  const out = be.makeOutput(outShape, "float32")
  addon.sum(view(be, x), x.shape, axes, view(be, out), mean ? 1 / count : 1)
  return out
}

const makeSplitV = (addon: NativeAddon, stock: RawKernelFunc): RawKernelFunc => (args) => {
  const { x } = args.inputs as Record<string, tf.TensorInfo | undefined>
  const attrs = (args.attrs ?? {}) as { numOrSizeSplits?: number | Array<number>; axis?: number }
  if (x === undefined || x.dtype !== "float32" || isEmpty(x.shape) || attrs.numOrSizeSplits === undefined) {
    return stock(args)
  }
  const axis = tf.util.parseAxisParam(attrs.axis ?? 0, x.shape)[0]!
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, attrs.numOrSizeSplits, axis)
  const outer = product(x.shape.slice(0, axis))
  const inner = product(x.shape.slice(axis + 1))
  const be = args.backend as WasmHeapBackend
  const outs = sizes.map((size) => {
    const shape = [...x.shape]
    shape[axis] = size
    return be.makeOutput(shape, "float32")
  })
  let offset = 0
  sizes.forEach((size, i) => {
    if (size > 0) {
      addon.copyRows(view(be, x), x.shape[axis]! * inner, offset * inner, view(be, outs[i]!), size * inner, 0, outer, size * inner)
    }
    offset += size
  })
  return outs
}

const makeConcat = (addon: NativeAddon, stock: RawKernelFunc): RawKernelFunc => (args) => {
  const inputs = Object.values(args.inputs) as Array<tf.TensorInfo>
  const attrs = (args.attrs ?? {}) as { axis?: number | Array<number> }
  const first = inputs[0]
  if (first === undefined || inputs.some((t) => t.dtype !== "float32" || t.shape.length !== first.shape.length)) {
    return stock(args)
  }
  const axis = tf.util.parseAxisParam(attrs.axis ?? 0, first.shape)[0]!
  const parts = inputs.filter((t) => !isEmpty(t.shape))
  if (parts.length === 0) return stock(args)
  const shape = tf.backend_util.computeOutShape(parts.map((t) => t.shape), axis)
  const outer = product(shape.slice(0, axis))
  const inner = product(shape.slice(axis + 1))
  const be = args.backend as WasmHeapBackend
  const out = be.makeOutput(shape, "float32")
  let offset = 0
  for (const t of parts) {
    const len = t.shape[axis]! * inner
    addon.copyRows(view(be, t), len, 0, view(be, out), shape[axis]! * inner, offset, outer, len)
    offset += len
  }
  return out
}

const makeSigmoid = (addon: NativeAddon, stock: RawKernelFunc): RawKernelFunc => (args) => {
  const { x } = args.inputs as Record<string, tf.TensorInfo | undefined>
  if (x === undefined || x.dtype !== "float32" || isEmpty(x.shape)) return stock(args)
  const be = args.backend as WasmHeapBackend
  const out = be.makeOutput([...x.shape], "float32")
  addon.sigmoid(view(be, x), view(be, out))
  return out
}

/** Shares the input's data (like `Reshape` and the cpu backend's `Identity`): tensors are immutable. */
const shareInput = (be: WasmHeapBackend, x: tf.TensorInfo): tf.TensorInfo => {
  be.incRef(x.dataId)
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype }
}

const makeIdentity = (stock: RawKernelFunc): RawKernelFunc => (args) => {
  const { x } = args.inputs as Record<string, tf.TensorInfo | undefined>
  if (x === undefined || x.dtype === "string") return stock(args)
  return shareInput(args.backend as WasmHeapBackend, x)
}

const makeCast = (stock: RawKernelFunc): RawKernelFunc => (args) => {
  const { x } = args.inputs as Record<string, tf.TensorInfo | undefined>
  const dtype = (args.attrs as { dtype?: string } | undefined)?.dtype
  if (x === undefined || x.dtype === "string" || dtype !== x.dtype) return stock(args)
  return shareInput(args.backend as WasmHeapBackend, x)
}

const makeResizeNearestGrad = (addon: NativeAddon, stock: RawKernelFunc): RawKernelFunc => (args) => {
  const { dy, images } = args.inputs as Record<string, tf.TensorInfo | undefined>
  const attrs = (args.attrs ?? {}) as { alignCorners?: boolean; halfPixelCenters?: boolean }
  if (
    dy === undefined || images === undefined || dy.dtype !== "float32" || images.shape.length !== 4 ||
    dy.shape.length !== 4 || isEmpty(dy.shape) || isEmpty(images.shape)
  ) return stock(args)
  const { cols, rows } = resizeNearestSourceIndices(
    images.shape,
    dy.shape,
    attrs.alignCorners === true,
    attrs.halfPixelCenters === true
  )
  const [batch, inH, inW, depth] = images.shape as Shape4
  const be = args.backend as WasmHeapBackend
  const out = be.makeOutput([batch, inH, inW, depth], "float32")
  addon.resizeNearestGrad(view(be, dy), view(be, out), [batch, inH, inW, dy.shape[1]!, dy.shape[2]!, depth], rows, cols)
  return out
}

interface PoolAttrs {
  readonly filterSize: Pair
  readonly strides: Pair
  readonly pad: Padding
  readonly dimRoundingMode?: "floor" | "round" | "ceil"
}

/** Average-pool gradient for non-overlapping windows that tile the input: dy spread over each window, / its size. */
const makeAvgPoolGrad = (addon: NativeAddon, stock: RawKernelFunc): RawKernelFunc => (args) => {
  const { dy, input } = args.inputs as Record<string, tf.TensorInfo | undefined>
  const a = args.attrs as unknown as PoolAttrs
  if (dy === undefined || input === undefined || dy.dtype !== "float32" || input.shape.length !== 4) return stock(args)
  const p = tf.backend_util.computePool2DInfo(input.shape as Shape4, a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode)
  const { filterHeight: fh, filterWidth: fw, outHeight: oh, outWidth: ow, padInfo } = p
  if (
    p.dataFormat !== "channelsLast" || fh !== p.strideHeight || fw !== p.strideWidth ||
    padInfo.top + padInfo.bottom + padInfo.left + padInfo.right !== 0 || p.inHeight !== oh * fh ||
    p.inWidth !== ow * fw || isEmpty(input.shape)
  ) return stock(args)
  const [batch, , , depth] = input.shape as Shape4
  const be = args.backend as WasmHeapBackend
  const out = be.makeOutput([...input.shape], "float32")
  const weight = new Float32Array(fh * fw).fill(1 / (fh * fw))
  addon.binary(2, view(be, dy), [batch, oh, 1, ow, 1, depth], weight, [1, 1, fh, 1, fw, 1], view(be, out), [
    batch,
    oh,
    fh,
    ow,
    fw,
    depth
  ])
  return out
}

const makeAdam = (addon: NativeAddon): RawKernelFunc => (args) => {
  const { grad, m, param, v } = args.inputs as Record<string, tf.TensorInfo>
  const a = args.attrs as unknown as { learningRate: number; beta1: number; beta2: number; epsilon: number; step: number }
  const be = args.backend as WasmHeapBackend
  const outs = [0, 1, 2].map(() => be.makeOutput([...param!.shape], "float32"))
  const h = Float32Array.of(
    a.learningRate,
    a.beta1,
    a.beta2,
    a.epsilon,
    1 - a.beta1,
    1 - a.beta2,
    1 - Math.pow(a.beta1, a.step),
    1 - Math.pow(a.beta2, a.step)
  )
  addon.adam(view(be, param!), view(be, grad!), view(be, m!), view(be, v!), view(be, outs[0]!), view(be, outs[1]!), view(be, outs[2]!), h)
  return outs
}

interface GroupNormAttrs {
  readonly groups: number
  readonly epsilon: number
  readonly activation: GroupNormActivation
}

const normDims = (x: tf.TensorInfo, groups: number): Array<number> => {
  const [n, h, w, c] = x.shape as Shape4
  return [n, h * w, c, groups]
}

const makeGroupNorm = (addon: NativeAddon): RawKernelFunc => (args) => {
  const { beta, gamma, x } = args.inputs as Record<string, tf.TensorInfo>
  const a = args.attrs as unknown as GroupNormAttrs
  const be = args.backend as WasmHeapBackend
  const [n] = x!.shape
  const y = be.makeOutput([...x!.shape], "float32")
  const mean = be.makeOutput([n!, a.groups], "float32")
  const rstd = be.makeOutput([n!, a.groups], "float32")
  addon.groupNorm(
    view(be, x!),
    view(be, gamma!),
    view(be, beta!),
    view(be, y),
    view(be, mean),
    view(be, rstd),
    normDims(x!, a.groups),
    a.epsilon,
    a.activation === "silu"
  )
  return [y, mean, rstd]
}

const makeGroupNormGrad = (addon: NativeAddon): RawKernelFunc => (args) => {
  const { beta, dy, gamma, mean, rstd, x } = args.inputs as Record<string, tf.TensorInfo>
  const a = args.attrs as unknown as GroupNormAttrs
  const be = args.backend as WasmHeapBackend
  const dx = be.makeOutput([...x!.shape], "float32")
  const dgamma = be.makeOutput([...gamma!.shape], "float32")
  const dbeta = be.makeOutput([...beta!.shape], "float32")
  addon.groupNormGrad(
    view(be, dy!),
    view(be, x!),
    view(be, gamma!),
    view(be, beta!),
    view(be, mean!),
    view(be, rstd!),
    view(be, dx),
    view(be, dgamma),
    view(be, dbeta),
    normDims(x!, a.groups),
    a.activation === "silu"
  )
  return [dx, dgamma, dbeta]
}

/**
 * The gradient of the fused GroupNorm kernel: one {@link GROUP_NORM_GRAD_KERNEL} call gives dx, dγ and dβ. It runs
 * when the gradient function is called (outside the per-input scopes of the tape walk), so each input's gradient is
 * one of its outputs and the unused ones are freed with the backward pass.
 *
 * @since 0.1.0
 * @category gradients
 */
export const groupNormGradient: tf.GradConfig = {
  kernelName: GROUP_NORM_KERNEL,
  inputsToSave: ["x", "gamma", "beta"],
  outputsToSave: [false, true, true],
  gradFunc: (dys, saved, attrs) => {
    const [x, gamma, beta, mean, rstd] = saved
    const dy = Array.isArray(dys) ? dys[0]! : dys
    const [dx, dgamma, dbeta] = tf.engine().runKernel(
      GROUP_NORM_GRAD_KERNEL,
      { dy, x: x!, gamma: gamma!, beta: beta!, mean: mean!, rstd: rstd! },
      attrs as unknown as tf.NamedAttrMap
    ) as unknown as [tf.Tensor, tf.Tensor, tf.Tensor]
    return { x: () => dx, gamma: () => dgamma, beta: () => dbeta }
  }
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
