/**
 * Host reads of tensors, synchronous or asynchronous from one code path (docs/engines.md §8).
 *
 * On a GPU engine every read of a tensor's values is a pipeline stall, and on `webgpu` in Node a synchronous read is
 * impossible. A computation that needs values on the host is therefore written as a generator ({@link Reads}) that
 * *yields* the tensors it needs and receives their values: {@link runSync} serves it with `dataSync` (the CPU engines,
 * where a read is a copy), {@link runAsync} with one asynchronous read per request, all the request's tensors
 * concatenated into one buffer (one stall for several values), and {@link runReads} picks by the active backend.
 * Both serve the same values, so a computation gives bit-identical results either way.
 *
 * @since 0.2.0
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

const CACHE = Symbol("sid-ts/HostReads.cache")

/** A request that only asks the backend to keep host copies of its tensors ({@link cacheOnHost}). */
const isCacheRequest = (request: ReadonlyArray<tf.Tensor>): boolean =>
  (request as { readonly [CACHE]?: boolean })[CACHE] === true

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
export const runSync = <A>(reads: Reads<A>): A =>
  drive(reads, (tensors) => (isCacheRequest(tensors) ? [] : tensors.map((t) => t.dataSync())))

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
      values = isCacheRequest(step.value)
        ? (await Promise.all(step.value.map((t) => t.data())), [])
        : await readBatched(step.value)
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
 * Runs `reads` the way the active backend can: {@link runAsync} where only asynchronous reads work
 * ({@link needsAsyncReads}), else {@link runSync} (same values; the promise is settled at once).
 *
 * @since 0.2.0
 * @category runners
 */
export const runReads = <A>(reads: Reads<A>): Promise<A> => {
  if (needsAsyncReads()) return runAsync(reads)
  try {
    return Promise.resolve(runSync(reads))
  } catch (error) {
    return Promise.reject(error)
  }
}

/**
 * The values of `tensors` in one request of a {@link Reads} computation, each as a `Float32Array` copy.
 *
 * @since 0.2.0
 * @category constructors
 */
export function* readFloat32(tensors: ReadonlyArray<tf.Tensor>): Reads<Array<Float32Array>> {
  const values = yield* read(tensors)
  return values.map((v) => Float32Array.from(v))
}

/**
 * Has the engine keep a host copy of each of `tensors`, so that synchronous reads of those same tensors that follow
 * (`dataSync` in code written for the CPU engines, e.g. a host optimiser reading every gradient) are served from it
 * and give the same values. Under {@link runAsync} each tensor is read on its own (no engine-side copy; the reads are
 * issued together), and tfjs-backend-webgpu keeps what it has read until the tensor's data changes; under
 * {@link runSync} it reads nothing (the synchronous reads work as they are).
 *
 * @since 0.2.0
 * @category constructors
 */
export function* cacheOnHost(tensors: ReadonlyArray<tf.Tensor>): Reads<void> {
  if (tensors.length === 0) return
  const request = Object.assign([...tensors], { [CACHE]: true })
  yield request
}
