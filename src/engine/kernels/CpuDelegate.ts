/**
 * Generic cpu delegate for kernels the wasm backend lacks (docs/engines.md §3.1, pattern 1): the inputs are read
 * from the wasm heap, written to the cpu backend, the cpu kernel runs, and its outputs are copied back with
 * `makeOutput`; every temporary on both backends is freed. Correct for any kernel but runs at cpu speed, so it is
 * used only for rarely needed kernels (depthwise gradients, `UnsortedSegmentSum`).
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { type CpuBackendLike, kernelFunc, type RawKernelFunc, type WasmBackendLike } from "./Backend.js"

/**
 * Returns the initialised cpu backend instance (initialising it if needed).
 *
 * @since 0.1.0
 * @category utils
 */
export const cpuBackend = (): CpuBackendLike => {
  const backend = tf.findBackend("cpu")
  if (backend == null) throw new Error("The TF.js cpu backend is not available for the cpu delegate")
  return backend as unknown as CpuBackendLike
}

/**
 * Builds a wasm kernel function that runs the cpu backend's kernel `kernelName`.
 *
 * @since 0.1.0
 * @category kernels
 */
export const cpuDelegate = (kernelName: string): RawKernelFunc => ({ attrs, backend, inputs }) => {
  const wasm = backend as WasmBackendLike
  const cpu = cpuBackend()
  const cpuInputs: tf.NamedTensorInfoMap = {}
  const written: Array<tf.DataId> = []
  let outputs: Array<tf.TensorInfo> = []
  try {
    for (const [name, info] of Object.entries(inputs)) {
      if (info === undefined) continue
      const dataId = cpu.write(wasm.readSync(info.dataId), info.shape.slice(), info.dtype)
      written.push(dataId)
      cpuInputs[name] = { dataId, shape: info.shape, dtype: info.dtype }
    }
    const out = kernelFunc(kernelName, "cpu")({ inputs: cpuInputs, backend: cpu, ...(attrs ? { attrs } : {}) })
    outputs = Array.isArray(out) ? out : [out]
    const copied = outputs.map((o) => wasm.makeOutput(o.shape.slice(), o.dtype, undefined, cpu.readSync(o.dataId)))
    return Array.isArray(out) ? copied : copied[0]!
  } finally {
    for (const dataId of written) cpu.disposeData(dataId, true)
    for (const o of outputs) cpu.disposeData(o.dataId, true)
  }
}
