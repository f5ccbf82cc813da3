/**
 * Running a fused kernel whose outputs after the first exist only for its gradient (the pre-activation of
 * `SidDense`, the statistics of `SidGroupNorm`) as one tape node with that first output alone.
 *
 * Recorded the ordinary way, such a kernel is a tape node with several outputs; the backward pass reaches only the
 * first, and TF.js then fills a zero array in JavaScript for every other output and copies it into the backend before
 * calling the gradient (`Engine.addTapeNode`), which never reads them. For the 2-D MLP's dense layers that was two
 * [512,128] arrays per layer and call, half of an iteration on `wasm-native` (docs/algorithm.md §14).
 * Here the kernel runs inside a custom-gradient node (as `tf.customGrad` builds it) whose gradient is the kernel's
 * registered `GradConfig`, given the same saved tensors in the same order; its input gradients stay lazy, so an input
 * nobody differentiates for costs nothing. Values are bit-identical to the ordinary recording.
 *
 * @since 0.2.0
 */
import * as tf from "@tensorflow/tfjs"

/** The part of TF.js's engine that `tf.customGrad` itself uses: a node with a forward and a lazy backward function. */
interface CustomGradEngine {
  readonly runKernelFunc: (params: {
    readonly forwardFunc: (backend: unknown, save: (tensors: Array<tf.Tensor>) => void) => tf.Tensor
    readonly backwardsFunc: (dy: tf.Tensor, saved: Array<tf.Tensor>) => Record<string, () => tf.Tensor>
    readonly inputs: tf.NamedTensorMap
  }) => tf.Tensor
}

const isCustomGradEngine = (engine: unknown): engine is CustomGradEngine =>
  typeof (engine as Partial<CustomGradEngine>).runKernelFunc === "function"

/**
 * Runs the registered kernel `kernelName` on `inputs` and `attrs` and returns its first output. While a gradient is
 * being recorded, the tape holds one node for it whose gradient is the kernel's registered `GradConfig`
 * (`inputsToSave` then the saved outputs, as TF.js would save them); without a registered gradient, or on an engine
 * object without `runKernelFunc`, the kernel is recorded the ordinary way.
 *
 * @since 0.2.0
 * @category kernels
 */
export const runFirstOutput = (kernelName: string, inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap): tf.Tensor => {
  const engine: unknown = tf.engine()
  const config = tf.getGradient(kernelName) as tf.GradConfig | undefined
  if (config === undefined || !isCustomGradEngine(engine)) {
    return (tf.engine().runKernel(kernelName, inputs, attrs) as unknown as Array<tf.Tensor>)[0]!
  }
  const toSave = config.inputsToSave ?? []
  const outputsToSave = config.outputsToSave ?? []
  // A named scope: the custom node takes its name from the active scope, which must not be a kernel with a gradient.
  return tf.tidy(`${kernelName}FirstOutput`, () =>
    engine.runKernelFunc({
      inputs,
      forwardFunc: (_backend, save) => {
        const outputs = tf.engine().runKernel(kernelName, inputs, attrs) as unknown as Array<tf.Tensor>
        save([...toSave.map((name) => inputs[name]!), ...outputs.filter((_, i) => outputsToSave[i] === true)])
        return outputs[0]!
      },
      backwardsFunc: (dy, saved) => config.gradFunc(dy, saved, attrs) as Record<string, () => tf.Tensor>
    }))
}
