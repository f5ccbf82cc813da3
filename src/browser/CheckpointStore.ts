/**
 * Distillation checkpoint stores for web pages: IndexedDB (a reload, or a later visit, resumes the run bit for bit)
 * and memory. Both keep the format of the directory store (docs/algorithm.md §9.3): the weights as safetensors bytes
 * (`sid-ts-checkpoint-weights-v1`) and a `CheckpointManifest` JSON that names their SHA-256 and tensor table, so a
 * checkpoint moves between a page and `sid distill --resume` unchanged in content.
 *
 * Where the directory store makes a save atomic with temp files and renames, here one IndexedDB transaction writes a
 * checkpoint's manifest and weights together (all or nothing); the checksum and tensor table are still verified on
 * every load, so a damaged record is reported (with the intact steps), never skipped. The store keeps the newest
 * `keep` checkpoints plus the best one (`saveBest`), as the directory store does. A state holding NaN or ±Inf (a
 * diverged run) is refused (`kind: "invalid"`), so the last good checkpoint stays the newest. Nothing here imports Node.
 *
 * @module
 */
import { Effect, Layer, Option, Schema } from "effect"
import { decodeSafetensors, encodeSafetensors, type NamedArray } from "../domain/data/Safetensors.js"
import {
  BEST_FORMAT,
  type BestCheckpoint,
  type BestOutcome,
  BestScore,
  type Checkpoint,
  CheckpointEntry,
  CheckpointError,
  CheckpointManifest,
  CheckpointStore,
  type CheckpointStoreShape,
  DEFAULT_KEEP,
  type ScoreOffer
} from "../services/CheckpointStore.js"

/**
 * The `format` metadata of the weights bytes (the directory store's).
 *
 * @since 0.2.0
 * @category constants
 */
export const WEIGHTS_FORMAT = "sid-ts-checkpoint-weights-v1"

/**
 * One stored record: the manifest JSON, the weights bytes and, for the best copy, its score JSON.
 *
 * @since 0.2.0
 * @category models
 */
export interface CheckpointRecord {
  readonly manifest: string
  readonly weights: Uint8Array
  readonly score?: string
}

/**
 * Where a store keeps its records: a key-value table whose `put` is atomic (all of a record or nothing). Keys are
 * `ckpt-<step>` (zero-padded) and `best`.
 *
 * @since 0.2.0
 * @category models
 */
export interface CheckpointRecords {
  /** Where the records are, for messages (`indexeddb:<name>`, `memory`). */
  readonly location: string
  readonly put: (key: string, record: CheckpointRecord) => Promise<void>
  readonly get: (key: string) => Promise<CheckpointRecord | undefined>
  readonly keys: () => Promise<ReadonlyArray<string>>
  readonly remove: (key: string) => Promise<void>
}

/**
 * Records in memory (gone with the page).
 *
 * @since 0.2.0
 * @category constructors
 */
export const memoryRecords = (): CheckpointRecords => {
  const table = new Map<string, CheckpointRecord>()
  return {
    location: "memory",
    put: (key, record) => Promise.resolve(void table.set(key, record)),
    get: (key) => Promise.resolve(table.get(key)),
    keys: () => Promise.resolve([...table.keys()]),
    remove: (key) => Promise.resolve(void table.delete(key))
  }
}

const OBJECT_STORE = "checkpoints"

// The few IndexedDB types used here, structurally (the library compiles without the DOM lib).
interface IdbRequest<A> {
  readonly result: A
  readonly error: unknown
  onsuccess: (() => void) | null
  onerror: (() => void) | null
}
interface IdbObjectStore {
  put(value: unknown, key: string): IdbRequest<unknown>
  get(key: string): IdbRequest<unknown>
  getAllKeys(): IdbRequest<ReadonlyArray<unknown>>
  delete(key: string): IdbRequest<unknown>
}
interface IdbTransaction {
  readonly error: unknown
  objectStore(name: string): IdbObjectStore
  oncomplete: (() => void) | null
  onabort: (() => void) | null
  onerror: (() => void) | null
}
interface IdbDatabase {
  transaction(store: string, mode: "readonly" | "readwrite"): IdbTransaction
  createObjectStore(name: string): unknown
}
interface IdbOpenRequest extends IdbRequest<IdbDatabase> {
  onupgradeneeded: (() => void) | null
}
/**
 * The part of the browser's `IDBFactory` (`indexedDB`) the store uses.
 *
 * @since 0.2.0
 * @category models
 */
export interface IdbFactory {
  open(name: string, version: number): IdbOpenRequest
  deleteDatabase(name: string): IdbRequest<unknown>
}

const errorOf = (e: unknown, fallback: string): Error => e instanceof Error ? e : new Error(e === null || e === undefined ? fallback : String(e))

const request = <A>(r: IdbRequest<A>): Promise<A> =>
  new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result)
    r.onerror = () => reject(errorOf(r.error, "IndexedDB request failed"))
  })

/**
 * Records in the page's IndexedDB database `name` (object store `checkpoints`): they survive reloads. Each `put` is
 * one read-write transaction, committed before it resolves.
 *
 * @since 0.2.0
 * @category constructors
 */
export const indexedDbRecords = (name: string, factory?: IdbFactory): CheckpointRecords => {
  let opened: Promise<IdbDatabase> | undefined
  const db = (): Promise<IdbDatabase> =>
    opened ??= new Promise((resolve, reject) => {
      const idb = factory ?? (globalThis as { indexedDB?: IdbFactory }).indexedDB
      if (idb === undefined) return reject(new Error("this environment has no IndexedDB"))
      const open = idb.open(name, 1)
      open.onupgradeneeded = () => void open.result.createObjectStore(OBJECT_STORE)
      open.onsuccess = () => resolve(open.result)
      open.onerror = () => reject(errorOf(open.error, `cannot open IndexedDB database ${name}`))
    })
  const run = async <A>(mode: "readonly" | "readwrite", f: (s: IdbObjectStore) => IdbRequest<A>): Promise<A> => {
    const tx = (await db()).transaction(OBJECT_STORE, mode)
    const done = new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve()
      tx.onabort = () => reject(errorOf(tx.error, "IndexedDB transaction aborted"))
      tx.onerror = () => reject(errorOf(tx.error, "IndexedDB transaction failed"))
    })
    const result = await request(f(tx.objectStore(OBJECT_STORE)))
    await done
    return result
  }
  return {
    location: `indexeddb:${name}`,
    put: (key, record) => run("readwrite", (s) => s.put(record, key)).then(() => undefined),
    get: (key) => run("readonly", (s) => s.get(key) as IdbRequest<CheckpointRecord | undefined>),
    keys: () => run("readonly", (s) => s.getAllKeys()).then((ks) => ks.map(String)),
    remove: (key) => run("readwrite", (s) => s.delete(key)).then(() => undefined)
  }
}

/**
 * Deletes the IndexedDB database `name` (a fresh start for a page).
 *
 * @since 0.2.0
 * @category utils
 */
export const deleteIndexedDbStore = (name: string, factory?: IdbFactory): Promise<void> =>
  new Promise((resolve, reject) => {
    const idb = factory ?? (globalThis as { indexedDB?: IdbFactory }).indexedDB
    if (idb === undefined) return resolve()
    const r = idb.deleteDatabase(name)
    r.onsuccess = () => resolve()
    r.onerror = () => reject(errorOf(r.error, `cannot delete IndexedDB database ${name}`))
  })

const keyOf = (step: number): string => `ckpt-${String(step).padStart(8, "0")}`
const KEY = /^ckpt-(\d+)$/
const BEST_KEY = "best"

const hex = (bytes: ArrayBuffer): string => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("")

/**
 * SHA-256 of bytes, hex (Web Crypto: browsers, workers and Node 20 alike).
 *
 * @since 0.2.0
 * @category utils
 */
export const sha256Hex = (bytes: Uint8Array): Promise<string> =>
  globalThis.crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>).then(hex)

const decodeManifest = Schema.decodeUnknown(Schema.parseJson(CheckpointManifest))
const encodeManifest = Schema.encode(Schema.parseJson(CheckpointManifest))
const decodeBest = Schema.decodeUnknown(Schema.parseJson(BestScore))
const encodeBest = Schema.encode(Schema.parseJson(BestScore))

const failedOp = (location: string, kind: "write-failed" | "read-failed", what: string, step?: number) => (e: unknown) =>
  new CheckpointError({
    path: location,
    kind,
    ...(step === undefined ? {} : { step }),
    reason: `could not ${what} (${e instanceof Error ? e.message : String(e)})`,
    advice: kind === "write-failed"
      ? "the browser may be out of storage for this site (free some, or allow more); the checkpoints stored before are unchanged"
      : "the browser's storage for this site may have been cleared or blocked; start a new run"
  })

/**
 * A distillation checkpoint store over `records`, keeping the newest `keep` checkpoints (default 3, at least 1) plus
 * the best one. The contract is `CheckpointStoreShape`'s; `recover` has nothing to remove (a put is atomic).
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeStore = (records: CheckpointRecords, keep: number = DEFAULT_KEEP): CheckpointStoreShape => {
  const location = records.location
  if (!Number.isInteger(keep) || keep < 1) {
    throw new CheckpointError({ path: location, kind: "invalid", reason: `keep = ${keep}: must be an integer of at least 1` })
  }
  const io = <A>(kind: "write-failed" | "read-failed", what: string, run: () => Promise<A>, step?: number) =>
    Effect.tryPromise({ try: run, catch: failedOp(location, kind, what, step) })

  const serialise = (checkpoint: Checkpoint) =>
    Effect.gen(function*() {
      const nonFinite = [...checkpoint.tensors].filter(([, a]) => a.dtype === "float32" && !a.values.every(Number.isFinite))
      if (nonFinite.length > 0) {
        return yield* new CheckpointError({
          path: location,
          kind: "invalid",
          step: checkpoint.manifest.step,
          reason: `the state of step ${checkpoint.manifest.step} holds NaN or ±Inf (${nonFinite.map(([n]) => n).slice(0, 3).join(", ")}${
            nonFinite.length > 3 ? ", …" : ""
          }): the run diverged, so it is not stored`,
          advice: "the last good checkpoint stays the newest; resume from it with a lower learning rate"
        })
      }
      const weights = encodeSafetensors(checkpoint.tensors, { format: WEIGHTS_FORMAT })
      const digest = yield* Effect.promise(() => sha256Hex(weights))
      const manifest = new CheckpointManifest({
        ...checkpoint.manifest,
        weightsFile: `${keyOf(checkpoint.manifest.step)}-${digest.slice(0, 16)}.safetensors`,
        weightsSha256: digest,
        tensors: Object.fromEntries([...checkpoint.tensors].map(([n, a]) => [n, [...a.shape]]))
      })
      const json = yield* Effect.orDie(encodeManifest(manifest))
      return { manifest: json, weights }
    })

  const damaged = (key: string, step: number | undefined, reason: string) =>
    new CheckpointError({ path: `${location}/${key}`, kind: "damaged", ...(step === undefined ? {} : { step }), reason })

  /** Decodes and verifies one record: the manifest, the weights' checksum, the tensor table. */
  const open = (key: string, record: CheckpointRecord, step?: number): Effect.Effect<Checkpoint, CheckpointError> =>
    Effect.gen(function*() {
      const manifest = yield* decodeManifest(record.manifest).pipe(
        Effect.mapError((e) => damaged(key, step, `its manifest is not valid: ${e.message.split("\n")[0]}`))
      )
      const digest = yield* Effect.promise(() => sha256Hex(record.weights))
      if (digest !== manifest.weightsSha256) {
        return yield* damaged(key, manifest.step, `the weights' SHA-256 is ${digest}, the manifest says ${manifest.weightsSha256}`)
      }
      const file = yield* Effect.try({
        try: () => decodeSafetensors(record.weights),
        catch: (e) => damaged(key, manifest.step, `the weights are not valid safetensors (${e instanceof Error ? e.message : String(e)})`)
      })
      const listed = Object.entries(manifest.tensors)
      const mismatch = listed.length !== file.tensors.size ||
        listed.some(([n, s]) => JSON.stringify(file.tensors.get(n)?.shape) !== JSON.stringify(s))
      if (mismatch) return yield* damaged(key, manifest.step, "the weights do not match the manifest's tensor table")
      return { manifest, tensors: file.tensors as ReadonlyMap<string, NamedArray> }
    })

  const steps = io("read-failed", "list the stored checkpoints", () => records.keys()).pipe(
    Effect.map((keys) => keys.flatMap((k) => {
      const m = KEY.exec(k)
      return m === null ? [] : [Number(m[1])]
    }).sort((a, b) => b - a))
  )

  const read = (key: string, step?: number) =>
    Effect.flatMap(io("read-failed", `read ${key}`, () => records.get(key), step), (r) =>
      r === undefined
        ? Effect.fail(new CheckpointError({ path: `${location}/${key}`, kind: "not-found", ...(step === undefined ? {} : { step }), reason: "no such checkpoint" }))
        : Effect.succeed(r))

  const intact = (except?: number) =>
    Effect.gen(function*() {
      const out: Array<number> = []
      for (const s of yield* steps) {
        if (s === except) continue
        const ok = yield* Effect.either(Effect.flatMap(read(keyOf(s), s), (r) => open(keyOf(s), r, s)))
        if (ok._tag === "Right") out.push(s)
      }
      const best = yield* Effect.either(bestOf)
      if (best._tag === "Right" && Option.isSome(best.right) && !out.includes(best.right.value.score.step)) {
        out.push(best.right.value.score.step)
      }
      return out
    })

  const bestOf: Effect.Effect<Option.Option<BestCheckpoint<CheckpointManifest>>, CheckpointError> = Effect.gen(function*() {
    const record = yield* io("read-failed", "read the best checkpoint", () => records.get(BEST_KEY))
    if (record === undefined) return Option.none()
    const score = yield* decodeBest(record.score ?? "").pipe(
      Effect.mapError((e) => damaged(BEST_KEY, undefined, `its score is not valid: ${e.message.split("\n")[0]}`))
    )
    const checkpoint = yield* open(BEST_KEY, record, score.step)
    return Option.some({ checkpoint, score })
  })

  const withIntact = (e: CheckpointError, except?: number) =>
    Effect.flatMap(Effect.orElseSucceed(intact(except), () => []), (intactSteps) =>
      Effect.fail(
        new CheckpointError({
          path: e.path,
          kind: e.kind,
          reason: e.reason,
          ...(e.step === undefined ? {} : { step: e.step }),
          intactSteps,
          advice: intactSteps.length === 0 ? "start a new run" : `continue from an intact step with load(step)`
        })
      ))

  const save = (checkpoint: Checkpoint) =>
    Effect.uninterruptible(Effect.gen(function*() {
      const step = checkpoint.manifest.step
      const record = yield* serialise(checkpoint)
      yield* io("write-failed", `write the checkpoint of step ${step}`, () => records.put(keyOf(step), record), step)
      const stored = yield* steps
      const kept = new Set([step, ...stored.filter((s) => s !== step).slice(0, keep - 1)])
      for (const s of stored.filter((s) => !kept.has(s))) {
        yield* io("write-failed", `remove the checkpoint of step ${s}`, () => records.remove(keyOf(s)), s)
      }
    }))

  return {
    location,
    keep,
    save,
    latest: Effect.gen(function*() {
      const newest = (yield* steps)[0]
      if (newest === undefined) return Option.none()
      const key = keyOf(newest)
      return yield* Effect.map(Effect.flatMap(read(key, newest), (r) => open(key, r, newest)), Option.some).pipe(
        Effect.catchAll((e) => withIntact(e, newest))
      )
    }),
    load: (step) =>
      Effect.gen(function*() {
        const key = keyOf(step)
        const record = yield* Effect.either(read(key, step))
        if (record._tag === "Right") return yield* open(key, record.right, step)
        const best = yield* bestOf
        if (Option.isSome(best) && best.value.score.step === step) return best.value.checkpoint
        return yield* record.left
      }).pipe(Effect.catchAll((e) => withIntact(e, step))),
    list: Effect.gen(function*() {
      const entries: Array<CheckpointEntry> = []
      const status = (r: Effect.Effect<unknown, CheckpointError>) =>
        Effect.map(Effect.either(r), (e) => e._tag === "Right" ? { _tag: "Intact" as const } : { _tag: "Damaged" as const, reason: e.left.reason })
      for (const s of yield* steps) {
        const key = keyOf(s)
        entries.push(new CheckpointEntry({ step: s, path: `${location}/${key}`, best: false, status: yield* status(Effect.flatMap(read(key, s), (r) => open(key, r, s))) }))
      }
      const record = yield* io("read-failed", "read the best checkpoint", () => records.get(BEST_KEY))
      if (record !== undefined) {
        const score = yield* Effect.either(decodeBest(record.score ?? ""))
        entries.push(new CheckpointEntry({
          step: score._tag === "Right" ? score.right.step : 0,
          path: `${location}/${BEST_KEY}`,
          best: true,
          status: yield* status(bestOf)
        }))
      }
      return entries
    }),
    saveBest: (checkpoint, offer: ScoreOffer) =>
      Effect.uninterruptible(Effect.gen(function*() {
        const previous = Option.map(yield* bestOf, (b) => b.score)
        const lowerIsBetter = offer.lowerIsBetter ?? true
        if (Option.isSome(previous) && (previous.value.metric !== offer.metric || previous.value.lowerIsBetter !== lowerIsBetter)) {
          return yield* new CheckpointError({
            path: location,
            kind: "invalid",
            reason: `the best checkpoint is ranked by ${previous.value.metric}, the offer by ${offer.metric}`
          })
        }
        const better = Number.isFinite(offer.value) && (Option.isNone(previous) ||
          (lowerIsBetter ? offer.value < previous.value.value : offer.value > previous.value.value))
        if (!better) return { replaced: false, best: previous, previous } satisfies BestOutcome
        const score = new BestScore({
          format: BEST_FORMAT,
          step: checkpoint.manifest.step,
          metric: offer.metric,
          value: offer.value,
          lowerIsBetter,
          recordedAt: new Date().toISOString()
        })
        const record = yield* serialise(checkpoint)
        const scoreJson = yield* Effect.orDie(encodeBest(score))
        yield* io("write-failed", "write the best checkpoint", () => records.put(BEST_KEY, { ...record, score: scoreJson }), score.step)
        return { replaced: true, best: Option.some(score), previous } satisfies BestOutcome
      })),
    best: bestOf,
    recover: Effect.succeed({ removed: [] })
  }
}

/**
 * An in-memory distillation store (gone with the page).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerMemory = (keep?: number): Layer.Layer<CheckpointStore> =>
  Layer.sync(CheckpointStore, () => makeStore(memoryRecords(), keep))

/**
 * A distillation store in the page's IndexedDB database `name`: a reload (or another tab of the same origin) finds
 * the run's checkpoints and `distill(config, { resume: true })` continues it bit for bit.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerIndexedDb = (name: string, keep?: number): Layer.Layer<CheckpointStore> =>
  Layer.sync(CheckpointStore, () => makeStore(indexedDbRecords(name), keep))
