/**
 * Checkpoints: everything a run needs to continue exactly where it stopped (spec §5.3).
 *
 * A checkpoint is a safetensors file of named tensors (generator, EMA, fake score, both optimisers' moments) plus a
 * JSON manifest (step, images seen, optimiser step counts, random-stream states, config, architecture). Both are
 * written atomically (temp file, fsync, rename), the manifest last, so a crash never leaves a torn checkpoint.
 *
 * @module
 */
import { Context, type Effect, type Option, Schema } from "effect"
import type { NamedArray } from "../domain/Safetensors.js"
import { SamplerState } from "./DataFreeSampler.js"

/** Format tag of the manifest. */
export const CHECKPOINT_FORMAT = "sid-ts-checkpoint-v1"

/** The JSON manifest of a checkpoint. */
export class CheckpointManifest extends Schema.Class<CheckpointManifest>("CheckpointManifest")({
  format: Schema.Literal(CHECKPOINT_FORMAT),
  /** Completed SiD iterations. */
  step: Schema.NonNegativeInt,
  /** Images the generator has produced for its own updates (cur_nimg, spec §5.1). */
  imagesSeen: Schema.NonNegativeInt,
  /** The distillation config, encoded. */
  config: Schema.Unknown,
  /** The teacher's description. */
  teacher: Schema.String,
  /** The run spec (`RunSpec`, encoded) of the run that wrote it, where the run recorded one. */
  run: Schema.optional(Schema.Unknown),
  /** The architecture shared by generator and fake score. */
  network: Schema.Struct({ kind: Schema.String, spec: Schema.Unknown }),
  sigmaInit: Schema.Number,
  sigmaData: Schema.Number,
  /** Adam step counts. */
  optimizerSteps: Schema.Struct({ generator: Schema.NonNegativeInt, fakeScore: Schema.NonNegativeInt }),
  /** Random-stream states of the data-free sampler. */
  sampler: SamplerState,
  /** File name of the weights, relative to the manifest. */
  weightsFile: Schema.String,
  /** SHA-256 of the weights file, hex. */
  weightsSha256: Schema.String,
  /** Shape of every stored tensor, by name. */
  tensors: Schema.Record({ key: Schema.String, value: Schema.Array(Schema.Int) }),
  createdAt: Schema.String
}) {}

/** A checkpoint: its manifest and its tensors by name. */
export interface Checkpoint {
  readonly manifest: CheckpointManifest
  readonly tensors: ReadonlyMap<string, NamedArray>
}

/** A checkpoint could not be written, or a stored one is missing, corrupt or does not fit. */
export class CheckpointError extends Schema.TaggedError<CheckpointError>()("CheckpointError", {
  path: Schema.String,
  reason: Schema.String,
  missing: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  unexpected: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  misShaped: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] })
}) {
  override get message(): string {
    const list = (label: string, names: ReadonlyArray<string>) =>
      names.length === 0 ? "" : `\n  ${label} (${names.length}): ${names.slice(0, 20).join(", ")}${names.length > 20 ? ", …" : ""}`
    return `checkpoint ${this.path}: ${this.reason}` +
      list("missing", this.missing) + list("unexpected", this.unexpected) + list("mis-shaped", this.misShaped)
  }
}

/** What a checkpoint store offers. */
export interface CheckpointStoreShape {
  /** Where checkpoints live (a directory, or a description for in-memory stores). */
  readonly location: string
  /** Writes a checkpoint atomically; earlier checkpoints stay intact until it is complete. */
  readonly save: (checkpoint: Checkpoint) => Effect.Effect<void, CheckpointError>
  /** The newest complete checkpoint, if any; fails if the newest one is corrupt. */
  readonly latest: Effect.Effect<Option.Option<Checkpoint>, CheckpointError>
}

/** The checkpoint store service. */
export class CheckpointStore extends Context.Tag("sid-ts/CheckpointStore")<CheckpointStore, CheckpointStoreShape>() {}
