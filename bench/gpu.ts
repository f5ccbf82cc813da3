/**
 * GPU benchmark of the `webgpu` engine (issue 16): on whatever WebGPU adapter this machine offers, reports the adapter
 * (and what the machine offers a Vulkan/WebGPU client: `vulkaninfo --summary`, Dawn's adapters), then
 *
 * - the reference denoiser of `bench:vs-torch` (32×32×3 and 28×28×1 at batch 32, 16×16×1 at batch 8): ms per training
 *   step (EDM loss, backward, the library's Adam) and GFLOP/s with vs-torch's convention (3 × forward conv FLOPs);
 * - the MNIST UNet (`sid teacher train`'s default 28×28×1 UNet) at batch 32 and 128: ms per SiD iteration;
 * - EDM's CIFAR-10 DDPM++ (55.7M parameters) at batch 1, 8, 32 and 64: ms per forward and per SiD iteration;
 *
 * each with achieved GFLOP/s (dense FLOPs of the convolutions and matrix products the step ran, counted from
 * `tf.profile`'s kernel list: 2·MAC) and peak tensor memory (`tf.profile`'s peakBytes) and the GPU buffer pool after it
 * (`numBytesAllocatedInGPU`). A SiD iteration is the pipeline's own (`iterateAsync`: fake-score step, generator step,
 * EMA; Adam moments on the GPU). JSON to stdout and `bench/results/gpu-<date>.json`.
 *
 *   npm run bench:gpu -- [--allow-software-gpu] [--quick] [--budget-s S] [--out FILE]
 *
 * Exits 0 with a "no hardware adapter" line where the machine offers none; `--allow-software-gpu` runs a small smoke
 * subset on a software adapter (llvmpipe) instead. Cases stop being started once `--budget-s` (default 420 s) is spent,
 * so an unattended run stays under 8 minutes.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { Context, Effect, Layer } from "effect"
import { spawnSync } from "node:child_process"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { edmNetwork, parseEdmConfig } from "../src/domain/edm/NetworkConfig.js"
import { type Network, unetNetwork } from "../src/domain/nn/Network.js"
import { unetSpec } from "../src/domain/nn/UNet.js"
import { adamUpdate, type AdamState, initAdam } from "../src/domain/optim/Adam.js"
import { adapterReport, probeWebGpu } from "../src/engine/node/WebGpu.js"
import * as EngineLayers from "../src/engine/node/Engine.js"
import { iterateAsync } from "../src/pipeline/Iteration.js"
import { Engine } from "../src/engine/node/Engine.js"
import { convFlops, makeReferenceDenoiser } from "./ReferenceDenoiser.js"
import { benchServices } from "./Services.js"
import { CIFAR10_DDPMPP, flag, log, median, option, round, type Shape, writeReport } from "./Support.js"

const started = performance.now()
const budgetMs = Number(option("budget-s") ?? 420) * 1000
const allowSoftware = flag("allow-software-gpu") || /^(1|true)$/i.test(process.env["SID_WEBGPU_SOFTWARE"] ?? "")
const quick = flag("quick")
if ((process.env["XDG_RUNTIME_DIR"] ?? "") === "") process.env["XDG_RUNTIME_DIR"] = mkdtempSync(join(tmpdir(), "sid-xdg-"))


// ---------------------------------------------------------------------------------------------------------------
// What the machine offers.

const run = (cmd: string, args: ReadonlyArray<string>): string => {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 30_000 })
  return r.error !== undefined ? `${cmd} not available (${r.error.message})` : `${r.stdout}${r.stderr}`.trim()
}

/** Every adapter Dawn offers for the two power preferences and the forced fallback, deduplicated. */
const dawnAdapters = async (): Promise<ReadonlyArray<unknown>> => {
  const dawn = (await import("webgpu")) as unknown as {
    create: (flags: Array<string>) => { requestAdapter: (o: object) => Promise<Parameters<typeof adapterReport>[0] | null> }
  }
  const gpu = dawn.create([])
  const seen = new Map<string, unknown>()
  for (const options of [{ powerPreference: "high-performance" }, { powerPreference: "low-power" }, { forceFallbackAdapter: true }]) {
    const adapter = await gpu.requestAdapter(options)
    if (adapter === null) continue
    const report = adapterReport(adapter)
    const key = `${report.vendor}|${report.device}|${report.description}`
    if (!seen.has(key)) seen.set(key, { requestedWith: options, ...report })
  }
  return [...seen.values()]
}

// ---------------------------------------------------------------------------------------------------------------
// FLOPs of the dense kernels a profiled step ran.

interface ProfiledKernel {
  readonly name: string
  readonly inputShapes: ReadonlyArray<ReadonlyArray<number> | null>
  readonly outputShapes: ReadonlyArray<ReadonlyArray<number>>
}

const size = (shape: ReadonlyArray<number> | null | undefined): number => (shape ?? []).reduce((a, b) => a * b, 1)

/** 2·MAC of one kernel call (convolutions, their gradients, matrix products); 0 for anything else. */
const kernelFlops = (k: ProfiledKernel): number => {
  const [a, b] = k.inputShapes
  const out = k.outputShapes[0]
  switch (k.name) {
    case "Conv2D":
    case "FusedConv2D": // inputs x, filter [kh, kw, cin, cout]
      return 2 * size(out) * (b![0]! * b![1]! * b![2]!)
    case "Conv2DBackpropInput": // inputs dy, filter
      return 2 * size(a) * (b![0]! * b![1]! * b![2]!)
    case "Conv2DBackpropFilter": // inputs x, dy; output filter
      return 2 * size(b) * (out![0]! * out![1]! * out![2]!)
    case "BatchMatMul":
    case "_FusedMatMul": {
      const o = out!
      const [m, n] = [o[o.length - 2]!, o[o.length - 1]!]
      const [r, c] = [a![a!.length - 2]!, a![a!.length - 1]!]
      const kDim = r === m && c !== m ? c : c === m && r !== m ? r : c
      return 2 * (size(o) / (m * n)) * m * n * kDim
    }
    default:
      return 0
  }
}

interface Measured {
  readonly medianMs: number
  readonly minMs: number
  readonly runs: number
  readonly gflop: number
  readonly gflops: number
  readonly peakTensorMiB: number
  readonly gpuPoolMiB: number
}

/** Times `step` (each call ends with a host read, so the GPU work is done) after `warmup` calls; profiles one call. */
const measure = async (step: () => Promise<void>, warmup: number, runs: number, flopsOverride?: number): Promise<Measured> => {
  for (let i = 0; i < warmup; i++) await step()
  const info = await tf.profile(async () => {
    await step()
    return []
  })
  const flops = flopsOverride ?? (info.kernels as unknown as ReadonlyArray<ProfiledKernel>).reduce((s, k) => s + kernelFlops(k), 0)
  const ms: Array<number> = []
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now()
    await step()
    ms.push(performance.now() - t0)
  }
  const m = median(ms)
  const mem = tf.memory() as tf.MemoryInfo & { numBytesAllocatedInGPU?: number }
  return {
    medianMs: round(m, 1),
    minMs: round(Math.min(...ms), 1),
    runs,
    gflop: round(flops / 1e9, 3),
    gflops: round(flops / (m / 1000) / 1e9, 1),
    peakTensorMiB: round(info.peakBytes / 2 ** 20, 1),
    gpuPoolMiB: round((mem.numBytesAllocatedInGPU ?? 0) / 2 ** 20, 1)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Cases.

const timeLeft = () => budgetMs - (performance.now() - started)

/** The reference denoiser's training step (bench:vs-torch's task) with an asynchronous read of its loss. */
const referenceStep = async (shape: Shape, warmup: number, runs: number): Promise<Measured> => {
  const { batch, channels, height, width } = shape
  const net = makeReferenceDenoiser(tf, channels, 1, height, width)
  const x0 = tf.randomNormal([batch, height, width, channels], 0, 0.5, "float32", 7) as tf.Tensor4D
  const names = net.variables.map((_, i) => `p${i}`)
  const named = <T>(xs: ReadonlyArray<T>): Record<string, T> => Object.fromEntries(xs.map((x, i) => [names[i]!, x]))
  let state: AdamState = initAdam(named(net.variables))
  let seed = 100
  const loss = () => {
    const sigma = tf.exp(tf.add(tf.mul(tf.randomNormal([batch], 0, 1, "float32", seed++), 1.2), -1.2)) as tf.Tensor1D
    const s4 = sigma.reshape([batch, 1, 1, 1])
    const noisy = tf.add(x0, tf.mul(s4, tf.randomNormal(x0.shape, 0, 1, "float32", seed++)))
    const input = tf.div(noisy, tf.sqrt(tf.add(tf.square(s4), 1))) as tf.Tensor4D
    return tf.mean(tf.squaredDifference(net.apply(input, sigma), x0)) as tf.Scalar
  }
  const step = async () => {
    const { grads, value } = tf.variableGrads(loss, net.variables as Array<tf.Variable>)
    const next = adamUpdate({ learningRate: 1e-4, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 }, named(net.variables), named(net.variables.map((v) => grads[v.name]!)), state)
    net.variables.forEach((v, i) => v.assign(next.params[names[i]!]!))
    tf.dispose([Object.values(grads), Object.values(next.params), Object.values(state.m), Object.values(state.v)])
    state = next.state
    await value.data()
    value.dispose()
  }
  try {
    return await measure(step, warmup, runs, 3 * convFlops(height, width, channels, batch))
  } finally {
    tf.dispose([Object.values(state.m), Object.values(state.v), x0])
    net.dispose()
  }
}

/** SiD iterations and forwards of `network` at `batch`, through the pipeline's services. */
const sidCase = (network: Network, sigmaData: number, batch: number, warmup: number, runs: number, forward: boolean) =>
  Effect.scoped(Effect.gen(function*() {
    const { parameters, services, settings } = yield* benchServices("bench-gpu", network, sigmaData, batch, "engine")
    return yield* Effect.promise(async () => {
      let forwardResult: Measured | undefined
      if (forward) {
        const z = tf.randomNormal([batch, ...network.dataShape], 0, 1, "float32", 3)
        const sigma = tf.fill([batch], 2.5) as tf.Tensor1D
        try {
          forwardResult = await measure(async () => {
            const y = services.teacher.denoise(z, sigma)
            await y.data()
            y.dispose()
          }, 1, runs)
        } finally {
          tf.dispose([z, sigma])
        }
      }
      let seen = 0
      const iteration = await measure(async () => {
        await iterateAsync(services, settings, seen)
        seen += batch
      }, warmup, runs)
      return { parameters, batch, ...(forwardResult === undefined ? {} : { forward: forwardResult }), sidIteration: iteration }
    })
  }))

// ---------------------------------------------------------------------------------------------------------------

const program = Effect.gen(function*() {
  const date = new Date().toISOString()
  const machine = {
    vulkaninfoSummary: run("vulkaninfo", ["--summary"]),
    dawnAdapters: yield* Effect.promise(() => dawnAdapters().catch((e: unknown) => [`webgpu not loadable: ${String(e)}`]))
  }
  const probe = yield* Effect.promise(() => probeWebGpu())
  if (probe._tag === "None" || (probe.report.isFallbackAdapter && !allowSoftware)) {
    const line = probe._tag === "None"
      ? `no hardware adapter: ${probe.reason}`
      : `no hardware adapter: only a software adapter (${probe.report.summary}); --allow-software-gpu runs a smoke subset on it`
    log(line)
    const report = { date, result: line, machine, ...(probe._tag === "Adapter" ? { adapter: probe.report } : {}) }
    const out = writeReport("gpu", report)
    log(`wrote ${out}`)
    return
  }
  const software = probe.report.isFallbackAdapter
  const ctx = yield* Layer.build(EngineLayers.makeWebGpu({ allowSoftwareGpu: allowSoftware }))
  const engine = Context.get(ctx, Engine)
  log(`adapter: ${engine.facts.adapter?.summary}`)
  const results: Record<string, unknown> = {}
  const guarded = <A>(name: string, f: Effect.Effect<A, never, Engine>) =>
    Effect.gen(function*() {
      if (timeLeft() <= 0) {
        results[name] = { skipped: "time budget spent" }
        return
      }
      log(`${name}...`)
      const r = yield* Effect.either(Effect.catchAllDefect(Effect.provide(f, ctx), (d) => Effect.fail(String(d))))
      results[name] = r._tag === "Right" ? r.right : { failed: r.left }
      log(`  ${JSON.stringify(results[name])}`)
    })
  const [warmup, runs] = software || quick ? [1, 1] : [2, 5]
  const shapes: ReadonlyArray<Shape> = software
    ? [{ height: 16, width: 16, channels: 1, batch: 8 }]
    : [{ height: 32, width: 32, channels: 3, batch: 32 }, { height: 28, width: 28, channels: 1, batch: 32 }, { height: 16, width: 16, channels: 1, batch: 8 }]
  for (const s of shapes) {
    yield* guarded(`reference-denoiser ${s.height}x${s.width}x${s.channels}x${s.batch}`, Effect.promise(() => referenceStep(s, warmup, runs)))
  }
  const mnist = unetNetwork(unetSpec([28, 28, 1]))
  for (const batch of software ? [4] : [32, 128]) {
    yield* guarded(`mnist-unet batch ${batch}`, sidCase(mnist, 0.5, batch, warmup, runs, false))
  }
  if (!software) {
    const edm = parseEdmConfig(CIFAR10_DDPMPP)
    for (const batch of [1, 8, 32, 64]) {
      yield* guarded(
        `edm-cifar10-ddpmpp batch ${batch}`,
        sidCase(edmNetwork(edm.architecture), edm.sigmaData, batch, warmup, batch >= 32 ? Math.min(runs, 3) : runs, true)
      )
    }
  }
  const report = {
    date,
    adapter: engine.facts.adapter,
    software,
    machine,
    node: process.version,
    tfjs: tf.version_core,
    config: { warmup, runs, budgetS: budgetMs / 1000, quick },
    results,
    elapsedS: round((performance.now() - started) / 1000, 1)
  }
  const out = writeReport("gpu", report)
  log(`wrote ${out}`)
})

await Effect.runPromise(Effect.scoped(program))
