/**
 * Teacher-checkpoint stores (issue 4 §2; spec §5.3): the generic directory and memory stores of `CheckpointStore`
 * with the teacher-training manifest.
 *
 * @module
 */
import { Effect, Layer } from "effect"
import {
  TeacherCheckpointManifest,
  TeacherCheckpointStore,
  type TeacherCheckpointStoreShape
} from "../services/TeacherCheckpointStore.js"
import { directoryStore, type DirectoryStoreOptions, memoryStore, type StoreFormat } from "./CheckpointStore.js"

/** The teacher-training checkpoint format: {@link TeacherCheckpointManifest} with `sid-ts-teacher-weights-v1` weights. */
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

/**
 * A directory store of teacher-training checkpoints, keeping the newest `keep` (default 3) plus the best. Validate a
 * user's `keep` with `KeepCount` first: building the layer with a `keep` below 1 is a defect.
 */
export const layerDirectory = (
  directory: string,
  options: DirectoryStoreOptions = {}
): Layer.Layer<TeacherCheckpointStore> =>
  Layer.effect(
    TeacherCheckpointStore,
    Effect.map(Effect.orDie(directoryStore(teacherFormat, directory, options)), TeacherCheckpointStore.of)
  )

/** A fresh in-memory store (the directory store's logic over an in-memory file table), keeping the newest 3. */
export const makeMemory: Effect.Effect<TeacherCheckpointStoreShape> = Effect.orDie(memoryStore(teacherFormat))

/** An in-memory store of teacher-training checkpoints, one per layer build. */
export const layerMemory: Layer.Layer<TeacherCheckpointStore> = Layer.effect(TeacherCheckpointStore, makeMemory)
