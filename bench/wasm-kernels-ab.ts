/**
 * A/B of the plain `wasm` engine's own kernels (docs/engines.md §3.5) on the 2-D MLP SiD iteration, interleaved in one
 * process so that both sides see the same machine load: each round builds the `wasm` engine without its own kernels
 * (`wasmKernels: false`) and with them, runs warm-up and timed iterations on fresh services, and releases it.
 * Reports per side the median wall and CPU (`process.cpuUsage`) milliseconds per iteration over all rounds and their
 * ratio, and checks that both sides computed the same losses (the kernels keep the composed ops' bits).
 *
 *   npx tsx bench/wasm-kernels-ab.ts -- [--rounds 4] [--warmup 3] [--iterations 8] [--batches 512,1024] [--out FILE]
 *
 * JSON goes to stdout and bench/results/wasm-kernels-ab-<date>.json.
 *
 * @since 0.2.0
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer } from "effect"
import { cpus, loadavg } from "node:os"
import * as EngineLayers from "../src/engine/Engine.js"
import { timedMlpIterations } from "./Services.js"
import { log, median, option, round, writeReport } from "./Support.js"

const rounds = Number(option("rounds") ?? 4)
const warmup = Number(option("warmup") ?? 3)
const iterations = Number(option("iterations") ?? 8)
const batches = (option("batches") ?? "512,1024").split(",").map(Number)
const load1 = () => round(loadavg()[0]!, 2)

type Side = "stock" | "own"

const measure = (side: Side, batch: number) =>
  Effect.scoped(timedMlpIterations(batch, warmup, iterations)).pipe(
    Effect.provide(EngineLayers.makeWasm({ wasmKernels: side === "own" }))
  )

const program = Effect.gen(function*() {
  const results = []
  for (const batch of batches) {
    const all: Record<Side, { wall: Array<number>; cpu: Array<number>; drift: Array<number>; loads: Array<number> }> = {
      stock: { wall: [], cpu: [], drift: [], loads: [] },
      own: { wall: [], cpu: [], drift: [], loads: [] }
    }
    let sameLosses = true
    for (let r = 0; r < rounds; r++) {
      const sides: Array<Side> = r % 2 === 0 ? ["stock", "own"] : ["own", "stock"]
      const losses: Partial<Record<Side, Array<number>>> = {}
      for (const side of sides) {
        const m = yield* measure(side, batch)
        all[side].wall.push(...m.runs.map((x) => x.wall))
        all[side].cpu.push(...m.runs.map((x) => x.cpu))
        all[side].drift.push(m.drift)
        all[side].loads.push(load1())
        losses[side] = m.losses
      }
      sameLosses &&= JSON.stringify(losses.stock) === JSON.stringify(losses.own)
      log(`batch ${batch} round ${r + 1}/${rounds}: load ${load1()}`)
    }
    const summary = (side: Side) => ({
      wallMsMedian: round(median(all[side].wall), 2),
      cpuMsMedian: round(median(all[side].cpu), 2),
      numTensorsDrift: all[side].drift,
      load1: all[side].loads
    })
    const stock = summary("stock")
    const own = summary("own")
    const row = {
      batch,
      stock,
      own,
      wallRatio: round(own.wallMsMedian / stock.wallMsMedian, 3),
      cpuRatio: round(own.cpuMsMedian / stock.cpuMsMedian, 3),
      sameLosses
    }
    log(`batch ${batch}: stock ${stock.cpuMsMedian} ms CPU (${stock.wallMsMedian} wall), own ${own.cpuMsMedian} ms CPU ` +
      `(${own.wallMsMedian} wall): CPU ratio ${row.cpuRatio}, wall ratio ${row.wallRatio}, same losses ${sameLosses}`)
    results.push(row)
  }
  const report = {
    date: new Date().toISOString(),
    node: process.version,
    tfjs: tf.version_core,
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? "unknown" },
    config: { rounds, warmup, iterations, batches },
    note: "2-D MLP SiD iteration (fake step + generator step + EMA; the bench's teacher is the MLP, one more network " +
      "than an exact mixture teacher) on plain wasm without (stock) and with (own) the engine's own kernels, the two " +
      "interleaved round by round in one process; medians over all rounds' timed iterations; sameLosses: both sides' " +
      "losses equal bit for bit in every round",
    results
  }
  writeReport("wasm-kernels-ab", report)
})

Effect.runPromise(program.pipe(Effect.provide(Layer.empty))).catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
