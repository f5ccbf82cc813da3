/**
 * Engine benchmark (docs/engines.md §4): one Adam step and one forward pass of the reference denoiser on each
 * engine, median ms per step, conv GFLOP/s, `tf.memory().numTensors` before/after the timed steps.
 *
 *   npm run bench:engine -- [--quick] [--warmup N] [--steps N] [--engines wasm,cpu,tfjs-node,tfjs-node-gpu]
 *                          [--shapes 32x32x3x32,28x28x1x32] [--cpu-shape 16x16x1x2] [--no-cpu] [--out FILE]
 *
 * cpu is measured only at a tiny shape (`--cpu-shape`, default 16×16×1 batch 2, 1+2 steps): a 32×32×3 batch-32 step
 * takes ~100 s there. JSON goes to stdout and to bench/results/engine-<date>.json.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { Context, Effect, Either, Layer } from "effect"
import { cpus, totalmem } from "node:os"
import * as EngineLayers from "../src/engine/node/Engine.js"
import { Engine, type EngineName } from "../src/engine/node/Engine.js"
import { convFlops, makeReferenceTraining } from "./ReferenceDenoiser.js"
import { flag, log, median, option, parseShape, type Shape, writeReport } from "./Support.js"

interface Timing {
  readonly warmup: number
  readonly steps: number
  readonly medianMs: number
  readonly minMs: number
  readonly gflops: number
  readonly numTensorsBefore: number
  readonly numTensorsAfter: number
}

const quick = flag("quick")
const warmup = Number(option("warmup") ?? (quick ? 2 : 5))
const steps = Number(option("steps") ?? (quick ? 5 : 10))
const shapes = (option("shapes") ?? (quick ? "16x16x1x8" : "32x32x3x32,28x28x1x32,16x16x1x8")).split(",").map(parseShape)
const cpuShape = parseShape(option("cpu-shape") ?? "16x16x1x2")
const engines = (option("engines") ?? "wasm,cpu,tfjs-node,tfjs-node-gpu").split(",") as Array<EngineName>
const runCpu = !flag("no-cpu") && !quick


/** Runs `step` warmup + timed times; `step` must return after the device finished (it reads a value). */
const time = (t: typeof tf, warm: number, timed: number, flops: number, step: () => void): Timing => {
  for (let i = 0; i < warm; i++) step()
  const before = t.memory().numTensors
  const ms: Array<number> = []
  for (let i = 0; i < timed; i++) {
    const t0 = performance.now()
    step()
    ms.push(performance.now() - t0)
  }
  const medianMs = median(ms)
  return {
    warmup: warm,
    steps: timed,
    medianMs: Math.round(medianMs * 10) / 10,
    minMs: Math.round(Math.min(...ms) * 10) / 10,
    gflops: Math.round((flops / (medianMs / 1000) / 1e9) * 100) / 100,
    numTensorsBefore: before,
    numTensorsAfter: t.memory().numTensors
  }
}

const benchShape = (t: typeof tf, shape: Shape, warm: number, timed: number) => {
  const { batch, channels, height, width } = shape
  const training = makeReferenceTraining(t, shape)
  const losses: Array<number> = []
  const fwdFlops = convFlops(height, width, channels, batch)
  const train = time(t, warm, timed, 3 * fwdFlops, () => {
    losses.push(training.step())
  })
  const forward = time(t, warm, timed, fwdFlops, () => {
    t.tidy(() => training.loss().dataSync())
  })
  training.dispose()
  return {
    shape: `${height}x${width}x${channels}`,
    batch,
    parameters: training.net.parameterCount,
    forwardConvGflop: Math.round(fwdFlops / 1e6) / 1e3,
    train,
    forward,
    lossFirst: losses[0],
    lossLast: losses[losses.length - 1]
  }
}

const benchEngine = (name: EngineName) =>
  Effect.scoped(
    Effect.gen(function*() {
      const built = yield* Effect.either(Layer.build(EngineLayers.layer(name)))
      if (Either.isLeft(built)) {
        log(`${name}: unavailable: ${built.left.message}`)
        return { engine: name, available: false, reason: built.left.message, errorTag: built.left._tag }
      }
      const engine = Context.get(built.right, Engine)
      const t = engine.tf
      const results: Array<ReturnType<typeof benchShape>> = []
      const skipped: Array<string> = []
      const plan = name === "cpu"
        ? (runCpu ? [{ shape: cpuShape, warm: 1, timed: 2 }] : [])
        : shapes.map((shape) => ({ shape, warm: warmup, timed: steps }))
      if (name === "cpu") {
        skipped.push(
          runCpu
            ? `cpu measured only at ${cpuShape.height}x${cpuShape.width}x${cpuShape.channels} batch ${cpuShape.batch} ` +
              `(1+2 steps): a 32x32x3 batch-32 step takes ~100 s on the pure-JS backend (docs/engines.md §4)`
            : "cpu skipped (--quick / --no-cpu): ~100 s per 32x32x3 batch-32 step (docs/engines.md §4)"
        )
      }
      for (const { shape, timed, warm } of plan) {
        log(`${name}: ${shape.height}x${shape.width}x${shape.channels} B=${shape.batch} (${warm}+${timed} steps)...`)
        const r = yield* Effect.sync(() => benchShape(t, shape, warm, timed))
        log(`  train ${r.train.medianMs} ms (${r.train.gflops} GFLOP/s), forward ${r.forward.medianMs} ms ` +
          `(${r.forward.gflops} GFLOP/s), numTensors ${r.train.numTensorsBefore}->${r.train.numTensorsAfter}`)
        results.push(r)
      }
      return { engine: name, available: true, backend: engine.backend, facts: engine.facts, results, notes: skipped }
    })
  )

const program = Effect.gen(function*() {
  const report = {
    date: new Date().toISOString(),
    node: process.version,
    tfjs: tf.version_core,
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? "unknown", memGiB: Math.round(totalmem() / 2 ** 30) },
    config: { quick, warmup, steps, shapes, cpuShape: runCpu ? cpuShape : null, engines },
    flops: "conv layers only (incl. 1x1 skips), 2*MAC; training GFLOP/s = 3 x forward conv FLOPs / median step",
    engines: [] as Array<unknown>
  }
  for (const name of engines) report.engines.push(yield* benchEngine(name))
  const out = writeReport("engine", report)
  log(`written ${out}`)
})

Effect.runPromise(program).catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
