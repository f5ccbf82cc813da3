/**
 * Atomic file writes: temp file in the same directory, fsync, rename over the target, fsync the directory.
 * A crash at any point leaves either the old file or the new one, never a torn one — plus, at worst, a temp file
 * `.<name>.<hex>.tmp` next to the target ({@link isTempFileName}), which a checkpoint store's `recover` removes.
 *
 * @module
 */
import { randomBytes } from "node:crypto"
import { mkdir, open, rename, rm } from "node:fs/promises"
import { basename, dirname, join } from "node:path"
import { Effect, Schema } from "effect"

/** Whether a file name is a temp file of {@link writeFileAtomic} (`.<name>.<hex>.tmp`, or the older `.<hex>.tmp`). */
export const isTempFileName = (name: string): boolean => /^\..+\.tmp$/.test(name)

/** The system error code of a failed file operation (`ENOSPC`, `EACCES`, ...), if it has one. */
export const errorCode = (e: unknown): string | undefined => {
  const code = typeof e === "object" && e !== null && "code" in e ? (e as { readonly code: unknown }).code : undefined
  return typeof code === "string" ? code : undefined
}

/**
 * What to do about a failed write with system error `code`: free space for `ENOSPC`/`EDQUOT`, a writable directory for
 * `EACCES`/`EPERM`/`EROFS`, a path that is a directory for `ENOTDIR`/`EEXIST`/`EISDIR`; generic advice otherwise.
 */
export const writeFailureAdvice = (code: string | undefined): string => {
  switch (code) {
    case "ENOSPC":
    case "EDQUOT":
      return "the disk (or your quota) is full: free some space (e.g. delete old runs, or keep fewer checkpoints with --keep), or choose a --run-dir on another disk"
    case "EACCES":
    case "EPERM":
    case "EROFS":
      return "the directory is not writable (permissions, or a read-only file system): fix its permissions or choose a writable --run-dir"
    case "ENOTDIR":
    case "EEXIST":
    case "EISDIR":
      return "a part of the path is a file where a directory is needed (or a directory where the file goes): move it away or choose another --run-dir"
    default:
      return "check that the disk is healthy and the directory writable, or choose another --run-dir"
  }
}

/** A file could not be written; the target is untouched. The message names the path, the cause and what to do. */
export class AtomicWriteError extends Schema.TaggedError<AtomicWriteError>()("AtomicWriteError", {
  /** The file that was being written. */
  path: Schema.String,
  /** The system error code (`ENOSPC`, `EACCES`, `EROFS`, `ENOTDIR`, ...), when there is one. */
  code: Schema.optional(Schema.String),
  /** The underlying error's message. */
  reason: Schema.String
}) {
  override get message(): string {
    return `could not write ${this.path}: ${this.reason}; ${writeFailureAdvice(this.code)}`
  }
}

/** Writes `bytes` to `path` atomically (creating its directory); on failure the target is untouched. */
export const writeFileAtomic = (path: string, bytes: Uint8Array): Effect.Effect<void, AtomicWriteError> =>
  Effect.tryPromise({
    try: async () => {
      const dir = dirname(path)
      await mkdir(dir, { recursive: true })
      const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`)
      try {
        const handle = await open(tmp, "w")
        try {
          await handle.writeFile(bytes)
          await handle.sync()
        } finally {
          await handle.close()
        }
        await rename(tmp, path)
      } catch (e) {
        await rm(tmp, { force: true }).catch(() => undefined)
        throw e
      }
      const dirHandle = await open(dir, "r")
      try {
        await dirHandle.sync()
      } finally {
        await dirHandle.close()
      }
    },
    catch: (e) => {
      const code = errorCode(e)
      return new AtomicWriteError({
        path,
        ...(code === undefined ? {} : { code }),
        reason: e instanceof Error ? e.message : String(e)
      })
    }
  })
