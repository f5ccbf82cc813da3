/**
 * The stores of teacher-training checkpoints on Node: a directory, or memory running the same logic. Re-exports the
 * portable `services/TeacherCheckpointStore.ts` (the service, the manifest and its format).
 *
 * @module
 */
import { Effect, Layer } from "effect"
import { teacherFormat, TeacherCheckpointStore, type TeacherCheckpointStoreShape } from "../TeacherCheckpointStore.js"
import { directoryStore, type DirectoryStoreOptions, memoryStore } from "./internal/checkpointStore.js"

export * from "../TeacherCheckpointStore.js"

/**
 * A directory store of teacher-training checkpoints, keeping the newest `keep` (default 3) plus the best. Validate a
 * user's `keep` with `KeepCount` first: building the layer with a `keep` below 1 is a defect.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerDirectory = (
  directory: string,
  options: DirectoryStoreOptions = {}
): Layer.Layer<TeacherCheckpointStore> =>
  Layer.effect(
    TeacherCheckpointStore,
    Effect.map(Effect.orDie(directoryStore(teacherFormat, directory, options)), TeacherCheckpointStore.of)
  )

/**
 * A fresh in-memory store (the directory store's logic over an in-memory file table), keeping the newest 3.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<TeacherCheckpointStoreShape> = Effect.orDie(memoryStore(teacherFormat))

/**
 * An in-memory store of teacher-training checkpoints, one per layer build.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<TeacherCheckpointStore> = Layer.effect(TeacherCheckpointStore, makeMemory)
