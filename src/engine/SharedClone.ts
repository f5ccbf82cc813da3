/**
 * Saved tensors without a kernel dispatch (issue 18 point 5). For every kernel recorded on a gradient tape TF.js keeps
 * a clone of each input and output the gradient needs (`Engine.clone`: an `Identity` kernel run through the whole
 * `runKernel` path, then a tape node); in a small network's training step these clones are a third to a half of all
 * dispatches (228 of 577 in the reference denoiser's Adam step, 492 of 1,513 in the 2-D SiD iteration), each paying
 * the engine's per-kernel bookkeeping. On a backend whose `Identity` shares its input's data (the `wasm-native`
 * engine's), the clone made here is the same tensor record and the same tape node without the dispatch: the backend's
 * reference count is raised, a new tensor over the same data is tracked in the active scope, and the tape node's
 * gradient is the one TF.js gives its clones (a float32 `Cast` of dy).
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"

/** The parts of TF.js's engine a clone touches (public methods of `tf.engine()` that its typings do not list). */
interface CloningEngine {
  clone: (x: tf.Tensor) => tf.Tensor
  readonly backendName: string
  readonly backend: { readonly incRef: (dataId: tf.DataId) => void }
  readonly state: { readonly activeScope: { readonly name: string }; readonly profiling: boolean }
  readonly makeTensorFromTensorInfo: (info: tf.TensorInfo, backend?: unknown) => tf.Tensor
  readonly addTapeNode: (
    kernelName: string,
    inputs: tf.NamedTensorMap,
    outputs: Array<tf.Tensor>,
    gradientsFunc: (dy: tf.Tensor) => Record<string, () => tf.Tensor>,
    saved: Array<tf.Tensor>,
    attrs: tf.NamedAttrMap
  ) => void
}

const cloneGradient = (dy: tf.Tensor): Record<string, () => tf.Tensor> => ({
  x: () => tf.engine().runKernel("Cast", { x: dy }, { dtype: "float32" }) as tf.Tensor
})

/**
 * Replaces `tf.engine().clone` by the dispatch-free clone while `backendName` is the active backend (string tensors
 * and profiled scopes keep TF.js's own). The backend's `Identity` kernel must share its input's data. Returns the
 * function that restores TF.js's clone.
 *
 * @since 0.1.0
 * @category patches
 */
export const installSharedClone = (backendName: string): (() => void) => {
  const engine = tf.engine() as unknown as CloningEngine
  // Patched on the prototype (the engine is a singleton): changing the instance's own properties would turn it into a
  // slow dictionary-mode object for V8.
  const proto = Object.getPrototypeOf(engine) as CloningEngine
  const previous = proto.clone
  proto.clone = function(this: CloningEngine, x: tf.Tensor): tf.Tensor {
    if (engine.backendName !== backendName || x.dtype === "string" || engine.state.profiling) return previous.call(engine, x)
    engine.backend.incRef(x.dataId)
    const y = engine.makeTensorFromTensorInfo({ dataId: x.dataId, shape: x.shape, dtype: x.dtype }, engine.backend)
    engine.addTapeNode(engine.state.activeScope.name, { x }, [y], cloneGradient, [], {})
    return y
  }
  return () => {
    proto.clone = previous
  }
}
