/**
 * Minimal typed views of the TF.js backends that the kernel patches call into, and a helper that runs a registered
 * kernel function directly on `TensorInfo`s (docs/engines.md §3.1: kernels call backend kernel functions and free
 * intermediates with `backend.disposeData`; they never wrap inputs as tensors).
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"

/**
 * The part of a TF.js `KernelBackend` the patches use.
 *
 * @since 0.1.0
 * @category models
 */
export interface BackendLike {
  readonly disposeData: (dataId: tf.DataId, force?: boolean) => boolean
  readonly readSync: (dataId: tf.DataId) => tf.BackendValues
}

/**
 * The wasm backend (`BackendWasm`): `makeOutput` allocates on the wasm heap, optionally copying `values` in.
 *
 * @since 0.1.0
 * @category models
 */
export interface WasmBackendLike extends BackendLike {
  readonly makeOutput: (
    shape: Array<number>,
    dtype: tf.DataType,
    memoryOffset?: number,
    values?: tf.BackendValues
  ) => tf.TensorInfo
}

/**
 * The cpu backend (`MathBackendCPU`).
 *
 * @since 0.1.0
 * @category models
 */
export interface CpuBackendLike extends BackendLike {
  readonly makeTensorInfo: (shape: Array<number>, dtype: tf.DataType, values?: tf.BackendValues) => tf.TensorInfo
  readonly write: (values: tf.BackendValues, shape: Array<number>, dtype: tf.DataType) => tf.DataId
}

/**
 * A kernel function as registered, with the attrs typed loosely (each kernel narrows its own).
 *
 * @since 0.1.0
 * @category models
 */
export type RawKernelFunc = (args: {
  readonly inputs: tf.NamedTensorInfoMap
  readonly backend: object
  readonly attrs?: tf.NamedAttrMap
}) => tf.TensorInfo | Array<tf.TensorInfo>

/**
 * Looks up the kernel function currently registered for `kernelName` on `backendName`.
 *
 * @since 0.1.0
 * @category utils
 */
export const kernelFunc = (kernelName: string, backendName: string): RawKernelFunc => {
  const config = tf.getKernel(kernelName, backendName)
  if (config === undefined) {
    throw new Error(`Kernel '${kernelName}' is not registered for backend '${backendName}'`)
  }
  return config.kernelFunc as RawKernelFunc
}

/**
 * Runs one single-output kernel directly on a backend.
 *
 * @since 0.1.0
 * @category utils
 */
export const run = (
  kernelName: string,
  backendName: string,
  backend: object,
  inputs: tf.NamedTensorInfoMap | Array<tf.TensorInfo>,
  attrs: Record<string, unknown> = {}
): tf.TensorInfo => {
  const out = kernelFunc(kernelName, backendName)({
    inputs: inputs as tf.NamedTensorInfoMap,
    backend,
    attrs: attrs as tf.NamedAttrMap
  })
  if (Array.isArray(out)) {
    throw new Error(`Kernel '${kernelName}' returned ${out.length} outputs, expected one`)
  }
  return out
}

/**
 * Reads the tensor's values from the wasm heap or the cpu store.
 *
 * @since 0.1.0
 * @category utils
 */
export const read = (backend: BackendLike, info: tf.TensorInfo): tf.BackendValues => backend.readSync(info.dataId)
