/**
 * Where one SiD iteration of the 2-D MLP (4×128, batch 512, docs/algorithm.md §12.3) spends its time on an engine
 * (issue 18 points 2 and 5): per kernel name, dispatches per iteration and time inside the kernel; by difference the
 * TF.js bookkeeping (tape, tensor records, scopes, disposal) and everything outside the kernels; GC time per
 * iteration; and the split into fake-score step, generator step and EMA.
 *
 *   npx tsx bench/profile-distill.ts -- [--warmup 5] [--iterations 20] [--batch 512] [--out FILE]
 *
 * The engine comes from `SID_ENGINE` (default `auto`). A kernel that calls other registered kernels directly (the
 * fused kernels' composites) is timed whole; the kernels it calls are not counted again. JSON goes to stdout and
 * bench/results/profile-distill-<date>.json.
 *
 * @since 0.2.0
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { loadavg } from "node:os"
import { PerformanceObserver } from "node:perf_hooks"
import { SIGMA_DATA } from "../src/domain/edm/Edm.js"
import { mlpSpec } from "../src/domain/nn/Mlp.js"
import { mlpNetwork } from "../src/domain/nn/Network.js"
import { emaBeta } from "../src/domain/optim/Ema.js"
import * as EngineLayers from "../src/engine/node/Engine.js"
import { Engine } from "../src/engine/node/Engine.js"
import { fakeScoreUpdate, generatorUpdate } from "../src/pipeline/Iteration.js"
import { benchServices } from "./Services.js"
import { log, median, option, round, writeReport } from "./Support.js"

const warmup = Number(option("warmup") ?? 5)
const iterations = Number(option("iterations") ?? 20)
const batch = Number(option("batch") ?? 512)
const load1 = () => round(loadavg()[0]!, 2)
/** CPU time of this process (all threads) so far, ms: on a shared, loaded machine it measures the work, not the wait. */
const cpuMs = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

let gcMs = 0
const gcObserver = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration
})
gcObserver.observe({ entryTypes: ["gc"] })

const program = Effect.scoped(
  Effect.gen(function*() {
    const engine = yield* Engine
    const network = mlpNetwork(mlpSpec(2))
    const { parameters, services, settings } = yield* benchServices("mlp", network, SIGMA_DATA, batch)
    let imagesSeen = 0
    const one = () => {
      const c0 = cpuMs()
      const t0 = performance.now()
      fakeScoreUpdate(services, { ...settings, batchSize: batch })
      const t1 = performance.now()
      generatorUpdate(services, { ...settings, batchSize: batch })
      const t2 = performance.now()
      services.generator.updateEma(
        emaBeta({ halfLifeKimg: settings.emaHalfLifeKimg, rampupRatio: settings.emaRampupRatio }, batch, imagesSeen)
      )
      const t3 = performance.now()
      imagesSeen += batch
      return { total: t3 - t0, fake: t1 - t0, generator: t2 - t1, ema: t3 - t2, cpu: cpuMs() - c0 }
    }
    log(`${engine.name}: MLP SiD iteration, ${parameters} parameters, batch ${batch}, ${warmup}+${iterations} (load ${load1()})`)
    for (let i = 0; i < warmup; i++) one()
    const tensorsBefore = tf.memory().numTensors
    const plain: Array<ReturnType<typeof one>> = []
    const gc: Array<number> = []
    for (let i = 0; i < iterations; i++) {
      const g0 = gcMs
      plain.push(one())
      yield* Effect.promise(() => new Promise((r) => setImmediate(r)))
      gc.push(gcMs - g0)
    }
    const tensorsAfter = tf.memory().numTensors

    // Timed iterations with every kernel function of the backend wrapped by a timer (restored afterwards); nested
    // calls (a kernel calling another through the registry) are counted once, at the outermost kernel.
    const rows = new Map<string, { count: number; ms: number; cpu: number }>()
    const backendName = tf.getBackend()
    const originals = tf.getKernelsForBackend(backendName)
    let depth = 0
    const wrap = (config: tf.KernelConfig): tf.KernelConfig => ({
      ...config,
      kernelFunc: (args) => {
        if (depth > 0) return config.kernelFunc(args)
        depth++
        const c0 = cpuMs()
        const t0 = performance.now()
        try {
          return config.kernelFunc(args)
        } finally {
          depth--
          const r = rows.get(config.kernelName) ?? { count: 0, ms: 0, cpu: 0 }
          r.count += 1
          r.ms += performance.now() - t0
          r.cpu += cpuMs() - c0
          rows.set(config.kernelName, r)
        }
      }
    })
    const swap = (configs: ReadonlyArray<tf.KernelConfig>) => {
      for (const c of configs) {
        tf.unregisterKernel(c.kernelName, backendName)
        tf.registerKernel(c)
      }
    }
    swap(originals.map(wrap))
    const wrapped: Array<number> = []
    const wrappedCpu: Array<number> = []
    try {
      for (let i = 0; i < iterations; i++) {
        const r = one()
        wrapped.push(r.total)
        wrappedCpu.push(r.cpu)
      }
    } finally {
      swap(originals)
    }
    gcObserver.disconnect()
    for (const r of rows.values()) {
      r.count /= iterations
      r.ms /= iterations
      r.cpu /= iterations
    }
    const kernels = [...rows.entries()]
      .map(([name, r]) => ({ name, perIteration: r.count, kernelMsPerIteration: round(r.ms, 3), kernelCpuMsPerIteration: round(r.cpu, 3) }))
      .sort((a, b) => b.kernelCpuMsPerIteration - a.kernelCpuMsPerIteration)
    const dispatches = kernels.reduce((s, k) => s + k.perIteration, 0)
    const kernelMs = kernels.reduce((s, k) => s + k.kernelMsPerIteration, 0)
    const kernelCpuMs = kernels.reduce((s, k) => s + k.kernelCpuMsPerIteration, 0)
    const timed = median(wrapped)
    const timedCpu = median(wrappedCpu)
    const result = {
      iterationMs: {
        median: round(median(plain.map((r) => r.total)), 2),
        min: round(Math.min(...plain.map((r) => r.total)), 2),
        fakeStepMedian: round(median(plain.map((r) => r.fake)), 2),
        generatorStepMedian: round(median(plain.map((r) => r.generator)), 2),
        emaMedian: round(median(plain.map((r) => r.ema)), 2)
      },
      cpuMsPerIteration: { median: round(median(plain.map((r) => r.cpu)), 2), min: round(Math.min(...plain.map((r) => r.cpu)), 2) },
      medianGcMs: round(median(gc), 2),
      dispatches,
      kernelMs: round(kernelMs, 2),
      timedIterationMs: round(timed, 2),
      outsideKernelsMs: round(timed - kernelMs, 2),
      outsideKernelsUsPerDispatch: round(((timed - kernelMs) / dispatches) * 1000, 2),
      kernelCpuMs: round(kernelCpuMs, 2),
      timedIterationCpuMs: round(timedCpu, 2),
      outsideKernelsCpuMs: round(timedCpu - kernelCpuMs, 2),
      numTensorsDrift: tensorsAfter - tensorsBefore,
      kernels
    }
    log(
      `  CPU ${result.cpuMsPerIteration.median} ms/iteration (kernels ${result.kernelCpuMs}, outside ${result.outsideKernelsCpuMs}); wall ` +
        `${result.iterationMs.median} ms/iteration (fake ${result.iterationMs.fakeStepMedian}, G ${result.iterationMs.generatorStepMedian}, ` +
        `EMA ${result.iterationMs.emaMedian}); ${dispatches} dispatches, kernels ${result.kernelMs} ms, outside ` +
        `${result.outsideKernelsMs} ms (${result.outsideKernelsUsPerDispatch} us/dispatch), GC ${result.medianGcMs} ms, ` +
        `numTensors drift ${result.numTensorsDrift} (load ${load1()})`
    )
    const report = {
      date: new Date().toISOString(),
      engine: engine.name,
      node: process.version,
      tfjs: tf.version_core,
      config: { warmup, iterations, batch, parameters },
      note: "per SiD iteration (fake step + generator step + EMA) of the 2-D MLP; kernel times from iterations with every " +
        "kernel function wrapped by a timer (outermost kernel only); timedIterationMs = median with the timers; " +
        "outsideKernelsMs = timedIterationMs - kernel time (TF.js bookkeeping, JS glue); *Cpu* = the same in process CPU time " +
        "(process.cpuUsage, all threads), which measures the work on a loaded machine; load1 = 1-minute load average",
      load1: load1(),
      result
    }
    writeReport("profile-distill", report)
  })
)

Effect.runPromise(program.pipe(Effect.provide(EngineLayers.layerConfig))).catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
