/**
 * The data-free sampler: every random draw distillation needs, from seeded, splittable streams (spec §3, §4.1).
 *
 * No real data is involved in SiD: the generator's latents, the noise levels and the diffusion noise are all the
 * randomness it uses. Each purpose has its own stream so that resuming from a checkpoint continues every stream
 * exactly where it stopped. Optional streams exist only when a run needs them: dropout seeds, augmentation (spec §3)
 * and, for SiDA (spec §9.1), the rows of the real images its discriminator sees (the images themselves come from the
 * `RealData` service; the sampler only chooses them), and a few-step generator's re-noise (docs/few-step.md).
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs"
import { Context, Schema } from "effect"
import type { AugmentParams } from "../domain/Augment.js"

/** One batch of draws: latents z, per-sample noise levels σ and diffusion noise ε. */
export interface Draws {
  /** Standard-normal generator latents, [N, ...dataShape]. */
  readonly z: tf.Tensor
  /** Noise levels, [N]. */
  readonly sigma: tf.Tensor1D
  /** Standard-normal diffusion noise, [N, ...dataShape]. */
  readonly noise: tf.Tensor
  /** One-hot class labels [N, labelDim], uniform over classes, for class-conditional networks; absent otherwise. */
  readonly labels?: tf.Tensor2D
  /**
   * Seed of this step's dropout masks (a uint32 from the step's own stream) for train-mode dropout (spec §5.1); absent
   * when the sampler draws none.
   */
  readonly dropoutSeed?: number
  /**
   * The k − 1 standard-normal re-noise tensors [N, ...dataShape] of a k-step generator (docs/few-step.md), from the
   * stream `fake.renoise` or `generator.renoise`; absent when the sampler was built for a one-step generator. (A
   * mutable array type so that draws remain a `tf.TensorContainer`.)
   */
  readonly renoise?: Array<tf.Tensor>
}

/** The serialisable state of all the sampler's streams (four uint32 words each). */
export const SamplerState = Schema.Record({
  key: Schema.String,
  value: Schema.Tuple(Schema.Number, Schema.Number, Schema.Number, Schema.Number)
})
/** The serialisable state of all the sampler's streams. */
export type SamplerState = typeof SamplerState.Type

/** What a data-free sampler provides. Draw methods advance the streams; the caller owns (disposes) the tensors. */
export interface DataFreeSamplerShape {
  /** Draws for the fake-score step: σ log-normal(P_mean, P_std) (spec §3). */
  readonly fakeStep: (batch: number) => Draws
  /** Draws for the generator step: t ~ U(0, tmax/1000) mapped through the ρ-schedule (spec §4.1). */
  readonly generatorStep: (batch: number) => Draws
  /** Standard-normal latents for evaluation, from their own stream. */
  readonly latents: (batch: number) => tf.Tensor
  /**
   * One batch's augmentation parameters (spec §3, docs/sida.md §2) from the stream `augment`; present only on a
   * sampler built with augmentation (p > 0), so a run without it keeps exactly its former streams.
   */
  readonly augmentation?: (batch: number) => AugmentParams
  /**
   * Rows of a real dataset of `size` images for SiDA's discriminator (spec §9.1), uniform with replacement, from the
   * stream `real`; present only on a sampler built for real data.
   */
  readonly realIndices?: (batch: number, size: number) => Int32Array
  /** The current state of every stream. */
  readonly state: () => SamplerState
  /** Continues from a saved state. */
  readonly restore: (state: SamplerState) => void
}

/** The data-free sampler service. */
export class DataFreeSampler extends Context.Tag("sid-ts/DataFreeSampler")<DataFreeSampler, DataFreeSamplerShape>() {}
