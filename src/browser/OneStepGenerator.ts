/**
 * The distilled one-step generator in a web page (or anywhere) with `@tensorflow/tfjs` alone: no Effect, no Node.
 *
 * Load the file that `sid export` writes (EDM safetensors: state dict, EDMPrecond arguments and σ_init in the
 * metadata) and draw samples with one network evaluation each: x = D(σ_init·z; σ_init) (spec §2). This module and
 * everything it imports depend only on `@tensorflow/tfjs` (a test checks the import graph).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { edmNetwork, parseEdmConfig } from "../domain/edm/Config.js"
import { fromEdmStateDict } from "../domain/edm/StateDict.js"
import { denoiseWith } from "../domain/Network.js"
import { normalTensor } from "../domain/RandomStream.js"
import { decodeSafetensors } from "../domain/Safetensors.js"

/** A loaded one-step generator. */
export interface OneStepGenerator {
  /** Shape of one sample, [H, W, C] (NHWC). */
  readonly imageShape: ReadonlyArray<number>
  /** σ_init the generator was distilled at (spec §2). */
  readonly sigmaInit: number
  /** Classes of a class-conditional generator; 0 when it is unconditional. */
  readonly labelDim: number
  /**
   * `n` samples [n, H, W, C] in about [-1, 1] from latents of `seed` (or from the given standard-normal latents). A
   * class-conditional generator takes one class index per sample (default: classes in turn, 0, 1, …).
   */
  readonly generate: (latents: number | tf.Tensor, seed?: number, classes?: ReadonlyArray<number>) => tf.Tensor4D
  /** Frees the weights. */
  readonly dispose: () => void
}

/** Reads a generator file written by `sid export`. Throws an Error saying what is wrong with the file. */
export const loadOneStepGenerator = (bytes: Uint8Array): OneStepGenerator => {
  const file = decodeSafetensors(bytes)
  const configText = file.metadata["config"]
  const sigmaInit = Number(file.metadata["sigma_init"])
  if (configText === undefined || !(sigmaInit > 0)) {
    throw new Error("not a sid-ts generator export: the metadata needs `config` and `sigma_init` (write it with `sid export`)")
  }
  const config = parseEdmConfig(configText)
  const network = edmNetwork(config.architecture)
  const params = fromEdmStateDict(network.shapes, file.tensors)
  return {
    imageShape: network.dataShape,
    sigmaInit,
    labelDim: network.labelDim,
    generate: (latents, seed = 0, classes) =>
      tf.tidy(() => {
        const z = typeof latents === "number" ? normalTensor([latents, ...network.dataShape], seed, "browser.latents") : latents
        const n = z.shape[0] ?? 0
        const k = network.labelDim
        if (classes !== undefined && (k === 0 || classes.length !== n || classes.some((c) => !Number.isInteger(c) || c < 0 || c >= k))) {
          throw new Error(
            k === 0
              ? "this generator is unconditional: pass no classes"
              : `classes must be ${n} integers in 0..${k - 1}, got [${classes.join(", ")}]`
          )
        }
        const labels = k === 0
          ? undefined
          : tf.oneHot(tf.tensor1d(Int32Array.from(classes ?? Array.from({ length: n }, (_, i) => i % k)), "int32"), k).toFloat() as tf.Tensor2D
        return denoiseWith(network, params, tf.mul(z, sigmaInit), sigmaInit, config.sigmaData, labels) as tf.Tensor4D
      }),
    dispose: () => tf.dispose(Object.values(params))
  }
}
