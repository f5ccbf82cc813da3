/**
 * Checkpoint stores: a directory of safetensors + JSON manifests, or memory (for tests).
 *
 * Layout of a directory store:
 *
 * - `ckpt-<step>.json` (the manifest) and `ckpt-<step>-<sha>.safetensors` (the weights it names, by content) for
 *   each of the newest `keep` checkpoints (default 3);
 * - `best/`: a copy of the best checkpoint in the same format, plus `best.json` (a {@link BestScore}: step, metric,
 *   value), never rotated away.
 *
 * The weights are written first and the manifest last, each atomically (temp file, fsync, rename), and the manifest
 * carries the weights' SHA-256: a manifest therefore only ever names a complete weights file, and damage is detected
 * on load. Since the weights file is named by its content, re-saving a step never touches the weights the current
 * manifest names. In `best/`, `best.json` is written last and commits the new best. A crash can leave temp files and
 * weights no manifest names; `recover` removes them. Older checkpoints are pruned after a save.
 *
 * The manifest types and the service are in the portable `services/CheckpointStore.ts`; these stores read and write
 * through Node (`node:fs`, `node:crypto`). The logic is generic in the manifest ({@link directoryStore}, {@link memoryStore}): any manifest schema with a step,
 * the weights file's name and checksum and a table of tensor shapes can be stored. Distillation
 * ({@link layerDirectory}, {@link layerMemory}) and teacher training (`TeacherCheckpointStore`) use it with their own
 * manifests (docs/algorithm.md §9.3). The memory store runs the same logic over an in-memory file table, so it behaves alike.
 *
 * @module
 */
import { createHash } from "node:crypto"
import { createReadStream } from "node:fs"
import { open, readdir, readFile, rm } from "node:fs/promises"
import { join, posix } from "node:path"
import { Effect, Either, Option, Schema } from "effect"
import { decodeSafetensors, encodeSafetensors } from "../../../domain/data/Safetensors.js"
import {
  BEST_FORMAT,
  type BestOutcome,
  BestScore,
  CheckpointEntry,
  CheckpointError,
  type CheckpointStatus,
  DEFAULT_KEEP,
  KeepCount,
  type ScoreOffer,
  type Store,
  type StoredCheckpoint,
  type StoredManifest,
  type StoreFormat,
  type StoreOptions
} from "../../CheckpointStore.js"
import { AtomicWriteError, errorCode, isTempFileName, writeFailureAdvice, writeFileAtomic } from "../../../platform/AtomicFile.js"


/**
 * Options of a directory store.
 *
 * @since 0.1.0
 * @category models
 */
export interface DirectoryStoreOptions extends StoreOptions {
  /**
   * Writes one file atomically (default: `writeFileAtomic`). Replace it to inject write failures in tests; a failure's
   * `code` property (`ENOSPC`, ...) is reported on the resulting {@link CheckpointError}.
   */
  readonly writeFile?: (path: string, bytes: Uint8Array) => Effect.Effect<void, Error>
}

// ---------------------------------------------------------------------------------------------------------------------
// Files: the few file operations the store needs, on disk or in memory.

/** A failed file operation: its system error code, if any, and its message. */
interface IoFailure {
  readonly code: string | undefined
  readonly message: string
}

interface DirEntry {
  readonly name: string
  readonly isFile: boolean
}

interface Files {
  readonly join: (dir: string, name: string) => string
  /** The entries of a directory; none if it does not exist. */
  readonly list: (dir: string) => Effect.Effect<ReadonlyArray<DirEntry>, IoFailure>
  readonly read: (path: string) => Effect.Effect<Uint8Array, IoFailure>
  /** The first `length` bytes (fewer if the file is shorter). */
  readonly readPrefix: (path: string, length: number) => Effect.Effect<Uint8Array, IoFailure>
  /** SHA-256 and size, streaming (without holding the file). */
  readonly digest: (path: string) => Effect.Effect<{ readonly sha256: string; readonly size: number }, IoFailure>
  /** Writes a file atomically, creating its directory. */
  readonly write: (path: string, bytes: Uint8Array) => Effect.Effect<void, IoFailure>
  /** Removes a file; no error if it does not exist. */
  readonly remove: (path: string) => Effect.Effect<void, IoFailure>
}

const ioFailure = (e: unknown): IoFailure =>
  e instanceof AtomicWriteError
    ? { code: e.code, message: e.reason }
    : { code: errorCode(e), message: e instanceof Error ? e.message : String(e) }

const io = <A>(run: () => Promise<A>): Effect.Effect<A, IoFailure> => Effect.tryPromise({ try: run, catch: ioFailure })

/** Whether a failure means the path does not exist (or a part of it is not a directory): nothing stored there. */
const isAbsent = (e: unknown): boolean => errorCode(e) === "ENOENT" || errorCode(e) === "ENOTDIR"

const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

const nodeFiles = (write: (path: string, bytes: Uint8Array) => Effect.Effect<void, Error>): Files => ({
  join,
  list: (dir) =>
    io(async () => {
      try {
        return (await readdir(dir, { withFileTypes: true })).map((d) => ({ name: d.name, isFile: d.isFile() }))
      } catch (e) {
        if (isAbsent(e)) return []
        throw e
      }
    }),
  read: (path) =>
    io(async () => {
      const b = await readFile(path)
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
    }),
  readPrefix: (path, length) =>
    io(async () => {
      const handle = await open(path, "r")
      try {
        const buffer = new Uint8Array(length)
        const { bytesRead } = await handle.read(buffer, 0, length, 0)
        return buffer.subarray(0, bytesRead)
      } finally {
        await handle.close()
      }
    }),
  digest: (path) =>
    io(() =>
      new Promise<{ readonly sha256: string; readonly size: number }>((resolve, reject) => {
        const hash = createHash("sha256")
        let size = 0
        createReadStream(path)
          .on("data", (chunk: string | Buffer) => {
            hash.update(chunk)
            size += chunk.length
          })
          .on("error", reject)
          .on("end", () => resolve({ sha256: hash.digest("hex"), size }))
      })
    ),
  write: (path, bytes) => Effect.mapError(write(path, bytes), ioFailure),
  remove: (path) => io(() => rm(path, { force: true }))
})

const memoryFiles = (): Files => {
  const table = new Map<string, Uint8Array>()
  const get = (path: string): Effect.Effect<Uint8Array, IoFailure> =>
    Effect.suspend(() => {
      const bytes = table.get(path)
      return bytes === undefined ? Effect.fail({ code: "ENOENT", message: `no such file: ${path}` }) : Effect.succeed(bytes)
    })
  return {
    join: posix.join,
    list: (dir) =>
      Effect.sync(() => {
        const prefix = `${dir}/`
        const entries = new Map<string, boolean>()
        for (const key of table.keys()) {
          if (!key.startsWith(prefix)) continue
          const rest = key.slice(prefix.length)
          const slash = rest.indexOf("/")
          if (slash === -1) entries.set(rest, true)
          else if (!entries.has(rest.slice(0, slash))) entries.set(rest.slice(0, slash), false)
        }
        return [...entries].map(([name, isFile]) => ({ name, isFile }))
      }),
    read: get,
    readPrefix: (path, length) => Effect.map(get(path), (bytes) => bytes.subarray(0, length)),
    digest: (path) => Effect.map(get(path), (bytes) => ({ sha256: sha256(bytes), size: bytes.byteLength })),
    write: (path, bytes) => Effect.sync(() => void table.set(path, bytes)),
    remove: (path) => Effect.sync(() => void table.delete(path))
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// The store.

const baseName = (step: number): string => `ckpt-${String(step).padStart(8, "0")}`
const manifestName = (step: number): string => `${baseName(step)}.json`
const MANIFEST_NAME = /^ckpt-(\d+)\.json$/
const BEST_DIR = "best"
const BEST_FILE = "best.json"

const codec = <M extends StoredManifest, I>(format: StoreFormat<M, I>) => ({
  decode: Schema.decodeUnknown(Schema.parseJson(format.manifest)),
  encode: Schema.encode(Schema.parseJson(format.manifest, { space: 2 }))
})

const decodeBest = (input: unknown) => Schema.decodeUnknown(Schema.parseJson(BestScore))(input)
const encodeBest = (best: typeof BestScore.Type) => Schema.encode(Schema.parseJson(BestScore, { space: 2 }))(best)

const utf8 = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)
const bytesOf = (text: string): Uint8Array => new TextEncoder().encode(text)
const firstLine = (text: string): string => text.split("\n")[0] ?? text

/** Serialises a checkpoint: the weights bytes and the manifest with their (content-named) file and checksum. */
const serialise = <M extends StoredManifest, I>(
  format: StoreFormat<M, I>,
  checkpoint: StoredCheckpoint<M>
): { readonly weights: Uint8Array; readonly manifest: M } => {
  const weights = encodeSafetensors(checkpoint.tensors, { format: format.weightsFormat })
  const digest = sha256(weights)
  const manifest = format.withFiles(checkpoint.manifest, {
    weightsFile: `${baseName(checkpoint.manifest.step)}-${digest.slice(0, 16)}.safetensors`,
    weightsSha256: digest,
    tensors: Object.fromEntries([...checkpoint.tensors].map(([n, a]) => [n, [...a.shape]]))
  })
  return { weights, manifest }
}

/** The tensors a manifest lists that are missing, unexpected or mis-shaped in `actual` (name → shape). */
/** Whether a comparison of a weights file with its manifest found any difference. */
const tensorsDisagree = (m: { readonly missing: ReadonlyArray<string>; readonly unexpected: ReadonlyArray<string>; readonly misShaped: ReadonlyArray<string> }) =>
  m.missing.length + m.unexpected.length + m.misShaped.length > 0

/** A weights file that does not hold the tensors its manifest lists. */
const weightsMismatch = (
  path: string,
  step: number,
  m: { readonly missing: ReadonlyArray<string>; readonly unexpected: ReadonlyArray<string>; readonly misShaped: ReadonlyArray<string> }
) => new CheckpointError({ path, kind: "damaged", step, reason: "the weights file does not match its manifest", ...m })

const compareTensors = (
  expected: { readonly [name: string]: ReadonlyArray<number> },
  actual: ReadonlyMap<string, ReadonlyArray<number>>
) => ({
  missing: Object.keys(expected).filter((n) => !actual.has(n)),
  unexpected: [...actual.keys()].filter((n) => !Object.hasOwn(expected, n)),
  misShaped: Object.entries(expected).flatMap(([n, shape]) => {
    const s = actual.get(n)
    return s !== undefined && JSON.stringify(s) !== JSON.stringify(shape) ? [n] : []
  })
})

/** A one-line summary of a damage report, for `list`. */
const summary = (e: CheckpointError): string => {
  const counts = [
    e.missing.length > 0 ? `${e.missing.length} missing` : "",
    e.unexpected.length > 0 ? `${e.unexpected.length} unexpected` : "",
    e.misShaped.length > 0 ? `${e.misShaped.length} mis-shaped` : ""
  ].filter((s) => s !== "")
  return counts.length === 0 ? e.reason : `${e.reason} (${counts.join(", ")} tensors)`
}

/** `e` with the intact steps one could use instead and advice. */
const withAlternatives = (e: CheckpointError, intactSteps: ReadonlyArray<number>, advice: string): CheckpointError =>
  new CheckpointError({
    path: e.path,
    reason: e.reason,
    kind: e.kind,
    ...(e.step === undefined ? {} : { step: e.step }),
    ...(e.code === undefined ? {} : { code: e.code }),
    missing: e.missing,
    unexpected: e.unexpected,
    misShaped: e.misShaped,
    intactSteps,
    advice
  })

const validKeep = (keep: number | undefined, location: string): Effect.Effect<number, CheckpointError> =>
  Schema.decodeUnknown(KeepCount)(keep ?? DEFAULT_KEEP).pipe(
    Effect.mapError(() =>
      new CheckpointError({
        path: location,
        kind: "invalid",
        reason: `keep = ${String(keep)}: must be an integer of at least 1`,
        advice: "keep at least the newest checkpoint (e.g. --keep 1; the default is 3)"
      })
    )
  )

const makeStore = <M extends StoredManifest, I>(
  format: StoreFormat<M, I>,
  files: Files,
  root: string,
  keep: number
): Store<M> => {
  const { decode, encode } = codec(format)
  const bestDir = files.join(root, BEST_DIR)
  const bestFile = files.join(bestDir, BEST_FILE)

  const readFailed = (path: string) => (e: IoFailure): CheckpointError =>
    new CheckpointError({
      path,
      kind: "read-failed",
      reason: `cannot read it (${e.message})`,
      ...(e.code === undefined ? {} : { code: e.code }),
      advice: "check that it is a readable directory"
    })

  const writeFailed = (path: string, step: number | undefined, what: string) => (e: IoFailure): CheckpointError =>
    new CheckpointError({
      path,
      kind: "write-failed",
      ...(step === undefined ? {} : { step }),
      ...(e.code === undefined ? {} : { code: e.code }),
      reason: `could not write ${what} (${e.message})`,
      advice: `${writeFailureAdvice(e.code)}. The checkpoints stored before are unchanged.`
    })

  /** The steps with a manifest in `dir`, newest first. */
  const stepsIn = (dir: string): Effect.Effect<Array<number>, CheckpointError> =>
    files.list(dir).pipe(
      Effect.mapError(readFailed(dir)),
      Effect.map((entries) =>
        entries.flatMap((e) => (e.isFile ? MANIFEST_NAME.exec(e.name)?.[1] ?? [] : [])).map(Number).sort((a, b) => b - a)
      )
    )

  /** The manifest of `step` in `dir`, checked against its file name. */
  const readManifest = (dir: string, step: number) =>
    Effect.gen(function*() {
      const path = files.join(dir, manifestName(step))
      const damaged = (reason: string) => new CheckpointError({ path, kind: "damaged", step, reason })
      const bytes = yield* files.read(path).pipe(
        Effect.mapError((e) =>
          damaged(e.code === "ENOENT" ? "its manifest is missing" : `its manifest cannot be read (${e.message})`)
        )
      )
      const manifest = yield* decode(utf8(bytes)).pipe(
        Effect.mapError((e) => damaged(`corrupt manifest (${firstLine(e.message)})`))
      )
      if (manifest.step !== step) return yield* damaged(`its manifest is for step ${manifest.step}`)
      if (posix.basename(manifest.weightsFile) !== manifest.weightsFile || manifest.weightsFile.includes("\\")) {
        return yield* damaged(`its manifest names a weights file outside its directory (${manifest.weightsFile})`)
      }
      const weightsUnreadable = (e: IoFailure) =>
        damaged(
          e.code === "ENOENT"
            ? `its weights file ${manifest.weightsFile} is missing`
            : `its weights file ${manifest.weightsFile} cannot be read (${e.message})`
        )
      return { manifest, path, weightsPath: files.join(dir, manifest.weightsFile), damaged, weightsUnreadable }
    })

  /** Loads and verifies the checkpoint of `step` in `dir` (checksum, then every tensor's name and shape). */
  const loadAt = (dir: string, step: number): Effect.Effect<StoredCheckpoint<M>, CheckpointError> =>
    Effect.gen(function*() {
      const { damaged, manifest, path, weightsPath, weightsUnreadable } = yield* readManifest(dir, step)
      const bytes = yield* files.read(weightsPath).pipe(Effect.mapError(weightsUnreadable))
      if (sha256(bytes) !== manifest.weightsSha256) {
        return yield* damaged(`weights file ${manifest.weightsFile} is corrupt (checksum mismatch)`)
      }
      const file = yield* Effect.try({
        try: () => decodeSafetensors(bytes),
        catch: (e) => damaged(`weights file ${manifest.weightsFile}: ${e instanceof Error ? e.message : String(e)}`)
      })
      const mismatch = compareTensors(manifest.tensors, new Map([...file.tensors].map(([n, t]) => [n, t.shape])))
      if (tensorsDisagree(mismatch)) return yield* weightsMismatch(path, step, mismatch)
      return { manifest, tensors: file.tensors }
    })

  /** Reads the safetensors header of a weights file: tensor shapes by name, without the data. */
  const readHeader = (path: string, size: number, damaged: (reason: string) => CheckpointError, unreadable: (e: IoFailure) => CheckpointError) =>
    Effect.gen(function*() {
      const head = yield* files.readPrefix(path, 8).pipe(Effect.mapError(unreadable))
      if (head.byteLength < 8) return yield* damaged(`its weights file is ${size} bytes long: too short`)
      const length = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true)
      if (length > BigInt(size - 8)) return yield* damaged("its weights file's header is truncated")
      const bytes = yield* files.readPrefix(path, 8 + Number(length)).pipe(Effect.mapError(unreadable))
      const header = yield* Effect.try({
        try: () => JSON.parse(utf8(bytes.subarray(8))) as unknown,
        catch: () => damaged("its weights file's header is not valid JSON")
      })
      if (typeof header !== "object" || header === null || Array.isArray(header)) {
        return yield* damaged("its weights file's header is not a JSON object")
      }
      const shapes = new Map<string, ReadonlyArray<number>>()
      for (const [name, entry] of Object.entries(header)) {
        if (name === "__metadata__") continue
        const shape: unknown = typeof entry === "object" && entry !== null ? (entry as { readonly shape?: unknown }).shape : undefined
        shapes.set(name, Array.isArray(shape) ? shape.map(Number) : [])
      }
      return shapes
    })

  /** The status of the checkpoint of `step` in `dir`: manifest, checksum and tensor table, without decoding tensors. */
  const inspectAt = (dir: string, step: number): Effect.Effect<CheckpointStatus> =>
    Effect.gen(function*() {
      const { damaged, manifest, path, weightsPath, weightsUnreadable } = yield* readManifest(dir, step)
      const { sha256: digest, size } = yield* files.digest(weightsPath).pipe(Effect.mapError(weightsUnreadable))
      if (digest !== manifest.weightsSha256) {
        return yield* damaged(`weights file ${manifest.weightsFile} is corrupt (checksum mismatch)`)
      }
      const shapes = yield* readHeader(weightsPath, size, damaged, weightsUnreadable)
      const mismatch = compareTensors(manifest.tensors, shapes)
      if (tensorsDisagree(mismatch)) return yield* weightsMismatch(path, step, mismatch)
      return { _tag: "Intact" } as const
    }).pipe(
      Effect.catchAll((e): Effect.Effect<CheckpointStatus> => Effect.succeed({ _tag: "Damaged", reason: summary(e) }))
    )

  /** The score in `best/best.json`; none if there is no best yet; fails if it is unreadable. */
  const bestScore: Effect.Effect<Option.Option<BestScore>, CheckpointError> = Effect.gen(function*() {
    const damaged = (reason: string) =>
      new CheckpointError({
        path: bestFile,
        kind: "damaged",
        reason,
        advice: `move ${bestDir} away to track the best checkpoint afresh`
      })
    const bytes = yield* files.read(bestFile).pipe(
      Effect.map(Option.some),
      Effect.catchAll((e) =>
        isAbsent(e) ? Effect.succeed(Option.none()) : Effect.fail(damaged(`cannot read it (${e.message})`))
      )
    )
    if (Option.isNone(bytes)) return Option.none()
    return Option.some(
      yield* decodeBest(utf8(bytes.value)).pipe(Effect.mapError((e) => damaged(`corrupt best.json (${firstLine(e.message)})`)))
    )
  })

  const list: Effect.Effect<ReadonlyArray<CheckpointEntry>, CheckpointError> = Effect.gen(function*() {
    const entries: Array<CheckpointEntry> = []
    for (const step of yield* stepsIn(root)) {
      const status = yield* inspectAt(root, step)
      entries.push(new CheckpointEntry({ step, path: files.join(root, manifestName(step)), best: false, status }))
    }
    const best = yield* Effect.either(bestScore)
    if (Either.isRight(best) && Option.isSome(best.right)) {
      const step = best.right.value.step
      const status = yield* inspectAt(bestDir, step)
      entries.push(new CheckpointEntry({ step, path: files.join(bestDir, manifestName(step)), best: true, status }))
    } else if (Either.isLeft(best)) {
      const steps = yield* Effect.orElseSucceed(stepsIn(bestDir), () => [])
      for (const step of steps) {
        const status = { _tag: "Damaged", reason: best.left.reason } as const
        entries.push(new CheckpointEntry({ step, path: files.join(bestDir, manifestName(step)), best: true, status }))
      }
    }
    return entries
  })

  /** The intact steps (kept or best), newest first, that satisfy `keepStep`. */
  const intactSteps = (keepStep: (step: number) => boolean): Effect.Effect<Array<number>, CheckpointError> =>
    Effect.map(list, (entries) =>
      [...new Set(entries.filter((e) => e.status._tag === "Intact" && keepStep(e.step)).map((e) => e.step))].sort((a, b) => b - a)
    )

  /** The checkpoint of `step` from the kept ones, else from the best copy (the same step). */
  const loadStep = (step: number, kept: ReadonlyArray<number>): Effect.Effect<Option.Option<StoredCheckpoint<M>>, CheckpointError> =>
    Effect.gen(function*() {
      const score = yield* Effect.orElseSucceed(bestScore, () => Option.none<BestScore>())
      const fromBest = Option.isSome(score) && score.value.step === step
      if (!kept.includes(step)) return fromBest ? Option.some(yield* loadAt(bestDir, step)) : Option.none()
      return Option.some(
        yield* loadAt(root, step).pipe(
          Effect.catchAll((e) => (fromBest ? Effect.orElseFail(loadAt(bestDir, step), () => e) : Effect.fail(e)))
        )
      )
    })

  const load = (step: number): Effect.Effect<StoredCheckpoint<M>, CheckpointError> =>
    Effect.gen(function*() {
      const kept = yield* stepsIn(root)
      const loaded = yield* loadStep(step, kept).pipe(
        Effect.catchAll((e) =>
          Effect.flatMap(intactSteps((s) => s !== step), (intact) =>
            Effect.fail(withAlternatives(
              e,
              intact,
              intact.length === 0
                ? `no intact checkpoint is left in ${root}`
                : `continue from one of the intact steps instead (--resume-from <step>)`
            ))
          )
        )
      )
      if (Option.isSome(loaded)) return loaded.value
      const intact = yield* intactSteps(() => true)
      return yield* new CheckpointError({
        path: root,
        kind: "not-found",
        step,
        reason: `there is no checkpoint at step ${step}`,
        intactSteps: intact,
        advice: intact.length === 0
          ? `${root} holds no intact checkpoint`
          : "choose one of the intact steps (--resume-from <step>)"
      })
    })

  const latest: Effect.Effect<Option.Option<StoredCheckpoint<M>>, CheckpointError> = Effect.gen(function*() {
    const kept = yield* stepsIn(root)
    const newest = kept[0]
    if (newest === undefined) return Option.none()
    return yield* loadStep(newest, kept).pipe(
      Effect.catchAll((e) =>
        Effect.flatMap(intactSteps((s) => s < newest), (intact) =>
          Effect.fail(
            new CheckpointError({
              path: e.path,
              kind: "damaged",
              step: newest,
              reason: `the newest checkpoint (step ${newest}) is damaged: ${e.reason}`,
              missing: e.missing,
              unexpected: e.unexpected,
              misShaped: e.misShaped,
              intactSteps: intact,
              advice: intact.length === 0
                ? `no intact older checkpoint is left in ${root}: start afresh in a new --run-dir (nothing was changed here)`
                : `nothing was changed; to continue from an intact older checkpoint, resume with --resume-from <step> ` +
                  `(the newest intact one: --resume-from ${intact[0]}), or move the damaged ${baseName(newest)}.* files away`
            })
          )
        )
      )
    )
  })

  /**
   * Removes crash leftovers in `dir`: temp files, weights no manifest names and, in `best/`, manifests `best.json`
   * does not name (if `best.json` is unreadable, only temp files). Returns the removed paths.
   */
  const sweep = (dir: string, isBest: boolean): Effect.Effect<Array<string>, CheckpointError> =>
    Effect.gen(function*() {
      const names = (yield* files.list(dir).pipe(Effect.mapError(readFailed(dir)))).flatMap((e) => (e.isFile ? [e.name] : []))
      let manifests = names.filter((n) => MANIFEST_NAME.test(n))
      const doomed = names.filter(isTempFileName)
      let protectAll = false
      if (isBest) {
        const score = yield* Effect.either(bestScore)
        if (Either.isLeft(score)) protectAll = true
        else {
          const keepName = Option.map(score.right, (s) => manifestName(s.step))
          doomed.push(...manifests.filter((n) => !Option.contains(keepName, n)))
          manifests = manifests.filter((n) => Option.contains(keepName, n))
        }
      }
      const referenced = new Set<string>()
      const protectedBases: Array<string> = []
      for (const name of manifests) {
        const weightsFile = yield* files.read(files.join(dir, name)).pipe(
          Effect.map((bytes) => {
            try {
              const parsed: unknown = JSON.parse(utf8(bytes))
              const file = typeof parsed === "object" && parsed !== null ? (parsed as { readonly weightsFile?: unknown }).weightsFile : undefined
              return typeof file === "string" ? file : undefined
            } catch {
              return undefined
            }
          }),
          Effect.orElseSucceed(() => undefined)
        )
        if (weightsFile === undefined) protectedBases.push(name.slice(0, -".json".length))
        else referenced.add(weightsFile)
      }
      if (!protectAll) {
        doomed.push(...names.filter((n) =>
          n.endsWith(".safetensors") && !referenced.has(n) &&
          !protectedBases.some((b) => n === `${b}.safetensors` || n.startsWith(`${b}-`))
        ))
      }
      const removed: Array<string> = []
      for (const name of doomed) {
        const path = files.join(dir, name)
        yield* files.remove(path).pipe(Effect.mapError(writeFailed(path, undefined, "(remove) a leftover file")))
        removed.push(path)
      }
      return removed
    })

  /** Runs a clean-up whose failure must not fail the operation that succeeded before it. */
  const bestEffort = <A>(what: string, effect: Effect.Effect<A, CheckpointError>): Effect.Effect<void> =>
    effect.pipe(Effect.asVoid, Effect.catchAll((e) => Effect.logWarning(`checkpoint store ${root}: ${what}: ${e.message}`)))

  /** Writes weights then manifest (then, for the best, best.json) into `dir`; on failure, clears what it left. */
  const writeAll = (
    dir: string,
    isBest: boolean,
    step: number,
    writes: ReadonlyArray<readonly [name: string, bytes: Uint8Array, what: string]>
  ): Effect.Effect<void, CheckpointError> =>
    Effect.uninterruptible(
      Effect.forEach(writes, ([name, bytes, what]) => {
        const path = files.join(dir, name)
        return files.write(path, bytes).pipe(Effect.mapError(writeFailed(path, step, what)))
      }, { discard: true }).pipe(
        Effect.tapError(() => bestEffort("clearing a failed write", sweep(dir, isBest)))
      )
    )

  const encodeManifest = (manifest: M) =>
    encode(manifest).pipe(
      Effect.mapError((e) =>
        new CheckpointError({
          path: root,
          kind: "invalid",
          step: manifest.step,
          reason: `its manifest cannot be encoded (${firstLine(e.message)})`
        })
      )
    )

  const save = (checkpoint: StoredCheckpoint<M>): Effect.Effect<void, CheckpointError> =>
    Effect.gen(function*() {
      const { manifest, weights } = serialise(format, checkpoint)
      const json = yield* encodeManifest(manifest)
      yield* writeAll(root, false, manifest.step, [
        [manifest.weightsFile, weights, "the weights"],
        [manifestName(manifest.step), bytesOf(json), "the manifest"]
      ])
      yield* bestEffort(
        "pruning old checkpoints",
        Effect.gen(function*() {
          const others = (yield* stepsIn(root)).filter((s) => s !== manifest.step)
          for (const old of others.slice(keep - 1)) {
            const path = files.join(root, manifestName(old))
            yield* files.remove(path).pipe(Effect.mapError(writeFailed(path, old, "(remove) an old manifest")))
          }
          yield* sweep(root, false)
        })
      )
    })

  const saveBest = (checkpoint: StoredCheckpoint<M>, offer: ScoreOffer): Effect.Effect<BestOutcome, CheckpointError> =>
    Effect.gen(function*() {
      const lowerIsBetter = offer.lowerIsBetter ?? true
      const direction = (lower: boolean) => (lower ? "lower is better" : "higher is better")
      if (offer.metric.length === 0) {
        return yield* new CheckpointError({ path: bestDir, kind: "invalid", reason: "the score names no metric" })
      }
      const previous = yield* bestScore
      if (Option.isSome(previous) && (previous.value.metric !== offer.metric || previous.value.lowerIsBetter !== lowerIsBetter)) {
        return yield* new CheckpointError({
          path: bestFile,
          kind: "invalid",
          reason: `the best checkpoint is chosen by ${previous.value.metric} (${direction(previous.value.lowerIsBetter)}), ` +
            `not by ${offer.metric} (${direction(lowerIsBetter)})`,
          advice: `offer scores of one metric per run, or move ${bestDir} away to choose by another`
        })
      }
      const better = Number.isFinite(offer.value) && Option.match(previous, {
        onNone: () => true,
        onSome: (p) => (lowerIsBetter ? offer.value < p.value : offer.value > p.value)
      })
      if (!better) return { replaced: false, best: previous, previous }
      const { manifest, weights } = serialise(format, checkpoint)
      const json = yield* encodeManifest(manifest)
      const score = new BestScore({
        format: BEST_FORMAT,
        step: manifest.step,
        metric: offer.metric,
        value: offer.value,
        lowerIsBetter,
        recordedAt: new Date().toISOString()
      })
      const scoreJson = yield* encodeBest(score).pipe(
        Effect.mapError((e) => new CheckpointError({ path: bestFile, kind: "invalid", reason: firstLine(e.message) }))
      )
      yield* writeAll(bestDir, true, manifest.step, [
        [manifest.weightsFile, weights, "the best checkpoint's weights"],
        [manifestName(manifest.step), bytesOf(json), "the best checkpoint's manifest"],
        [BEST_FILE, bytesOf(scoreJson), "best.json"]
      ])
      yield* bestEffort("removing the previous best checkpoint", sweep(bestDir, true))
      return { replaced: true, best: Option.some(score), previous }
    })

  const best = Effect.gen(function*() {
    const score = yield* bestScore
    if (Option.isNone(score)) return Option.none()
    const checkpoint = yield* loadAt(bestDir, score.value.step).pipe(
      Effect.mapError((e) =>
        withAlternatives(e, [], `the best checkpoint (step ${score.value.step}) is damaged; move ${bestDir} away to track it afresh`)
      )
    )
    return Option.some({ checkpoint, score: score.value })
  })

  const recover = Effect.gen(function*() {
    const removed = [...(yield* sweep(root, false)), ...(yield* sweep(bestDir, true))]
    return { removed }
  })

  return { location: root, keep, save, latest, load, list, saveBest, best, recover }
}

/**
 * A store of checkpoints in `format` in `directory` (created on the first save), keeping the newest `keep` (default
 * 3) plus the best. Fails (`kind: "invalid"`) if `keep` is not an integer ≥ 1. Opening does not touch the directory;
 * call `recover` when a run that writes to it starts.
 *
 * @since 0.1.0
 * @category utils
 */
export const directoryStore = <M extends StoredManifest, I>(
  format: StoreFormat<M, I>,
  directory: string,
  options: DirectoryStoreOptions = {}
): Effect.Effect<Store<M>, CheckpointError> =>
  Effect.map(
    validKeep(options.keep, directory),
    (keep) => makeStore(format, nodeFiles(options.writeFile ?? writeFileAtomic), directory, keep)
  )

/**
 * An in-memory store of checkpoints in `format` (location `memory`): the same logic as the directory store over an
 * in-memory file table, so it serialises, verifies, rotates and tracks the best alike.
 *
 * @since 0.1.0
 * @category utils
 */
export const memoryStore = <M extends StoredManifest, I>(
  format: StoreFormat<M, I>,
  options: StoreOptions = {}
): Effect.Effect<Store<M>, CheckpointError> =>
  Effect.flatMap(validKeep(options.keep, "memory"), (keep) => Effect.sync(() => makeStore(format, memoryFiles(), "memory", keep)))
