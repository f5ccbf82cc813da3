/**
 * Gradient replacements for the CPU engines and those of `sid-ts/browser` (docs/engines.md §3.6). TF.js's stock `Sum` and `Mean` gradients broadcast dy
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

const asFloat32 = (t: tf.Tensor): tf.Tensor => (t.dtype === "float32" ? t : tf.cast(t, "float32"))

const reducedTo = (res: tf.Tensor, shape: Array<number>, outShape: Array<number>): tf.Tensor => {
  const axes = tf.backend_util.getReductionAxes(shape, outShape)
  return axes.length > 0 ? tf.reshape(tf.sum(res, axes), shape) : res
}

/** A two-input gradient whose products are summed back to each input's shape where the inputs were broadcast. */
const binaryGradient = (
  kernelName: string,
  grads: (
    dy: tf.Tensor,
    a: tf.Tensor,
    b: tf.Tensor,
    reduce: (t: tf.Tensor, input: tf.Tensor) => tf.Tensor
  ) => { readonly a: () => tf.Tensor; readonly b: () => tf.Tensor }
): tf.GradConfig => ({
  kernelName,
  inputsToSave: ["a", "b"],
  gradFunc: (dy, saved) => {
    const [a, b] = saved as [tf.Tensor, tf.Tensor]
    const outShape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape)
    return grads(dy as tf.Tensor, a, b, (t, input) => reducedTo(t, input.shape, outShape))
  }
})

/**
 * Element-wise gradients without the float32 casts of TF.js's stock ones. The stock gradients of `Multiply`,
 * `RealDiv`, `Square`, `Sqrt`, `Sin`, `Cos` and `Log` cast their saved inputs to float32 before use, and a cast of a
 * float32 tensor still dispatches a `Cast` kernel that copies it: 55 of the 482 dispatches of a 2-D SiD iteration
 * (docs/engines.md §3.6). These are the stock formulas, op for op, with the cast only where the input is not float32,
 * so the values are the same bits.
 *
 * @since 0.2.0
 * @category gradients
 */
export const castFreeGradients: ReadonlyArray<tf.GradConfig> = [
  binaryGradient("Multiply", (dy, a, b, reduce) => ({
    a: () => reduce(tf.mul(dy, asFloat32(b)), a),
    b: () => reduce(tf.mul(dy, asFloat32(a)), b)
  })),
  binaryGradient("RealDiv", (dy, a, b, reduce) => ({
    a: () => reduce(tf.div(dy, asFloat32(b)), a),
    b: () => tf.neg(tf.div(reduce(tf.mul(dy, asFloat32(a)), b), asFloat32(tf.square(b))))
  })),
  {
    kernelName: "Square",
    inputsToSave: ["x"],
    gradFunc: (dy, saved) => ({ x: () => tf.mul(dy as tf.Tensor, tf.mul(asFloat32(saved[0]!), 2)) })
  },
  {
    kernelName: "Sqrt",
    inputsToSave: ["x"],
    gradFunc: (dy, saved) => ({ x: () => tf.div(dy as tf.Tensor, tf.mul(tf.sqrt(asFloat32(saved[0]!)), 2)) })
  },
  {
    kernelName: "Sin",
    inputsToSave: ["x"],
    gradFunc: (dy, saved) => ({ x: () => tf.mul(tf.cos(asFloat32(saved[0]!)), dy as tf.Tensor) })
  },
  {
    kernelName: "Cos",
    inputsToSave: ["x"],
    gradFunc: (dy, saved) => ({ x: () => tf.mul(tf.neg(tf.sin(asFloat32(saved[0]!))), dy as tf.Tensor) })
  },
  {
    kernelName: "Log",
    inputsToSave: ["x"],
    gradFunc: (dy, saved) => ({ x: () => tf.div(dy as tf.Tensor, asFloat32(saved[0]!)) })
  }
]

/**
 * The replacements every engine that installs gradients takes: {@link fastReduceGradients} and
 * {@link castFreeGradients} (same bits, fewer dispatches).
 *
 * @since 0.2.0
 * @category gradients
 */
export const dispatchSavingGradients: ReadonlyArray<tf.GradConfig> = [...fastReduceGradients, ...castFreeGradients]

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
