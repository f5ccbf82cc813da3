/**
 * End to end on the 2-D ring (docs/algorithm.md §12, §12.3): train an MLP teacher by denoising score matching on samples of
 * the exact 8-mode mixture, distil it with SiD into a one-step generator (G and ψ start from the teacher's
 * weights), and compare the generator's EMA weights with the teacher's own Heun-35 sampler (18 Heun steps, 35
 * denoiser evaluations) against the exact mixture: Fréchet distance, MMD, mode coverage, recovered weights and
 * off-mode mass.
 *
 *   npm run example:gmm-2d -- [--alpha 1.2] [--tmax 600] [--steps 11000] [--lr 3e-4] [--fake-lr X] [--generator-lr X]
 *                              [--batch 1024] [--seed 0] [--teacher-steps 3000] [--teacher-lr 1e-3]
 *                              [--ema-kimg 500] [--eval-every 1000] [--eval-samples 20000] [--mmd-samples 10000]
 *                              [--teacher exact|dsm] [--normalizer] [--out runs/gmm-2d] [--quick]
 *
 * Writes `<out>/scatter.png` (ground truth | teacher Heun-35 | one-step generator), `<out>/distance.png`
 * (FD and MMD of the generator against iterations, the teacher's levels as dashed lines, log y) and
 * `<out>/summary.json`. The engine comes from `SID_ENGINE` (default auto: wasm-native where its addon is built).
 *
 * Defaults for 2-D data (measured, docs/results.md §2): the SiD loss without the per-sample
 * normaliser w (over two coordinates mean|x_g − f_φ| is noise, docs/algorithm.md §12; `--normalizer` restores it), tmax 600
 * (σ ≤ 5.8 in the generator loss: on a ring of radius 0.7 the larger σ carry no information, only gradient noise),
 * and batch 1024.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { Chunk, Effect, Layer, Schema, Stream } from "effect"
import { mkdirSync, writeFileSync } from "node:fs"
import { cpus } from "node:os"
import { join } from "node:path"
import { DistillConfig, encodeDistillConfig } from "../src/domain/config/DistillConfig.js"
import * as GaussianMixture from "../src/domain/data/GaussianMixture.js"
import * as CheckpointStore from "../src/services/node/CheckpointStore.js"
import { sidLoss } from "../src/domain/sid/SidLoss.js"
import * as Distillation from "../src/layers/node/Distillation.js"
import * as DistillationLoss from "../src/services/DistillationLoss.js"
import * as EngineLayers from "../src/engine/node/Engine.js"
import * as MetricsLayers from "../src/services/node/Metrics.js"
import * as TeacherLayers from "../src/services/node/Teacher.js"
import { distill, StartReport, StepReport } from "../src/pipeline/Distill.js"
import { evaluateTeacher, fixedLatents, generatorSamples, teacherSamples } from "../src/pipeline/Evaluation.js"
import { linePlot, scatterPanels } from "../src/report/Plots.js"
import { Engine } from "../src/engine/node/Engine.js"
import { Generator as GeneratorTag } from "../src/services/node/Generator.js"
import type { SampleMetrics } from "../src/services/node/Metrics.js"
import { Teacher } from "../src/services/node/Teacher.js"
import { readArgs } from "./Args.js"

const { flag, num, option } = readArgs()

const quick = flag("quick")
const lr = num("lr", 3e-4)
const settings = {
  alpha: num("alpha", 1.2),
  tmax: num("tmax", 600),
  steps: num("steps", quick ? 500 : 11_000),
  generatorLr: num("generator-lr", lr),
  fakeLr: num("fake-lr", lr),
  batchSize: num("batch", 1024),
  seed: num("seed", 0),
  emaHalfLifeKimg: num("ema-kimg", 500),
  evalEvery: num("eval-every", quick ? 100 : 1000)
}
const normalize = flag("normalizer")
const teacherSteps = num("teacher-steps", quick ? 600 : 3000)
const teacherLr = num("teacher-lr", 1e-3)
const teacherKind = option("teacher") ?? "dsm"
const evalSamples = num("eval-samples", quick ? 5000 : 20_000)
const mmdSamples = num("mmd-samples", quick ? 3000 : 10_000)
const plotSamples = 5000
const outDir = option("out") ?? join("runs", quick ? "gmm-2d-quick" : "gmm-2d")
const TEACHER_EVAL_SEED = 424242
const PLOT_SEED = 777

const config = Schema.decodeUnknownSync(DistillConfig)({
  ...settings,
  checkpointEvery: settings.steps + 1
})

const mixture = GaussianMixture.ring()
const MODE_STD = Math.sqrt(mixture.variances[0]![0]!)

const teacherLayer = teacherKind === "exact"
  ? TeacherLayers.layerGaussianMixture(mixture, {
    steps: teacherSteps,
    learningRate: teacherLr,
    seed: settings.seed,
    name: "exact ring mixture (students from a regressed MLP)"
  })
  : TeacherLayers.layerTrainedOnMixture(mixture, {
    steps: teacherSteps,
    learningRate: teacherLr,
    seed: settings.seed,
    name: `MLP 4×128 trained by DSM (${teacherSteps} steps)`,
    onProgress: (step, loss) => {
      if (step % 1000 === 0 || step === teacherSteps - 1) console.log(`  teacher step ${String(step).padStart(5)}  loss ${loss.toFixed(4)}`)
    }
  })

const layers = Distillation.layer(config, {
  teacher: teacherLayer,
  metrics: MetricsLayers.layerGaussianMixture(mixture, { referenceSize: 20_000, mmdSize: mmdSamples, name: "ring8" }),
  checkpoints: CheckpointStore.layerMemory,
  loss: DistillationLoss.layer(sidLoss({ alpha: config.alpha, lossScale: config.generatorLossScale, normalize }))
}).pipe(Layer.provideMerge(EngineLayers.layerConfig))

/** Mean over modes of the in-mode sample std (per coordinate), as a multiple of the true per-mode std. */
const modeSpread = (values: Float32Array): number => {
  const k = mixture.weights.length
  const sums = Array.from({ length: k }, () => ({ n: 0, sx: 0, sy: 0, sxx: 0, syy: 0 }))
  for (let i = 0; i + 1 < values.length; i += 2) {
    let best = 0
    let bestDist = Infinity
    for (let c = 0; c < k; c++) {
      const d = ((values[i]! - mixture.means[c]![0]!) ** 2 + (values[i + 1]! - mixture.means[c]![1]!) ** 2) / MODE_STD ** 2
      if (d < bestDist) {
        bestDist = d
        best = c
      }
    }
    if (bestDist > 9) continue
    const s = sums[best]!
    s.n++
    s.sx += values[i]!
    s.sy += values[i + 1]!
    s.sxx += values[i]! ** 2
    s.syy += values[i + 1]! ** 2
  }
  const stds = sums.filter((s) => s.n > 1).map((s) => {
    const vx = s.sxx / s.n - (s.sx / s.n) ** 2
    const vy = s.syy / s.n - (s.sy / s.n) ** 2
    return Math.sqrt((vx + vy) / 2)
  })
  return stds.length === 0 ? NaN : stds.reduce((a, b) => a + b, 0) / stds.length / MODE_STD
}

const fmt = (x: number) => (Math.abs(x) >= 1e-2 || x === 0 ? x.toFixed(4) : x.toExponential(2))
const line = (label: string, m: SampleMetrics, t?: SampleMetrics) => {
  const ratios = t === undefined ? "" : `  FD/T ${(m.frechetDistance / t.frechetDistance).toFixed(2)}  MMD/T ${(m.mmd / t.mmd).toFixed(2)}`
  const weights = (m.modeWeights ?? []).map((w) => w.toFixed(3)).join(" ")
  return `${label}  FD ${fmt(m.frechetDistance)}  MMD ${fmt(m.mmd)}${ratios}  modes ${m.modesCovered}/8  off-mode ${
    ((m.offModeFraction ?? 0) * 100).toFixed(1)
  }%  weights [${weights}]`
}

const program = Effect.gen(function*() {
  const engine = yield* Engine
  const teacher = yield* Teacher
  const generator = yield* GeneratorTag
  const builtAt = performance.now()
  console.log(`engine ${engine.name}, teacher: ${teacher.name}, built in ${((builtAt - started) / 1000).toFixed(1)} s`)
  console.log(`SiD: α ${config.alpha}, ${normalize ? "with" : "without"} w, tmax ${config.tmax}, lr G ${config.generatorLr} ψ ${config.fakeLr}, batch ${config.batchSize}, ${config.steps} iterations, EMA half-life ${config.emaHalfLifeKimg} kimg (ramp-up ${config.emaRampupRatio})`)

  const teacherEval = yield* evaluateTeacher(evalSamples, TEACHER_EVAL_SEED, 18)
  const tm = teacherEval.metrics
  const teacherEvalAt = performance.now()
  console.log(line(`teacher Heun-${teacherEval.evaluations}    `, tm))

  const history: Array<{ step: number; metrics: SampleMetrics; elapsedS: number }> = []
  let lastStep: StepReport | undefined
  let iterationMs = 0
  const reports = yield* distill(config, { evalSamples }).pipe(
    Stream.tap((r) =>
      Effect.sync(() => {
        if (r instanceof StepReport) {
          iterationMs += r.iterationMs
          lastStep = r
        }
        if (r.evaluation !== undefined) {
          history.push({ step: r.step, metrics: r.evaluation, elapsedS: (performance.now() - started) / 1000 })
          console.log(line(`G_ema step ${String(r.step).padStart(6)}`, r.evaluation, tm))
        }
      })
    ),
    Stream.runCollect
  )
  const distillEnd = performance.now()
  const start = Chunk.toReadonlyArray(reports).find((r): r is StartReport => r instanceof StartReport)
  const final = history[history.length - 1]!.metrics

  const plot = tf.tidy(() => {
    const zt = fixedLatents(PLOT_SEED, plotSamples, [2])
    const truth = GaussianMixture.sampleSeeded(mixture, plotSamples, PLOT_SEED).x
    const heun = teacherSamples(teacher, zt, 18)
    const gen = generatorSamples(generator, fixedLatents(PLOT_SEED + 1, plotSamples, [2]), "ema")
    const genEval = generatorSamples(generator, fixedLatents(config.seed + 7919, evalSamples, [2]), "ema")
    return {
      truth: truth.dataSync() as Float32Array,
      heun: heun.dataSync() as Float32Array,
      gen: gen.dataSync() as Float32Array,
      genSpread: modeSpread(genEval.dataSync() as Float32Array)
    }
  })
  const teacherSpread = tf.tidy(() => modeSpread(teacherSamples(teacher, fixedLatents(TEACHER_EVAL_SEED, evalSamples, [2]), 18).dataSync() as Float32Array))

  mkdirSync(outDir, { recursive: true })
  const scatter = yield* scatterPanels(
    [
      { title: "ground truth (exact mixture)", points: plot.truth },
      { title: `teacher, Heun-${teacherEval.evaluations} (35 NFE)`, points: plot.heun },
      { title: `one-step SiD generator (EMA, ${config.steps} it.)`, points: plot.gen }
    ],
    { domain: [-1.15, 1.15], title: `8-mode ring, ${plotSamples} samples each (α = ${config.alpha})` }
  )
  writeFileSync(join(outDir, "scatter.png"), scatter)
  const last = history[history.length - 1]!.step
  const distance = yield* linePlot(
    [
      { name: "FD, generator", points: history.map((h) => [h.step, h.metrics.frechetDistance] as const) },
      { name: "FD, teacher Heun-35", points: [[0, tm.frechetDistance], [last, tm.frechetDistance]], dashed: true },
      { name: "MMD², generator", points: history.map((h) => [h.step, h.metrics.mmd] as const) },
      { name: "MMD², teacher Heun-35", points: [[0, tm.mmd], [last, tm.mmd]], dashed: true }
    ],
    {
      title: `Distance to the exact ring mixture (α = ${config.alpha}, batch ${config.batchSize}, lr ${config.generatorLr})`,
      xTitle: "SiD iteration",
      yTitle: "distance (log scale; MMD² ≤ 0 drawn at 1e-6)"
    }
  )
  writeFileSync(join(outDir, "distance.png"), distance)

  const wallS = (performance.now() - started) / 1000
  const weightError = Math.max(...(final.modeWeights ?? []).map((w) => Math.abs(w - 0.125)))
  const summary = {
    example: "gmm-2d",
    engine: engine.name,
    cores: cpus().length,
    teacher: { kind: teacherKind, name: teacher.name, steps: teacherSteps, learningRate: teacherLr, buildSeconds: (builtAt - started) / 1000 },
    config: encodeDistillConfig(config),
    loss: { kind: "sid", alpha: config.alpha, normalizer: normalize },
    evaluation: { samples: evalSamples, mmdSamples, referenceSamples: 20_000, mmdBandwidth: 0.1 },
    teacherHeun: { evaluations: teacherEval.evaluations, ...tm, modeSpread: teacherSpread },
    generator: { ...final, modeSpread: plot.genSpread, maxWeightError: weightError },
    ratios: { frechetDistance: final.frechetDistance / tm.frechetDistance, mmd: final.mmd / tm.mmd },
    targets: {
      allModesCovered: final.modesCovered === 8,
      weightsWithin0125pm003: weightError <= 0.03,
      fdNoWorseThanTeacher: final.frechetDistance <= tm.frechetDistance,
      mmdNoWorseThanTeacher: final.mmd <= tm.mmd,
      under5Minutes: wallS < 300
    },
    start: start?.evaluation,
    history: history.map((h) => ({ step: h.step, elapsedSeconds: h.elapsedS, ...h.metrics })),
    timing: {
      wallSeconds: wallS,
      teacherSeconds: (builtAt - started) / 1000,
      teacherEvalSeconds: (teacherEvalAt - builtAt) / 1000,
      distillSeconds: (distillEnd - teacherEvalAt) / 1000,
      meanIterationMs: iterationMs / Math.max(lastStep?.step ?? 1, 1)
    },
    files: ["scatter.png", "distance.png", "summary.json"].map((f) => join(outDir, f))
  }
  writeFileSync(join(outDir, "summary.json"), JSON.stringify(summary, null, 2) + "\n")

  console.log(line("final G_ema         ", final, tm))
  console.log(`mode spread (in-mode std / true std): generator ${plot.genSpread.toFixed(3)}, teacher ${teacherSpread.toFixed(3)}`)
  console.log(`targets: ${JSON.stringify(summary.targets)}`)
  console.log(`wall ${wallS.toFixed(1)} s (teacher ${summary.timing.teacherSeconds.toFixed(1)} s, SiD ${summary.timing.distillSeconds.toFixed(1)} s, ${summary.timing.meanIterationMs.toFixed(1)} ms/iteration); wrote ${summary.files.join(", ")}`)
})

const started = performance.now()
Effect.runPromise(program.pipe(Effect.provide(layers), Effect.scoped)).catch((e) => {
  console.error(e instanceof Error ? e.message : e)
  process.exitCode = 1
})
