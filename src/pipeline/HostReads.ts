/**
 * Host reads of a training step, synchronous or asynchronous from one code path.
 *
 * On a GPU engine every read of a tensor's values is a pipeline stall, and on `webgpu` in Node a synchronous read is
 * impossible (docs/engines.md §8). A step is therefore written as a generator ({@link Reads}) that *yields* the
 * tensors it needs on the host and receives their values: {@link runSync} serves it with `dataSync` (the CPU engines,
 * where a read is a copy), {@link runAsync} with one asynchronous read per request, all the request's tensors
 * concatenated into one buffer (one stall for several values).
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"

export {
  cacheOnHost,
  type HostValues,
  needsAsyncReads,
  read,
  readBatched,
  readFloat32,
  type Reads,
  runAsync,
  runReads,
  runSync
} from "../domain/data/HostReads.js"

/**
 * Reads every tensor once asynchronously, so later synchronous reads of them (`dataSync`) are served from the copy
 * the backend keeps on the host (tfjs-backend-webgpu caches what it has read). For code that reads a known set of
 * tensors synchronously between steps (checkpoints).
 *
 * @since 0.1.0
 * @category utils
 */
export const prefetch = async (tensors: Iterable<tf.Tensor>): Promise<void> => {
  await Promise.all([...tensors].filter((t) => !t.isDisposed).map((t) => t.data()))
}
