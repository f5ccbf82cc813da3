/**
 * The TypeScript examples of docs/guide.md compile against the package's public entry points: each ```ts block is
 * type-checked as a module of its own, with `sid-ts`, `sid-ts/domain`, … resolved to the sources those entry points
 * are built from. A guide that names a function the package no longer exports fails here.
 */
import { readFileSync } from "node:fs"
import { join } from "node:path"
import ts from "typescript"
import { describe, expect, it } from "vitest"

const root = process.cwd()

/** The package's subpath exports, mapped to their sources (package.json `exports` → `src/`). */
const ENTRY_SOURCES: Record<string, string> = {
  "sid-ts": "src/index.ts",
  "sid-ts/domain": "src/domain/index.ts",
  "sid-ts/services": "src/services/index.ts",
  "sid-ts/layers": "src/layers/index.ts",
  "sid-ts/pipeline": "src/pipeline/index.ts",
  "sid-ts/testing": "src/testing/index.ts",
  "sid-ts/browser": "src/browser/OneStepGenerator.ts"
}

const blocks = (markdown: string): ReadonlyArray<string> =>
  [...markdown.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!)

describe("docs/guide.md examples", () => {
  const guide = readFileSync(join(root, "docs/guide.md"), "utf8")
  const examples = blocks(guide)

  it("import only from the package's entry points", () => {
    expect(examples.length).toBeGreaterThanOrEqual(2)
    const specifiers = examples.flatMap((code) => [...code.matchAll(/from "([^"]+)"/g)].map((m) => m[1]!))
    expect(specifiers.filter((s) => !(s in ENTRY_SOURCES) && s !== "effect")).toEqual([])
  })

  it("type-check against the sources of those entry points", () => {
    const parsed = ts.getParsedCommandLineOfConfigFile(join(root, "tsconfig.json"), {}, {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: () => {}
    })
    const options: ts.CompilerOptions = { ...parsed?.options, noEmit: true, noUnusedLocals: false }
    // Virtual modules beside the sources, so that module format and package resolution are the repository's.
    const virtual = new Map(examples.map((code, i) => [join(root, "docs", `guide-example-${i + 1}.ts`), `${code}\nexport {}\n`]))
    const host = ts.createCompilerHost(options)
    const getSourceFile = host.getSourceFile.bind(host)
    host.getSourceFile = (name, language, ...rest) => {
      const text = virtual.get(name)
      return text === undefined ? getSourceFile(name, language, ...rest) : ts.createSourceFile(name, text, language)
    }
    const fileExists = host.fileExists.bind(host)
    host.fileExists = (name) => virtual.has(name) || fileExists(name)
    const resolve = (name: string, containing: string): ts.ResolvedModuleFull | undefined => {
      const source = ENTRY_SOURCES[name]
      if (source !== undefined) return { resolvedFileName: join(root, source), extension: ts.Extension.Ts }
      return ts.resolveModuleName(name, containing, options, host).resolvedModule
    }
    host.resolveModuleNameLiterals = (literals, containing) =>
      literals.map((literal) => ({ resolvedModule: resolve(literal.text, containing) }))
    const program = ts.createProgram([...virtual.keys()], options, host)
    const diagnostics = [...virtual.keys()].flatMap((name) => {
      const file = program.getSourceFile(name)!
      return [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)]
    })
    expect(diagnostics.map((d) =>
      `${d.file?.fileName.slice(root.length + 1)}:${d.file === undefined ? "" : d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`
    )).toEqual([])
  }, 120_000)
})
