/**
 * Checkpoints: everything a run needs to continue exactly where it stopped (docs/algorithm.md §9.3).
 *
 * A checkpoint is a safetensors file of named tensors (generator, EMA, fake score, both optimisers' moments) plus a
 * JSON manifest (step, images seen, optimiser step counts, random-stream states, config, architecture). Both are
 * written atomically (temp file, fsync, rename), the manifest last, so a crash never leaves a torn checkpoint.
 *
 * A store ({@link CheckpointStoreOf}) keeps the newest `keep` checkpoints plus the best one by an evaluation metric
 * (`saveBest`, `best`), lists what it holds with each checkpoint's status (`list`), loads any of them (`load`), reports
 * a damaged newest checkpoint with the intact older steps instead of skipping it (`latest`), removes crash leftovers
 * (`recover`), and reports a failed write with its cause and what to do ({@link CheckpointError}).
 *
 * This module is portable (the service, its records and errors); the stores that write files, and the in-memory one
 * that runs the same logic, are in `node/CheckpointStore.ts`, which re-exports this one.
 *
 * @module
 */
import { Context, type Effect, type Option, Schema } from "effect"
import { NetworkDescription } from "../domain/config/Records.js"
import type { NamedArray } from "../domain/data/Safetensors.js"
import { describeNameLists } from "../domain/nn/Parameters.js"
import { SamplerState } from "./DataFreeSampler.js"

/**
 * Format tag of the manifest.
 *
 * @since 0.1.0
 * @category constants
 */
export const CHECKPOINT_FORMAT = "sid-ts-checkpoint-v1"

/**
 * The JSON manifest of a checkpoint.
 *
 * @since 0.1.0
 * @category models
 */
export class CheckpointManifest extends Schema.Class<CheckpointManifest>("CheckpointManifest")({
  format: Schema.Literal(CHECKPOINT_FORMAT),
  /** Completed SiD iterations. */
  step: Schema.NonNegativeInt,
  /** Images the generator has produced for its own updates (cur_nimg, docs/algorithm.md §9.1). */
  imagesSeen: Schema.NonNegativeInt,
  /** The distillation config, encoded. */
  config: Schema.Unknown,
  /** The teacher's description. */
  teacher: Schema.String,
  /** The run spec (`RunSpec`, encoded) of the run that wrote it, where the run recorded one. */
  run: Schema.optional(Schema.Unknown),
  /** The architecture shared by generator and fake score. */
  network: NetworkDescription,
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


/**
 * A stored checkpoint with a manifest of type `M`: its manifest and its tensors by name.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoredCheckpoint<M> {
  readonly manifest: M
  readonly tensors: ReadonlyMap<string, NamedArray>
}

/**
 * A distillation checkpoint: its manifest and its tensors by name.
 *
 * @since 0.1.0
 * @category models
 */
export interface Checkpoint extends StoredCheckpoint<CheckpointManifest> {}

/**
 * How many of the newest checkpoints a store keeps by default (the best one is kept besides them).
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_KEEP = 3

/**
 * A valid `keep` count: an integer ≥ 1 (use it to validate a `--keep` flag before building a store).
 *
 * @since 0.1.0
 * @category schemas
 */
export const KeepCount = Schema.Int.pipe(
  Schema.greaterThanOrEqualTo(1, { message: () => "keep must be an integer of at least 1 (the newest checkpoint is always kept)" })
)

/**
 * What kind of problem a {@link CheckpointError} reports:
 * - `damaged`: a stored checkpoint is unreadable, corrupt or incomplete (`step`, and for `latest` the `intactSteps`);
 * - `write-failed`: a save could not be written (`code`: `ENOSPC`, `EACCES`, `EROFS`, `ENOTDIR`, ...); earlier
 *   checkpoints are unchanged;
 * - `read-failed`: the store's directory could not be read;
 * - `not-found`: `load(step)` for a step that is not stored (`intactSteps` lists what is);
 * - `invalid`: a bad argument (a `keep` below 1, a best-checkpoint score by a different metric);
 * - `other`: anything else, e.g. a checkpoint that does not fit the run resuming from it.
 *
 * @since 0.1.0
 * @category schemas
 */
export const CheckpointProblem = Schema.Literal("damaged", "write-failed", "read-failed", "not-found", "invalid", "other")
/**
 * @see {@link CheckpointProblem}
 *
 * @since 0.1.0
 * @category schemas
 */
export type CheckpointProblem = typeof CheckpointProblem.Type

/**
 * A checkpoint could not be written, or a stored one is missing, corrupt or does not fit. The message says what was
 * wrong, with the tensor lists, the intact steps and the `advice` (what to do) when there are some.
 *
 * @since 0.1.0
 * @category errors
 */
export class CheckpointError extends Schema.TaggedError<CheckpointError>()("CheckpointError", {
  /** The file (or store) concerned. */
  path: Schema.String,
  /** What is wrong. */
  reason: Schema.String,
  /** The kind of problem (default `other`). */
  kind: Schema.optionalWith(CheckpointProblem, { default: () => "other" as const }),
  /** The step of the checkpoint concerned, when known. */
  step: Schema.optional(Schema.NonNegativeInt),
  /**
   * Intact checkpoints one could continue from instead (newest first): for a damaged newest checkpoint, the intact
   * older ones (the best checkpoint included); for `load(step)` of a missing or damaged step, every intact one.
   */
  intactSteps: Schema.optionalWith(Schema.Array(Schema.NonNegativeInt), { default: () => [] }),
  /** The system error code of a failed write or read (`ENOSPC`, `EACCES`, `EROFS`, `ENOTDIR`, ...). */
  code: Schema.optional(Schema.String),
  /** What to do about it. */
  advice: Schema.optional(Schema.String),
  missing: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  unexpected: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  misShaped: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] })
}) {
  override get message(): string {
    return `checkpoint ${this.path}: ${this.reason}` + describeNameLists(this) +
      (this.intactSteps.length === 0 ? "" : `\n  intact checkpoints at steps: ${this.intactSteps.join(", ")}`) +
      (this.advice === undefined ? "" : `\n  ${this.advice}`)
  }
}

/**
 * Whether a stored checkpoint can be loaded: `Intact`, or `Damaged` with the reason.
 *
 * @since 0.1.0
 * @category schemas
 */
export const CheckpointStatus = Schema.Union(
  Schema.TaggedStruct("Intact", {}),
  Schema.TaggedStruct("Damaged", { reason: Schema.String })
)
/**
 * @see {@link CheckpointStatus}
 *
 * @since 0.1.0
 * @category schemas
 */
export type CheckpointStatus = typeof CheckpointStatus.Type

/**
 * One stored checkpoint, as `list` reports it.
 *
 * @since 0.1.0
 * @category models
 */
export class CheckpointEntry extends Schema.Class<CheckpointEntry>("CheckpointEntry")({
  step: Schema.NonNegativeInt,
  /** Its manifest's path (`memory/...` in a memory store). */
  path: Schema.String,
  /** Whether this is the copy of the best checkpoint (kept in `best/`, never rotated away). */
  best: Schema.Boolean,
  status: CheckpointStatus
}) {}

/**
 * Format tag of `best.json`.
 *
 * @since 0.1.0
 * @category constants
 */
export const BEST_FORMAT = "sid-ts-best-v1"

/**
 * The score of the best checkpoint, as stored in `best/best.json`.
 *
 * @since 0.1.0
 * @category models
 */
export class BestScore extends Schema.Class<BestScore>("BestScore")({
  format: Schema.Literal(BEST_FORMAT),
  /** The step of the best checkpoint. */
  step: Schema.NonNegativeInt,
  /** The metric it is best by, e.g. `fid`. */
  metric: Schema.NonEmptyString,
  /** Its value of the metric (finite). */
  value: Schema.Finite,
  /** Whether lower values are better (true for distances such as FID). */
  lowerIsBetter: Schema.Boolean,
  recordedAt: Schema.String
}) {}

/**
 * A score offered with a checkpoint to `saveBest`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ScoreOffer {
  /** The metric, e.g. `fid`; every offer to one store must use the same metric and direction. */
  readonly metric: string
  /** The value; a non-finite value (NaN, ±∞) never becomes the best. */
  readonly value: number
  /** Whether lower values are better (default true). */
  readonly lowerIsBetter?: boolean
}

/**
 * What `saveBest` did.
 *
 * @since 0.1.0
 * @category models
 */
export interface BestOutcome {
  /** Whether the offered checkpoint became the best (it was strictly better, or the first finite offer). */
  readonly replaced: boolean
  /** The best after the call: the offered one when `replaced`, else the previous (none if there is none yet). */
  readonly best: Option.Option<BestScore>
  /** The best before the call. */
  readonly previous: Option.Option<BestScore>
}

/**
 * The best checkpoint and its score.
 *
 * @since 0.1.0
 * @category models
 */
export interface BestCheckpoint<M> {
  readonly checkpoint: StoredCheckpoint<M>
  readonly score: BestScore
}

/**
 * What `recover` removed: crash leftovers (temp files, weights files no manifest names), as paths.
 *
 * @since 0.1.0
 * @category models
 */
export interface RecoveryReport {
  readonly removed: ReadonlyArray<string>
}

/**
 * A store of checkpoints with manifests of type `M` (distillation: {@link CheckpointStoreShape}; teacher training:
 * `TeacherCheckpointStoreShape`).
 *
 * Keep policy: after each `save`, the newest `keep` checkpoints stay (the one just saved always among them) and older
 * ones are deleted; the best checkpoint (`saveBest`) is a separate copy that is never rotated away.
 *
 * Damage is never skipped silently: `latest` fails when the newest checkpoint is damaged, with the intact older steps
 * on the error (`intactSteps`), from which a caller continues explicitly with `load(step)` (`--resume-from <step>`).
 *
 * @since 0.1.0
 * @category models
 */
export interface CheckpointStoreOf<M> {
  /** Where checkpoints live (a directory, or `memory`). */
  readonly location: string
  /** How many of the newest checkpoints are kept (≥ 1; the best one is kept besides them). */
  readonly keep: number
  /**
   * Writes a checkpoint atomically (weights, then the manifest that commits it), then deletes those beyond `keep`.
   * Earlier checkpoints stay intact until it is complete; if the write fails (`kind: "write-failed"`, with the path,
   * the system error `code` and advice) the previous newest checkpoint stays the newest. Not interruptible while
   * writing.
   */
  readonly save: (checkpoint: StoredCheckpoint<M>) => Effect.Effect<void, CheckpointError>
  /**
   * The newest checkpoint, none when there is none. If the newest is damaged it fails (`kind: "damaged"`) naming it,
   * the reason, and the intact older steps (`intactSteps`); it never falls back to an older one silently.
   */
  readonly latest: Effect.Effect<Option.Option<StoredCheckpoint<M>>, CheckpointError>
  /**
   * The checkpoint of a given step (from the kept ones, or the best copy). Fails with `kind: "not-found"` or
   * `"damaged"`, listing the intact steps on the error.
   */
  readonly load: (step: number) => Effect.Effect<StoredCheckpoint<M>, CheckpointError>
  /**
   * Every stored checkpoint, newest first, then the best copy, each with its status. Checks each manifest, the
   * weights' checksum and the tensor table (reading the weights file, but not decoding the tensors).
   */
  readonly list: Effect.Effect<ReadonlyArray<CheckpointEntry>, CheckpointError>
  /**
   * Offers an evaluated checkpoint as the best: it is written to `best/` (with `best.json` naming step, metric and
   * value) only if its value is strictly better than the current best's (lower, unless `lowerIsBetter: false`), or
   * there is no best yet; NaN and ±∞ never win. Fails (`kind: "invalid"`) if the metric or direction differs from the
   * current best's, and with `kind: "write-failed"` if it cannot be written (the previous best then stays).
   */
  readonly saveBest: (checkpoint: StoredCheckpoint<M>, score: ScoreOffer) => Effect.Effect<BestOutcome, CheckpointError>
  /** The best checkpoint and its score, none if none was saved; fails if it is damaged. */
  readonly best: Effect.Effect<Option.Option<BestCheckpoint<M>>, CheckpointError>
  /**
   * Removes crash leftovers — temp files (`.*.tmp`) and weights files that no manifest names (and, in `best/`, files
   * of a best checkpoint whose `best.json` was never written) — and reports their paths. A manifest whose weights are
   * missing is left alone (`list` reports it damaged). Call it once when a run that writes to the store starts
   * (never while another process writes to it); readers need not.
   */
  readonly recover: Effect.Effect<RecoveryReport, CheckpointError>
}

/**
 * What a distillation checkpoint store offers.
 *
 * @since 0.1.0
 * @category models
 */
export interface CheckpointStoreShape extends CheckpointStoreOf<CheckpointManifest> {}

/**
 * The checkpoint store service.
 *
 * @since 0.1.0
 * @category tags
 */
export class CheckpointStore extends Context.Tag("sid-ts/CheckpointStore")<CheckpointStore, CheckpointStoreShape>() {}

/**
 * The fields of a manifest that the store itself fills in and checks (docs/algorithm.md §9.3).
 *
 * @since 0.1.0
 * @category models
 */
export interface StoredFiles {
  /** File name of the weights, relative to the manifest. */
  readonly weightsFile: string
  /** SHA-256 of the weights file, hex. */
  readonly weightsSha256: string
  /** Shape of every stored tensor, by name. */
  readonly tensors: { readonly [name: string]: ReadonlyArray<number> }
}

/**
 * What every stored manifest has: its step and the {@link StoredFiles} fields.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoredManifest extends StoredFiles {
  readonly step: number
}

/**
 * A store of checkpoints with manifests of type `M` (see {@link CheckpointStoreOf} for the contract).
 *
 * @since 0.1.0
 * @category models
 */
export type Store<M> = CheckpointStoreOf<M>

/**
 * How a kind of checkpoint is stored: its manifest schema, how the file fields are set, the weights' format tag.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoreFormat<M extends StoredManifest, I> {
  readonly manifest: Schema.Schema<M, I>
  /** The manifest with the store's fields filled in. */
  readonly withFiles: (manifest: M, files: StoredFiles) => M
  /** The `format` metadata of the weights file. */
  readonly weightsFormat: string
}

/**
 * Options of every store.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoreOptions {
  /** How many of the newest checkpoints to keep besides the best one: an integer ≥ 1 (default 3). */
  readonly keep?: number
}


/**
 * The distillation checkpoint format (docs/algorithm.md §9.3): `CheckpointManifest` with `sid-ts-checkpoint-weights-v1` weights.
 *
 * @since 0.1.0
 * @category constants
 */
export const distillationFormat: StoreFormat<CheckpointManifest, typeof CheckpointManifest.Encoded> = {
  manifest: CheckpointManifest,
  withFiles: (manifest, files) =>
    new CheckpointManifest({
      ...manifest,
      weightsFile: files.weightsFile,
      weightsSha256: files.weightsSha256,
      tensors: Object.fromEntries(Object.entries(files.tensors).map(([n, s]) => [n, [...s]]))
    }),
  weightsFormat: "sid-ts-checkpoint-weights-v1"
}
