/**
 * Distillation benchmark (docs/algorithm.md §8.5, §9.1, §12.3): milliseconds per SiD iteration (fake-score step + generator step +
 * EMA) for the 2-D MLP of docs/algorithm.md §12.3 and for the small UNet, one-step generation against the teacher's Heun-35
 * sampler (samples/s and their ratio), peak RSS and `tf.memory().numTensors` drift over the timed iterations.
 *
 *   npm run bench:distill -- [--quick] [--warmup N] [--iterations N] [--cases mlp,unet16,unet32] [--torch] [--out FILE]
 *
 * Networks are freshly initialised (timing does not need a trained teacher): the teacher is `Teacher.fromWeights`
 * over the initial weights and G, ψ start from them as in a real run. The engine comes from `SID_ENGINE`
 * (default wasm). With `--torch`, the MLP case also runs its PyTorch peer (bench/vs_torch_mlp.py: the same iteration,
 * batch, warm-up and iteration count) under each OpenMP wait policy (`--torch-omp`, `--torch-threads`, `--python` as in
 * bench:vs-torch) and reports the ratio of the medians. JSON goes to stdout and to bench/results/distill-<date>.json.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { cpus, totalmem } from "node:os"
import { SIGMA_DATA } from "../src/domain/edm/Edm.js"
import { mlpSpec } from "../src/domain/nn/Mlp.js"
import { mlpNetwork, type Network, unetNetwork } from "../src/domain/nn/Network.js"
import { unetSpec } from "../src/domain/nn/UNet.js"
import * as EngineLayers from "../src/engine/node/Engine.js"
import { yieldToEventLoop } from "../src/engine/EventLoop.js"
import { fixedLatents, generatorSamples, teacherSamples } from "../src/pipeline/Evaluation.js"
import { fakeScoreUpdate, generatorUpdate } from "../src/pipeline/Iteration.js"
import { emaBeta } from "../src/domain/optim/Ema.js"
import { benchServices } from "./Services.js"
import { flag, log, maxRssMiB, median, option, quantile, round, writeReport } from "./Support.js"
import { Engine } from "../src/engine/node/Engine.js"
import { load1, runTorchScript, torchAvailable, torchPolicies, torchThreads } from "./Torch.js"

const quick = flag("quick")
const warmup = Number(option("warmup") ?? (quick ? 2 : 3))
const iterations = Number(option("iterations") ?? (quick ? 5 : 20))
const caseNames = (option("cases") ?? "mlp,unet16,unet32").split(",")
const withTorch = flag("torch")

interface Case {
  readonly name: string
  readonly network: () => Network
  readonly batch: number
  /** Samples per generation-throughput measurement. */
  readonly generate: number
  /** Iterations scale (UNet iterations are slow). */
  readonly iterationFactor: number
  /** The PyTorch peer script of this case, if it has one. */
  readonly torchScript?: string
}

const CASES: Record<string, Case> = {
  mlp: { name: "mlp 2-D 4x128 (docs/algorithm.md §12.3)", network: () => mlpNetwork(mlpSpec(2)), batch: 512, generate: 20_000, iterationFactor: 1, torchScript: "vs_torch_mlp.py" },
  unet16: {
    name: "unet 16x16x1",
    network: () => unetNetwork(unetSpec([16, 16, 1])),
    batch: 8,
    generate: 32,
    iterationFactor: 0.5
  },
  unet32: {
    name: "unet 32x32x3",
    network: () => unetNetwork(unetSpec([32, 32, 3])),
    batch: 8,
    generate: 16,
    iterationFactor: 0.25
  }
}


/**
 * The cost of the stream's turn of the event loop between iterations (`yieldToEventLoop`), per turn: the mean over
 * many turns, so it can be set against an iteration's time (the pipeline takes one turn per iteration).
 */
const eventLoopTurn = Effect.gen(function*() {
  for (let i = 0; i < 200; i++) yield* yieldToEventLoop
  const turns = 5000
  const t0 = performance.now()
  for (let i = 0; i < turns; i++) yield* yieldToEventLoop
  return { turns, meanUs: round(((performance.now() - t0) * 1000) / turns, 2) }
})

interface TorchPeer {
  readonly medianMs: number
  readonly minMs: number
  readonly parameters: number
}

/**
 * The case's PyTorch peer under each OpenMP policy, right after the case itself: its median and minimum, the load around
 * it, and `ratio` = this engine's median / the faster policy's median (below 1: faster than PyTorch).
 */
const torchPeer = (script: string, batch: number, warm: number, timed: number, ownMedian: number) => {
  const available = torchAvailable()
  if (!available.ok) {
    log(`  torch peer skipped: ${available.reason}`)
    return { skipped: available.reason }
  }
  const runs = torchPolicies.map((policy) => {
    const run = runTorchScript<TorchPeer>(script, ["--batch", String(batch), "--warmup", String(warm), "--iterations", String(timed)], policy)
    log(`  torch ${available.version} (OMP ${policy}, ${torchThreads} threads): median ${run.output.medianMs} ms, min ${run.output.minMs} ms`)
    return { policy, medianMs: run.output.medianMs, minMs: run.output.minMs, parameters: run.output.parameters, loadBefore: run.loadBefore, loadAfter: run.loadAfter }
  })
  const best = Math.min(...runs.map((r) => r.medianMs))
  const ratio = round(ownMedian / best, 2)
  log(`  ${round(ownMedian, 1)} ms vs PyTorch ${best} ms: ×${ratio} (load ${load1()})`)
  return { version: available.version, threads: torchThreads, runs, ratio }
}

const benchCase = (c: Case, turnUs: number) =>
  Effect.scoped(
    Effect.gen(function*() {
      const network = c.network()
      const { parameters, services, settings } = yield* benchServices(c.name, network, SIGMA_DATA, c.batch)
      const timed = Math.max(2, Math.round(iterations * c.iterationFactor))
      const warm = Math.max(1, Math.round(warmup * c.iterationFactor))
      log(`${c.name}: ${parameters} parameters, batch ${c.batch}, ${warm}+${timed} iterations...`)
      let imagesSeen = 0
      const one = () => {
        const t0 = performance.now()
        fakeScoreUpdate(services, settings)
        const t1 = performance.now()
        generatorUpdate(services, settings)
        const t2 = performance.now()
        services.generator.updateEma(emaBeta({ halfLifeKimg: settings.emaHalfLifeKimg, rampupRatio: settings.emaRampupRatio }, c.batch, imagesSeen))
        const t3 = performance.now()
        imagesSeen += c.batch
        return { total: t3 - t0, fake: t1 - t0, generator: t2 - t1, ema: t3 - t2 }
      }
      for (let i = 0; i < warm; i++) one()
      const tensorsBefore = tf.memory().numTensors
      const rssBefore = maxRssMiB()
      const runs = Array.from({ length: timed }, one)
      const tensorsAfter = tf.memory().numTensors
      const rssAfter = maxRssMiB()

      const timeGeneration = (n: number, f: (z: tf.Tensor) => tf.Tensor) => {
        const z = fixedLatents(9, n, network.dataShape)
        tf.tidy(() => f(tf.slice(z, 0, Math.min(n, c.batch))).dataSync())
        const t0 = performance.now()
        tf.tidy(() => f(z).dataSync())
        const ms = performance.now() - t0
        z.dispose()
        return { samples: n, ms: round(ms, 1), samplesPerSecond: round((n * 1000) / ms, 1) }
      }
      const chunk = c.batch >= 512 ? 4096 : c.batch
      const oneStep = timeGeneration(c.generate, (z) => generatorSamples(services.generator, z, "ema", chunk))
      const heun = timeGeneration(c.generate, (z) => {
        const parts: Array<tf.Tensor> = []
        for (let i = 0; i < (z.shape[0] ?? 0); i += chunk) {
          parts.push(teacherSamples(services.teacher, tf.slice(z, i, Math.min(chunk, (z.shape[0] ?? 0) - i)), 18))
        }
        return parts.length === 1 ? parts[0]! : tf.concat(parts, 0)
      })
      const totals = runs.map((r) => r.total)
      const ownMedian = median(totals)
      const result = {
        case: c.name,
        dataShape: network.dataShape,
        parameters,
        batch: c.batch,
        warmup: warm,
        iterations: timed,
        iterationMs: {
          median: round(ownMedian, 1),
          min: round(Math.min(...totals), 1),
          p10: round(quantile(totals, 0.1), 1),
          p90: round(quantile(totals, 0.9), 1),
          fakeStepMedian: round(median(runs.map((r) => r.fake)), 1),
          generatorStepMedian: round(median(runs.map((r) => r.generator)), 1),
          emaMedian: round(median(runs.map((r) => r.ema)), 2)
        },
        samplesPerSecondTraining: round((c.batch * 1000) / ownMedian, 1),
        eventLoopTurnShare: round(turnUs / 1000 / ownMedian, 5),
        generation: {
          oneStep,
          heun35: heun,
          speedup: round(oneStep.samplesPerSecond / heun.samplesPerSecond, 1)
        },
        memory: { numTensorsBefore: tensorsBefore, numTensorsAfter: tensorsAfter, numTensorsDrift: tensorsAfter - tensorsBefore, maxRssMiBBefore: rssBefore, maxRssMiBAfter: rssAfter },
        ...(withTorch && c.torchScript !== undefined ? { torch: torchPeer(c.torchScript, c.batch, warm, timed, ownMedian) } : {})
      }
      log(
        `  ${result.iterationMs.median} ms/iteration (fake ${result.iterationMs.fakeStepMedian}, G ${result.iterationMs.generatorStepMedian}), ` +
          `one-step ${oneStep.samplesPerSecond}/s vs Heun-35 ${heun.samplesPerSecond}/s (×${result.generation.speedup}), ` +
          `numTensors ${tensorsBefore}→${tensorsAfter}, max RSS ${rssAfter} MiB`
      )
      return result
    })
  )

const program = Effect.gen(function*() {
  const engine = yield* Engine
  const results: Array<unknown> = []
  const turn = yield* eventLoopTurn
  log(`event-loop turn between iterations: ${turn.meanUs} µs (mean of ${turn.turns})`)
  for (const name of caseNames) {
    const c = CASES[name]
    if (c === undefined) throw new Error(`unknown case "${name}" (known: ${Object.keys(CASES).join(", ")})`)
    results.push(yield* benchCase(c, turn.meanUs))
  }
  const report = {
    date: new Date().toISOString(),
    node: process.version,
    tfjs: tf.version_core,
    engine: engine.name,
    facts: engine.facts,
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? "unknown", memGiB: Math.round(totalmem() / 2 ** 30) },
    config: { quick, warmup, iterations, cases: caseNames },
    notes: [
      "iteration = fake-score step + generator step + EMA (docs/algorithm.md §9.1); networks freshly initialised",
      "Heun-35 = EDM Heun sampler with 18 steps, 35 denoiser evaluations (docs/algorithm.md §3)",
      "maxRSS is the process peak so far (process.resourceUsage().maxRSS)",
      "eventLoopTurn: the stream's setImmediate turn between iterations; eventLoopTurnShare = its mean / the iteration median"
    ],
    eventLoopTurn: turn,
    results,
    maxRssMiB: maxRssMiB()
  }
  const out = writeReport("distill", report)
  log(`written ${out}`)
})

Effect.runPromise(program.pipe(Effect.provide(EngineLayers.layerConfig))).catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
