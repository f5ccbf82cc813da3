/**
 * Every export a user can reach through the package's entry points carries JSDoc with `@since` (the version that added
 * it) and `@category` (how the generated API reference, `npm run docs`, groups it).
 */
import { join } from "node:path"
import ts from "typescript"
import { describe, expect, it } from "vitest"

const root = process.cwd()
const ENTRIES = [
  "src/index.ts",
  "src/domain/index.ts",
  "src/services/index.ts",
  "src/layers/index.ts",
  "src/pipeline/index.ts",
  "src/testing/index.ts",
  "src/browser/OneStepGenerator.ts"
]

interface Finding {
  readonly where: string
  readonly missing: ReadonlyArray<string>
}

/** The declarations of every export reachable from the entries (namespaces followed), with the tags they lack. */
const audit = (): { readonly count: number; readonly findings: ReadonlyArray<Finding> } => {
  const parsed = ts.getParsedCommandLineOfConfigFile(join(root, "tsconfig.build.json"), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: () => {}
  })
  const program = ts.createProgram(ENTRIES.map((e) => join(root, e)), parsed?.options ?? {})
  const checker = program.getTypeChecker()
  const modules = new Set<ts.Symbol>()
  const declarations = new Map<string, Finding>()
  const visit = (module: ts.Symbol): void => {
    for (const exported of checker.getExportsOfModule(module)) {
      const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported
      const declared = symbol.valueDeclaration
      if (symbol.flags & ts.SymbolFlags.ValueModule && declared !== undefined && ts.isSourceFile(declared)) {
        if (!modules.has(symbol)) {
          modules.add(symbol)
          visit(symbol)
        }
        continue
      }
      for (const declaration of symbol.declarations ?? []) {
        const file = declaration.getSourceFile()
        if (!file.fileName.startsWith(join(root, "src"))) continue
        const node = ts.isVariableDeclaration(declaration) ? declaration.parent.parent : declaration
        const tags = ts.getJSDocTags(node).map((t) => t.tagName.text)
        const line = file.getLineAndCharacterOfPosition(node.getStart()).line + 1
        const where = `${file.fileName.slice(root.length + 1)}:${line} ${symbol.name}`
        const missing = [
          ...(ts.getJSDocCommentsAndTags(node).length === 0 ? ["JSDoc"] : []),
          ...(["since", "category"].filter((t) => !tags.includes(t)).map((t) => `@${t}`))
        ]
        declarations.set(where, { where, missing })
      }
    }
  }
  for (const entry of ENTRIES) {
    const file = program.getSourceFile(join(root, entry))
    const symbol = file === undefined ? undefined : checker.getSymbolAtLocation(file)
    if (symbol !== undefined) visit(symbol)
  }
  const all = [...declarations.values()]
  return { count: all.length, findings: all.filter((f) => f.missing.length > 0) }
}

describe("JSDoc tags of the public API", () => {
  it("every export reachable from the entry points has JSDoc with @since and @category", () => {
    const { count, findings } = audit()
    expect(count).toBeGreaterThan(500)
    expect(findings.map((f) => `${f.where}: ${f.missing.join(", ")}`)).toEqual([])
  }, 120_000)
})
