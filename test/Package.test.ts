import { execFile } from "node:child_process"
import { promisify } from "node:util"
import { mkdirSync, mkdtempSync, readdirSync, renameSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"

const root = process.cwd()
const npm = process.platform === "win32" ? "npm.cmd" : "npm"

/** A child process whose output is awaited (the event loop keeps turning, so vitest's worker RPC is served). */
const run = async (file: string, args: ReadonlyArray<string>, cwd: string): Promise<string> =>
  (await promisify(execFile)(file, [...args], { cwd, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 })).stdout

/**
 * `npm pack`, then install the tarball into a fresh folder as its only package of its own (its dependencies are
 * linked from this checkout's node_modules, so the test needs no network), and use it through its public API only.
 */
describe("the packed package", () => {
  it("installs in a fresh folder, type-checks for a consumer, and runs a 20-step distillation through its public API", async () => {
    const work = mkdtempSync(join(tmpdir(), "sid-pack-"))
    const stdout = await run(npm, ["pack", "--json", "--pack-destination", work], root)
    // Lifecycle banners (the prepack build) may precede the JSON on some npm versions.
    const packed = JSON.parse(stdout.slice(stdout.search(/^\[/m))) as Array<{ filename: string; files: Array<{ path: string }> }>
    const files = packed[0]!.files.map((f) => f.path)
    expect(files).toContain("dist/index.js")
    expect(files).toContain("dist/index.d.ts")
    expect(files).toContain("dist/cli/bin.js")
    expect(files).toContain("tools/build-native.mjs")
    expect(files).toContain("native/binding.gyp")
    // The JSDoc in dist/ cites docs/algorithm.md and docs/engines.md, so the package ships them.
    expect(files).toContain("docs/algorithm.md")
    expect(files).toContain("docs/engines.md")
    expect(files.some((f) => f.startsWith("src/") || f.startsWith("test/"))).toBe(false)

    const app = join(work, "app")
    const modules = join(app, "node_modules")
    mkdirSync(modules, { recursive: true })
    await run("tar", ["-xzf", join(work, packed[0]!.filename), "-C", work], work)
    renameSync(join(work, "package"), join(modules, "sid-ts"))
    for (const name of readdirSync(join(root, "node_modules"))) {
      if (name.startsWith(".") || name === "sid-ts") continue
      symlinkSync(join(root, "node_modules", name), join(modules, name))
    }
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "consumer", type: "module", private: true }))
    writeFileSync(
      join(app, "main.ts"),
      `import { Effect, Layer, Stream } from "effect"
import { domain, layers, pipeline } from "sid-ts"
import { GaussianMixture } from "sid-ts/domain"
import * as Testing from "sid-ts/testing"
import * as Web from "sid-ts/browser/distill"

const mixture = GaussianMixture.ring()
const config = domain.DistillConfig.distillConfig({ steps: 20, batchSize: 64, evalEvery: 20, generatorLr: 1e-3, fakeLr: 1e-3 })
const services = layers.Distillation.layer(config, {
  teacher: layers.Teacher.layerGaussianMixture(mixture, { steps: 50, hidden: 32, depth: 2, batchSize: 128 }),
  metrics: layers.Metrics.layerGaussianMixture(mixture, { referenceSize: 2000, mmdSize: 500 }),
  checkpoints: layers.CheckpointStore.layerMemory
})
const reports = await Effect.runPromise(
  pipeline.Distill.distill(config, { evalSamples: 1000 }).pipe(Stream.runCollect, Effect.provide(Layer.provide(services, layers.Engine.wasm)))
)
const all = Array.from(reports)
const last = all[all.length - 1]!
console.log(JSON.stringify({ count: all.length, step: last.step, fd: last.evaluation?.frechetDistance, arbitraries: typeof Testing.logUniformArbitrary, web: typeof Web.BrowserRun.layer }))
`
    )
    writeFileSync(
      join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, skipLibCheck: true, noEmit: true, types: ["node"] },
        files: ["main.ts"]
      })
    )
    await run(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", app], app)
    const out = await run(process.execPath, ["--import", "tsx", "main.ts"], app)
    const result = JSON.parse(out.trim().split("\n").at(-1)!) as { count: number; step: number; fd: number; arbitraries: string; web: string }
    expect(result.count).toBe(21)
    expect(result.step).toBe(20)
    expect(Number.isFinite(result.fd)).toBe(true)
    expect(result.arbitraries).toBe("function")
    expect(result.web).toBe("function")

    const help = await run(process.execPath, [join(modules, "sid-ts", "dist", "cli", "bin.js"), "distill", "--help"], app)
    expect(help).toContain("--teacher")
  }, 240_000)
})
