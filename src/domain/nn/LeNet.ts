/**
 * A small LeNet-style digit classifier, the feature network of "MNIST-FID" (docs/algorithm.md §11 uses Inception-v3's
 * pool features and softmax the same way for CIFAR/ImageNet).
 *
 * Input: 28×28×1 images in [-1, 1] (NHWC, background −1). Architecture (all ReLU):
 *   conv 5×5, 1 → c₁, "same" → max-pool 2 → conv 5×5, c₁ → c₂, "valid" → max-pool 2 → flatten (5·5·c₂)
 *   → dense → `features` (the penultimate activations, width `hidden`) → dense → `logits` (10 classes).
 * The default (c₁, c₂, hidden) = (16, 32, 128) has 117,066 parameters (457 KiB as float32).
 *
 * Images at other sizes are brought to 28×28 by {@link toLeNetInput}: 32×32 (the dataset's 2-pixel −1 padding) is
 * centre-cropped, which undoes the padding exactly; any other size (16×16) is resized bilinearly (forward only, no
 * gradient needed); 3 channels are averaged to one.
 *
 * Like the other networks it is a pure function of named parameters; initialisation draws from `RandomStream`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { read, type Reads, runSync } from "../data/HostReads.js"
import type { Parameters } from "./Parameters.js"
import { normalTensor } from "../data/RandomStream.js"

/**
 * Architecture of a {@link LeNet}.
 *
 * @since 0.1.0
 * @category models
 */
export interface LeNetSpec {
  /** Side of the (square) input image: 28. */
  readonly size: number
  /** Channels of the first convolution. */
  readonly conv1: number
  /** Channels of the second convolution. */
  readonly conv2: number
  /** Width of the penultimate (feature) layer. */
  readonly hidden: number
  /** Number of classes. */
  readonly classes: number
}

/**
 * The default LeNet of MNIST-FID: 28×28 input, 16 and 32 channels, 128 features, 10 classes.
 *
 * @since 0.1.0
 * @category utils
 */
export const leNetSpec = (overrides: Partial<LeNetSpec> = {}): LeNetSpec => ({
  size: 28,
  conv1: 16,
  conv2: 32,
  hidden: 128,
  classes: 10,
  ...overrides
})

const flatSide = (spec: LeNetSpec): number => Math.floor((Math.floor(spec.size / 2) - 4) / 2)

/**
 * Names and shapes of the parameters: `conv1.weight` [5, 5, 1, c₁] (TF.js HWIO), `conv2.weight` [5, 5, c₁, c₂],
 * `fc1.weight` [5·5·c₂, hidden], `fc2.weight` [hidden, classes], each with a `.bias`.
 *
 * @since 0.1.0
 * @category utils
 */
export const leNetShapes = (spec: LeNetSpec): Record<string, ReadonlyArray<number>> => {
  const side = flatSide(spec)
  return {
    "conv1.weight": [5, 5, 1, spec.conv1],
    "conv1.bias": [spec.conv1],
    "conv2.weight": [5, 5, spec.conv1, spec.conv2],
    "conv2.bias": [spec.conv2],
    "fc1.weight": [side * side * spec.conv2, spec.hidden],
    "fc1.bias": [spec.hidden],
    "fc2.weight": [spec.hidden, spec.classes],
    "fc2.bias": [spec.classes]
  }
}

/**
 * Fresh parameters: He-normal weights (std √(2/fan_in)), zero biases, deterministic in `seed` (drawn from
 * `RandomStream`, never `tf.random*`). The caller owns the returned tensors.
 *
 * @since 0.1.0
 * @category utils
 */
export const initLeNet = (spec: LeNetSpec, seed: number): Record<string, tf.Tensor> =>
  tf.tidy(() => {
    const out: Record<string, tf.Tensor> = {}
    for (const [name, shape] of Object.entries(leNetShapes(spec))) {
      if (name.endsWith(".bias")) {
        out[name] = tf.zeros([...shape])
      } else {
        const fanIn = shape.slice(0, -1).reduce((a, b) => a * b, 1)
        out[name] = normalTensor(shape, seed, `lenet.${name}`, Math.sqrt(2 / fanIn))
      }
    }
    return out
  })

/**
 * What the LeNet computes: the penultimate activations and the class logits.
 *
 * @since 0.1.0
 * @category models
 */
export interface LeNetOutput {
  /** `[N, hidden]`: the feature vectors (ReLU outputs of `fc1`) FID and precision/recall are computed on. */
  readonly features: tf.Tensor2D
  /** `[N, classes]`: unnormalised class scores (softmax gives p(y|x) for the Inception Score). */
  readonly logits: tf.Tensor2D
}

const param = (params: Parameters, name: string): tf.Tensor => {
  const p = params[name]
  if (p === undefined) throw new Error(`LeNet parameter ${name} is missing`)
  return p
}

/**
 * Images [N, H, W, C] in [-1, 1] → [N, 28, 28, 1] for the LeNet: channels averaged to one, a 32×32 input
 * centre-cropped (the inverse of the dataset's padding), any other size resized bilinearly (half-pixel centres).
 *
 * @since 0.1.0
 * @category utils
 */
export const toLeNetInput = (images: tf.Tensor4D, size = 28): tf.Tensor4D =>
  tf.tidy(() => {
    const [, h, w, c] = images.shape
    let x: tf.Tensor4D = c === 1 ? images : tf.mean(images, 3, true)
    if (h === size && w === size) return c === 1 ? tf.clone(x) : x
    if (h === size + 4 && w === size + 4) return tf.slice(x, [0, 2, 2, 0], [-1, size, size, 1])
    x = tf.image.resizeBilinear(x, [size, size], false, true)
    return x
  })

/**
 * The LeNet on 28×28×1 inputs in [-1, 1]: features and logits. Pure; inputs are not disposed.
 *
 * @since 0.1.0
 * @category utils
 */
export const applyLeNet = (spec: LeNetSpec, params: Parameters, x: tf.Tensor4D): LeNetOutput =>
  tf.tidy(() => {
    const [, h, w, c] = x.shape
    if (h !== spec.size || w !== spec.size || c !== 1) {
      throw new Error(`LeNet expects [N, ${spec.size}, ${spec.size}, 1] inputs, got [${x.shape.join(", ")}]`)
    }
    const conv1 = tf.fused.conv2d({
      x,
      filter: param(params, "conv1.weight") as tf.Tensor4D,
      strides: 1,
      pad: "same",
      bias: param(params, "conv1.bias"),
      activation: "relu"
    })
    const pool1 = tf.maxPool(conv1, 2, 2, "valid")
    const conv2 = tf.fused.conv2d({
      x: pool1,
      filter: param(params, "conv2.weight") as tf.Tensor4D,
      strides: 1,
      pad: "valid",
      bias: param(params, "conv2.bias"),
      activation: "relu"
    })
    const pool2 = tf.maxPool(conv2, 2, 2, "valid")
    const flat = tf.reshape(pool2, [x.shape[0], -1]) as tf.Tensor2D
    const dense = (h: tf.Tensor2D, name: string): tf.Tensor2D =>
      tf.add(tf.matMul(h, param(params, `${name}.weight`) as tf.Tensor2D), param(params, `${name}.bias`))
    const features = tf.relu(dense(flat, "fc1"))
    const logits = dense(features, "fc2")
    return { features, logits }
  })

/**
 * Mean softmax cross-entropy of the logits against integer labels [N] (the training loss). A scalar.
 *
 * @since 0.1.0
 * @category utils
 */
export const crossEntropy = (logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar =>
  tf.tidy(() => {
    const logp = tf.logSoftmax(logits)
    const onehot = tf.oneHot(tf.cast(labels, "int32"), logits.shape[1])
    return tf.neg(tf.mean(tf.sum(tf.mul(onehot, logp), 1))) as tf.Scalar
  })

/**
 * Share of rows whose arg-max logit equals the label (`logits` [N, K], `labels` [N] int).
 *
 * @since 0.1.0
 * @category utils
 */
export const accuracy = (logits: tf.Tensor2D, labels: tf.Tensor1D): number => runSync(accuracyReads(logits, labels))

/**
 * {@link accuracy} as a {@link Reads} computation (one host read of the mean). The same value.
 *
 * @since 0.2.0
 * @category utils
 */
export function* accuracyReads(logits: tf.Tensor2D, labels: tf.Tensor1D): Reads<number> {
  const mean = tf.tidy(() => tf.mean(tf.cast(tf.equal(tf.argMax(logits, 1), tf.cast(labels, "int32")), "float32")))
  try {
    return (yield* read([mean]))[0]![0]!
  } finally {
    mean.dispose()
  }
}
