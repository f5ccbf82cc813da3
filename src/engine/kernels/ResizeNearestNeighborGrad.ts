/**
 * A correct `ResizeNearestNeighborGrad` (docs/engines.md §3.3). The stock cpu kernel offsets `dy` by the
 * input's batch stride, so every batch element after the first gets a wrong gradient, and both stock kernels ignore
 * `halfPixelCenters`. This one scatter-adds `dy` into the source pixel that the forward op read, using the forward
 * kernel's own source mapping (honouring `alignCorners` and `halfPixelCenters`). NHWC only, as the op itself.
 * The stock wasm kernel is right for batch > 1 but not for `halfPixelCenters` nor `alignCorners` with a one-pixel
 * side, so both backends get this kernel.
 *
 * @since 0.1.0
 */
import type * as tf from "@tensorflow/tfjs"
import type { CpuBackendLike, RawKernelFunc, WasmBackendLike } from "./Backend.js"

interface ResizeGradAttrs {
  readonly alignCorners?: boolean
  readonly halfPixelCenters?: boolean
}

const sourceIndex = (
  outIndex: number,
  ratio: number,
  inSize: number,
  alignCorners: boolean,
  halfPixelCenters: boolean
): number => {
  const frac = halfPixelCenters ? ratio * (outIndex + 0.5) : ratio * outIndex
  const nearest = Math.min(inSize - 1, alignCorners ? Math.round(frac) : Math.floor(frac))
  return halfPixelCenters ? Math.max(0, nearest) : nearest
}

/**
 * For each output row and column of a nearest-neighbour resize, the input row / column it reads (the forward op's
 * mapping, honouring `alignCorners` and `halfPixelCenters`); the gradient scatter-adds dy along it.
 *
 * @since 0.1.0
 * @category kernels
 */
export const resizeNearestSourceIndices = (
  imagesShape: ReadonlyArray<number>,
  dyShape: ReadonlyArray<number>,
  alignCorners: boolean,
  halfPixelCenters: boolean
): { readonly rows: Int32Array; readonly cols: Int32Array } => {
  const [, inH = 0, inW = 0] = imagesShape
  const [, outH = 0, outW = 0] = dyShape
  const effIn = (size: number, out: number) => (alignCorners && out > 1 ? size - 1 : size)
  const effOut = (out: number) => (alignCorners && out > 1 ? out - 1 : out)
  const ratioH = effIn(inH, outH) / effOut(outH)
  const ratioW = effIn(inW, outW) / effOut(outW)
  return {
    rows: Int32Array.from({ length: outH }, (_, y) => sourceIndex(y, ratioH, inH, alignCorners, halfPixelCenters)),
    cols: Int32Array.from({ length: outW }, (_, x) => sourceIndex(x, ratioW, inW, alignCorners, halfPixelCenters))
  }
}

/**
 * The gradient of nearest-neighbour resizing as plain numbers: `dx[b, src(y), src(x), c] += dy[b, y, x, c]`.
 *
 * @since 0.1.0
 * @category kernels
 */
export const resizeNearestNeighborGradValues = (
  imagesShape: ReadonlyArray<number>,
  dyShape: ReadonlyArray<number>,
  dy: ArrayLike<number>,
  alignCorners: boolean,
  halfPixelCenters: boolean
): Float32Array => {
  const [batch = 0, inH = 0, inW = 0, depth = 0] = imagesShape
  const [, outH = 0, outW = 0] = dyShape
  const { cols, rows } = resizeNearestSourceIndices(imagesShape, dyShape, alignCorners, halfPixelCenters)
  const dx = new Float32Array(batch * inH * inW * depth)
  const acc = new Float64Array(dx.length)
  let k = 0
  for (let b = 0; b < batch; b++) {
    const base = b * inH * inW * depth
    for (let y = 0; y < outH; y++) {
      const rowBase = base + rows[y]! * inW * depth
      for (let x = 0; x < outW; x++) {
        const at = rowBase + cols[x]! * depth
        for (let c = 0; c < depth; c++) acc[at + c]! += dy[k++]!
      }
    }
  }
  dx.set(acc)
  return dx
}

const compute = (inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap | undefined, dy: tf.BackendValues) => {
  const a = (attrs ?? {}) as ResizeGradAttrs
  const images = inputs["images"]!
  return resizeNearestNeighborGradValues(
    images.shape,
    inputs["dy"]!.shape,
    dy as Float32Array,
    a.alignCorners === true,
    a.halfPixelCenters === true
  )
}

/**
 * The fixed kernel function for the cpu backend.
 *
 * @since 0.1.0
 * @category kernels
 */
export const resizeNearestNeighborGradCpu: RawKernelFunc = ({ attrs, backend, inputs }) => {
  const cpu = backend as CpuBackendLike
  const images = inputs["images"]!
  const dx = compute(inputs, attrs, cpu.readSync(inputs["dy"]!.dataId))
  return cpu.makeTensorInfo(images.shape.slice(), "float32", dx)
}

/**
 * The kernel function for the wasm backend. The stock wasm kernel ignores `halfPixelCenters` and returns zeros for
 * `alignCorners` with a one-pixel input (found by the property test in test/Kernels.test.ts), so it is replaced too.
 *
 * @since 0.1.0
 * @category kernels
 */
export const resizeNearestNeighborGradWasm: RawKernelFunc = ({ attrs, backend, inputs }) => {
  const wasm = backend as WasmBackendLike
  const images = inputs["images"]!
  const dx = compute(inputs, attrs, wasm.readSync(inputs["dy"]!.dataId))
  return wasm.makeOutput(images.shape.slice(), "float32", undefined, dx)
}
