/**
 * Checks of the public API that need the TypeScript compiler: the JSDoc tags of every export reachable from the
 * package's entry points, and the TypeScript examples of docs/guide.md type-checked against those entry points.
 *
 * Building a program over all of `src/` blocks for seconds (tens of seconds on a busy machine), longer than vitest's
 * worker may leave its event loop unturned, so the tests run this module in a child process:
 * `node --import tsx test/support/apiChecks.ts tags|guide` prints the findings as one JSON array.
 */
import { readFileSync } from "node:fs"
import { join } from "node:path"
import ts from "typescript"

const root = process.cwd()

/**
 * The package's subpath exports, mapped to the sources they are built from (package.json `exports` → `src/`).
 */
export const ENTRY_SOURCES: Readonly<Record<string, string>> = {
  "sid-ts": "src/index.ts",
  "sid-ts/domain": "src/domain/index.ts",
  "sid-ts/services": "src/services/index.ts",
  "sid-ts/layers": "src/layers/index.ts",
  "sid-ts/pipeline": "src/pipeline/index.ts",
  "sid-ts/testing": "src/testing/index.ts",
  "sid-ts/browser": "src/browser/OneStepGenerator.ts",
  "sid-ts/browser/distill": "src/browser/index.ts"
}

const compilerOptions = (tsconfig: string): ts.CompilerOptions => {
  const parsed = ts.getParsedCommandLineOfConfigFile(join(root, tsconfig), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: () => {}
  })
  return { ...parsed?.options, noEmit: true }
}

/** The TypeScript blocks of a markdown text. */
export const typescriptBlocks = (markdown: string): ReadonlyArray<string> =>
  [...markdown.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!)

/**
 * Every declaration exported through the entry points (namespaces followed) that lacks JSDoc, `@since` or
 * `@category`, as "file:line Name: missing tags"; the first element is the number of declarations checked.
 */
export const docTagFindings = (): [number, ...Array<string>] => {
  const program = ts.createProgram(Object.values(ENTRY_SOURCES).map((e) => join(root, e)), compilerOptions("tsconfig.build.json"))
  const checker = program.getTypeChecker()
  const modules = new Set<ts.Symbol>()
  const findings = new Map<string, ReadonlyArray<string>>()
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
        findings.set(`${file.fileName.slice(root.length + 1)}:${line} ${symbol.name}`, [
          ...(ts.getJSDocCommentsAndTags(node).length === 0 ? ["JSDoc"] : []),
          ...["since", "category"].filter((t) => !tags.includes(t)).map((t) => `@${t}`)
        ])
      }
    }
  }
  for (const entry of Object.values(ENTRY_SOURCES)) {
    const file = program.getSourceFile(join(root, entry))
    const symbol = file === undefined ? undefined : checker.getSymbolAtLocation(file)
    if (symbol !== undefined) visit(symbol)
  }
  const missing = [...findings].filter(([, m]) => m.length > 0).map(([where, m]) => `${where}: ${m.join(", ")}`)
  return [findings.size, ...missing]
}

/**
 * Type errors of the TypeScript examples in `document`, each block a module of its own beside the sources, with the
 * package's entry points resolved to their sources.
 */
export const exampleDiagnostics = (document: string): Array<string> => {
  const options = { ...compilerOptions("tsconfig.json"), noUnusedLocals: false }
  const examples = typescriptBlocks(readFileSync(join(root, document), "utf8"))
  const virtual = new Map(examples.map((code, i) => [join(root, "docs", `example-${i + 1}.ts`), `${code}\nexport {}\n`]))
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
  return [...virtual.keys()].flatMap((name) => {
    const file = program.getSourceFile(name)!
    return [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)].map((d) => {
      const line = d.file === undefined ? 0 : d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1
      return `${document} example ${name.slice(name.lastIndexOf("-") + 1, -3)}, line ${line}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`
    })
  })
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const check = process.argv[2]
  const result = check === "tags" ? docTagFindings() : check === "guide" ? exampleDiagnostics("docs/guide.md") : undefined
  if (result === undefined) {
    console.error("usage: node --import tsx test/support/apiChecks.ts tags|guide")
    process.exit(2)
  }
  console.log(JSON.stringify(result))
}
