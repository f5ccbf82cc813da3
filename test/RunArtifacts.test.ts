import { mkdtemp, readFile, stat, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Layer } from "effect"
import { PNG } from "pngjs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { adam } from "../src/domain/optim/Optimizer.js"
import { unetNetwork } from "../src/domain/nn/Network.js"
import { unetSpec } from "../src/domain/nn/UNet.js"
import { evaluationsInLog, gridPath, makeRunArtifacts } from "../src/cli/RunArtifacts.js"
import { toJsonLine } from "../src/cli/RunLog.js"
import * as Generator from "../src/services/node/Generator.js"
import { StartReport, StepReport } from "../src/pipeline/Distill.js"
import { gridSize } from "../src/report/ImageGrid.js"
import { SampleMetrics } from "../src/services/node/Metrics.js"
import { Teacher as TeacherTag } from "../src/services/node/Teacher.js"
import { runWithEngine, Teacher, tf, useEngine } from "./support/distillation.js"

let release: () => Promise<void>
beforeAll(async () => {
  release = await useEngine("wasm")
})
afterAll(() => release())

const metrics = (fd: number) => new SampleMetrics({ samples: 10, frechetDistance: fd, mmd: 0 })
const sigma = { min: 1, median: 1, max: 1 }
const stepReport = (step: number, evaluation?: SampleMetrics) =>
  new StepReport({
    step,
    imagesSeen: step * 8,
    fakeLoss: 1,
    generatorLoss: 1,
    fakeGradNorm: 1,
    generatorGradNorm: 1,
    nonFiniteGradients: 0,
    droppedRows: 0,
    fakeSigma: sigma,
    generatorSigma: sigma,
    emaBeta: 0.9,
    samplesPerSecond: 1,
    iterationMs: 1,
    ...(evaluation === undefined ? {} : { evaluation })
  })

const network = unetNetwork(unetSpec([8, 8, 1], { baseChannels: 8, channelMult: [1, 2], groups: 4 }))
const generatorLayer = Generator.layer({ optimizer: adam({ learningRate: 1e-3, beta1: 0, beta2: 0.99, epsilon: 1e-8 }) }).pipe(
  Layer.provide(
    Layer.scoped(
      TeacherTag,
      Effect.acquireRelease(
        Effect.sync(() => Teacher.fromWeights("tiny", network, network.init(0), 0.5)),
        (t) => Effect.sync(() => tf.dispose(Object.values(t.weights.params)))
      )
    )
  )
)

describe("run artifacts (issue 4 §5)", () => {
  it("reads evaluations and the teacher baseline back from a log, skipping a torn line", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sid-artifacts-"))
    const log = join(dir, "log.jsonl")
    await writeFile(
      log,
      [
        toJsonLine(new StartReport({ step: 0, evaluation: metrics(4) })),
        toJsonLine({ teacherSampler: { evaluations: 35, metrics: { frechetDistance: 0.5, mmd: 0 } } }),
        toJsonLine(stepReport(1)),
        toJsonLine(stepReport(10, metrics(2))),
        toJsonLine({ step: 20, evaluation: { fid: 1.7, frechetDistance: 9 } }),
        toJsonLine({ step: 20, evaluation: { fid: 1.5, frechetDistance: 9 } }),
        "{\"step\": 30, \"evaluation\": {\"frech"
      ].join("\n")
    )
    const logged = await Effect.runPromise(evaluationsInLog(log))
    expect(logged.points).toEqual([[0, 4], [10, 2], [20, 1.5]])
    expect(logged.baseline).toEqual({ value: 0.5, evaluations: 35 })
    expect(logged.fid).toBe(true)
    const none = await Effect.runPromise(evaluationsInLog(join(dir, "absent.jsonl")))
    expect(none.points).toEqual([])
    expect(none.baseline).toBeUndefined()
    expect(none.fid).toBe(false)
  })

  it("writes a sample grid and redraws the plot on evaluation steps only (grids only for image generators)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sid-artifacts-"))
    const log = join(dir, "log.jsonl")
    await writeFile(log, toJsonLine(stepReport(5, metrics(3))) + "\n")
    const before = tf.memory().numTensors
    const written = await runWithEngine(
      Effect.gen(function*() {
        const artifacts = yield* makeRunArtifacts({ runDir: dir, logPath: log, gridCount: 6 })
        yield* artifacts.setBaseline(0.7, 35)
        const quiet = yield* artifacts.onReport(stepReport(6))
        const loud = yield* artifacts.onReport(stepReport(10, new SampleMetrics({ samples: 10, frechetDistance: 1, mmd: 0, fid: 1 })))
        return { quiet, loud }
      }).pipe(Effect.provide(generatorLayer))
    )
    expect(tf.memory().numTensors).toBe(before)
    expect(written.quiet).toEqual([])
    expect(written.loud).toEqual([gridPath(dir, 10), join(dir, "fid.png")])
    const grid = PNG.sync.read(await readFile(gridPath(dir, 10)))
    const size = gridSize(6, 8, 8, { scale: 2 })
    expect([grid.width, grid.height]).toEqual([size.width, size.height])
    expect((await stat(join(dir, "fid.png"))).size).toBeGreaterThan(1000)
    const again = await runWithEngine(
      Effect.gen(function*() {
        const artifacts = yield* makeRunArtifacts({ runDir: dir, logPath: log, gridCount: 0 })
        return yield* artifacts.onReport(stepReport(20, metrics(0.5)))
      }).pipe(Effect.provide(generatorLayer))
    )
    expect(again).toEqual([join(dir, "fd.png")])
  })
})
