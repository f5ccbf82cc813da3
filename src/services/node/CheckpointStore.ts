/**
 * The checkpoint stores that run on Node: a directory of safetensors + JSON manifests (written atomically, verified
 * on load) and an in-memory store running the same logic, for distillation checkpoints (docs/algorithm.md §9.3).
 * Re-exports the portable `services/CheckpointStore.ts` (the service, its records and errors).
 *
 * @module
 */
import { Effect, Layer } from "effect"
import { CheckpointStore, distillationFormat } from "../CheckpointStore.js"
import { directoryStore, type DirectoryStoreOptions, memoryStore } from "./internal/checkpointStore.js"

export * from "../CheckpointStore.js"
export * from "./internal/checkpointStore.js"

/**
 * A directory-backed distillation store keeping the newest `keep` checkpoints (default 3) plus the best. Validate a
 * user's `keep` with `KeepCount` first: building the layer with a `keep` below 1 is a defect.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerDirectory = (directory: string, options: DirectoryStoreOptions = {}): Layer.Layer<CheckpointStore> =>
  Layer.effect(CheckpointStore, Effect.map(Effect.orDie(directoryStore(distillationFormat, directory, options)), CheckpointStore.of))

/**
 * An in-memory distillation store (it serialises and deserialises like the directory store, so tests exercise the format).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<CheckpointStore> = Layer.effect(
  CheckpointStore,
  Effect.map(Effect.orDie(memoryStore(distillationFormat)), CheckpointStore.of)
)

