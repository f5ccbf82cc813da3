/**
 * Teacher-training checkpoints (issue 4 §2; docs/algorithm.md §9.3): everything a teacher-training run needs to continue exactly
 * where it stopped — the UNet's weights, Adam's moments and step count, the EMA, the random-stream states, the step,
 * the config and the architecture.
 *
 * The tensors are `params.*`, `optimizer.<slot>.*` (Adam: `m`, `v`) and `ema.*`, each followed by the network's own
 * parameter name. The store (a directory or memory) writes them as safetensors plus this JSON manifest, atomically,
 * with the weights' SHA-256 in the manifest. The stores are in `node/TeacherCheckpointStore.ts`, which re-exports
 * this portable module.
 *
 * @module
 */
import { Context, Schema } from "effect"
import { TeacherTrainingConfig } from "../domain/config/TeacherTrainingConfig.js"
import { NetworkDescription, StreamState } from "../domain/config/Records.js"
import type { StoreFormat, CheckpointStoreOf, StoredCheckpoint } from "./CheckpointStore.js"

/**
 * Format tag of a teacher-training manifest.
 *
 * @since 0.1.0
 * @category constants
 */
export const TEACHER_CHECKPOINT_FORMAT = "sid-ts-teacher-checkpoint-v1"

/**
 * A serialised xoshiro128** stream state (four uint32 words; see RandomStream).
 *
 * @since 0.1.0
 * @category utils
 */
export const StreamStateSchema = StreamState

/**
 * The random-stream states of a teacher-training run: batch indices, the normals behind σ, and the noise ε.
 *
 * @since 0.1.0
 * @category models
 */
export const TeacherStreams = Schema.Struct({ data: StreamStateSchema, sigma: StreamStateSchema, noise: StreamStateSchema })
/**
 * @see {@link TeacherStreams}
 *
 * @since 0.1.0
 * @category models
 */
export type TeacherStreams = typeof TeacherStreams.Type

/**
 * The JSON manifest of a teacher-training checkpoint.
 *
 * @since 0.1.0
 * @category models
 */
export class TeacherCheckpointManifest extends Schema.Class<TeacherCheckpointManifest>("TeacherCheckpointManifest")({
  format: Schema.Literal(TEACHER_CHECKPOINT_FORMAT),
  /** Completed optimiser steps of the run. */
  step: Schema.NonNegativeInt,
  /** Training images seen (step × batch). */
  imagesSeen: Schema.NonNegativeInt,
  /** Adam's step count. */
  optimizerStep: Schema.NonNegativeInt,
  /** Random-stream states after the last completed step. */
  streams: TeacherStreams,
  /** The run's config. */
  config: TeacherTrainingConfig,
  /** The dataset trained on, e.g. `mnist:16 (seed 0)`. */
  dataset: Schema.String,
  /** The architecture, as stored in teacher files. */
  network: NetworkDescription,
  /** File name of the weights, relative to the manifest. */
  weightsFile: Schema.String,
  /** SHA-256 of the weights file, hex. */
  weightsSha256: Schema.String,
  /** Shape of every stored tensor, by name. */
  tensors: Schema.Record({ key: Schema.String, value: Schema.Array(Schema.Int) }),
  createdAt: Schema.String
}) {}

/**
 * A teacher-training checkpoint: its manifest and its tensors by name.
 *
 * @since 0.1.0
 * @category models
 */
export interface TeacherCheckpoint extends StoredCheckpoint<TeacherCheckpointManifest> {}

/**
 * What a teacher-checkpoint store offers: the same contract as the distillation `CheckpointStore` (keep the newest
 * `keep` plus the best, `list`, `load(step)`, `latest` reporting a damaged newest checkpoint, `recover`).
 *
 * @since 0.1.0
 * @category models
 */
export interface TeacherCheckpointStoreShape extends CheckpointStoreOf<TeacherCheckpointManifest> {}

/**
 * The teacher-checkpoint store service.
 *
 * @since 0.1.0
 * @category models
 */
export class TeacherCheckpointStore
  extends Context.Tag("sid-ts/TeacherCheckpointStore")<TeacherCheckpointStore, TeacherCheckpointStoreShape>()
{}

/*
 * Layers.
 *
 * Teacher-checkpoint stores (issue 4 §2; docs/algorithm.md §9.3): the generic directory and memory stores of `CheckpointStore`
 * with the teacher-training manifest.
 */

/**
 * The teacher-training checkpoint format: {@link TeacherCheckpointManifest} with `sid-ts-teacher-weights-v1` weights.
 *
 * @since 0.1.0
 * @category utils
 */
export const teacherFormat: StoreFormat<TeacherCheckpointManifest, typeof TeacherCheckpointManifest.Encoded> = {
  manifest: TeacherCheckpointManifest,
  withFiles: (manifest, files) =>
    new TeacherCheckpointManifest({
      ...manifest,
      weightsFile: files.weightsFile,
      weightsSha256: files.weightsSha256,
      tensors: Object.fromEntries(Object.entries(files.tensors).map(([n, s]) => [n, [...s]]))
    }),
  weightsFormat: "sid-ts-teacher-weights-v1"
}
