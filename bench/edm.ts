/**
 * EDM CIFAR-10 benchmark (docs/algorithm.md §2.3, §2.5, §9.1): the DDPM++ SongUNet of EDM's CIFAR-10 configuration on the engine
 * of `SID_ENGINE` (default: `EngineNameConfig`'s): parameter count, FLOPs per forward at batch 1, median ms per forward
 * at batch 1 and 16, ms per SiD iteration (fake-score step + generator step + EMA) at batch 2 and 1, peak RSS, wasm
 * heap size and `tf.memory().numTensors`.
 *
 *   npm run bench:edm -- [--quick] [--runs N] [--runs16 N] [--sid-runs N] [--sid-batch N] [--sid-also 1,4] [--no-sid]
 *                        [--optimizer-state host|engine] [--copy-identity] [--fused-generator] [--dropout P] [--out FILE]
 *   npm run bench:edm -- --part sid [--sid-batch N] [--sid-runs N]   (the SiD part alone; one JSON line on stdout)
 *
 * FLOPs are counted as 2·MAC over the dense operations of one forward, walking the parameter shapes: a conv weight
 * [kh, kw, cin, cout] of a module named `enc.RxR_*` / `dec.RxR_*` runs at R×R output pixels (EDM resamples before its
 * convolutions), so it costs kh·kw·cin·cout·R² MACs; a linear weight [in, out] costs in·out (the map layers and each
 * block's emb→affine); each attention block adds QKᵀ and AV, 2·(R²)²·C MACs. `map_augment` is not run (EDMPrecond's
 * unconditional forward passes no augment labels). Not counted: GroupNorm, SiLU, softmax, the [1,1] resampling
 * filters, the positional embedding and element-wise arithmetic.
 *
 * The SiD iteration runs in a child process (`--part sid`). The wasm heap is limited to 4 GB: with Adam's moments as
 * engine tensors this network's seven weight copies (teacher, θ, θ_ema, ψ, two moment pairs) take 1.7 GB and the
 * all-parameter Adam update holds a dozen more temporaries, which aborts the runtime even at batch 1. So by default:
 * - Adam's moments and θ_ema live in host memory (`adamHost`, `emaInHost`; `--optimizer-state engine` for tensors),
 *   leaving three weight copies on the heap;
 * - wasm's Identity shares data instead of copying (TF.js clones every tensor it saves for the backward pass through
 *   Identity, filters included; `--copy-identity` keeps the stock kernel);
 * - the generator step runs its backward pass in two stages (the pipeline's `generatorUpdateTwoStage`, what
 *   `DistillConfig.lowMemory` / `sid distill --low-memory` use: same gradient, one network's tape fewer at the peak);
 *   with the fused `generatorUpdate` (`--fused-generator`) batch 1 already reaches the 4 GB ceiling.
 * The SiD iteration runs in evaluation mode by default; `--dropout P` runs ψ (fake step) and G (generator step) in
 * train mode at rate P as `sid distill` does for this teacher (its own rate is 0.13), masks drawn per step.
 * After the requested batch, the batches of `--sid-also` (default 1) are measured too; if the requested batch fails,
 * batch 1 is tried and the failure recorded. JSON goes to stdout and to bench/results/edm-<date>.json.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import { cpus, totalmem } from "node:os"
import { fileURLToPath } from "node:url"
import { edmNetwork, parseEdmConfig } from "../src/domain/edm/NetworkConfig.js"
import type { Network } from "../src/domain/nn/Network.js"
import type { ParameterShapes } from "../src/domain/nn/Parameters.js"
import * as EngineLayers from "../src/engine/node/Engine.js"
import { fakeScoreUpdate, generatorUpdate, generatorUpdateTwoStage } from "../src/pipeline/Iteration.js"
import { Engine } from "../src/engine/node/Engine.js"
import { emaBeta } from "../src/domain/optim/Ema.js"
import { benchServices, type OptimizerState } from "./Services.js"
import { CIFAR10_DDPMPP, flag, log, maxRssMiB, median, option, round, writeReport } from "./Support.js"


const USAGE = `bench:edm — EDM CIFAR-10 DDPM++ forward timings and one SiD iteration (see bench/edm.ts)

  npm run bench:edm -- [options]
    --quick                  fewer timed runs (forward 2/1, SiD 1)
    --runs N / --runs16 N    timed forwards at batch 1 / 16 (default 5 / 3)
    --no-sid                 skip the SiD iteration
    --sid-batch N            SiD batch (default 2; batch 1 is tried if it fails)
    --sid-runs N             timed SiD iterations after 1 warm-up (default 2)
    --sid-also B1,B2         further SiD batches to measure (default 1)
    --optimizer-state S      host (default: Adam moments and θ_ema in host memory) or engine
    --fused-generator        the fused generator update instead of the two-stage one (generatorUpdateTwoStage)
    --copy-identity          keep wasm's stock Identity/Cast kernels (copies)
    --dropout P              train-mode dropout of ψ (fake step) and G (generator step), 0 ≤ P < 1 (default 0: eval)
    --out FILE               report path (default bench/results/edm-<date>.json)
    --part sid               the SiD part alone, one JSON line on stdout (used internally)
`
if (flag("help")) {
  process.stdout.write(USAGE)
  process.exit(0)
}

const quick = flag("quick")
const part = option("part") ?? "all"
const runs1 = Number(option("runs") ?? (quick ? 2 : 5))
const runs16 = Number(option("runs16") ?? (quick ? 1 : 3))
const sidRuns = Number(option("sid-runs") ?? (quick ? 1 : 2))
const sidBatch = Number(option("sid-batch") ?? 2)
const sidAlso = (option("sid-also") ?? "1").split(",").filter((b) => b !== "").map(Number).filter((b) => b !== sidBatch)
const runSid = !flag("no-sid")
const shareIdentity = !flag("copy-identity")
const twoStage = !flag("fused-generator")
const optimizerState = (option("optimizer-state") ?? "host") as OptimizerState
const sidDropout = Number(option("dropout") ?? 0)
if (!(sidDropout >= 0 && sidDropout < 1)) throw new Error(`--dropout must be in [0, 1)`)
if (optimizerState !== "host" && optimizerState !== "engine") throw new Error(`--optimizer-state must be host or engine`)


const config = parseEdmConfig(CIFAR10_DDPMPP)
const makeNetwork = (): Network => edmNetwork(config.architecture)

/** Dense FLOPs (2·MAC) of one forward at batch 1, from the parameter shapes (see the module comment). */
const forwardFlops = (shapes: ParameterShapes) => {
  let conv = 0
  let linear = 0
  let attention = 0
  for (const [name, shape] of Object.entries(shapes)) {
    if (!name.endsWith(".weight") || name.startsWith("map_augment")) continue
    const res = Number(/^(?:enc|dec)\.(\d+)x\d+_/.exec(name)?.[1] ?? NaN)
    if (shape.length === 4) {
      if (!Number.isFinite(res)) throw new Error(`no resolution for conv ${name}`)
      conv += 2 * shape.reduce((a, b) => a * b, 1) * res * res
      if (name.endsWith(".qkv.weight")) {
        const c = shape[2]!
        attention += 2 * 2 * (res * res) ** 2 * c
      }
    } else if (shape.length === 2) {
      linear += 2 * shape[0]! * shape[1]!
    }
  }
  return { total: conv + linear + attention, conv, linear, attention }
}

const timeForward = (network: Network, params: Record<string, tf.Tensor>, batch: number, timed: number) => {
  const x = tf.randomNormal([batch, ...network.dataShape], 0, 1, "float32", 1)
  const cNoise = tf.fill([batch], 0.25) as tf.Tensor1D
  const one = () => {
    const t0 = performance.now()
    tf.tidy(() => network.apply(params, x, cNoise).dataSync())
    return performance.now() - t0
  }
  log(`forward batch ${batch}: 1 warm-up + ${timed} runs...`)
  const warm = one()
  const tensorsBefore = tf.memory().numTensors
  const ms = Array.from({ length: timed }, one)
  const tensorsAfter = tf.memory().numTensors
  tf.dispose([x, cNoise])
  const result = {
    batch,
    warmupMs: round(warm, 1),
    runs: timed,
    medianMs: round(median(ms), 1),
    minMs: round(Math.min(...ms), 1),
    msPerSample: round(median(ms) / batch, 1),
    numTensorsBefore: tensorsBefore,
    numTensorsAfter: tensorsAfter,
    maxRssMiB: maxRssMiB()
  }
  log(`  ${result.medianMs} ms median (min ${result.minMs}), numTensors ${tensorsBefore}→${tensorsAfter}, max RSS ${result.maxRssMiB} MiB`)
  return result
}

/**
 * Makes the wasm engine's Identity (and same-dtype Cast) share the input's data instead of copying it, as the cpu
 * engine does. TF.js clones every tensor it saves for the backward pass through Identity, so with the stock kernel a
 * recorded forward copies its activations and every filter it reads: three weight copies more in a generator step.
 * Tensors are immutable (a variable's `assign` swaps its data id), so sharing is safe. Returns the undo.
 */
const shareIdentityOnWasm = (): (() => void) => {
  const restore: Array<tf.KernelConfig> = []
  const share = (x: tf.TensorInfo, backend: unknown) => {
    ;(backend as { incRef: (id: tf.DataId) => void }).incRef(x.dataId)
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype }
  }
  for (const name of ["Identity", "Cast"]) {
    const stock = tf.getKernel(name, "wasm")
    if (stock === undefined) continue
    restore.push(stock)
    tf.unregisterKernel(name, "wasm")
    tf.registerKernel({
      ...stock,
      kernelFunc: (args) => {
        const x = args.inputs["x"]!
        const sameType = name === "Identity" || (args.attrs as { readonly dtype?: string }).dtype === x.dtype
        return x.dtype !== "string" && sameType ? share(x, args.backend) : stock.kernelFunc(args)
      }
    })
  }
  return () => {
    for (const k of restore) {
      tf.unregisterKernel(k.kernelName, "wasm")
      tf.registerKernel(k)
    }
  }
}

/** Size of the wasm heap in MiB (it grows and never shrinks, so this is its peak), or null on another engine. */
const wasmHeapMiB = (): number | null => {
  const backend = tf.backend() as unknown as { readonly wasm?: { readonly HEAPU8?: Uint8Array } }
  const heap = backend.wasm?.HEAPU8
  return heap === undefined ? null : round(heap.length / 2 ** 20, 0)
}

/** One SiD configuration in this process: fresh network, teacher = its initial weights, G and ψ from them. */
const sidPart = (batch: number, timed: number) =>
  Effect.scoped(
    Effect.gen(function*() {
      if (shareIdentity && tf.getBackend() === "wasm") yield* Effect.acquireRelease(Effect.sync(shareIdentityOnWasm), (undo) => Effect.sync(undo))
      const network = makeNetwork()
      const { services, settings } = yield* benchServices("edm-cifar10-ddpmpp", network, config.sigmaData, batch, optimizerState, sidDropout)
      const mib = () => round(tf.memory().numBytes / 2 ** 20, 0)
      const tensorMiBAfterBuild = mib()
      const heapMiBAfterBuild = wasmHeapMiB()
      log(`  services built (${services.generator.weights.optimizer.name}): ${tf.memory().numTensors} tensors, ${tensorMiBAfterBuild} MiB of tensors, wasm heap ${heapMiBAfterBuild} MiB`)
      const beta = emaBeta({ halfLifeKimg: settings.emaHalfLifeKimg, rampupRatio: settings.emaRampupRatio }, batch, 10_000)
      let first = true
      const one = () => {
        if (first) log(`  warm-up fake-score step (${mib()} MiB of tensors)...`)
        const t0 = performance.now()
        fakeScoreUpdate(services, settings)
        const t1 = performance.now()
        if (first) log(`  warm-up generator step (${mib()} MiB of tensors, fake step ${round(t1 - t0, 0)} ms)...`)
        if (twoStage) generatorUpdateTwoStage(services, settings)
        else generatorUpdate(services, settings)
        const t2 = performance.now()
        if (first) log(`  warm-up EMA update (generator step ${round(t2 - t1, 0)} ms, wasm heap ${wasmHeapMiB()} MiB)...`)
        services.generator.updateEma(beta)
        const t3 = performance.now()
        first = false
        return { total: t3 - t0, fake: t1 - t0, generator: t2 - t1, ema: t3 - t2 }
      }
      log(`SiD iteration batch ${batch}: 1 warm-up + ${timed} runs...`)
      const tensorsStart = tf.memory().numTensors
      const warm = one()
      const tensorsBefore = tf.memory().numTensors
      const rssBefore = maxRssMiB()
      const timedRuns = Array.from({ length: timed }, one)
      const tensorsAfter = tf.memory().numTensors
      const result = {
        batch,
        warmupMs: round(warm.total, 1),
        runs: timed,
        iterationMs: {
          median: round(median(timedRuns.map((r) => r.total)), 1),
          min: round(Math.min(...timedRuns.map((r) => r.total)), 1),
          fakeStepMedian: round(median(timedRuns.map((r) => r.fake)), 1),
          generatorStepMedian: round(median(timedRuns.map((r) => r.generator)), 1),
          emaMedian: round(median(timedRuns.map((r) => r.ema)), 1)
        },
        optimizer: services.generator.weights.optimizer.name,
        optimizerState,
        sharedIdentity: shareIdentity && tf.getBackend() === "wasm",
        twoStageGenerator: twoStage,
        dropout: sidDropout,
        memory: {
          numTensorsAtStart: tensorsStart,
          numTensorsBefore: tensorsBefore,
          numTensorsAfter: tensorsAfter,
          numTensorsDrift: tensorsAfter - tensorsBefore,
          maxRssMiBBefore: rssBefore,
          maxRssMiBAfter: maxRssMiB(),
          tensorMiBAfterBuild,
          wasmHeapMiBAfterBuild: heapMiBAfterBuild,
          wasmHeapMiBPeak: wasmHeapMiB()
        }
      }
      log(
        `  ${result.iterationMs.median} ms/iteration (fake ${result.iterationMs.fakeStepMedian}, G ${result.iterationMs.generatorStepMedian}), ` +
          `numTensors ${tensorsBefore}→${tensorsAfter}, max RSS ${result.memory.maxRssMiBAfter} MiB, wasm heap ${result.memory.wasmHeapMiBPeak} MiB`
      )
      return result
    })
  )

/** Runs `--part sid` at `batch` in a child process; its last stdout line is its JSON, or the failure is recorded. */
const sidInChild = (batch: number) => {
  const t0 = performance.now()
  const child = spawnSync(
    process.execPath,
    [
      ...process.execArgv,
      fileURLToPath(import.meta.url),
      "--part",
      "sid",
      "--sid-batch",
      String(batch),
      "--sid-runs",
      String(sidRuns),
      "--optimizer-state",
      optimizerState,
      ...(shareIdentity ? [] : ["--copy-identity"]),
      ...(twoStage ? [] : ["--fused-generator"]),
      "--dropout",
      String(sidDropout)
    ],
    { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 * 2 ** 20, env: process.env }
  )
  process.stderr.write(child.stderr ?? "")
  const lines = (child.stdout ?? "").trim().split("\n")
  const last = lines[lines.length - 1] ?? ""
  if (child.status === 0 && last.startsWith("{")) return { ok: true as const, result: JSON.parse(last) as unknown }
  const stderrTail = (child.stderr ?? "").trim().split("\n").slice(-8).join("\n")
  return {
    ok: false as const,
    failure: {
      batch,
      exitCode: child.status,
      signal: child.signal,
      error: child.error === undefined ? null : String(child.error),
      childReport: last.startsWith("{") ? (JSON.parse(last) as unknown) : null,
      stderrTail,
      wallMs: round(performance.now() - t0, 0)
    }
  }
}

const sidProgram = Effect.gen(function*() {
  const engine = yield* Engine
  log(`engine ${engine.name}`)
  const result = yield* sidPart(sidBatch, sidRuns).pipe(
    Effect.map((r) => ({ ok: true as const, ...r })),
    Effect.catchAllDefect((defect) => Effect.succeed({ ok: false as const, batch: sidBatch, error: String(defect), wasmHeapMiB: wasmHeapMiB(), tensorMiB: round(tf.memory().numBytes / 2 ** 20, 0), maxRssMiB: maxRssMiB() }))
  )
  process.stdout.write(`${JSON.stringify(result)}\n`)
  if (!result.ok) process.exitCode = 1
})

const program = Effect.gen(function*() {
  const engine = yield* Engine
  const network = makeNetwork()
  const tensorsAtStart = tf.memory().numTensors
  const params = network.init(1)
  const parameters = Object.values(params).reduce((a, p) => a + p.size, 0)
  const parameterTensors = Object.keys(params).length
  const augmentParameters = Object.entries(network.shapes)
    .filter(([name]) => name.startsWith("map_augment"))
    .reduce((a, [, s]) => a + s.reduce((x, y) => x * y, 1), 0)
  const flops = forwardFlops(network.shapes)
  log(`EDM CIFAR-10 DDPM++ on ${engine.name}: ${parameters} parameters, ${round(flops.total / 1e9, 3)} GFLOPs per forward (batch 1)`)
  const tensorsAfterInit = tf.memory().numTensors
  const batch1 = timeForward(network, params, 1, runs1)
  const batch16 = timeForward(network, params, 16, runs16)
  tf.dispose(Object.values(params))
  const tensorsAfterForward = tf.memory().numTensors

  let sid: unknown = { skipped: true }
  if (runSid) {
    const failures: Array<unknown> = []
    let attempt = sidInChild(sidBatch)
    if (!attempt.ok && sidBatch > 1) {
      failures.push(attempt.failure)
      log(`SiD iteration at batch ${sidBatch} failed (exit ${attempt.failure.exitCode}, signal ${attempt.failure.signal}); falling back to batch 1`)
      attempt = sidInChild(1)
    }
    if (!attempt.ok) failures.push(attempt.failure)
    const also = attempt.ok
      ? sidAlso.map((b) => {
        const r = sidInChild(b)
        return r.ok ? r.result : { ok: false, failure: r.failure }
      })
      : []
    sid = { requestedBatch: sidBatch, measured: attempt.ok ? attempt.result : null, failures, alsoMeasured: also }
  }

  const report = {
    date: new Date().toISOString(),
    node: process.version,
    tfjs: tf.version_core,
    engine: engine.name,
    facts: engine.facts,
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? "unknown", memGiB: Math.round(totalmem() / 2 ** 30) },
    config: { quick, runs: runs1, runs16, sidRuns, sidBatch, sidAlso, runSid, optimizerState, shareIdentity, twoStage, sidDropout },
    network: {
      name: "EDM CIFAR-10 DDPM++ (SongUNet, unconditional)",
      edmConfig: CIFAR10_DDPMPP,
      parameters,
      parameterTensors,
      augmentParameters,
      flopsPerForwardBatch1: flops.total,
      gflopsPerForwardBatch1: round(flops.total / 1e9, 3),
      flopsBreakdown: flops
    },
    forward: {
      batch1: { ...batch1, gflopsPerSecond: round(flops.total / (batch1.medianMs / 1000) / 1e9, 2) },
      batch16: { ...batch16, gflopsPerSecond: round((16 * flops.total) / (batch16.medianMs / 1000) / 1e9, 2) }
    },
    sid,
    memory: {
      numTensorsAtStart: tensorsAtStart,
      numTensorsAfterInit: tensorsAfterInit,
      numTensorsAfterForward: tensorsAfterForward,
      maxRssMiB: maxRssMiB()
    },
    notes: [
      "FLOPs = 2·MAC of convs (kh·kw·cin·cout·R² at the module's output resolution R), linears (in·out) and attention QKᵀ+AV (2·(R²)²·C); map_augment not run; GroupNorm, SiLU, softmax, [1,1] resampling filters and element-wise ops not counted",
      "forward = network.apply (F of docs/algorithm.md §2.3) at c_noise 0.25, eval mode (no dropout), median over timed runs after 1 warm-up",
      `SiD iteration = fakeScoreUpdate + ${twoStage ? "generatorUpdateTwoStage (src/pipeline/Iteration.ts: ∂L/∂x_g through teacher and fake score, then G's vector-Jacobian product from a second G forward)" : "generatorUpdate"} + updateEma (docs/algorithm.md §9.1), run in a child process; network freshly initialised, teacher = initial weights; ${sidDropout > 0 ? `train mode with dropout ${sidDropout} (ψ in the fake step, G in the generator step)` : "evaluation mode (no dropout)"}`,
      `the SiD part ${shareIdentity ? "replaces wasm's Identity/same-dtype Cast by data-sharing kernels (TF.js clones every tensor saved for backward through Identity)" : "uses the stock wasm Identity (copies)"}`,
      `optimizer state: ${optimizerState === "host" ? "Adam moments in host memory (adamHost: Float32Arrays outside the wasm heap, per-parameter update bit-identical to tensor Adam)" : "Adam moments as engine tensors (adam)"}; wasmHeapMiB = size of the wasm heap (grows, never shrinks: its peak)`,
      "maxRSS is the process peak so far (process.resourceUsage().maxRSS); the SiD child's peak is in sid.measured.memory"
    ]
  }
  const out = writeReport("edm", report)
  log(`written ${out}`)
})

const main = part === "sid" ? sidProgram : program
Effect.runPromise(main.pipe(Effect.provide(EngineLayers.layerConfig))).catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
