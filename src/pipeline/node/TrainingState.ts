/**
 * A run's whole training state in and out of sid-ts (docs/training-state.md): a checkpoint written as one
 * `sid-ts-training-state-v1` safetensors file (`sid state export`), and such a file made back into a run directory
 * that `sid distill --resume` continues (`sid state import`). `tools/sid_training_state.py` converts the file to and
 * from the `training-state-*.pt` that SiD's PyTorch training loop resumes from.
 *
 * Nothing is overwritten unless asked: an existing output file or run is refused without `overwrite` (a replaced run
 * is moved aside, never deleted); the file is written atomically, and an import validates the whole file before it
 * touches the run directory.
 *
 * @module
 */
import { readFile, stat } from "node:fs/promises"
import { join } from "node:path"
import { Effect, Either, Schema, type Scope } from "effect"
import { decodeRunRecord } from "../../domain/config/RunSpec.js"
import {
  decodeTrainingState,
  encodeTrainingState,
  type TrainingState,
  TrainingStateError,
  trainingStateLayout,
  type TrainingStateLayout
} from "../../domain/data/TrainingStateFile.js"
import { errorCode, writeFileAtomic } from "../../platform/AtomicFile.js"
import { claimRunDirectory, type RunDirectoryError, type RunDirectoryLocked } from "../../platform/RunDirectory.js"
import * as CheckpointStore from "../../services/node/CheckpointStore.js"
import {
  type Checkpoint,
  CHECKPOINT_FORMAT,
  type CheckpointError,
  CheckpointManifest,
  CheckpointStore as CheckpointStoreTag
} from "../../services/node/CheckpointStore.js"

/**
 * The training state of a checkpoint, in the terms of the file format.
 *
 * @since 0.2.0
 * @category utils
 */
export const trainingStateOf = (checkpoint: Checkpoint): TrainingState => {
  const m = checkpoint.manifest
  return {
    network: m.network,
    step: m.step,
    imagesSeen: m.imagesSeen,
    optimizerSteps: m.optimizerSteps,
    sigmaInit: m.sigmaInit,
    sigmaData: m.sigmaData,
    teacher: m.teacher,
    config: m.config,
    ...(m.run === undefined ? {} : { run: m.run }),
    sampler: m.sampler,
    createdAt: m.createdAt,
    tensors: checkpoint.tensors
  }
}

/**
 * The checkpoint a training state describes (its manifest checked by the `CheckpointManifest` schema; weights file
 * and checksum are filled in when a store saves it).
 *
 * @since 0.2.0
 * @category utils
 */
export const checkpointOf = (state: TrainingState, path: string): Either.Either<Checkpoint, TrainingStateError> =>
  Either.map(
    Either.mapLeft(
      Schema.decodeUnknownEither(CheckpointManifest)({
        format: CHECKPOINT_FORMAT,
        step: state.step,
        imagesSeen: state.imagesSeen,
        config: state.config,
        teacher: state.teacher,
        ...(state.run === undefined ? {} : { run: state.run }),
        network: state.network,
        sigmaInit: state.sigmaInit,
        sigmaData: state.sigmaData,
        optimizerSteps: state.optimizerSteps,
        sampler: state.sampler,
        weightsFile: "",
        weightsSha256: "",
        tensors: {},
        createdAt: state.createdAt
      }),
      (e) =>
        new TrainingStateError({
          path,
          problem: "corrupt",
          reason: `its metadata does not make a checkpoint manifest (${e.message})`,
          fix: "Write it again with `sid state export` or `tools/sid_training_state.py to-sid-ts`."
        })
    ),
    (manifest) => ({ manifest, tensors: state.tensors })
  )

/**
 * What {@link writeTrainingState} wrote.
 *
 * @since 0.2.0
 * @category models
 */
export interface WrittenTrainingState {
  readonly path: string
  readonly layout: TrainingStateLayout
  readonly kind: string
  readonly step: number
  readonly imagesSeen: number
  readonly bytes: number
}

const exists = (path: string): Effect.Effect<boolean> =>
  Effect.promise(() => stat(path).then(() => true, () => false))

/**
 * Writes a checkpoint's whole training state to `outPath` (atomically). Refuses an existing file unless `overwrite`.
 *
 * @since 0.2.0
 * @category utils
 */
export const writeTrainingState = (
  checkpoint: Checkpoint,
  outPath: string,
  options: { readonly overwrite?: boolean } = {}
): Effect.Effect<WrittenTrainingState, TrainingStateError> =>
  Effect.gen(function*() {
    if (options.overwrite !== true && (yield* exists(outPath))) {
      return yield* new TrainingStateError({
        path: outPath,
        problem: "exists",
        reason: "the file already exists",
        fix: "Choose another --out, or pass --overwrite to replace it."
      })
    }
    const bytes = yield* Effect.try({
      try: () => encodeTrainingState(trainingStateOf(checkpoint), outPath),
      catch: (e) =>
        e instanceof TrainingStateError
          ? e
          : new TrainingStateError({ path: outPath, problem: "corrupt", reason: String(e), fix: "Export an intact checkpoint." })
    })
    yield* writeFileAtomic(outPath, bytes).pipe(
      Effect.mapError((e) =>
        new TrainingStateError({ path: outPath, problem: "write-failed", reason: e.message, fix: "Choose a writable --out." })
      )
    )
    return {
      path: outPath,
      layout: trainingStateLayout(checkpoint.manifest.network),
      kind: checkpoint.manifest.network.kind,
      step: checkpoint.manifest.step,
      imagesSeen: checkpoint.manifest.imagesSeen,
      bytes: bytes.byteLength
    }
  })

/**
 * Reads and validates a training-state file into the checkpoint it describes.
 *
 * @since 0.2.0
 * @category utils
 */
export const readTrainingState = (path: string): Effect.Effect<Checkpoint, TrainingStateError> =>
  Effect.gen(function*() {
    const bytes = yield* Effect.tryPromise({
      try: () => readFile(path),
      catch: (e) =>
        new TrainingStateError({
          path,
          problem: "read-failed",
          reason: `cannot read it (${errorCode(e) ?? (e instanceof Error ? e.message : String(e))})`,
          fix: "Check the path."
        })
    })
    const state = yield* Effect.try({
      try: () => decodeTrainingState(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path),
      catch: (e) =>
        e instanceof TrainingStateError
          ? e
          : new TrainingStateError({ path, problem: "corrupt", reason: String(e), fix: "Write it again with `sid state export`." })
    })
    return yield* checkpointOf(state, path)
  })

/**
 * What {@link importTrainingState} made.
 *
 * @since 0.2.0
 * @category models
 */
export interface ImportedTrainingState {
  readonly runDir: string
  readonly step: number
  readonly imagesSeen: number
  readonly kind: string
  /** What claiming the run directory did (an old run moved aside, a stale lock taken over). */
  readonly notes: ReadonlyArray<string>
}

/**
 * Makes a run directory from a training-state file: `config.json` (the run spec the file carries) and one checkpoint
 * in `checkpoints/`, so that `sid distill --resume --run-dir <runDir>` continues the run exactly. The whole file is
 * validated first; a directory that holds a run is refused unless `overwrite` (the old run is then moved aside).
 *
 * @since 0.2.0
 * @category utils
 */
export const importTrainingState = (
  path: string,
  runDir: string,
  options: { readonly overwrite?: boolean; readonly command?: string } = {}
): Effect.Effect<
  ImportedTrainingState,
  TrainingStateError | RunDirectoryError | RunDirectoryLocked | CheckpointError,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const checkpoint = yield* readTrainingState(path)
    const { manifest } = checkpoint
    if (manifest.run === undefined) {
      return yield* new TrainingStateError({
        path,
        problem: "no-run",
        reason: "it carries no run spec (teacher, reference, config), which `sid distill --resume` needs",
        fix: "Export the state of a run started by `sid distill`; in code, restore it with `restoreCheckpoint` instead."
      })
    }
    yield* Either.mapLeft(decodeRunRecord(path, manifest.run), (e) =>
      new TrainingStateError({ path, problem: "corrupt", reason: `its run spec cannot be read (${e.reason})`, fix: "Export it again." }))
    const claim = yield* claimRunDirectory(runDir, options.overwrite === true ? "overwrite" : "fresh", {
      ...(options.command === undefined ? {} : { command: options.command })
    })
    yield* writeFileAtomic(join(runDir, "config.json"), new TextEncoder().encode(JSON.stringify(manifest.run) + "\n")).pipe(
      Effect.mapError((e) =>
        new TrainingStateError({ path: runDir, problem: "write-failed", reason: e.message, fix: "Choose a writable --run-dir." })
      )
    )
    yield* Effect.flatMap(CheckpointStoreTag, (store) => store.save(checkpoint)).pipe(
      Effect.provide(CheckpointStore.layerDirectory(join(runDir, "checkpoints")))
    )
    return { runDir, step: manifest.step, imagesSeen: manifest.imagesSeen, kind: manifest.network.kind, notes: claim.notes }
  })
