/**
 * The optional Node-API addon of the `wasm-native` engine (`native/`, built by `npm run build:native`): its functions,
 * where it is found and how it is loaded, and the helpers its kernels share (views into the wasm heap, the fallback to
 * the kernel registered before). The kernels themselves are one per file beside this one.
 *
 * @since 0.2.0
 */
import * as tf from "@tensorflow/tfjs"
import { existsSync } from "node:fs"
import { createRequire } from "node:module"
import { fileURLToPath } from "node:url"
import type { RawKernelFunc } from "../Backend.js"

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
    fileURLToPath(new URL("../../../../native/build/Release/sid_native.node", import.meta.url))

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
export interface WasmHeapBackend {
  readonly makeOutput: (shape: Array<number>, dtype: tf.DataType) => tf.TensorInfo
  readonly typedArrayFromHeap: (info: tf.TensorInfo) => tf.backend_util.TypedArray
  readonly incRef: (dataId: tf.DataId) => void
}

export const allFloat = (...ts: ReadonlyArray<tf.TensorInfo | undefined>) => ts.every((t) => t === undefined || t.dtype === "float32")

/**
 * A float32 view of a tensor's data in the wasm heap. Take views only after the kernel's last allocation
 * (`makeOutput`): an allocation may grow the heap, which replaces its buffer and leaves earlier views empty.
 */
export const view = (be: WasmHeapBackend, t: tf.TensorInfo): Float32Array => be.typedArrayFromHeap(t) as Float32Array

export const requireStock = (name: string, stock: RawKernelFunc | undefined): RawKernelFunc => {
  if (stock === undefined) throw new Error(`Cannot patch '${name}': no wasm kernel is registered before it`)
  return stock
}

export const isEmpty = (shape: ReadonlyArray<number>) => shape.some((d) => d === 0)

export const product = (xs: ReadonlyArray<number>) => xs.reduce((p, d) => p * d, 1)

/** Shares the input's data (like `Reshape` and the cpu backend's `Identity`): tensors are immutable. */
export const shareInput = (be: WasmHeapBackend, x: tf.TensorInfo): tf.TensorInfo => {
  be.incRef(x.dataId)
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype }
}
