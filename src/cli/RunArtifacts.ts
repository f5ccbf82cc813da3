/**
 * What a distillation run writes beside its JSONL log: a PNG grid of EMA-generator samples at every
 * evaluation (image data only), and a PNG plot of the evaluated distance (MNIST-FID for images, the Fréchet distance
 * for mixtures) against iterations on a log scale, with the teacher's Heun-sampler level as a dashed reference.
 *
 * The plot is redrawn after every evaluation from the run's whole history, earlier evaluations of a resumed run
 * included (read back from the log), so it always shows the run so far. Every file is written atomically.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { readFile } from "node:fs/promises"
import { join } from "node:path"
import { Effect, Option, Ref, Schema } from "effect"
import { generatorName } from "../domain/sid/FewStep.js"
import { writeFileAtomic } from "../platform/AtomicFile.js"
import type { StartReport, StepReport } from "../pipeline/Distill.js"
import { fixedLatents, generatorSamples } from "../pipeline/Evaluation.js"
import { imageGrid } from "../report/ImageGrid.js"
import { cacheOnHost } from "../domain/data/HostReads.js"
import { runReadsEffect } from "../engine/HostReadsEffect.js"
import { linePlot } from "../report/Plots.js"
import { Generator } from "../services/node/Generator.js"
import { SampleMetrics } from "../services/node/Metrics.js"

/** Settings of a run's artifacts. */
export interface RunArtifactsOptions {
  /** The run directory: grids go to `<runDir>/samples/step-NNNNNNNN.png`, the plot to `<runDir>/<plotFile>`. */
  readonly runDir: string
  /** The JSONL log of the run, read for the evaluations of earlier (resumed) segments. */
  readonly logPath: string
  /** Name of the plotted figure (default: "FID" when the metrics report one, else "Fréchet distance"). */
  readonly metricName?: string
  /** File name of the plot (default: "fid.png" when the metrics report a FID, else "fd.png"). */
  readonly plotFile?: string
  /** Images per grid (default 64); 0 writes no grids. */
  readonly gridCount?: number
  /** Seed of the grid's fixed latents (the same latents at every evaluation). */
  readonly seed?: number
  /** Generator steps per sample, for the plot's legend (default 1: "one-step generator"). */
  readonly generatorSteps?: number
}

/** The figure a plot follows: MNIST-FID when the metrics have it, else the Fréchet distance. */
export const plottedValue = (m: SampleMetrics): number => m.fid ?? m.frechetDistance

/** The teacher's Heun-sampler figure: the plot's reference level. */
export interface Baseline {
  readonly value: number
  readonly evaluations: number
  /** The full figures, when the log holds them. */
  readonly metrics?: SampleMetrics
  /** Samples the figures were computed on, when logged. */
  readonly samples?: number
}

/** What a JSONL run log holds for the plot. */
export interface LoggedEvaluations {
  /** (step, figure) of every evaluation, by step (a step evaluated twice — a resumed run's start — counts once). */
  readonly points: ReadonlyArray<readonly [number, number]>
  /** The last teacher baseline recorded (a `teacherSampler` record). */
  readonly baseline?: Baseline
  /** Whether the recorded figures are FIDs. */
  readonly fid: boolean
}

/** The evaluations and the teacher baseline recorded in a JSONL run log; an absent or unreadable log has none. */
export const evaluationsInLog = (logPath: string): Effect.Effect<LoggedEvaluations> =>
  Effect.promise(async () => {
    const text = await readFile(logPath, "utf8").catch(() => "")
    const points = new Map<number, number>()
    let baseline: Baseline | undefined
    let fid = false
    for (const line of text.split("\n")) {
      if (line.trim() === "") continue
      try {
        const record = JSON.parse(line) as {
          step?: unknown
          evaluation?: Record<string, unknown>
          teacherSampler?: { evaluations?: unknown; samples?: unknown; metrics?: Record<string, unknown> }
        }
        const value = figureOf(record.evaluation)
        if (typeof record.evaluation?.["fid"] === "number") fid = true
        if (typeof record.step === "number" && value !== undefined) points.set(record.step, value)
        const sampler = record.teacherSampler
        const teacher = figureOf(sampler?.metrics)
        if (sampler !== undefined && teacher !== undefined && typeof sampler.evaluations === "number") {
          const metrics = Schema.decodeUnknownOption(SampleMetrics)(sampler.metrics)
          baseline = {
            value: teacher,
            evaluations: sampler.evaluations,
            ...(Option.isSome(metrics) ? { metrics: metrics.value } : {}),
            ...(typeof sampler.samples === "number" ? { samples: sampler.samples } : {})
          }
        }
      } catch {
        // a torn last line of a crashed run carries nothing
      }
    }
    const sorted = [...points.entries()].sort((a, b) => a[0] - b[0])
    return baseline === undefined ? { points: sorted, fid } : { points: sorted, baseline, fid }
  })

const figureOf = (m: Record<string, unknown> | undefined): number | undefined => {
  const v = m?.["fid"] ?? m?.["frechetDistance"]
  return typeof v === "number" ? v : undefined
}

/** A run's artifact writer. */
export interface RunArtifacts {
  /** Records the teacher's Heun-sampler figure (the dashed reference level of the plot). */
  readonly setBaseline: (value: number, evaluations: number) => Effect.Effect<void>
  /** Writes the grid and redraws the plot when a report carries an evaluation; returns the paths written. */
  readonly onReport: (r: StartReport | StepReport) => Effect.Effect<ReadonlyArray<string>, never, Generator>
}

/** Grid file of a step. */
export const gridPath = (runDir: string, step: number): string =>
  join(runDir, "samples", `step-${String(step).padStart(8, "0")}.png`)

/**
 * The artifact writer of a run. Grids are drawn only for image generators ([H, W, 1 or 3]); failures to draw or write
 * an artifact are logged as warnings and never stop the run.
 */
export const makeRunArtifacts = (options: RunArtifactsOptions): Effect.Effect<RunArtifacts> =>
  Effect.gen(function*() {
    const gridCount = options.gridCount ?? 64
    const logged = yield* evaluationsInLog(options.logPath)
    const isFid = yield* Ref.make(logged.fid)
    const history = yield* Ref.make(logged.points)
    const baseline = yield* Ref.make<Baseline | undefined>(logged.baseline)
    const warn = (what: string) => (e: unknown) =>
      Effect.as(Effect.logWarning(`${what}: ${e instanceof Error ? e.message : String(e)}`), [] as ReadonlyArray<string>)

    const drawPlot = Effect.gen(function*() {
      const fid = yield* Ref.get(isFid)
      const metricName = options.metricName ?? (fid ? "FID" : "Fréchet distance")
      const plotPath = join(options.runDir, options.plotFile ?? (fid ? "fid.png" : "fd.png"))
      const points = [...(yield* Ref.get(history))].sort((a, b) => a[0] - b[0])
      if (points.length === 0) return []
      const base = yield* Ref.get(baseline)
      const last = points[points.length - 1]![0]
      const png = yield* linePlot(
        [
          { name: `${generatorName(options.generatorSteps ?? 1)} (EMA)`, points },
          ...(base === undefined ? [] : [{
            name: `teacher, Heun (${base.evaluations} NFE)`,
            points: [[0, base.value], [Math.max(last, 1), base.value]] as const,
            dashed: true
          }])
        ],
        { title: `${metricName} during distillation`, xTitle: "SiD iterations", yTitle: `${metricName} (log scale)` }
      )
      yield* writeFileAtomic(plotPath, png)
      return [plotPath]
    }).pipe(Effect.catchAll(warn("plot")))

    const drawGrid = (step: number) =>
      Effect.gen(function*() {
        const generator = yield* Generator
        const shape = generator.dataShape
        if (gridCount <= 0 || shape.length !== 3 || (shape[2] !== 1 && shape[2] !== 3)) return []
        const png = yield* Effect.acquireUseRelease(
          Effect.sync(() => tf.tidy(() => generatorSamples(generator, fixedLatents(options.seed ?? 0, gridCount, shape), "ema"))),
          (samples) =>
            // imageGrid reads the samples synchronously: from a host copy on an engine that reads asynchronously.
            Effect.flatMap(runReadsEffect(() => cacheOnHost([samples]), (e) => e), () =>
              Effect.try(() => imageGrid(samples as tf.Tensor4D, { scale: shape[0]! < 32 ? 2 : 1 }))),
          (samples) => Effect.sync(() => samples.dispose())
        )
        const path = gridPath(options.runDir, step)
        yield* writeFileAtomic(path, png)
        return [path]
      }).pipe(Effect.catchAll(warn(`sample grid at step ${step}`)))

    return {
      setBaseline: (value, evaluations) => Ref.set(baseline, { value, evaluations }),
      onReport: (r) =>
        r.evaluation === undefined
          ? Effect.succeed([])
          : Effect.gen(function*() {
            const value = plottedValue(r.evaluation!)
            if (r.evaluation!.fid !== undefined) yield* Ref.set(isFid, true)
            yield* Ref.update(history, (h) => [...h.filter(([s]) => s !== r.step), [r.step, value] as const])
            const grid = yield* drawGrid(r.step)
            const plot = yield* drawPlot
            return [...grid, ...plot]
          })
    }
  })
