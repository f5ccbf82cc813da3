/**
 * The close of a distillation run: a table of the teacher's Heun-35 sampler against the one-step
 * generator — the evaluated figures and the samples per second of each — and, for 2-D data, `samples.png`: the two
 * samplers' scatter plots side by side on the same axes.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { join } from "node:path"
import { Effect } from "effect"
import { heunEvaluations } from "../domain/edm/HeunSampler.js"
import { generatorName } from "../domain/sid/FewStep.js"
import { writeFileAtomic } from "../platform/AtomicFile.js"
import { balancedLabels, fixedLatents, generatorSamples, teacherSamples } from "../pipeline/Evaluation.js"
import { scatterPanels } from "../report/Plots.js"
import { Generator } from "../services/node/Generator.js"
import type { SampleMetrics } from "../services/node/Metrics.js"
import { Teacher } from "../services/node/Teacher.js"

/** How fast a sampler drew: samples per second over one timed draw. */
export interface Throughput {
  readonly samples: number
  readonly ms: number
  readonly samplesPerSecond: number
  /** True when the rate is extrapolated from one denoiser evaluation (a Heun-35 draw would take too long). */
  readonly estimated?: boolean
}

/** What the closing table compares. */
export interface ClosingSummary {
  readonly teacher: {
    /** Denoiser evaluations per sample of its Heun sampler (35). */
    readonly evaluations: number
    /** The baseline evaluation, when the run (or the run it resumes) made one. */
    readonly metrics?: SampleMetrics
    readonly throughput: Throughput
  }
  readonly generator: {
    /** The step of its last evaluation. */
    readonly step: number
    /** Generator steps per sample (docs/few-step.md); 1 when absent. */
    readonly generatorSteps?: number
    readonly metrics?: SampleMetrics
    readonly throughput: Throughput
  }
}

const fmt = (x: number): string =>
  !Number.isFinite(x) ? String(x) : Math.abs(x) >= 1e-2 && Math.abs(x) < 1e4 ? x.toPrecision(4) : x.toExponential(2)

const pct = (x: number | undefined): string => (x === undefined ? "—" : `${(100 * x).toFixed(1)}%`)

const rate = (t: Throughput): string =>
  `${Math.round(t.samplesPerSecond).toLocaleString("en-US")}${t.estimated === true ? " (est.)" : ""}`

const ratio = (g: number | undefined, t: number | undefined): string =>
  g === undefined || t === undefined || !Number.isFinite(g) || !Number.isFinite(t) || t === 0 ? "" : `${(g / t).toFixed(2)}×`

/**
 * The closing table, one row per figure: teacher Heun-35 | the (one- or few-step) generator | generator ÷ teacher.
 * Mixture runs show FD, MMD, modes, off-mode and between-mode mass and in-mode spread; image runs FID, KID, IS,
 * precision and recall; both end with samples per second.
 */
export const summaryTable = (s: ClosingSummary): string => {
  const t = s.teacher.metrics
  const g = s.generator.metrics
  const rows: Array<readonly [string, string, string, string]> = []
  const num = (label: string, pick: (m: SampleMetrics) => number | undefined, show: (x: number) => string = fmt) => {
    const a = t === undefined ? undefined : pick(t)
    const b = g === undefined ? undefined : pick(g)
    if (a === undefined && b === undefined) return
    rows.push([label, a === undefined ? "—" : show(a), b === undefined ? "—" : show(b), ratio(b, a)])
  }
  const image = (g ?? t)?.fid !== undefined
  if (image) {
    num("FID", (m) => m.fid)
    num("KID", (m) => m.mmd)
    num("Inception Score", (m) => m.inceptionScore, (x) => x.toFixed(2))
    num("precision", (m) => m.precision, pct)
    num("recall", (m) => m.recall, pct)
  } else if (t !== undefined || g !== undefined) {
    num("FD", (m) => m.frechetDistance)
    num("MMD² (h 0.1)", (m) => m.mmd)
    const modes = (m: SampleMetrics | undefined) =>
      m?.modesCovered === undefined ? "—" : `${m.modesCovered}/${m.modeWeights?.length ?? "?"}`
    if ((g ?? t)?.modesCovered !== undefined) rows.push(["modes", modes(t), modes(g), ""])
    const mass = (label: string, pick: (m: SampleMetrics) => number | undefined) => {
      const a = t === undefined ? undefined : pick(t)
      const b = g === undefined ? undefined : pick(g)
      if (a !== undefined || b !== undefined) rows.push([label, pct(a), pct(b), ""])
    }
    mass("off-mode mass", (m) => m.offModeFraction)
    mass("between-mode mass", (m) => m.betweenModeFraction)
    num("in-mode spread (truth 1)", (m) => m.inModeSpread, (x) => `${x.toFixed(2)}×`)
  }
  rows.push(["samples/s", rate(s.teacher.throughput), rate(s.generator.throughput), ratio(s.generator.throughput.samplesPerSecond, s.teacher.throughput.samplesPerSecond)])
  const header = [
    "",
    `teacher, Heun (${s.teacher.evaluations} NFE)`,
    `${generatorName(s.generator.generatorSteps ?? 1)} (EMA, step ${s.generator.step})`,
    "generator / teacher"
  ] as const
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("   ").trimEnd()
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n")
}

/** Samples of the two samplers drawn for the close of a run, with their throughput. */
export interface ClosingDraw {
  /** Row-major samples (vector data only; empty otherwise). */
  readonly teacher: Float32Array
  readonly generator: Float32Array
  readonly dataShape: ReadonlyArray<number>
  readonly teacherThroughput: Throughput
  readonly generatorThroughput: Throughput
  readonly evaluations: number
}

/** Makes a tensor, reads its values (asynchronously: every engine can) and disposes it, timing all of it. */
const timed = (make: () => tf.Tensor): Effect.Effect<{ readonly value: Float32Array; readonly ms: number }> =>
  Effect.uninterruptible(Effect.promise(async () => {
    const t0 = performance.now()
    const t = make()
    try {
      const value = Float32Array.from(await t.data())
      return { value, ms: Math.max(performance.now() - t0, 1e-3) }
    } finally {
      t.dispose()
    }
  }))

const throughput = (samples: number, ms: number, estimated = false): Throughput => ({
  samples,
  ms,
  samplesPerSecond: (samples * 1000) / ms,
  ...(estimated ? { estimated } : {})
})

/**
 * Draws `count` samples of the teacher's Heun sampler (18 steps, 35 evaluations) and of the EMA generator from
 * latents of `seed`, timing each. Vector data are drawn in full and returned (for the scatter plot); for images the
 * generator is timed on `imageCount` samples and the Heun rate extrapolated from one teacher evaluation at that batch
 * (a Heun-35 draw of a large network can take minutes).
 */
export const drawForClosing = (
  count: number,
  seed: number,
  imageCount = 8
): Effect.Effect<ClosingDraw, never, Teacher | Generator> =>
  Effect.gen(function*() {
    const teacher = yield* Teacher
    const generator = yield* Generator
    const shape = generator.dataShape
    const evaluations = heunEvaluations(18)
    if (shape.length === 1) {
      const zt = fixedLatents(seed, count, shape)
      const zg = fixedLatents(seed + 1, count, shape)
      try {
        const t = yield* timed(() => tf.tidy(() => teacherSamples(teacher, zt, 18)))
        const g = yield* timed(() => tf.tidy(() => generatorSamples(generator, zg, "ema")))
        return {
          teacher: t.value,
          generator: g.value,
          dataShape: shape,
          teacherThroughput: throughput(count, t.ms),
          generatorThroughput: throughput(count, g.ms),
          evaluations
        }
      } finally {
        tf.dispose([zt, zg])
      }
    }
    const z = fixedLatents(seed, imageCount, shape)
    try {
      const g = yield* timed(() => tf.tidy(() => generatorSamples(generator, z, "ema")))
      const labelDim = teacher.weights.network.labelDim
      const one = yield* timed(() =>
        tf.tidy(() => teacher.denoise(z, 1.0, labelDim > 0 ? balancedLabels(imageCount, labelDim) : undefined))
      )
      return {
        teacher: new Float32Array(0),
        generator: new Float32Array(0),
        dataShape: shape,
        teacherThroughput: throughput(imageCount, one.ms * evaluations, true),
        generatorThroughput: throughput(imageCount, g.ms),
        evaluations
      }
    } finally {
      z.dispose()
    }
  })

/** The square axis range holding the central 99.8 % of both sets' coordinates, widened by 10 % (outliers clamp). */
export const scatterDomain = (sets: ReadonlyArray<Float32Array>): readonly [number, number] => {
  const all = Float64Array.from(sets.flatMap((s) => Array.from(s)).filter(Number.isFinite)).sort()
  if (all.length === 0) return [-1, 1]
  const at = (q: number) => all[Math.min(all.length - 1, Math.max(0, Math.floor(q * (all.length - 1))))]!
  const lo = at(0.001)
  const hi = at(0.999)
  const pad = 0.1 * Math.max(hi - lo, 1e-6)
  return [lo - pad, hi + pad]
}

/**
 * Writes `<runDir>/samples.png`: the teacher's Heun samples | the one-step generator's, same axes (2-D data only;
 * returns undefined otherwise).
 */
export const writeSamplesPlot = (runDir: string, draw: ClosingDraw, step: number, generatorSteps = 1) =>
  Effect.gen(function*() {
    if (draw.dataShape.length !== 1 || draw.dataShape[0] !== 2) return undefined
    const n = draw.teacher.length / 2
    const png = yield* scatterPanels(
      [
        { title: `teacher, Heun (${draw.evaluations} NFE)`, points: draw.teacher },
        { title: `${generatorName(generatorSteps)} (EMA, step ${step})`, points: draw.generator }
      ],
      { domain: scatterDomain([draw.teacher, draw.generator]), title: `${n.toLocaleString("en-US")} samples each`, pointSize: 3 }
    )
    const path = join(runDir, "samples.png")
    yield* writeFileAtomic(path, png)
    return path
  })
