/**
 * A run directory belongs to one run: claiming it takes an exclusive lock, refuses a fresh start over an existing
 * run, moves an old run aside on request, and rewinds the log of a resumed run to its checkpoint.
 *
 * The lock is `run.lock`, a JSON record of the holder (pid, host, start time, command), created with a hard link so
 * that it appears complete or not at all and only one of two racing processes gets it. A lock left by a process that
 * no longer runs on this host is taken over (and said so); one held by a live process refuses the second writer with
 * the holder's pid. Release removes it.
 *
 * @module
 */
import { randomBytes } from "node:crypto"
import { link, mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises"
import { hostname } from "node:os"
import { basename, dirname, join } from "node:path"
import { Effect, Schema, type Scope } from "effect"
import { writeFileAtomic } from "./AtomicFile.js"

/** The lock file's name inside a run directory. */
export const LOCK_FILE = "run.lock"

/** The files that make a directory hold a run. */
const RUN_FILES: ReadonlyArray<string> = ["config.json", "log.jsonl", "checkpoints"]

/** The holder of a run directory's lock. */
export const LockHolder = Schema.Struct({
  pid: Schema.Int,
  host: Schema.String,
  startedAt: Schema.String,
  command: Schema.String,
  token: Schema.String
})
/** @see {@link LockHolder} */
export type LockHolder = typeof LockHolder.Type

/** A run directory cannot be used as asked: it says why and what to do. */
export class RunDirectoryError extends Schema.TaggedError<RunDirectoryError>()("RunDirectoryError", {
  path: Schema.String,
  reason: Schema.String,
  fix: Schema.String
}) {
  override get message(): string {
    return `run directory ${this.path}: ${this.reason}. ${this.fix}`
  }
}

/** Another live process holds the run directory. */
export class RunDirectoryLocked extends Schema.TaggedError<RunDirectoryLocked>()("RunDirectoryLocked", {
  path: Schema.String,
  holder: LockHolder
}) {
  override get message(): string {
    return `run directory ${this.path} is in use by pid ${this.holder.pid} on ${this.holder.host} (since ` +
      `${this.holder.startedAt}: ${this.holder.command}). Wait for it to finish or stop it (Ctrl-C writes its final ` +
      `checkpoint), or use another --run-dir.`
  }
}

/** How a run uses its directory. */
export type ClaimMode = "fresh" | "resume" | "overwrite"

/** A claimed run directory: the lock is held until the scope closes. */
export interface RunDirectoryClaim {
  readonly path: string
  /** What claiming it did that the user should hear about (a stale lock taken over, an old run moved aside). */
  readonly notes: ReadonlyArray<string>
}

const errnoOf = (e: unknown): string | undefined =>
  typeof e === "object" && e !== null && "code" in e && typeof e.code === "string" ? e.code : undefined

const describe = (e: unknown): string => (e instanceof Error ? e.message : String(e))

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return errnoOf(e) === "EPERM"
  }
}

const ioError = (path: string, e: unknown): RunDirectoryError => {
  const code = errnoOf(e)
  const fix = code === "ENOSPC"
    ? "Free disk space and run again."
    : code === "EACCES" || code === "EPERM" || code === "EROFS"
    ? "Choose a writable --run-dir."
    : code === "ENOTDIR" || code === "EEXIST"
    ? "A file stands where a directory is needed: choose another --run-dir."
    : "Check the path and run again."
  return new RunDirectoryError({ path, reason: describe(e), fix })
}

const io = <A>(path: string, f: () => Promise<A>): Effect.Effect<A, RunDirectoryError> =>
  Effect.tryPromise({ try: f, catch: (e) => ioError(path, e) })

const readHolder = (path: string): Promise<LockHolder | undefined> =>
  readFile(path, "utf8").then(
    (text) => {
      try {
        return Schema.decodeUnknownSync(LockHolder)(JSON.parse(text))
      } catch {
        return undefined
      }
    },
    (e: unknown) => (errnoOf(e) === "ENOENT" ? undefined : Promise.reject(e))
  )

/** Creates the lock with a hard link: complete or absent, and only one racing process succeeds. */
const tryLink = async (dir: string, holder: LockHolder): Promise<boolean> => {
  const tmp = join(dir, `.${LOCK_FILE}.${holder.token}.tmp`)
  await writeFile(tmp, JSON.stringify(holder) + "\n")
  try {
    await link(tmp, join(dir, LOCK_FILE))
    return true
  } catch (e) {
    if (errnoOf(e) === "EEXIST") return false
    throw e
  } finally {
    await rm(tmp, { force: true })
  }
}

const acquireLock = (
  dir: string,
  command: string
): Effect.Effect<{ readonly holder: LockHolder; readonly note?: string }, RunDirectoryError | RunDirectoryLocked> =>
  Effect.gen(function*() {
    const holder: LockHolder = {
      pid: process.pid,
      host: hostname(),
      startedAt: new Date().toISOString(),
      command,
      token: randomBytes(8).toString("hex")
    }
    const lockPath = join(dir, LOCK_FILE)
    if (yield* io(dir, () => tryLink(dir, holder))) return { holder }
    const current = yield* io(lockPath, () => readHolder(lockPath))
    if (current === undefined) {
      return yield* new RunDirectoryError({
        path: dir,
        reason: `its lock file ${LOCK_FILE} cannot be read as a lock`,
        fix: `If no sid process uses this directory, delete ${lockPath} and run again.`
      })
    }
    if (current.host !== holder.host || isAlive(current.pid)) return yield* new RunDirectoryLocked({ path: dir, holder: current })
    const aside = join(dir, `.${LOCK_FILE}.stale-${holder.token}`)
    const movedIt = yield* io(lockPath, () => rename(lockPath, aside).then(() => true, (e: unknown) => (errnoOf(e) === "ENOENT" ? false : Promise.reject(e))))
    if (movedIt) yield* io(aside, () => rm(aside, { force: true }))
    if (!(yield* io(dir, () => tryLink(dir, holder)))) {
      const winner = yield* io(lockPath, () => readHolder(lockPath))
      if (winner !== undefined) return yield* new RunDirectoryLocked({ path: dir, holder: winner })
      return yield* new RunDirectoryError({ path: dir, reason: "its lock changed hands while it was taken", fix: "Run again." })
    }
    return {
      holder,
      note: `took over the lock of pid ${current.pid} (started ${current.startedAt}), which no longer runs`
    }
  })

const releaseLock = (dir: string, holder: LockHolder): Effect.Effect<void> =>
  Effect.promise(async () => {
    const lockPath = join(dir, LOCK_FILE)
    const current = await readHolder(lockPath).catch(() => undefined)
    if (current?.token === holder.token) await rm(lockPath, { force: true })
  })

const timestamp = (): string => new Date().toISOString().replace(/[:.]/g, "-")

/** The run files a directory holds: a config, a non-empty log (a regular file), a non-empty checkpoints directory. */
const runFilesIn = (dir: string): Promise<Array<string>> =>
  Promise.all(
    RUN_FILES.map(async (name) => {
      const path = join(dir, name)
      const info = await stat(path).catch((e: unknown) => (errnoOf(e) === "ENOENT" ? undefined : Promise.reject(e)))
      if (info === undefined) return []
      if (name === "checkpoints") return info.isDirectory() && (await readdir(path)).length > 0 ? [name] : []
      if (name === "log.jsonl") return info.isFile() && info.size > 0 ? [name] : []
      return [name]
    })
  ).then((found) => found.flat())

/**
 * Claims `dir` for a run until the scope closes: takes its lock (a stale one is taken over; a live holder is a
 * {@link RunDirectoryLocked}), then
 * - `fresh`: refuses a directory that already holds a run (config, log or checkpoints) with a
 *   {@link RunDirectoryError} that names them and offers `--resume`, another `--run-dir` or `--overwrite`;
 * - `overwrite`: moves everything the directory holds into `<dir>.replaced-<time>` beside it (never deletes);
 * - `resume`: requires the run's `config.json`.
 * Leftover temp files of an interrupted atomic write in the directory itself are removed (and said so).
 */
export const claimRunDirectory = (
  dir: string,
  mode: ClaimMode,
  options: { readonly command?: string } = {}
): Effect.Effect<RunDirectoryClaim, RunDirectoryError | RunDirectoryLocked, Scope.Scope> =>
  Effect.gen(function*() {
    const notes: Array<string> = []
    const info = yield* io(dir, () => stat(dir).then((s) => s, (e: unknown) => (errnoOf(e) === "ENOENT" ? undefined : Promise.reject(e))))
    if (info !== undefined && !info.isDirectory()) {
      return yield* new RunDirectoryError({ path: dir, reason: "it is a file, not a directory", fix: "Choose another --run-dir." })
    }
    if (info === undefined) {
      if (mode === "resume") {
        return yield* new RunDirectoryError({
          path: dir,
          reason: "it does not exist, so there is no run to resume",
          fix: "Check --run-dir, or start the run without --resume."
        })
      }
      yield* io(dir, () => mkdir(dir, { recursive: true }))
    }
    const { holder, note } = yield* Effect.acquireRelease(acquireLock(dir, options.command ?? process.argv.slice(1).join(" ")), ({ holder }) =>
      releaseLock(dir, holder)
    )
    if (note !== undefined) notes.push(note)
    const leftovers = (yield* io(dir, () => readdir(dir))).filter((n) => /^\..*\.tmp$/.test(n) && !n.includes(holder.token))
    for (const name of leftovers) yield* io(join(dir, name), () => rm(join(dir, name), { force: true }))
    if (leftovers.length > 0) notes.push(`removed ${leftovers.length} temp file(s) left by an interrupted write: ${leftovers.join(", ")}`)
    const found = yield* io(dir, () => runFilesIn(dir))
    if (mode === "fresh" && found.length > 0) {
      return yield* new RunDirectoryError({
        path: dir,
        reason: `it already holds a run (${found.join(", ")})`,
        fix: "Continue it with --resume, start the new run in another --run-dir, or pass --overwrite to move the old " +
          "run aside (it is kept, not deleted)."
      })
    }
    if (mode === "overwrite") {
      const entries = (yield* io(dir, () => readdir(dir))).filter((n) => n !== LOCK_FILE)
      if (entries.length > 0) {
        const aside = join(dirname(dir), `${basename(dir)}.replaced-${timestamp()}`)
        yield* io(aside, () => mkdir(aside))
        for (const name of entries) yield* io(join(dir, name), () => rename(join(dir, name), join(aside, name)))
        notes.push(`moved the previous run aside to ${aside}`)
      }
    }
    if (mode === "resume" && !found.includes("config.json")) {
      return yield* new RunDirectoryError({
        path: dir,
        reason: "it holds no config.json, so there is no run to resume",
        fix: "Check --run-dir, or start the run without --resume."
      })
    }
    return { path: dir, notes }
  })

/**
 * Rewinds a resumed run's JSONL log to its checkpoint: every record from the first one past `step` on is dropped (an
 * interrupted run may have logged iterations after its last checkpoint; the resumed run records them again, bit for
 * bit), so the log reads as one run. Written atomically. Returns the number of records dropped.
 */
export const rewindLog = (logPath: string, step: number): Effect.Effect<number, RunDirectoryError> =>
  Effect.gen(function*() {
    const text = yield* io(logPath, async () => {
      const info = await stat(logPath).catch((e: unknown) => (errnoOf(e) === "ENOENT" ? undefined : Promise.reject(e)))
      if (info === undefined) return ""
      if (!info.isFile()) throw new Error("the run log is not a regular file")
      return readFile(logPath, "utf8")
    })
    const lines = text.split("\n").filter((l) => l.length > 0)
    const stepOf = (line: string): number | undefined => {
      try {
        const value: unknown = JSON.parse(line)
        return typeof value === "object" && value !== null && "step" in value && typeof value.step === "number" ? value.step : undefined
      } catch {
        return undefined
      }
    }
    const cut = lines.findIndex((l) => (stepOf(l) ?? -1) > step)
    if (cut < 0) return 0
    const kept = lines.slice(0, cut)
    yield* writeFileAtomic(logPath, new TextEncoder().encode(kept.map((l) => l + "\n").join(""))).pipe(
      Effect.mapError((e) => ioError(logPath, e))
    )
    return lines.length - cut
  })
