/**
 * Exponential moving average of generator weights, with EDM's half-life and ramp-up rule.
 *
 * docs/algorithm.md §9.1 (C): h = ema_halflife_kimg·1000 images, ramped up as h = min(h, rampup·cur_nimg); the decay per
 * iteration is β = 0.5^(batch / max(h, 1e-8)); θ_ema ← β·θ_ema + (1−β)·θ. At the first iteration cur_nimg = 0 so
 * β = 0 and θ_ema = θ.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import type { Parameters } from "../nn/Parameters.js"
import { emaAllFused } from "./EmaAll.js"

/**
 * EMA settings: half-life in thousands of images, and the ramp-up ratio (null: no ramp-up).
 *
 * @since 0.1.0
 * @category models
 */
export interface EmaConfig {
  readonly halfLifeKimg: number
  readonly rampupRatio: number | null
}

/**
 * The EMA decay β for an iteration of `batch` images taken after `imagesSeen` images (docs/algorithm.md §9.1).
 *
 * @since 0.1.0
 * @category utils
 */
export const emaBeta = (config: EmaConfig, batch: number, imagesSeen: number): number => {
  let h = config.halfLifeKimg * 1000
  if (config.rampupRatio !== null) h = Math.min(h, config.rampupRatio * imagesSeen)
  return Math.pow(0.5, batch / Math.max(h, 1e-8))
}

/**
 * β·ema + (1−β)·params for every name of `ema` (new tensors the caller owns).
 *
 * @since 0.1.0
 * @category utils
 */
export const emaUpdate = (ema: Parameters, params: Parameters, beta: number): Record<string, tf.Tensor> =>
  emaAllFused(ema, params, beta) ?? tf.tidy(() =>
    Object.fromEntries(
      Object.entries(ema).map(([name, e]) => {
        const p = params[name]
        if (p === undefined) throw new Error(`EMA has parameter "${name}" that the network does not`)
        return [name, tf.add(tf.mul(e, beta), tf.mul(p, 1 - beta))]
      })
    )
  )
