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

/**
 * The values of a read request, one array per requested tensor (flattened, in the request's order).
 *
 * @since 0.1.0
 * @category models
 */
export type HostValues = ReadonlyArray<ArrayLike<number>>

/**
 * A computation that asks for host reads: each `yield` hands over tensors (still owned by the computation) and resumes
 * with their values.
 *
 * @since 0.1.0
 * @category models
 */
export type Reads<A> = Generator<ReadonlyArray<tf.Tensor>, A, HostValues>

/**
 * Reads `tensors` into host memory: one `yield` in a {@link Reads} computation (`const [a, b] = yield* read([x, y])`).
 *
 * @since 0.1.0
 * @category constructors
 */
export function* read(tensors: ReadonlyArray<tf.Tensor>): Reads<HostValues> {
  if (tensors.length === 0) return []
  return yield tensors
}

const drive = <A>(reads: Reads<A>, serve: (tensors: ReadonlyArray<tf.Tensor>) => HostValues): A => {
  let step = reads.next()
  while (step.done !== true) {
    let values: HostValues
    try {
      values = serve(step.value)
    } catch (error) {
      step = reads.throw(error)
      continue
    }
    step = reads.next(values)
  }
  return step.value
}

/**
 * Runs `reads` with synchronous reads (`dataSync`, one per tensor).
 *
 * @since 0.1.0
 * @category runners
 */
export const runSync = <A>(reads: Reads<A>): A => drive(reads, (tensors) => tensors.map((t) => t.dataSync()))

/**
 * The values of `tensors` in one asynchronous read: every tensor is flattened, cast to float32 and concatenated into
 * one buffer on the engine, read once, and split. Integer and boolean values are exact up to 2²⁴.
 *
 * @since 0.1.0
 * @category utils
 */
export const readBatched = async (tensors: ReadonlyArray<tf.Tensor>): Promise<HostValues> => {
  if (tensors.length === 0) return []
  if (tensors.length === 1) return [await tensors[0]!.data()]
  const flat = tf.tidy(() => tf.concat(tensors.map((t) => tf.cast(tf.reshape(t, [-1]), "float32"))))
  let all: Float32Array
  try {
    all = (await flat.data()) as Float32Array
  } finally {
    flat.dispose()
  }
  const out: Array<Float32Array> = []
  let offset = 0
  for (const t of tensors) {
    out.push(all.subarray(offset, offset + t.size))
    offset += t.size
  }
  return out
}

/**
 * Runs `reads` with asynchronous reads, one batched read ({@link readBatched}) per request.
 *
 * @since 0.1.0
 * @category runners
 */
export const runAsync = async <A>(reads: Reads<A>): Promise<A> => {
  let step = reads.next()
  while (step.done !== true) {
    let values: HostValues
    try {
      values = await readBatched(step.value)
    } catch (error) {
      step = reads.throw(error)
      continue
    }
    step = reads.next(values)
  }
  return step.value
}

/**
 * Whether the active TF.js backend can only read asynchronously (`webgpu`), so steps must run with {@link runAsync}.
 *
 * @since 0.1.0
 * @category utils
 */
export const needsAsyncReads = (): boolean => tf.getBackend() === "webgpu"

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
