/**
 * Checkpoint stores: a directory of safetensors + JSON manifests, or memory (for tests).
 *
 * On disk a checkpoint is `ckpt-<step>.safetensors` and `ckpt-<step>.json`. The weights are written first and the
 * manifest last, each atomically, and the manifest carries the weights' SHA-256: a manifest therefore only ever names
 * a complete weights file, and a damaged one is detected on load. Older checkpoints are pruned after a save, keeping
 * the newest `keep`.
 *
 * The file handling is generic in the manifest ({@link directoryStore}, {@link memoryStore}): any manifest schema with
 * a step, the weights file's name and checksum and a table of tensor shapes can be stored. Distillation
 * ({@link layerDirectory}, {@link layerMemory}) and teacher training (`TeacherCheckpointStore`) use it with their own
 * manifests (spec §5.3).
 *
 * @module
 */
import { createHash } from "node:crypto"
import { readdir, readFile, rm } from "node:fs/promises"
import { join } from "node:path"
import { Effect, Layer, Option, Ref, Schema } from "effect"
import { decodeSafetensors, encodeSafetensors, type NamedArray } from "../domain/Safetensors.js"
import { CheckpointError, CheckpointManifest, CheckpointStore } from "../services/CheckpointStore.js"
import { writeFileAtomic } from "./AtomicFile.js"

/** The fields of a manifest that the store itself fills in and checks (spec §5.3). */
export interface StoredFiles {
  /** File name of the weights, relative to the manifest. */
  readonly weightsFile: string
  /** SHA-256 of the weights file, hex. */
  readonly weightsSha256: string
  /** Shape of every stored tensor, by name. */
  readonly tensors: { readonly [name: string]: ReadonlyArray<number> }
}

/** What every stored manifest has: its step and the {@link StoredFiles} fields. */
export interface StoredManifest extends StoredFiles {
  readonly step: number
}

/** A stored checkpoint: its manifest and its tensors by name. */
export interface StoredCheckpoint<M> {
  readonly manifest: M
  readonly tensors: ReadonlyMap<string, NamedArray>
}

/** A store of checkpoints with manifests of type `M` (the shape of `CheckpointStoreShape`, generic). */
export interface Store<M> {
  /** Where checkpoints live (a directory, or a description for in-memory stores). */
  readonly location: string
  /** Writes a checkpoint atomically; earlier checkpoints stay intact until it is complete. */
  readonly save: (checkpoint: StoredCheckpoint<M>) => Effect.Effect<void, CheckpointError>
  /** The newest complete checkpoint, if any; fails if the newest one is corrupt. */
  readonly latest: Effect.Effect<Option.Option<StoredCheckpoint<M>>, CheckpointError>
}

/** How a kind of checkpoint is stored: its manifest schema, how the file fields are set, the weights' format tag. */
export interface StoreFormat<M extends StoredManifest, I> {
  readonly manifest: Schema.Schema<M, I>
  /** The manifest with the store's fields filled in. */
  readonly withFiles: (manifest: M, files: StoredFiles) => M
  /** The `format` metadata of the weights file. */
  readonly weightsFormat: string
}

const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

const baseName = (step: number): string => `ckpt-${String(step).padStart(8, "0")}`

const storedSteps = (names: ReadonlyArray<string>): Array<number> =>
  names.flatMap((n) => /^ckpt-(\d+)\.json$/.exec(n)?.[1] ?? []).map(Number).sort((a, b) => b - a)

const codec = <M extends StoredManifest, I>(format: StoreFormat<M, I>) => ({
  decode: Schema.decodeUnknown(Schema.parseJson(format.manifest)),
  encode: Schema.encode(Schema.parseJson(format.manifest, { space: 2 }))
})

/** Serialises a checkpoint: the weights bytes and the manifest with their file name and checksum filled in. */
const serialise = <M extends StoredManifest, I>(
  format: StoreFormat<M, I>,
  checkpoint: StoredCheckpoint<M>
): { readonly weights: Uint8Array; readonly manifest: M } => {
  const weights = encodeSafetensors(checkpoint.tensors, { format: format.weightsFormat })
  const manifest = format.withFiles(checkpoint.manifest, {
    weightsFile: `${baseName(checkpoint.manifest.step)}.safetensors`,
    weightsSha256: sha256(weights),
    tensors: Object.fromEntries([...checkpoint.tensors].map(([n, a]) => [n, [...a.shape]]))
  })
  return { weights, manifest }
}

/** Checks a loaded checkpoint's tensors against its manifest's table of shapes. */
const verifyTensors = <M extends StoredManifest>(
  path: string,
  checkpoint: StoredCheckpoint<M>
): Effect.Effect<StoredCheckpoint<M>, CheckpointError> => {
  const expected = checkpoint.manifest.tensors
  const missing = Object.keys(expected).filter((n) => !checkpoint.tensors.has(n))
  const unexpected = [...checkpoint.tensors.keys()].filter((n) => !(n in expected))
  const misShaped = Object.entries(expected).flatMap(([n, shape]) => {
    const t = checkpoint.tensors.get(n)
    return t !== undefined && JSON.stringify(t.shape) !== JSON.stringify(shape) ? [n] : []
  })
  return missing.length + unexpected.length + misShaped.length === 0
    ? Effect.succeed(checkpoint)
    : Effect.fail(new CheckpointError({ path, reason: "the weights file does not match its manifest", missing, unexpected, misShaped }))
}

/**
 * A directory-backed store of checkpoints in `format`, keeping the newest `keep` (default 3). A save writes the
 * weights then the manifest, each atomically (spec §5.3); `latest` verifies the checksum and every tensor's shape.
 */
export const directoryStore = <M extends StoredManifest, I>(
  format: StoreFormat<M, I>,
  directory: string,
  options: { readonly keep?: number } = {}
): Store<M> => {
  const { decode, encode } = codec(format)
  return {
    location: directory,
    save: (checkpoint) =>
      Effect.gen(function*() {
        const { manifest, weights } = serialise(format, checkpoint)
        const base = join(directory, baseName(manifest.step))
        const fail = (e: unknown) =>
          new CheckpointError({ path: `${base}.json`, reason: `write failed: ${e instanceof Error ? e.message : String(e)}` })
        yield* writeFileAtomic(`${base}.safetensors`, weights).pipe(Effect.mapError(fail))
        const json = yield* encode(manifest).pipe(Effect.mapError(fail))
        yield* writeFileAtomic(`${base}.json`, new TextEncoder().encode(json)).pipe(Effect.mapError(fail))
        const names = yield* Effect.promise(() => readdir(directory))
        for (const old of storedSteps(names).slice(options.keep ?? 3)) {
          yield* Effect.promise(async () => {
            await rm(join(directory, `${baseName(old)}.json`), { force: true })
            await rm(join(directory, `${baseName(old)}.safetensors`), { force: true })
          })
        }
      }),
    latest: Effect.gen(function*() {
      const names = yield* Effect.tryPromise(() => readdir(directory)).pipe(
        Effect.catchAll(() => Effect.succeed([] as Array<string>))
      )
      const newest = storedSteps(names)[0]
      if (newest === undefined) return Option.none()
      const manifestPath = join(directory, `${baseName(newest)}.json`)
      const fail = (reason: string) => new CheckpointError({ path: manifestPath, reason })
      const text = yield* Effect.tryPromise({
        try: () => readFile(manifestPath, "utf8"),
        catch: (e) => fail(`cannot read: ${String(e)}`)
      })
      const manifest = yield* decode(text).pipe(
        Effect.mapError((e) => fail(`corrupt manifest (${e.message.split("\n")[0]}); delete it to fall back to an older checkpoint`))
      )
      const weightsPath = join(directory, manifest.weightsFile)
      const bytes = yield* Effect.tryPromise({
        try: () => readFile(weightsPath),
        catch: () => fail(`its weights file ${manifest.weightsFile} is missing`)
      })
      const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      if (sha256(view) !== manifest.weightsSha256) {
        return yield* fail(`weights file ${manifest.weightsFile} is corrupt (checksum mismatch)`)
      }
      const file = yield* Effect.try({
        try: () => decodeSafetensors(view),
        catch: (e) => fail(`weights file ${manifest.weightsFile}: ${e instanceof Error ? e.message : String(e)}`)
      })
      return Option.some(yield* verifyTensors(manifestPath, { manifest, tensors: file.tensors }))
    })
  }
}

/** An in-memory store of checkpoints in `format`: it serialises and deserialises like the directory store. */
export const memoryStore = <M extends StoredManifest, I>(format: StoreFormat<M, I>): Effect.Effect<Store<M>> => {
  const { decode, encode } = codec(format)
  return Effect.map(Ref.make<Option.Option<{ readonly weights: Uint8Array; readonly manifest: string }>>(Option.none()), (ref) => ({
    location: "memory",
    save: (checkpoint) =>
      Effect.gen(function*() {
        const { manifest, weights } = serialise(format, checkpoint)
        const json = yield* encode(manifest).pipe(
          Effect.mapError((e) => new CheckpointError({ path: "memory", reason: e.message }))
        )
        yield* Ref.set(ref, Option.some({ weights, manifest: json }))
      }),
    latest: Effect.flatMap(Ref.get(ref), (stored) =>
      Option.isNone(stored)
        ? Effect.succeed(Option.none())
        : Effect.gen(function*() {
          const manifest = yield* decode(stored.value.manifest).pipe(
            Effect.mapError((e) => new CheckpointError({ path: "memory", reason: e.message }))
          )
          const file = decodeSafetensors(stored.value.weights)
          return Option.some(yield* verifyTensors("memory", { manifest, tensors: file.tensors }))
        }))
  }))
}

/** The distillation checkpoint format (spec §5.3): `CheckpointManifest` with `sid-ts-checkpoint-weights-v1` weights. */
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

/** A directory-backed distillation store keeping the newest `keep` checkpoints (default 3). */
export const layerDirectory = (directory: string, options: { readonly keep?: number } = {}): Layer.Layer<CheckpointStore> =>
  Layer.succeed(CheckpointStore, CheckpointStore.of(directoryStore(distillationFormat, directory, options)))

/** An in-memory distillation store (it serialises and deserialises like the directory store, so tests exercise the format). */
export const layerMemory: Layer.Layer<CheckpointStore> = Layer.effect(
  CheckpointStore,
  Effect.map(memoryStore(distillationFormat), (store) => CheckpointStore.of(store))
)
