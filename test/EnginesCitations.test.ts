/**
 * The JSDoc, tests, benchmarks and docs cite the project's engine write-up as "docs/engines.md §3.2" (or "§3.1,
 * pattern 1", or several sections: "docs/engines.md §2.2, §7"). These checks keep every such citation pointing at a
 * section that exists, and keep the repository free of citations of the engine notes it does not ship.
 */
import { readdirSync, readFileSync, statSync } from "node:fs"
import { extname, join } from "node:path"
import { describe, expect, it } from "vitest"

const root = process.cwd()
const DOC = "docs/engines.md"
const SCANNED = ["src", "test", "bench", "examples", "tools", "docs", "native/README.md", "README.md", "CHANGELOG.md"]
const TEXT = new Set([".ts", ".mts", ".js", ".mjs", ".cjs", ".json", ".md", ".py", ".sh"])

const files = (path: string): ReadonlyArray<string> => {
  const full = join(root, path)
  const st = statSync(full, { throwIfNoEntry: false })
  if (st === undefined) return []
  if (st.isFile()) return TEXT.has(extname(path)) ? [path] : []
  return readdirSync(full).flatMap((name) =>
    name === "node_modules" || name === "fixtures" || join(path, name) === join("docs", "api")
      ? []
      : files(join(path, name))
  )
}

/** The document's numbered sections: "## 3. Title" and "### 3.1 Title". */
const sectionsOf = (text: string): ReadonlySet<string> =>
  new Set(text.split("\n").flatMap((line) => {
    const heading = /^#{2,3} (\d+(?:\.\d+)?)\.? /.exec(line)
    return heading ? [heading[1]!] : []
  }))

/** Section references after each mention of engines.md, up to the next other document or sentence. */
const citationsIn = (path: string, text: string): ReadonlyArray<{ readonly where: string; readonly ref: string }> =>
  [...text.matchAll(/engines\.md/g)].flatMap((m) => {
    const where = `${path}:${text.slice(0, m.index).split("\n").length}`
    let run = text.slice(m.index + m[0].length, m.index + m[0].length + 200)
    const stop = run.search(/\b[\w-]+\.md\b|\.\s+[A-Z]|\n\s*\n|\)/)
    if (stop >= 0) run = run.slice(0, stop)
    return [...run.matchAll(/§(\d+(?:\.\d+)?)(?:[–-]§?(\d+(?:\.\d+)?))?/g)].flatMap((r) =>
      [r[1]!, ...(r[2] === undefined ? [] : [r[2]])].map((ref) => ({ where, ref }))
    )
  })

describe("citations of docs/engines.md", () => {
  const doc = readFileSync(join(root, DOC), "utf8")
  const sections = sectionsOf(doc)
  const scanned = SCANNED.flatMap(files)

  it("the document numbers its sections, with a WebGPU section", () => {
    for (const s of ["1", "2", "2.2", "3", "3.2", "4", "5", "6", "7", "9"]) expect(sections.has(s), s).toBe(true)
    expect(doc).toMatch(/^## \d+\. WebGPU$/m)
  })

  it("every cited section exists", () => {
    const citations = scanned.flatMap((f) => citationsIn(f, readFileSync(join(root, f), "utf8")))
    // The engine modules, kernels, UNet, benchmarks and their tests cite it.
    expect(citations.length).toBeGreaterThan(30)
    expect(citations.filter((c) => !sections.has(c.ref)).map((c) => `${c.where}: §${c.ref}`)).toEqual([])
  })

  it("the document's own references (§N.M) exist", () => {
    const refs = [...doc.matchAll(/§(\d+(?:\.\d+)?)/g)].map((m) => m[1]!)
    expect(refs.filter((r) => !sections.has(r))).toEqual([])
  })

  it("nothing cites the engine notes the repository does not ship", () => {
    // Built from parts, so this file does not match itself.
    const external = new RegExp(["\\bnotes? §", "tensor-" + "engine", "\\.\\./shared/"].join("|"))
    const offending = scanned.filter((f) => f !== "test/AlgorithmCitations.test.ts").flatMap((f) =>
      readFileSync(join(root, f), "utf8").split("\n").flatMap((line, i) =>
        external.test(line) ? [`${f}:${i + 1}: ${line.trim()}`] : []
      )
    )
    expect(offending).toEqual([])
  })
})
