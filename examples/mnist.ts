/**
 * Real images end to end (issue 4 §6): train a small UNet teacher on MNIST with EDM's loss, measure its Heun-35
 * sampler (18 Heun steps, 35 denoiser evaluations), distil it data-free with SiD into a one-step generator whose EMA
 * weights are evaluated periodically, and compare: MNIST-FID (LeNet features against the held-out split), Inception
 * Score, precision and recall, the speed of one step against Heun-35 at the same batch, and the rate at which log FID
 * falls over the early iterations (SiD's "exponentially fast" claim).
 *
 *   npm run example:mnist -- [--quick] [--resolution 16|28|32] [--conditional] [--teacher-steps N] [--teacher-batch B]
 *                            [--teacher-lr LR] [--steps N] [--batch B] [--eval-every N] [--eval-samples N] [--seed S] [--out DIR]
 *                            [--variant sid|sid-aug|sida|sid2a|sid-2step|sid-4step [--augment P] [--g-warmup KIMG] [--gan-warmup KIMG]]
 *
 * Writes to `<out>` (default runs/mnist or runs/mnist-quick): `teacher/` (teacher checkpoints, log and
 * teacher.safetensors), `distill/` (checkpoints, log.jsonl, a sample grid per evaluation in samples/, fid.png) and
 * `summary.json`. With `--variant` (issue 14.4, `examples/MnistVariants.ts`) the distillation is that variant of SiD on
 * the same teacher and budget, in `variants/<name>/` (its `distill/` and `summary.json`), and its row is appended to
 * `variants.jsonl` and the table `variants.md`. Every stage resumes where an interrupted run stopped (Ctrl-C writes a final checkpoint). The engine
 * comes from `SID_ENGINE` (default auto: wasm-native where its addon is built, else wasm).
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { NodeRuntime } from "@effect/platform-node"
import { appendFile, mkdir } from "node:fs/promises"
import { join } from "node:path"
import { Effect, Layer, Stream } from "effect"
import { distillConfig, type DistillConfig } from "../src/domain/config/DistillConfig.js"
import { logLinearFit } from "../src/domain/metrics/LogLinearFit.js"
import { teacherTrainingConfig, type TeacherTrainingConfig } from "../src/domain/config/TeacherTrainingConfig.js"
import { evaluationsInLog, makeRunArtifacts } from "../src/cli/RunArtifacts.js"
import { describeEvaluation, toJsonLine } from "../src/cli/RunLog.js"
import { writeFileAtomic } from "../src/platform/AtomicFile.js"
import * as CheckpointStore from "../src/services/node/CheckpointStore.js"
import * as Distillation from "../src/layers/node/Distillation.js"
import * as EngineLayers from "../src/engine/node/Engine.js"
import * as MnistDataset from "../src/services/node/Dataset.js"
import * as ReferenceSpec from "../src/services/node/Metrics.js"
import * as TeacherLayers from "../src/services/node/Teacher.js"
import * as TeacherCheckpointStore from "../src/services/node/TeacherCheckpointStore.js"
import { distill, StepReport } from "../src/pipeline/Distill.js"
import { evaluateTeacher, fixedLatents, generatorSamples, teacherSamples } from "../src/pipeline/Evaluation.js"
import { trainTeacher, TeacherStepReport } from "../src/pipeline/node/TeacherTraining.js"
import { Generator } from "../src/services/node/Generator.js"
import type { SampleMetrics } from "../src/services/node/Metrics.js"
import { Teacher } from "../src/services/node/Teacher.js"
import { readArgs } from "./Args.js"
import {
  appendVariantRow,
  defaultVariantSettings,
  parseVariant,
  variantDir,
  variantOverrides,
  variantRow
} from "./MnistVariants.js"

/** Everything the pipeline needs to know. */
export interface MnistPipelineSettings {
  /** Output directory. */
  readonly out: string
  /** Teacher training (its resolution is the pipeline's). */
  readonly teacher: TeacherTrainingConfig
  /** Distillation. */
  readonly distill: DistillConfig
  /** Samples per evaluation (generator and teacher baseline alike, so their FIDs compare). */
  readonly evalSamples: number
  /** Held-out images of the FID reference (default all 2,000). */
  readonly referenceSize?: number
  /** Batch at which one step and Heun-35 are timed. */
  readonly speedBatch: number
  /** Progress lines (default: console.log). */
  readonly log?: (line: string) => void
  /** Where `distill/` and `summary.json` go (default `out`; the teacher is always in `<out>/teacher`). */
  readonly runDir?: string
}

/** What the pipeline measured (written to `summary.json`). */
export interface MnistSummary {
  readonly teacher: {
    readonly steps: number
    /** The last training loss this invocation saw (null when the stage was already complete). */
    readonly lastLoss: number | null
    /** Wall time of this invocation's teacher stage (a resumed run counts only its own part). */
    readonly seconds: number
    readonly heun35: SampleMetrics
    /** Wall time of the Heun-35 baseline (0 when it was read back from the log). */
    readonly heunSeconds: number
  }
  readonly generator: {
    readonly steps: number
    /** FID at step 0 (G = the teacher's denoiser at σ_init), from the run's log. */
    readonly startFid: number | null
    readonly final: SampleMetrics
    readonly best: { readonly step: number; readonly fid: number }
    /** Wall time of this invocation's distillation stage (a resumed run counts only its own part). */
    readonly seconds: number
  }
  /** One-step FID ÷ the teacher's Heun-35 FID (≤ 1: the student matches or beats its teacher). */
  readonly fidRatio: number
  readonly speed: {
    readonly batch: number
    readonly oneStepMs: number
    readonly heun35Ms: number
    readonly speedup: number
  }
  /** Least-squares slope of ln FID against iterations over the early phase (first quarter of the run). */
  readonly earlyPhase: {
    readonly untilStep: number
    readonly slopePer1kIterations: number
    readonly r2: number
    readonly points: number
  } | null
  /** Every evaluation of the run, earlier (resumed) segments included. */
  readonly evaluations: ReadonlyArray<{ readonly step: number; readonly fid: number }>
}

const seconds = (since: number): number => Math.round((performance.now() - since) / 100) / 10

const timeMs = (f: () => tf.Tensor, repeats: number): number => {
  const times: Array<number> = []
  for (let i = 0; i < repeats; i++) {
    const began = performance.now()
    const x = f()
    x.dataSync()
    times.push(performance.now() - began)
    x.dispose()
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!
}

/**
 * The whole pipeline: teacher training → Heun-35 baseline → SiD distillation with periodic MNIST-FID → one-step FID,
 * speed and early-phase slope. Needs a TF.js engine already set up (see `main`); every stage resumes from its
 * checkpoints in `out`.
 */
export const runMnistPipeline = (s: MnistPipelineSettings) =>
  Effect.gen(function*() {
    const log = s.log ?? ((line: string) => console.log(line))
    const resolution = s.teacher.resolution
    const teacherDir = join(s.out, "teacher")
    const distillDir = join(s.runDir ?? s.out, "distill")
    const teacherFile = join(teacherDir, "teacher.safetensors")
    yield* Effect.promise(() => mkdir(distillDir, { recursive: true }).then(() => mkdir(teacherDir, { recursive: true })))

    log(`1. teacher: UNet on MNIST ${resolution}×${resolution}, ${s.teacher.steps} steps of batch ${s.teacher.batchSize}`)
    const teacherBegan = performance.now()
    let lastLoss: number | null = null
    const every = Math.max(1, Math.floor(s.teacher.steps / 10))
    yield* trainTeacher(s.teacher, { resume: true, teacherFile }).pipe(
      Stream.runForEach((r) =>
        Effect.promise(async () => {
          await appendFile(join(teacherDir, "log.jsonl"), toJsonLine(r) + "\n")
          if (r instanceof TeacherStepReport) {
            lastLoss = r.loss
            if (r.step % every === 0 || r.step === s.teacher.steps) {
              log(`   step ${r.step}/${s.teacher.steps}  loss ${r.loss.toFixed(3)}  ${r.imagesPerSecond.toFixed(0)} img/s`)
            }
          } else log(`   start at step ${r.step}: ${r.parameters.toLocaleString("en-US")} parameters`)
        })
      ),
      Effect.provide(
        Layer.mergeAll(
          MnistDataset.layer({ size: resolution, seed: 0 }),
          TeacherCheckpointStore.layerDirectory(join(teacherDir, "checkpoints"))
        )
      )
    )
    const teacherSeconds = seconds(teacherBegan)

    const services = Distillation.layer(s.distill, {
      teacher: TeacherLayers.layerFile(teacherFile),
      metrics: ReferenceSpec.layerMnist(resolution, s.referenceSize === undefined ? {} : { referenceSize: s.referenceSize }),
      checkpoints: CheckpointStore.layerDirectory(join(distillDir, "checkpoints"))
    })
    return yield* Effect.gen(function*() {
      const logPath = join(distillDir, "log.jsonl")
      const logged = (yield* evaluationsInLog(logPath)).baseline
      const heunBegan = performance.now()
      const baseline = logged?.metrics !== undefined && logged.samples === s.evalSamples
        ? { metrics: logged.metrics, evaluations: logged.evaluations, logged: true }
        : { ...(yield* evaluateTeacher(s.evalSamples, s.distill.seed + 7919)), logged: false }
      const heunSeconds = baseline.logged ? 0 : seconds(heunBegan)
      log(`2. teacher baseline, Heun-35 on ${s.evalSamples} samples${baseline.logged ? " (from the log)" : ` (${heunSeconds} s)`}`)
      log(`   ${describeEvaluation(baseline.metrics)}`)
      if (!baseline.logged) {
        const record = { teacherSampler: { evaluations: baseline.evaluations, samples: s.evalSamples, metrics: baseline.metrics } }
        yield* Effect.promise(() => appendFile(logPath, toJsonLine(record) + "\n"))
      }

      log(`3. SiD: ${s.distill.steps} iterations of batch ${s.distill.batchSize}, evaluating every ${s.distill.evalEvery}`)
      const artifacts = yield* makeRunArtifacts({
        runDir: distillDir,
        logPath,
        seed: s.distill.seed + 104_729,
        generatorSteps: s.distill.generatorSteps
      })
      yield* artifacts.setBaseline(baseline.metrics.fid ?? baseline.metrics.frechetDistance, baseline.evaluations)
      const distillBegan = performance.now()
      const evaluations: Array<{ step: number; metrics: SampleMetrics }> = []
      yield* distill(s.distill, { resume: true, evalSamples: s.evalSamples }).pipe(
        Stream.runForEach((r) =>
          Effect.gen(function*() {
            yield* Effect.promise(() => appendFile(logPath, toJsonLine(r) + "\n"))
            yield* artifacts.onReport(r)
            if (r.evaluation !== undefined) {
              evaluations.push({ step: r.step, metrics: r.evaluation })
              log(`   step ${r.step}: ${describeEvaluation(r.evaluation)}`)
            } else if (r instanceof StepReport && r.step % Math.max(1, Math.floor(s.distill.steps / 20)) === 0) {
              log(`   step ${r.step}  fake ${r.fakeLoss.toFixed(3)}  gen ${r.generatorLoss.toFixed(3)}  ${r.iterationMs.toFixed(0)} ms`)
            }
          })
        )
      )
      const distillSeconds = seconds(distillBegan)

      log(`4. speed at batch ${s.speedBatch}: one step vs Heun-35`)
      const teacher = yield* Teacher
      const generator = yield* Generator
      const speed = yield* Effect.sync(() => {
        const z = fixedLatents(s.distill.seed + 31, s.speedBatch, generator.dataShape)
        const oneStepMs = timeMs(() => generatorSamples(generator, z, "ema"), 5)
        const heun35Ms = timeMs(() => teacherSamples(teacher, z, 18), 1)
        z.dispose()
        return { batch: s.speedBatch, oneStepMs, heun35Ms, speedup: heun35Ms / oneStepMs }
      })
      log(`   one step ${speed.oneStepMs.toFixed(0)} ms, Heun-35 ${speed.heun35Ms.toFixed(0)} ms: ${speed.speedup.toFixed(1)}× faster`)

      const fids = (yield* evaluationsInLog(logPath)).points.map(([step, fid]) => ({ step, fid }))
      const final = evaluations.at(-1)
      if (final === undefined) return yield* Effect.dieMessage("the distillation ran no evaluation")
      const best = fids.reduce((a, b) => (b.fid < a.fid ? b : a))
      const untilStep = Math.max(s.distill.evalEvery * 2, Math.round(s.distill.steps / 4))
      const early = fids.filter((f) => f.step <= untilStep)
      const fit = early.length >= 3 ? logLinearFit(early.map((f) => [f.step, f.fid] as const)) : undefined
      const teacherFid = baseline.metrics.fid ?? baseline.metrics.frechetDistance
      const finalFid = final.metrics.fid ?? final.metrics.frechetDistance
      const summary: MnistSummary = {
        teacher: { steps: s.teacher.steps, lastLoss, seconds: teacherSeconds, heun35: baseline.metrics, heunSeconds },
        generator: {
          steps: s.distill.steps,
          startFid: fids[0]?.step === 0 ? fids[0].fid : null,
          final: final.metrics,
          best,
          seconds: distillSeconds
        },
        fidRatio: finalFid / teacherFid,
        speed,
        earlyPhase: fit === undefined
          ? null
          : { untilStep, slopePer1kIterations: fit.slope * 1000, r2: fit.r2, points: fit.points },
        evaluations: fids
      }
      yield* writeFileAtomic(join(s.runDir ?? s.out, "summary.json"), new TextEncoder().encode(JSON.stringify(summary, null, 2) + "\n"))
      log(
        `5. one-step MNIST-FID ${finalFid.toFixed(2)} vs teacher Heun-35 ${teacherFid.toFixed(2)} (ratio ${summary.fidRatio.toFixed(2)}); ` +
          (fit === undefined
            ? "too few early evaluations for a slope"
            : `early phase (≤ ${untilStep} it.): ln FID slope ${(fit.slope * 1000).toFixed(3)} per 1k iterations, R² ${fit.r2.toFixed(2)}`)
      )
      log(`   wrote ${join(s.runDir ?? s.out, "summary.json")}, ${join(distillDir, "fid.png")}, ${join(distillDir, "samples")}/`)
      return summary
    }).pipe(Effect.provide(services))
  })

/**
 * The settings of `--quick` (a few minutes on 2 cores) and of the full run (about an hour on 2 cores with the
 * wasm-native engine; several hours on plain wasm), before flags.
 */
export const presets = {
  quick: {
    teacher: { steps: 400, batchSize: 32, baseChannels: 16, groups: 8, checkpointEvery: 200 },
    distill: { steps: 120, batchSize: 16, evalEvery: 20, checkpointEvery: 60 },
    evalSamples: 1000,
    speedBatch: 64
  },
  full: {
    teacher: { steps: 3000, batchSize: 32, baseChannels: 32, checkpointEvery: 250 },
    distill: { steps: 9000, batchSize: 32, evalEvery: 100, checkpointEvery: 250 },
    evalSamples: 2000,
    speedBatch: 256
  }
} as const

const main = () => {
  const { flag, num, option } = readArgs()
  const quick = flag("quick")
  const preset = quick ? presets.quick : presets.full
  const seed = num("seed", 0)
  const variantText = option("variant")
  const variant = variantText === undefined ? undefined : parseVariant(variantText)
  const out = option("out") ?? join("runs", quick ? "mnist-quick" : "mnist")
  const distillSteps = num("steps", preset.distill.steps)
  const distillBatch = num("batch", preset.distill.batchSize)
  const defaults = defaultVariantSettings(distillSteps * distillBatch)
  const overrides = variant === undefined ? {} : variantOverrides(variant, out, {
    augment: num("augment", defaults.augment),
    generatorWarmupKimg: num("g-warmup", defaults.generatorWarmupKimg),
    adversarialWarmupKimg: num("gan-warmup", defaults.adversarialWarmupKimg)
  })
  const resolution = num("resolution", 16)
  if (resolution !== 16 && resolution !== 28 && resolution !== 32) throw new Error("--resolution must be 16, 28 or 32")
  const settings: MnistPipelineSettings = {
    out,
    ...(variant === undefined ? {} : { runDir: variantDir(out, variant) }),
    teacher: teacherTrainingConfig({
      ...preset.teacher,
      steps: num("teacher-steps", preset.teacher.steps),
      batchSize: num("teacher-batch", preset.teacher.batchSize),
      ...(option("teacher-lr") === undefined ? {} : { learningRate: num("teacher-lr", 2e-3) }),
      resolution,
      conditional: flag("conditional"),
      seed
    }),
    distill: distillConfig({
      ...preset.distill,
      steps: distillSteps,
      batchSize: distillBatch,
      evalEvery: num("eval-every", preset.distill.evalEvery),
      generatorLr: num("lr", 3e-4),
      fakeLr: num("lr", 3e-4),
      emaHalfLifeKimg: num("ema-kimg", quick ? 0.5 : 2),
      seed,
      ...overrides
    }),
    evalSamples: num("eval-samples", preset.evalSamples),
    speedBatch: num("speed-batch", preset.speedBatch)
  }
  runMnistPipeline(settings).pipe(
    Effect.tap((summary) =>
      variant === undefined
        ? Effect.void
        : Effect.promise(() =>
          appendVariantRow(out, variantRow(variant, settings.distill, settings.evalSamples, summary), summary.teacher.heun35)
        ).pipe(Effect.tap(() => Effect.sync(() => console.log(`   appended the ${variant} row to ${join(out, "variants.md")}`))))
    ),
    Effect.provide(EngineLayers.layerConfig),
    NodeRuntime.runMain
  )
}

if (import.meta.url === `file://${process.argv[1]}`) main()
