/**
 * XNNPACK's threads on the plain `wasm` engine in Node (docs/engines.md §2.1): the 2-D MLP SiD iteration at each
 * thread count, each in a fresh process (a process's wasm thread count is fixed when its backend starts), the counts
 * alternating round by round so that all see the same machine load. Reports per count the median wall and CPU
 * (`process.cpuUsage`, all threads) milliseconds per iteration, the speed-up over one thread, and whether every count
 * computed the same losses bit for bit.
 *
 *   npx tsx bench/wasm-threads.ts -- [--threads 1,2] [--rounds 3] [--warmup 3] [--iterations 10] [--batches 512,1024]
 *
 * JSON goes to stdout and bench/results/wasm-threads-<date>.json.
 *
 * @since 0.2.0
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import { cpus, loadavg } from "node:os"
import { Engine, makeWasm } from "../src/engine/node/Engine.js"
import { timedMlpIterations } from "./Services.js"
import { log, median, option, round, writeReport } from "./Support.js"

const warmup = Number(option("warmup") ?? 3)
const iterations = Number(option("iterations") ?? 10)

interface ChildResult {
  readonly threads: number
  readonly wall: Array<number>
  readonly cpu: Array<number>
  readonly losses: Array<number>
  readonly drift: number
}

const child = (threads: number, batch: number) =>
  Effect.scoped(
    Effect.gen(function*() {
      const engine = yield* Engine
      const m = yield* timedMlpIterations(batch, warmup, iterations)
      const result: ChildResult = {
        threads: engine.facts.threads,
        wall: m.runs.map((r) => r.wall),
        cpu: m.runs.map((r) => r.cpu),
        losses: m.losses,
        drift: m.drift
      }
      console.log(JSON.stringify(result))
    }).pipe(Effect.provide(makeWasm({ wasmThreads: threads })))
  )

const parent = () => {
  const counts = (option("threads") ?? "1,2").split(",").map(Number)
  const rounds = Number(option("rounds") ?? 3)
  const batches = (option("batches") ?? "512,1024").split(",").map(Number)
  const results = []
  for (const batch of batches) {
    const all = new Map(counts.map((n) => [n, { wall: [] as Array<number>, cpu: [] as Array<number>, actual: 0, drift: [] as Array<number> }]))
    const lossSets = new Set<string>()
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? counts : [...counts].reverse()
      for (const n of order) {
        const out = execFileSync(process.execPath, [
          "--import",
          "tsx",
          new URL(import.meta.url).pathname,
          "--child",
          String(n),
          "--batch",
          String(batch),
          "--warmup",
          String(warmup),
          "--iterations",
          String(iterations)
        ], { encoding: "utf8", env: { ...process.env, SID_WASM_THREADS: "" } })
        const line = out.trim().split("\n").filter((l) => l.startsWith("{")).at(-1)!
        const res = JSON.parse(line) as ChildResult
        const slot = all.get(n)!
        slot.wall.push(...res.wall)
        slot.cpu.push(...res.cpu)
        slot.actual = res.threads
        slot.drift.push(res.drift)
        lossSets.add(JSON.stringify(res.losses))
        log(`batch ${batch} round ${r + 1}/${rounds} threads ${n} (actual ${res.threads}): wall ${round(median(res.wall), 1)} ms, load ${round(loadavg()[0]!, 2)}`)
      }
    }
    const one = median(all.get(counts[0]!)!.wall)
    results.push({
      batch,
      sameLosses: lossSets.size === 1,
      counts: counts.map((n) => {
        const slot = all.get(n)!
        return {
          threadsRequested: n,
          threads: slot.actual,
          wallMsMedian: round(median(slot.wall), 2),
          cpuMsMedian: round(median(slot.cpu), 2),
          speedUp: round(one / median(slot.wall), 3),
          numTensorsDrift: slot.drift
        }
      })
    })
    log(JSON.stringify(results.at(-1)))
  }
  const report = {
    date: new Date().toISOString(),
    node: process.version,
    tfjs: tf.version_core,
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? "unknown", load1: round(loadavg()[0]!, 2) },
    config: { counts, rounds, warmup, iterations, batches },
    note: "2-D MLP SiD iteration (fake step + generator step + EMA) on the plain wasm engine with XNNPACK's pool of " +
      "each thread count, one fresh process per count and round; speedUp: wall median of the first count over this " +
      "one's; sameLosses: every process computed the same losses bit for bit",
    results
  }
  writeReport("wasm-threads", report)
}

const childThreads = option("child")
if (childThreads !== undefined) {
  Effect.runPromise(child(Number(childThreads), Number(option("batch") ?? 1024))).then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error)
      process.exit(1)
    }
  )
} else {
  parent()
}
