/**
 * Gradient replacements for the `wasm-native` engine. TF.js's stock `Sum` and `Mean` gradients broadcast dy
 * by multiplying with `ones(x.shape)`, which fills a full-size array of ones in JavaScript and copies it into the
 * backend on every backward pass (GroupNorm statistics make that a large share of a training step). These compute the
 * same product with `onesLike(x)`, a backend kernel, so the values are bit-identical and nothing is filled in
 * JavaScript.
 *
 * Gradients are registered process-wide (not per backend); installs are reference-counted and the stock gradients are
 * restored by the last release.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"

const onesFor = (x: tf.Tensor): tf.Tensor => (x.dtype === "float32" ? tf.onesLike(x) : tf.ones(x.shape, "float32"))

const expanded = (dy: tf.Tensor, x: tf.Tensor, axis: unknown): tf.Tensor => {
  const shape = x.shape.slice()
  for (const a of tf.util.parseAxisParam(axis as number | Array<number>, x.shape)) shape[a] = 1
  return tf.reshape(dy, shape)
}

const reduceSize = (x: tf.Tensor, axis: unknown): number =>
  tf.util.parseAxisParam(axis as number | Array<number>, x.shape).reduce((p, a) => p * x.shape[a]!, 1)

/**
 * `Sum` and `Mean` gradient configs that broadcast dy with `onesLike(x)`.
 *
 * @since 0.1.0
 * @category gradients
 */
export const fastReduceGradients: ReadonlyArray<tf.GradConfig> = [
  {
    kernelName: "Sum",
    inputsToSave: ["x"],
    gradFunc: (dy, saved, attrs) => {
      const x = saved[0]!
      const derX = tf.mul(expanded(dy as tf.Tensor, x, attrs["axis"]), onesFor(x))
      return { x: () => derX }
    }
  },
  {
    kernelName: "Mean",
    inputsToSave: ["x"],
    gradFunc: (dy, saved, attrs) => {
      const x = saved[0]!
      return {
        x: () => tf.div(tf.mul(expanded(dy as tf.Tensor, x, attrs["axis"]), onesFor(x)), reduceSize(x, attrs["axis"]))
      }
    }
  }
]

interface Installed {
  count: number
  readonly previous: tf.GradConfig | undefined
}

const installed = new Map<string, Installed>()

/**
 * Registers `configs` (reference-counted per kernel name) and returns the function that undoes this install.
 *
 * @since 0.1.0
 * @category gradients
 */
export const installGradients = (configs: ReadonlyArray<tf.GradConfig>): () => void => {
  for (const config of configs) {
    const entry = installed.get(config.kernelName)
    if (entry !== undefined) {
      entry.count++
    } else {
      installed.set(config.kernelName, { count: 1, previous: tf.getGradient(config.kernelName) as tf.GradConfig | undefined })
      tf.registerGradient(config)
    }
  }
  let released = false
  return () => {
    if (released) return
    released = true
    for (const config of [...configs].reverse()) {
      const entry = installed.get(config.kernelName)
      if (entry === undefined) continue
      entry.count--
      if (entry.count > 0) continue
      installed.delete(config.kernelName)
      if (entry.previous !== undefined) tf.registerGradient(entry.previous)
    }
  }
}
