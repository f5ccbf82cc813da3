import { readdirSync, readFileSync, statSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import { describe, expect, it } from "vitest"

const root = resolve(dirname(new URL(import.meta.url).pathname), "..")
const src = join(root, "src")

const walk = (dir: string): ReadonlyArray<string> =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? walk(path) : path.endsWith(".ts") ? [path] : []
  })

const specifiersOf = (file: string): ReadonlyArray<string> =>
  [...readFileSync(file, "utf8").matchAll(/(?:from|import)\s*\(?\s*["']([^"']+)["']/g)].map((m) => m[1]!)

const importsOf = (file: string): ReadonlyArray<string> =>
  specifiersOf(file)
    .filter((spec) => spec.startsWith("./") || spec.startsWith("../"))
    .map((spec) => relative(src, resolve(dirname(file), spec.replace(/\.js$/, ".ts"))))

/** The area of a source file: its first folder under src/ (or the file itself at the top). */
const area = (path: string): string => path.split("/")[0]!

/**
 * What each area may import (docs/architecture.md): imports flow one way, domain ← engine ← services ← layers ←
 * pipeline ← cli; the domain is pure, with one exception: the kernel contracts it calls.
 */
const allowed: Record<string, ReadonlyArray<string>> = {
  domain: ["domain", "engine/kernels/KernelNames.ts"],
  engine: ["domain", "engine"],
  platform: ["domain", "platform"],
  services: ["domain", "engine", "platform", "services"],
  layers: ["domain", "engine", "platform", "services", "layers"],
  pipeline: ["domain", "engine", "platform", "services", "layers", "pipeline"],
  report: ["domain", "report"],
  testing: ["domain", "testing"],
  browser: ["domain", "engine", "services", "layers", "pipeline", "browser"],
  cli: ["domain", "engine", "platform", "services", "layers", "pipeline", "report", "cli"]
}

const permits = (from: string, to: string): boolean =>
  (allowed[area(from)] ?? []).some((a) => to === a || to.startsWith(`${a}/`))

/**
 * Node-bound modules (docs/architecture.md, "Portable and Node-bound modules"): every module in a `node/` folder, the
 * areas that are Node by nature (`platform/`: the file system; `report/`: plots through resvg; `cli/`), the native
 * addon's kernels (`engine/kernels/Native.ts`, `engine/kernels/native/`), and the Node entry points that export them.
 * Every other module is portable: it runs in a web page as in Node.
 */
const nodeEntries = ["index.ts", "layers/index.ts", "pipeline/index.ts"]
const isNodeBound = (path: string): boolean =>
  path.split("/").includes("node") || ["platform", "report", "cli"].includes(area(path)) ||
  path === "engine/kernels/Native.ts" || path.startsWith("engine/kernels/native/") || nodeEntries.includes(path)

/** Packages only Node has: its built-ins, Effect's Node platform, the native TensorFlow peers, Dawn's binding. */
const nodePackage = /^(node:|@effect\/platform-node|@tensorflow\/tfjs-node|webgpu$)|\.node$/

describe("the source layout", () => {
  const files = walk(src).map((f) => relative(src, f)).filter((f) => f.includes("/"))

  it("keeps imports flowing one way between areas (domain ← engine ← services ← layers ← pipeline ← cli)", () => {
    const violations = files.flatMap((file) =>
      importsOf(join(src, file)).filter((target) => !permits(file, target)).map((target) => `${file} → ${target}`)
    )
    expect(violations).toEqual([])
  })

  it("keeps the domain free of I/O: no Node built-ins, no platform packages", () => {
    const impure = files
      .filter((f) => area(f) === "domain")
      .filter((f) => /from\s+["'](node:|@effect\/platform)/.test(readFileSync(join(src, f), "utf8")))
    expect(impure).toEqual([])
  })

  it("reaches services' internal bodies only through their public module (or its Node module)", () => {
    const owner = (dir: string): string => dir.replace(/\/internal$/, "").replace(/\/node$/, "")
    const leaks = files.flatMap((file) =>
      importsOf(join(src, file))
        .filter((target) => target.includes("/internal/") && owner(dirname(target)) !== owner(dirname(file)))
        .map((target) => `${file} → ${target}`)
    )
    expect(leaks).toEqual([])
  })

  it("keeps portable modules free of Node: no Node-bound module, node:*, platform-node, native addon or webgpu", () => {
    const portable = files.filter((f) => !isNodeBound(f))
    expect(portable).toContain("engine/Engine.ts")
    expect(portable).toContain("pipeline/Distill.ts")
    const violations = portable.flatMap((file) => [
      ...importsOf(join(src, file)).filter(isNodeBound).map((target) => `${file} → ${target}`),
      ...specifiersOf(join(src, file)).filter((spec) => nodePackage.test(spec)).map((spec) => `${file} → ${spec}`)
    ])
    expect(violations).toEqual([])
  })

  it("reads and cites nothing outside the repository", () => {
    const outside = [...walk(src), ...walk(join(root, "test")), ...walk(join(root, "bench"))]
      .filter((f) => f !== new URL(import.meta.url).pathname)
      .filter((f) => /\.\.\/shared|shared\/(spec|notes|golden)/.test(readFileSync(f, "utf8")))
      .map((f) => relative(root, f))
    expect(outside).toEqual([])
  })
})
