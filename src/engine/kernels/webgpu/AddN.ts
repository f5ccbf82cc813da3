/**
 * `AddN` on the `webgpu` backend, chunked under the device's storage-buffer limit (docs/engines.md §8).
 *
 * tfjs-backend-webgpu 4.22 compiles `AddN` as one shader that binds every input plus the output as storage buffers.
 * With more inputs than the device's `maxStorageBuffersPerShaderStage` − 1, the pipeline fails validation and the
 * stock kernel silently returns a stale buffer (measured: `addN` of 1..9 returned the previous call's 10). This kernel
 * sums at most `maxInputs` tensors per stock call and then sums the partial sums, so every call stays within the limit.
 *
 * @since 0.1.0
 */
import type * as tf from "@tensorflow/tfjs"
import type { KernelPatch } from "../Patches.js"

interface Disposer {
  readonly disposeData: (dataId: tf.DataId, force?: boolean) => boolean
}

/**
 * The chunked `AddN` patch for a device that binds at most `maxInputs` inputs per shader (its
 * `maxStorageBuffersPerShaderStage` − 1, the output taking one binding).
 *
 * @since 0.1.0
 * @category patches
 */
export const addNPatch = (maxInputs: number): KernelPatch => ({
  kernelName: "AddN",
  backendName: "webgpu",
  make: (stock) => {
    if (stock === undefined) throw new Error("Cannot patch 'AddN': the stock webgpu kernel is not registered")
    const limit = Math.max(2, Math.floor(maxInputs))
    return (args) => {
      const tensors = Object.values(args.inputs) as Array<tf.TensorInfo>
      if (tensors.length <= limit) return stock(args)
      const backend = args.backend as Disposer
      const temporaries: Array<tf.TensorInfo> = []
      let level = tensors
      while (level.length > limit) {
        const next: Array<tf.TensorInfo> = []
        for (let start = 0; start < level.length; start += limit) {
          const chunk = level.slice(start, start + limit)
          if (chunk.length === 1) {
            next.push(chunk[0]!)
            continue
          }
          const partial = stock({ ...args, inputs: chunk as unknown as tf.NamedTensorInfoMap }) as tf.TensorInfo
          temporaries.push(partial)
          next.push(partial)
        }
        level = next
      }
      const out = stock({ ...args, inputs: level as unknown as tf.NamedTensorInfoMap }) as tf.TensorInfo
      for (const t of temporaries) backend.disposeData(t.dataId)
      return out
    }
  }
})
