/**
 * SiD runs on the `webgpu` engine (issue 16): one full iteration equals the `cpu` engine's within a stated tolerance,
 * many iterations hold tensors and GPU bytes flat, and a run checkpointed on `webgpu` resumes on `wasm` and back.
 * Skipped, with the reason, where the optional `webgpu` package or an adapter is missing; tiny shapes (the CI adapter
 * is the software llvmpipe, opted into with `allowSoftwareGpu`).
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer, Option, Stream } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { type DistillConfig, distillConfig } from "../src/domain/config/DistillConfig.js"
import { mlpSpec } from "../src/domain/nn/Mlp.js"
import { mlpNetwork } from "../src/domain/nn/Network.js"
import type { NamedArray } from "../src/domain/data/Safetensors.js"
import { probeWebGpu } from "../src/engine/node/WebGpu.js"
import * as CheckpointStore from "../src/services/node/CheckpointStore.js"
import * as Distillation from "../src/layers/node/Distillation.js"
import * as EngineLayers from "../src/engine/node/Engine.js"
import * as Metrics from "../src/services/node/Metrics.js"
import * as Teacher from "../src/services/node/Teacher.js"
import { distill, StartReport, StepReport } from "../src/pipeline/Distill.js"
import { CheckpointStore as CheckpointStoreTag } from "../src/services/node/CheckpointStore.js"
import type { Engine, EngineError } from "../src/engine/node/Engine.js"
import { Teacher as TeacherTag } from "../src/services/node/Teacher.js"

const probe = await probeWebGpu()
const reason = probe._tag === "None" ? probe.reason : ""
const gpuDescribe = probe._tag === "Adapter" ? describe : describe.skip
if (probe._tag === "None") console.log(`webgpu run tests skipped: ${reason}`)

const webgpu = EngineLayers.makeWebGpu({ allowSoftwareGpu: true })
const network = mlpNetwork(mlpSpec(2, { hidden: 16, depth: 2 }))
const dirs: Array<string> = []
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))

const config = (overrides: Partial<typeof DistillConfig.Encoded> = {}): DistillConfig =>
  distillConfig({
    steps: 1,
    batchSize: 16,
    evalEvery: 1_000_000,
    checkpointEvery: 1,
    generatorLr: 1e-3,
    fakeLr: 1e-3,
    emaHalfLifeKimg: 0.01,
    emaRampupRatio: null,
    seed: 5,
    ...overrides
  })

const teacher = Layer.scoped(
  TeacherTag,
  Effect.acquireRelease(
    Effect.sync(() => Teacher.fromWeights("tiny mlp", network, network.init(3), 0.5)),
    (t) => Effect.sync(() => tf.dispose(Object.values(t.weights.params)))
  )
)

interface RunOutcome {
  readonly start: StartReport
  readonly steps: ReadonlyArray<StepReport>
  readonly tensors: ReadonlyMap<string, NamedArray>
  readonly memory: ReadonlyArray<{ readonly numTensors: number; readonly numBytesInGPU: number }>
}

/** A run of `c` on `engine` with its checkpoints in `dir` (resuming from the latest when asked). */
const run = (
  engine: Layer.Layer<Engine, EngineError>,
  c: DistillConfig,
  dir: string,
  resume = false
): Promise<RunOutcome> => {
  const services = Distillation.layer(c, {
    teacher,
    metrics: Metrics.layerUnavailable(network.dataShape),
    checkpoints: CheckpointStore.layerDirectory(dir)
  })
  return Effect.runPromise(
    Effect.gen(function*() {
      const memory: Array<{ numTensors: number; numBytesInGPU: number }> = []
      const reports = yield* distill(c, { evaluate: false, resume }).pipe(
        Stream.tap(() =>
          Effect.sync(() => {
            const m = tf.memory() as tf.MemoryInfo & { numBytesInGPU?: number }
            memory.push({ numTensors: m.numTensors, numBytesInGPU: m.numBytesInGPU ?? 0 })
          })
        ),
        Stream.runCollect
      )
      const latest = Option.getOrThrow(yield* Effect.flatMap(CheckpointStoreTag, (s) => s.latest))
      const all = Array.from(reports)
      return {
        start: all[0] as StartReport,
        steps: all.filter((r): r is StepReport => r instanceof StepReport),
        tensors: latest.tensors,
        memory
      }
    }).pipe(Effect.provide(Layer.provideMerge(services, engine)))
  )
}

const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), "sid-webgpu-run-"))
  dirs.push(d)
  return d
}

const relativeL2 = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let num = 0
  let den = 0
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2
    den += b[i]! ** 2
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den)
}

/** Tolerances of one SiD iteration, webgpu vs cpu (float32 kernels with different summation orders). */
const PARAMS_TOLERANCE = 1e-5
const MOMENTS_TOLERANCE = 1e-4
const LOSS_TOLERANCE = 1e-4

gpuDescribe(`SiD on the webgpu engine (${probe._tag === "Adapter" ? probe.report.description : reason})`, () => {
  it(
    `one full iteration (fake step, generator step, EMA) equals cpu's: parameters and EMA within ${PARAMS_TOLERANCE}, ` +
      `Adam moments within ${MOMENTS_TOLERANCE} (relative L2), losses within ${LOSS_TOLERANCE}`,
    async () => {
      const onCpu = await run(EngineLayers.cpu, config(), tempDir())
      const onGpu = await run(webgpu, config(), tempDir())
      expect(onGpu.steps).toHaveLength(1)
      const [a, b] = [onGpu.steps[0]!, onCpu.steps[0]!]
      expect(Math.abs(a.fakeLoss - b.fakeLoss) / Math.abs(b.fakeLoss)).toBeLessThanOrEqual(LOSS_TOLERANCE)
      expect(Math.abs(a.generatorLoss - b.generatorLoss) / Math.abs(b.generatorLoss)).toBeLessThanOrEqual(LOSS_TOLERANCE)
      expect(Math.abs(a.fakeGradNorm - b.fakeGradNorm) / b.fakeGradNorm).toBeLessThanOrEqual(LOSS_TOLERANCE)
      expect(a.fakeSigma).toEqual(b.fakeSigma)
      expect([...onGpu.tensors.keys()].sort()).toEqual([...onCpu.tensors.keys()].sort())
      const worst = { params: 0, moments: 0 }
      for (const [name, t] of onCpu.tensors) {
        const e = relativeL2(onGpu.tensors.get(name)!.values, t.values)
        if (/\.optimizer\./.test(name)) worst.moments = Math.max(worst.moments, e)
        else worst.params = Math.max(worst.params, e)
      }
      console.log(`one SiD iteration, webgpu vs cpu: worst relative L2 parameters/EMA ${worst.params.toExponential(2)}, ` +
        `moments ${worst.moments.toExponential(2)}`)
      expect(worst.params).toBeLessThanOrEqual(PARAMS_TOLERANCE)
      expect(worst.moments).toBeLessThanOrEqual(MOMENTS_TOLERANCE)
    }
  )

  it("200 iterations hold numTensors and numBytesInGPU flat", async () => {
    const r = await run(webgpu, config({ steps: 200, batchSize: 8, checkpointEvery: 1_000_000 }), tempDir())
    expect(r.steps).toHaveLength(200)
    expect(r.steps.every((s) => Number.isFinite(s.fakeLoss) && Number.isFinite(s.generatorLoss))).toBe(true)
    const [early, late] = [r.memory[10]!, r.memory[r.memory.length - 1]!]
    expect(late.numTensors).toBe(early.numTensors)
    expect(late.numBytesInGPU).toBe(early.numBytesInGPU)
  }, 600_000)

  it("a run checkpointed on webgpu resumes on wasm, and back on webgpu", async () => {
    const dir = tempDir()
    const first = await run(webgpu, config({ steps: 2, checkpointEvery: 2 }), dir)
    expect(first.steps.map((s) => s.step)).toEqual([1, 2])
    const second = await run(EngineLayers.wasm, config({ steps: 4, checkpointEvery: 2 }), dir, true)
    expect(second.start.step).toBe(2)
    expect(second.steps.map((s) => s.step)).toEqual([3, 4])
    const third = await run(webgpu, config({ steps: 6, checkpointEvery: 2 }), dir, true)
    expect(third.start.step).toBe(4)
    expect(third.steps.map((s) => s.step)).toEqual([5, 6])
    expect(third.steps.every((s) => Number.isFinite(s.fakeLoss) && Number.isFinite(s.generatorLoss))).toBe(true)
    // The wasm segment continued the webgpu run: its steps match a run that stayed on webgpu.
    const stayed = await run(webgpu, config({ steps: 4, checkpointEvery: 1_000_000 }), tempDir())
    for (const k of [0, 1]) {
      const [x, y] = [second.steps[k]!, stayed.steps[k + 2]!]
      expect(Math.abs(x.fakeLoss - y.fakeLoss) / Math.abs(y.fakeLoss)).toBeLessThanOrEqual(LOSS_TOLERANCE)
      expect(Math.abs(x.generatorLoss - y.generatorLoss) / Math.abs(y.generatorLoss)).toBeLessThanOrEqual(LOSS_TOLERANCE)
    }
  })

  it("a device lost during a run ends the stream with WebGpuDeviceLost, and the last checkpoint stays loadable", async () => {
    const dir = tempDir()
    const c = config({ steps: 6, checkpointEvery: 2 })
    const services = Distillation.layer(c, {
      teacher,
      metrics: Metrics.layerUnavailable(network.dataShape),
      checkpoints: CheckpointStore.layerDirectory(dir)
    })
    const exit = await Effect.runPromiseExit(
      distill(c, { evaluate: false }).pipe(
        Stream.tap((r) =>
          Effect.sync(() => {
            if (r instanceof StepReport && r.step === 3) {
              ;(tf.backend() as unknown as { device: { destroy: () => void } }).device.destroy()
            }
          })
        ),
        Stream.runDrain,
        Effect.provide(Layer.provideMerge(services, webgpu))
      )
    )
    expect(exit._tag).toBe("Failure")
    expect(JSON.stringify(exit)).toContain("WebGpuDeviceLost")
    // The checkpoint of step 2 is intact: a run on wasm resumes from it.
    const resumed = await run(EngineLayers.wasm, config({ steps: 3, checkpointEvery: 1_000_000 }), dir, true)
    expect(resumed.start.step).toBe(2)
    expect(resumed.steps.map((s) => s.step)).toEqual([3])
  })
})
