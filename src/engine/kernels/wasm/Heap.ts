/**
 * What the plain `wasm` engine's JavaScript kernels share: the wasm backend's allocator and heap views, a
 * transpose on the heap, and float32 column sums in the order the wasm `Sum` kernel adds (docs/engines.md §3.5).
 *
 * Views are taken after every output of a kernel is allocated: an allocation can grow the wasm memory, which
 * detaches the views taken before it.
 *
 * @since 0.2.0
 */
import type * as tf from "@tensorflow/tfjs"

/**
 * The parts of the wasm backend (`BackendWasm`) the JavaScript kernels use.
 *
 * @since 0.2.0
 * @category models
 */
export interface WasmHeap {
  readonly makeOutput: (shape: Array<number>, dtype: tf.DataType) => tf.TensorInfo
  readonly typedArrayFromHeap: (info: tf.TensorInfo) => tf.backend_util.TypedArray
  readonly disposeData: (dataId: tf.DataId, force?: boolean) => boolean
  readonly incRef: (dataId: tf.DataId) => void
}

/**
 * A float32 view of a tensor's data on the wasm heap.
 *
 * @since 0.2.0
 * @category utils
 */
export const f32 = (heap: WasmHeap, t: tf.TensorInfo): Float32Array => heap.typedArrayFromHeap(t) as Float32Array

/**
 * `out[j·rows + i] = x[i·cols + j]`: the transpose of a row-major `rows × cols` matrix (written in order, read with a
 * stride: measured faster than tiles and than the wasm `Transpose` kernel at the MLP's shapes).
 *
 * @since 0.2.0
 * @category utils
 */
export const transposeInto = (x: Float32Array, rows: number, cols: number, out: Float32Array): void => {
  for (let j = 0; j < cols; j++) {
    const o = j * rows
    for (let i = 0; i < rows; i++) out[o + i] = x[i * cols + j]!
  }
}

/**
 * `out[j] = Σ_i x[i·cols + j]` of a row-major `rows × cols` matrix, each column added in row order with a float32
 * accumulator: the order and rounding of the wasm `Sum` kernel over axis 0, so the same bits.
 *
 * @since 0.2.0
 * @category utils
 */
export const columnSumsInto = (x: Float32Array, rows: number, cols: number, out: Float32Array): void => {
  out.fill(0)
  for (let i = 0; i < rows; i++) {
    const row = i * cols
    for (let j = 0; j < cols; j++) out[j] = out[j]! + x[row + j]!
  }
}
