/**
 * Checkpoint stores: a directory of safetensors + JSON manifests, or memory (for tests).
 *
 * On disk a checkpoint is `ckpt-<step>.safetensors` and `ckpt-<step>.json`. The weights are written first and the
 * manifest last, each atomically, and the manifest carries the weights' SHA-256: a manifest therefore only ever names
 * a complete weights file, and a damaged one is detected on load. Older checkpoints are pruned after a save, keeping
 * the newest `keep`.
 *
 * @module
 */
import { createHash } from "node:crypto"
import { readdir, readFile, rm } from "node:fs/promises"
import { join } from "node:path"
import { Effect, Layer, Option, Ref, Schema } from "effect"
import { decodeSafetensors, encodeSafetensors } from "../domain/Safetensors.js"
import { type Checkpoint, CheckpointError, CheckpointManifest, CheckpointStore } from "../services/CheckpointStore.js"
import { writeFileAtomic } from "./AtomicFile.js"

const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

const baseName = (step: number): string => `ckpt-${String(step).padStart(8, "0")}`

const decodeManifest = Schema.decodeUnknown(Schema.parseJson(CheckpointManifest))
const encodeManifest = Schema.encode(Schema.parseJson(CheckpointManifest, { space: 2 }))

/** Serialises a checkpoint: the weights bytes and the manifest with their file name and checksum filled in. */
const serialise = (checkpoint: Checkpoint): { readonly weights: Uint8Array; readonly manifest: CheckpointManifest } => {
  const weights = encodeSafetensors(checkpoint.tensors, { format: "sid-ts-checkpoint-weights-v1" })
  const manifest = new CheckpointManifest({
    ...checkpoint.manifest,
    weightsFile: `${baseName(checkpoint.manifest.step)}.safetensors`,
    weightsSha256: sha256(weights),
    tensors: Object.fromEntries([...checkpoint.tensors].map(([n, a]) => [n, [...a.shape]]))
  })
  return { weights, manifest }
}

/** Checks a loaded checkpoint's tensors against its manifest's table of shapes. */
const verifyTensors = (path: string, checkpoint: Checkpoint): Effect.Effect<Checkpoint, CheckpointError> => {
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

/** A directory-backed store keeping the newest `keep` checkpoints (default 3). */
export const layerDirectory = (directory: string, options: { readonly keep?: number } = {}): Layer.Layer<CheckpointStore> =>
  Layer.succeed(
    CheckpointStore,
    CheckpointStore.of({
      location: directory,
      save: (checkpoint) =>
        Effect.gen(function*() {
          const { manifest, weights } = serialise(checkpoint)
          const base = join(directory, baseName(manifest.step))
          const fail = (e: unknown) =>
            new CheckpointError({ path: `${base}.json`, reason: `write failed: ${e instanceof Error ? e.message : String(e)}` })
          yield* writeFileAtomic(`${base}.safetensors`, weights).pipe(Effect.mapError(fail))
          const json = yield* encodeManifest(manifest).pipe(Effect.mapError(fail))
          yield* writeFileAtomic(`${base}.json`, new TextEncoder().encode(json)).pipe(Effect.mapError(fail))
          const keep = options.keep ?? 3
          const names = yield* Effect.promise(() => readdir(directory))
          const steps = names.flatMap((n) => /^ckpt-(\d+)\.json$/.exec(n)?.[1] ?? []).map(Number).sort((a, b) => b - a)
          for (const old of steps.slice(keep)) {
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
        const steps = names.flatMap((n) => /^ckpt-(\d+)\.json$/.exec(n)?.[1] ?? []).map(Number).sort((a, b) => b - a)
        const newest = steps[0]
        if (newest === undefined) return Option.none()
        const manifestPath = join(directory, `${baseName(newest)}.json`)
        const fail = (reason: string) => new CheckpointError({ path: manifestPath, reason })
        const text = yield* Effect.tryPromise({
          try: () => readFile(manifestPath, "utf8"),
          catch: (e) => fail(`cannot read: ${String(e)}`)
        })
        const manifest = yield* decodeManifest(text).pipe(
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
    })
  )

/** An in-memory store (it serialises and deserialises like the directory store, so tests exercise the format). */
export const layerMemory: Layer.Layer<CheckpointStore> = Layer.effect(
  CheckpointStore,
  Effect.map(Ref.make<Option.Option<{ readonly weights: Uint8Array; readonly manifest: string }>>(Option.none()), (ref) =>
    CheckpointStore.of({
      location: "memory",
      save: (checkpoint) =>
        Effect.gen(function*() {
          const { manifest, weights } = serialise(checkpoint)
          const json = yield* encodeManifest(manifest).pipe(
            Effect.mapError((e) => new CheckpointError({ path: "memory", reason: e.message }))
          )
          yield* Ref.set(ref, Option.some({ weights, manifest: json }))
        }),
      latest: Effect.flatMap(Ref.get(ref), (stored) =>
        Option.isNone(stored)
          ? Effect.succeed(Option.none())
          : Effect.gen(function*() {
            const manifest = yield* decodeManifest(stored.value.manifest).pipe(
              Effect.mapError((e) => new CheckpointError({ path: "memory", reason: e.message }))
            )
            const file = decodeSafetensors(stored.value.weights)
            return Option.some(yield* verifyTensors("memory", { manifest, tensors: file.tensors }))
          }))
    }))
)
