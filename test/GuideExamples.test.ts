/**
 * The TypeScript examples of docs/guide.md compile against the package's public entry points: each ```ts block is
 * type-checked as a module of its own, with `sid-ts`, `sid-ts/domain`, … resolved to the sources those entry points
 * are built from (in a child process: test/support/apiChecks.ts). A guide that uses a name the package no longer
 * exports fails here.
 */
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { runApiCheck } from "./support/apiCheck.js"
import { ENTRY_SOURCES, typescriptBlocks } from "./support/apiChecks.js"

describe("docs/guide.md examples", () => {
  const examples = typescriptBlocks(readFileSync(join(process.cwd(), "docs/guide.md"), "utf8"))

  it("import only from the package's entry points (and effect)", () => {
    expect(examples.length).toBeGreaterThanOrEqual(2)
    const specifiers = examples.flatMap((code) => [...code.matchAll(/from "([^"]+)"/g)].map((m) => m[1]!))
    expect(specifiers.filter((s) => !(s in ENTRY_SOURCES) && s !== "effect")).toEqual([])
  })

  it("type-check against the sources of those entry points", async () => {
    expect(await runApiCheck("guide")).toEqual([])
  })
})
