/**
 * The README and docs/ stay true to the repository: the README stays short, its layout table names every area of
 * `src/` (and every area of `src/domain/`) and nothing that does not exist, and every relative link in the README,
 * the CHANGELOG and docs/ points at a file that exists.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs"
import { dirname, join } from "node:path"
import { describe, expect, it } from "vitest"

const root = process.cwd()
const read = (path: string) => readFileSync(join(root, path), "utf8")
const dirs = (path: string) =>
  readdirSync(join(root, path)).filter((name) => statSync(join(root, path, name)).isDirectory())

/** Generated and git-ignored, so allowed to be absent: the API reference `docs/api/` (`npm run docs`). */
const GENERATED = /^docs\/api(\/|$)/

describe("README", () => {
  const readme = read("README.md")
  const layout = readme.slice(readme.indexOf("## Layout"), readme.indexOf("\n## ", readme.indexOf("## Layout") + 1))

  it("is short: what it is, the two commands, one results table, the layout, links", () => {
    expect(readme.length).toBeLessThan(12_000)
    expect(readme).toContain("npm ci && npm start")
    expect(readme).toContain("npm ci && npm test")
    expect(readme.match(/^## Results$/gm)).toHaveLength(1)
  })

  it("the layout table names every area of src/ and of src/domain/", () => {
    const missing = [
      ...dirs("src").map((d) => `src/${d}/`),
      ...dirs("src/domain").map((d) => `${d}/`)
    ].filter((path) => !layout.includes(`\`${path}\``))
    expect(missing).toEqual([])
  })

  it("every path the layout table names exists", () => {
    const paths = [...layout.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!)
    expect(paths.length).toBeGreaterThan(10)
    expect(paths.filter((p) => !existsSync(join(root, p)))).toEqual([])
  })
})

describe("links in the README, the CHANGELOG and docs/", () => {
  const documents = [
    "README.md",
    "CHANGELOG.md",
    "native/README.md",
    ...readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)
  ].filter((f) => existsSync(join(root, f)))

  it("every relative link points at a file that exists", () => {
    const broken = documents.flatMap((doc) =>
      [...read(doc).replace(/```[\s\S]*?```/g, "").matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)]
        .map((m) => m[1]!)
        .filter((target) => !/^[a-z]+:/.test(target))
        .map((target) => join(dirname(doc), target))
        .filter((target) => !GENERATED.test(target) && !existsSync(join(root, target)))
        .map((target) => `${doc} → ${target}`)
    )
    expect(broken).toEqual([])
  })
})

describe("commands in the README and docs/", () => {
  it("every `npm run <script>` names a script of package.json", () => {
    const scripts = Object.keys((JSON.parse(read("package.json")) as { scripts: Record<string, string> }).scripts)
    const documents = ["README.md", ...readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)]
    const named = documents.flatMap((doc) => [...read(doc).matchAll(/npm run ([\w:-]+)/g)].map((m) => ({ doc, script: m[1]! })))
    expect(named.length).toBeGreaterThan(20)
    expect(named.filter((n) => !scripts.includes(n.script)).map((n) => `${n.doc}: npm run ${n.script}`)).toEqual([])
  })
})
