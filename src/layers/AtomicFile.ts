/**
 * Atomic file writes: temp file in the same directory, fsync, rename over the target, fsync the directory.
 * A crash at any point leaves either the old file or the new one, never a torn one.
 *
 * @module
 */
import { randomBytes } from "node:crypto"
import { mkdir, open, rename, rm } from "node:fs/promises"
import { dirname, join } from "node:path"
import { Effect } from "effect"

/** Writes `bytes` to `path` atomically; fails with the underlying error (the target is untouched on failure). */
export const writeFileAtomic = (path: string, bytes: Uint8Array): Effect.Effect<void, Error> =>
  Effect.tryPromise({
    try: async () => {
      const dir = dirname(path)
      await mkdir(dir, { recursive: true })
      const tmp = join(dir, `.${randomBytes(6).toString("hex")}.tmp`)
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
        await rm(tmp, { force: true })
        throw e
      }
      const dirHandle = await open(dir, "r")
      try {
        await dirHandle.sync()
      } finally {
        await dirHandle.close()
      }
    },
    catch: (e) => (e instanceof Error ? e : new Error(String(e)))
  })
