/**
 * The JSDoc, tests, benchmarks, examples and docs cite the project's maths write-up as "docs/algorithm.md §8.1" (a
 * section, or a range such as "docs/algorithm.md §8.1–8.2"), "docs/algorithm.md §15, item 9" (a checklist item) or
 * "docs/algorithm.md §8.1, eq. (8.4)" (an equation). These checks keep every such citation pointing at a section, an
 * item and an equation that exist, and keep the repository free of citations of documents it does not ship (issue 13,
 * point 4).
 */
import { readdirSync, readFileSync, statSync } from "node:fs"
import { extname, join, relative } from "node:path"
import { describe, expect, it } from "vitest"

const root = process.cwd()
const DOC = "docs/algorithm.md"
const SCANNED = ["src", "test", "bench", "examples", "tools", "docs", "README.md"]
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

/** The document's numbered sections ("## 8." and "### 8.1"), equation tags and the item count of each numbered list. */
const outline = (text: string) => {
  const sections = new Set<string>()
  const items = new Map<string, number>()
  let current = ""
  for (const line of text.split("\n")) {
    const heading = /^#{2,3} (\d+(?:\.\d+)?)\.? /.exec(line)
    if (heading) {
      current = heading[1]!
      sections.add(current)
      continue
    }
    const item = /^(\d+)\. /.exec(line)
    if (item && current !== "") items.set(current, Math.max(items.get(current) ?? 0, Number(item[1])))
  }
  const equations = new Set([...text.matchAll(/\\tag\{(\d+\.\d+)\}/g)].map((m) => m[1]!))
  return { sections, items, equations }
}

type Citation = { readonly where: string; readonly kind: "section" | "item" | "equation"; readonly ref: string }

/** Citations in a file: after each "algorithm.md", its run of § references up to the next other document. */
const citationsIn = (path: string, text: string): ReadonlyArray<Citation> => {
  const out: Array<Citation> = []
  const flat = text.replace(/\\\./g, ".").replace(/\\\//g, "/")
  for (const m of flat.matchAll(/algorithm\.md/g)) {
    const line = flat.slice(0, m.index).split("\n").length
    const where = `${path}:${line}`
    let run = flat.slice(m.index + m[0].length, m.index + m[0].length + 400)
    // The run ends where another document or a sentence starts.
    const stop = run.search(/\b(?:notes?|issues?)\s+§|\b[\w-]+\.md\b|\.\s+[A-Z]|\n\s*\n/)
    if (stop >= 0) run = run.slice(0, stop)
    for (const r of run.matchAll(/§(\d+(?:\.\d+)?)(?:[–-](\d+(?:\.\d+)?))?(?:,\s*item\s+(\d+))?/g)) {
      out.push({ where, kind: "section", ref: r[1]! })
      if (r[2] !== undefined) out.push({ where, kind: "section", ref: r[2] })
      if (r[3] !== undefined) out.push({ where, kind: "item", ref: `${r[1]}:${r[3]}` })
    }
    for (const r of run.matchAll(/\beqs?\.\s*\((\d+\.\d+)\)(?:[–-]\((\d+\.\d+)\))?/g)) {
      out.push({ where, kind: "equation", ref: r[1]! })
      if (r[2] !== undefined) out.push({ where, kind: "equation", ref: r[2] })
    }
  }
  return out
}

describe("citations of docs/algorithm.md", () => {
  const doc = readFileSync(join(root, DOC), "utf8")
  const { sections, items, equations } = outline(doc)
  const scanned = SCANNED.flatMap(files).filter((f) => f !== DOC)

  it("the document numbers its sections and equations", () => {
    expect(sections.has("8")).toBe(true)
    expect(sections.has("8.1")).toBe(true)
    expect(equations.has("8.4")).toBe(true)
    expect(items.get("15")).toBeGreaterThanOrEqual(12)
  })

  it("every cited section, checklist item and equation exists", () => {
    const citations = scanned.flatMap((f) => citationsIn(f, readFileSync(join(root, f), "utf8")))
    expect(citations.length).toBeGreaterThan(500)
    const missing = citations.filter((c) =>
      c.kind === "section"
        ? !sections.has(c.ref)
        : c.kind === "equation"
        ? !equations.has(c.ref)
        : Number(c.ref.split(":")[1]) > (items.get(c.ref.split(":")[0]!) ?? 0)
    )
    expect(missing.map((c) => `${c.where}: ${c.kind} ${c.ref}`)).toEqual([])
  })

  it("the document's own references (§N.M, eq. (N.M)) exist", () => {
    const body = doc.replace(/```[\s\S]*?```/g, "")
    const refs = [...body.matchAll(/§(\d+(?:\.\d+)?)/g)].map((m) => m[1]!)
    expect(refs.filter((r) => !sections.has(r))).toEqual([])
    // Equation numbers start at section 1; "(0.5)" is a value, not a reference.
    const eqs = [...body.matchAll(/\(([1-9]\d?\.\d+)\)/g)].map((m) => m[1]!)
    expect(eqs.length).toBeGreaterThan(40)
    expect(eqs.filter((r) => !equations.has(r))).toEqual([])
  })

  it("nothing cites the external spec the repository does not ship", () => {
    // Built from parts, so this file does not match itself.
    const external = new RegExp(["\\bspec ?§", "\\.\\./shared/" + "spec", "\\bsid\\.md\\b"].join("|"))
    const offending = scanned.flatMap((f) =>
      readFileSync(join(root, f), "utf8").split("\n").flatMap((line, i) =>
        external.test(line) ? [`${relative(root, join(root, f))}:${i + 1}: ${line.trim()}`] : []
      )
    )
    expect(offending).toEqual([])
  })
})
