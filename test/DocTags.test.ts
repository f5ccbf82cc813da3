/**
 * Every export a user can reach through the package's entry points carries JSDoc with `@since` (the version that added
 * it) and `@category` (how the generated API reference, `npm run docs`, groups it). The compiler work runs in a child
 * process (test/support/apiChecks.ts), so this worker's event loop stays free.
 */
import { describe, expect, it } from "vitest"
import { runApiCheck } from "./support/apiCheck.js"

describe("JSDoc tags of the public API", () => {
  it("every export reachable from the entry points has JSDoc with @since and @category", async () => {
    const [checked, ...missing] = await runApiCheck("tags")
    expect(Number(checked)).toBeGreaterThan(500)
    expect(missing).toEqual([])
  })
})
