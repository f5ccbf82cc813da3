/**
 * Where one Adam step of the reference denoiser spends its time on an engine (issue 18 point 5): per kernel name,
 * dispatches per step, time inside the kernel (the backend's timer) and, by difference, the TF.js bookkeeping around
 * the kernels (tape, tensor records, scopes, disposal) and everything outside them; plus how many kernels did not
 * reach the addon (kernel names the native patches do not cover) and the step's GC time.
 *
 *   npx tsx bench/profile-step.ts -- [--engine wasm-native] [--shapes 32x32x3x32,28x28x1x32,16x16x1x8]
 *                                    [--warmup 3] [--steps 5] [--out FILE]
 *
 * JSON goes to stdout and bench/results/profile-step-<date>.json.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { Context, Effect, Layer } from "effect"
import { loadavg } from "node:os"
import { PerformanceObserver } from "node:perf_hooks"
import * as EngineLayers from "../src/engine/node/Engine.js"
import { Engine, type EngineName } from "../src/engine/node/Engine.js"
import { makeReferenceTraining } from "./ReferenceDenoiser.js"
import { log, median, option, parseShape, round, type Shape, writeReport } from "./Support.js"

const engineName = (option("engine") ?? "wasm-native") as EngineName
const shapes = (option("shapes") ?? "32x32x3x32,28x28x1x32,16x16x1x8").split(",").map(parseShape)
const warmup = Number(option("warmup") ?? 3)
const steps = Number(option("steps") ?? 5)
const load1 = () => round(loadavg()[0]!, 2)

let gcMs = 0
const gcObserver = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration
})
gcObserver.observe({ entryTypes: ["gc"] })

interface KernelRow {
  readonly name: string
  readonly perStep: number
  readonly kernelMsPerStep: number
  readonly native: boolean
}

const profileShape = async (t: typeof tf, shape: Shape, patched: ReadonlySet<string>) => {
  const training = makeReferenceTraining(t, shape)
  for (let i = 0; i < warmup; i++) training.step()
  // Plain steps: wall time and GC.
  const ms: Array<number> = []
  const gc: Array<number> = []
  for (let i = 0; i < steps; i++) {
    const g0 = gcMs
    const t0 = performance.now()
    training.step()
    ms.push(performance.now() - t0)
    await new Promise((r) => setImmediate(r)) // lets the GC observer report
    gc.push(gcMs - g0)
  }
  // Timed steps with every kernel function of the backend wrapped by a timer (restored afterwards).
  const rows = new Map<string, { count: number; ms: number }>()
  const backendName = t.getBackend()
  const originals = t.getKernelsForBackend(backendName)
  const wrap = (config: tf.KernelConfig): tf.KernelConfig => ({
    ...config,
    kernelFunc: (args) => {
      const t0 = performance.now()
      const out = config.kernelFunc(args)
      const r = rows.get(config.kernelName) ?? { count: 0, ms: 0 }
      r.count += 1
      r.ms += performance.now() - t0
      rows.set(config.kernelName, r)
      return out
    }
  })
  const swap = (configs: ReadonlyArray<tf.KernelConfig>) => {
    for (const c of configs) {
      t.unregisterKernel(c.kernelName, backendName)
      t.registerKernel(c)
    }
  }
  swap(originals.map(wrap))
  const wrappedMs: Array<number> = []
  try {
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now()
      training.step()
      wrappedMs.push(performance.now() - t0)
    }
  } finally {
    swap(originals)
  }
  training.dispose()
  for (const r of rows.values()) {
    r.count /= steps
    r.ms /= steps
  }
  const kernels: Array<KernelRow> = [...rows.entries()]
    .map(([name, r]) => ({ name, perStep: r.count, kernelMsPerStep: round(r.ms, 2), native: patched.has(name) }))
    .sort((a, b) => b.kernelMsPerStep - a.kernelMsPerStep)
  const dispatches = kernels.reduce((s, k) => s + k.perStep, 0)
  const kernelMs = kernels.reduce((s, k) => s + k.kernelMsPerStep, 0)
  const stepMs = median(ms)
  const wrappedStepMs = median(wrappedMs)
  const unpatched = kernels.filter((k) => !k.native)
  return {
    shape: `${shape.height}x${shape.width}x${shape.channels}`,
    batch: shape.batch,
    medianStepMs: round(stepMs, 2),
    medianGcMs: round(median(gc), 2),
    dispatches,
    kernelMs: round(kernelMs, 2),
    timedStepMs: round(wrappedStepMs, 2),
    outsideKernelsMs: round(wrappedStepMs - kernelMs, 2),
    outsideKernelsUsPerDispatch: round(((wrappedStepMs - kernelMs) / dispatches) * 1000, 2),
    notNativeDispatches: unpatched.reduce((s, k) => s + k.perStep, 0),
    notNativeKernelMs: round(unpatched.reduce((s, k) => s + k.kernelMsPerStep, 0), 2),
    load1: load1(),
    kernels
  }
}

const program = Effect.scoped(
  Effect.gen(function*() {
    const built = yield* Layer.build(EngineLayers.layer(engineName))
    const engine = Context.get(built, Engine)
    // Kernels the addon runs: the engine's patches labelled "backend/Kernel (native)".
    const patched = new Set(
      engine.facts.patchedKernels.flatMap((label) => {
        const m = /^[^/]+\/(\S+) \(native\)$/.exec(label)
        return m === null ? [] : [m[1]!]
      })
    )
    const results = []
    for (const shape of shapes) {
      log(`${engineName}: profiling ${shape.height}x${shape.width}x${shape.channels} B=${shape.batch} (load ${load1()})...`)
      const r = yield* Effect.promise(() => profileShape(engine.tf, shape, patched))
      log(
        `  step ${r.medianStepMs} ms: ${r.dispatches} dispatches, kernels ${r.kernelMs} ms, outside ${r.outsideKernelsMs} ms ` +
          `(${r.outsideKernelsUsPerDispatch} us/dispatch), GC ${r.medianGcMs} ms, not native ${r.notNativeDispatches} ` +
          `dispatches ${r.notNativeKernelMs} ms`
      )
      results.push(r)
    }
    gcObserver.disconnect()
    const report = {
      date: new Date().toISOString(),
      engine: engineName,
      node: process.version,
      config: { warmup, steps },
      note: "per Adam step of the reference denoiser; kernel times from steps with every kernel function wrapped by a timer; " +
        "timedStepMs = median step with the timers; outsideKernelsMs = timedStepMs - kernel time (TF.js bookkeeping, JS glue, GC); load1 = 1-minute " +
        "load average after each shape",
      results
    }
    writeReport("profile-step", report)
  })
)

Effect.runPromise(program).catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
