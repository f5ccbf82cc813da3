/**
 * TF.js engines against PyTorch on the same machine, in one invocation (issue 6): one Adam step of the reference
 * denoiser (docs/engines.md §4) on each TF.js engine, and the identical network in PyTorch (bench/vs_torch.py,
 * Debian's python3-torch, 2 threads) when `/usr/bin/python3 -c "import torch"` works. Per shape: median ms per step,
 * conv GFLOP/s, `numTensors` before/after the timed steps, and each engine's ratio to PyTorch.
 *
 *   npm run bench:vs-torch -- [--shapes 32x32x3x32,28x28x1x32,16x16x1x8] [--engines wasm,wasm-native]
 *                            [--warmup 5] [--steps 10] [--rounds 1] [--torch-threads 2] [--torch-omp default,passive]
 *                            [--no-torch] [--out FILE]
 *
 * PyTorch runs once per OpenMP wait policy (its spinning default and PASSIVE, the policy the native addon loads
 * OpenMP with); ratios are to the faster of the two.
 *
 * With `--rounds N` every engine and PyTorch are measured N times, interleaved (PyTorch, then each engine, per round),
 * and the reported median is over all timed steps of all rounds; this evens out other load on a shared machine. The
 * 1-minute load average is recorded before and after each measurement. JSON goes to stdout and
 * bench/results/vs-torch-<date>.json.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { Context, Effect, Either, Layer } from "effect"
import { cpus, totalmem } from "node:os"
import * as EngineLayers from "../src/engine/node/Engine.js"
import { loadNativeAddon } from "../src/engine/kernels/Native.js"
import { Engine, type EngineName } from "../src/engine/node/Engine.js"
import { convFlops, makeReferenceTraining } from "./ReferenceDenoiser.js"
import { log, maxRssMiB, median, option, parseShape, round, type Shape, writeReport } from "./Support.js"
import { load1, python, runTorchScript, torchAvailable, torchPolicies, torchThreads } from "./Torch.js"

const key = (s: Shape) => `${s.height}x${s.width}x${s.channels}x${s.batch}`
const shapes = (option("shapes") ?? "32x32x3x32,28x28x1x32,16x16x1x8").split(",").map(parseShape)
const engines = (option("engines") ?? "wasm,wasm-native").split(",") as Array<EngineName>
const warmup = Number(option("warmup") ?? 5)
const steps = Number(option("steps") ?? 10)
const rounds = Number(option("rounds") ?? 1)

interface Run {
  readonly ms: ReadonlyArray<number>
  readonly cpuMs: ReadonlyArray<number>
  readonly numTensorsBefore: number
  readonly numTensorsAfter: number
  readonly lossFirst: number
  readonly lossLast: number
  readonly loadBefore: number
  readonly loadAfter: number
}

/** `warmup` + `steps` Adam steps of the reference denoiser on `t`; ms of the timed steps. */
const trainSteps = (t: typeof tf, shape: Shape): Run => {
  const loadBefore = load1()
  const training = makeReferenceTraining(t, shape)
  const losses: Array<number> = []
  const step = () => {
    losses.push(training.step())
  }
  for (let i = 0; i < warmup; i++) step()
  const numTensorsBefore = t.memory().numTensors
  const ms: Array<number> = []
  const cpuMs: Array<number> = []
  for (let i = 0; i < steps; i++) {
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    step()
    ms.push(performance.now() - t0)
    const c = process.cpuUsage(c0)
    cpuMs.push((c.user + c.system) / 1000)
  }
  const numTensorsAfter = t.memory().numTensors
  training.dispose()
  return {
    ms,
    cpuMs,
    numTensorsBefore,
    numTensorsAfter,
    lossFirst: losses[0]!,
    lossLast: losses[losses.length - 1]!,
    loadBefore,
    loadAfter: load1()
  }
}

const runEngine = (name: EngineName) =>
  Effect.scoped(
    Effect.gen(function*() {
      const built = yield* Effect.either(Layer.build(EngineLayers.layer(name)))
      if (Either.isLeft(built)) {
        log(`${name}: unavailable: ${built.left.message}`)
        return { available: false as const, reason: built.left.message, errorTag: built.left._tag }
      }
      const engine = Context.get(built.right, Engine)
      const runs: Record<string, Run> = {}
      for (const shape of shapes) {
        log(`${name}: ${key(shape)} (${warmup}+${steps} steps, load ${load1()})...`)
        const r = yield* Effect.sync(() => trainSteps(engine.tf, shape))
        log(`  median ${round(median(r.ms), 1)} ms, numTensors ${r.numTensorsBefore}->${r.numTensorsAfter}`)
        runs[key(shape)] = r
      }
      return { available: true as const, threads: engine.facts.threads, patchedKernels: engine.facts.patchedKernels, runs }
    })
  )

interface TorchResult {
  readonly shape: string
  readonly batch: number
  readonly parameters: number
  readonly ms: ReadonlyArray<number>
  readonly cpuMs: ReadonlyArray<number>
  readonly lossFirst: number
  readonly lossLast: number
}

interface TorchRun {
  readonly policy: string
  readonly results: ReadonlyArray<TorchResult>
  readonly loadBefore: number
  readonly loadAfter: number
}

const runTorch = (policy: string): TorchRun => {
  log(`torch (OMP ${policy}): ${shapes.map(key).join(",")} (${warmup}+${steps} steps, ${torchThreads} threads, load ${load1()})...`)
  const run = runTorchScript<{ results: ReadonlyArray<TorchResult> }>(
    "vs_torch.py",
    ["--shapes", shapes.map(key).join(","), "--warmup", String(warmup), "--steps", String(steps)],
    policy
  )
  for (const x of run.output.results) log(`  ${x.shape} B=${x.batch}: median ${round(median(x.ms), 1)} ms`)
  return { policy, results: run.output.results, loadBefore: run.loadBefore, loadAfter: run.loadAfter }
}

const nativeLibrary = (): string => {
  try {
    return loadNativeAddon().convLibrary()
  } catch {
    return "not built"
  }
}

const summary = (ms: ReadonlyArray<number>, flops: number) => {
  const m = median(ms)
  return { medianMs: round(m, 1), minMs: round(Math.min(...ms), 1), steps: ms.length, gflops: round(flops / (m / 1000) / 1e9, 2) }
}

const program = Effect.gen(function*() {
  const torch = torchAvailable()
  if (!torch.ok) log(`torch: skipped (${torch.reason})`)
  const raw: Record<string, Array<unknown>> = {}
  const torchRuns: Array<TorchRun> = []
  for (let r = 0; r < rounds; r++) {
    if (rounds > 1) log(`round ${r + 1}/${rounds}`)
    if (torch.ok) for (const policy of torchPolicies) torchRuns.push(runTorch(policy))
    for (const name of engines) {
      const result = yield* runEngine(name)
      ;(raw[name] ??= []).push(result)
    }
  }
  const perShape = shapes.map((shape) => {
    const k = key(shape)
    const flops = 3 * convFlops(shape.height, shape.width, shape.channels, shape.batch)
    const msOf = (t: TorchRun, field: "ms" | "cpuMs") =>
      t.results.find((x) => `${x.shape}x${x.batch}` === k)?.[field] ?? []
    const byPolicy = Object.fromEntries(torchPolicies.flatMap((policy) => {
      const runs = torchRuns.filter((t) => t.policy === policy)
      const ms = runs.flatMap((t) => msOf(t, "ms"))
      if (ms.length === 0) return []
      return [[policy, {
        ...summary(ms, flops),
        medianCpuMs: round(median(runs.flatMap((t) => msOf(t, "cpuMs"))), 1),
        roundMediansMs: runs.map((t) => round(median(msOf(t, "ms")), 1)),
        load1: runs.map((t) => [t.loadBefore, t.loadAfter])
      }]]
    })) as Record<string, ReturnType<typeof summary> & { medianCpuMs: number }>
    const best = Object.entries(byPolicy).sort((a, b) => a[1].medianMs - b[1].medianMs)[0]
    const torchSummary = best === undefined ? null : best[1]
    const byEngine = Object.fromEntries(engines.map((name) => {
      const runs = (raw[name] ?? []) as Array<
        { available: true; runs: Record<string, Run> } | { available: false; reason: string }
      >
      const ok = runs.flatMap((x) => (x.available ? [x.runs[k]!] : []))
      if (ok.length === 0) {
        const reason = runs.find((x) => !x.available) as { reason: string } | undefined
        return [name, { available: false, reason: reason?.reason ?? "no runs" }]
      }
      const s = summary(ok.flatMap((x) => x.ms), flops)
      return [name, {
        available: true,
        ...s,
        medianCpuMs: round(median(ok.flatMap((x) => x.cpuMs)), 1),
        ratioToTorch: torchSummary === null ? null : round(s.medianMs / torchSummary.medianMs, 2),
        roundMediansMs: ok.map((x) => round(median(x.ms), 1)),
        numTensors: ok.map((x) => [x.numTensorsBefore, x.numTensorsAfter]),
        tensorsStable: ok.every((x) => x.numTensorsBefore === x.numTensorsAfter),
        loss: ok.map((x) => [round(x.lossFirst, 5), round(x.lossLast, 5)]),
        load1: ok.map((x) => [x.loadBefore, x.loadAfter])
      }]
    }))
    return {
      shape: `${shape.height}x${shape.width}x${shape.channels}`,
      batch: shape.batch,
      trainConvGflop: round(flops / 1e9, 3),
      torch: best === undefined ? null : { best: best[0], medianMs: best[1].medianMs, byOmpWaitPolicy: byPolicy },
      engines: byEngine
    }
  })
  const report = {
    date: new Date().toISOString(),
    node: process.version,
    tfjs: tf.version_core,
    torch: torch.ok ? { version: torch.version, threads: torchThreads, python, ompWaitPolicies: torchPolicies } : { skipped: torch.reason },
    nativeConvLibrary: nativeLibrary(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? "unknown", memGiB: Math.round(totalmem() / 2 ** 30) },
    config: { shapes: shapes.map(key), engines, warmup, steps, rounds },
    note: "median ms per Adam step over all timed steps of all rounds; ratioToTorch = engine median / the faster " +
      "PyTorch median (OpenMP wait policy default or PASSIVE); " +
      "GFLOP/s = 3 x forward conv FLOPs (2*MAC) / median step; medianCpuMs = process CPU time (all threads) per step; " +
      "load1 = 1-minute load average before/after",
    maxRssMiB: maxRssMiB(),
    results: perShape
  }
  for (const r of perShape) {
    const parts = engines.map((name) => {
      const e = r.engines[name] as { available: boolean; medianMs?: number; ratioToTorch?: number | null }
      return e.available ? `${name} ${e.medianMs} ms${e.ratioToTorch == null ? "" : ` (${e.ratioToTorch}x)`}` : `${name} n/a`
    })
    log(`${r.shape} B=${r.batch}: ${r.torch === null ? "" : `torch ${r.torch.medianMs} ms, `}${parts.join(", ")}`)
  }
  const out = writeReport("vs-torch", report)
  log(`written ${out}`)
})

Effect.runPromise(program).catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
