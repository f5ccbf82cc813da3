/**
 * The demo's distillation worker: one run per worker (the page starts a new worker for a new run). It chooses the
 * engine (WebGPU where an adapter exists, else threaded wasm), builds the teacher and the run's services with
 * `sid-ts/browser/distill`, draws the teacher's Heun-35 baseline, then runs the distillation stream with its
 * checkpoints in IndexedDB, posting every step, evaluation and checkpoint to the page.
 *
 * @module
 */
import "./immediate.js"
import * as tf from "@tensorflow/tfjs"
import wasmPlain from "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url"
import wasmSimd from "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url"
import wasmThreaded from "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url"
import { Context, Effect, Layer, Stream } from "effect"
import {
  BrowserEngine,
  BrowserRun,
  BrowserStore,
  CheckpointStore,
  Config,
  Distill,
  Evaluation,
  GaussianMixture,
  Generator,
  Engine,
  Metrics,
  Teacher
} from "../../src/browser/index.js"
import type { FromWorker, RunSettings, ToWorker } from "./protocol.js"

/** Samples drawn for the panels (the evaluations use `EVAL_SAMPLES`). */
const PLOT_SAMPLES = 2000
/** Samples per evaluation, as the CLI's (10,000 against 20,000 exact ones). */
const EVAL_SAMPLES = 10_000
const REFERENCE_SAMPLES = 20_000
const HEUN_STEPS = 35

const scope = self as unknown as {
  postMessage: (message: FromWorker, transfer?: ReadonlyArray<Transferable>) => void
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null
}
const post = (message: FromWorker, transfer: ReadonlyArray<Transferable> = []) => scope.postMessage(message, transfer)

let paused = false
let wake: (() => void) | undefined
let services: Context.Context<Generator | CheckpointStore | Teacher> | undefined
let currentStep = 0
let teacherName = ""

const waitWhilePaused = Effect.async<void>((resume) => {
  if (!paused) return resume(Effect.void)
  wake = () => resume(Effect.void)
})

const mixtureOf = (settings: RunSettings) =>
  settings.mixture.kind === "preset"
    ? Effect.succeed(settings.mixture.name === "ring8" ? GaussianMixture.ring() : GaussianMixture.grid())
    : BrowserRun.mixtureOfModes(settings.mixture.modes)

const configOf = (settings: RunSettings) =>
  Config.decodeDistillConfig({
    ...Config.DISTILL_PRESETS.lowDimensional.config,
    alpha: settings.alpha,
    tmax: settings.tmax,
    generatorLr: settings.learningRate,
    fakeLr: settings.learningRate,
    steps: settings.steps,
    evalEvery: settings.evalEvery,
    checkpointEvery: settings.checkpointEvery,
    seed: settings.seed
  })

const valuesOf = (t: tf.Tensor, n: number): Float32Array => Float32Array.from((t.dataSync() as Float32Array).subarray(0, n * 2))

/** EMA generator samples for the panel, from fixed latents. */
const generatorSamples = Effect.scoped(Effect.gen(function*() {
  const generator = yield* Generator
  const latents = yield* Effect.acquireRelease(
    Effect.sync(() => Evaluation.fixedLatents(1, PLOT_SAMPLES, generator.dataShape)),
    (z) => Effect.sync(() => z.dispose())
  )
  const samples = yield* Evaluation.drawGeneratorSamples(generator, latents, "ema")
  return valuesOf(samples, PLOT_SAMPLES)
}))

/** The teacher's Heun-35 samples: metrics on `EVAL_SAMPLES`, the first `PLOT_SAMPLES` for the panel. */
const teacherBaseline = (seed: number) =>
  Effect.scoped(Effect.gen(function*() {
    const teacher = yield* Teacher
    const metrics = yield* Metrics
    const latents = yield* Effect.acquireRelease(
      Effect.sync(() => Evaluation.fixedLatents(seed + 7919, EVAL_SAMPLES, teacher.dataShape)),
      (z) => Effect.sync(() => z.dispose())
    )
    const samples = yield* Evaluation.drawTeacherSamples(teacher, latents, HEUN_STEPS)
    const figures = yield* metrics.evaluate(samples)
    post({ type: "teacher", samples: valuesOf(samples, PLOT_SAMPLES), fd: figures.frechetDistance, mmd: figures.mmd, heunSteps: HEUN_STEPS })
  }))

const onReport = (report: Distill.StartReport | Distill.StepReport) =>
  Effect.gen(function*() {
    currentStep = report.step
    if (report instanceof Distill.StartReport) {
      if (report.resumedFrom !== undefined) post({ type: "resumed", step: report.step })
    } else {
      post({
        type: "step",
        step: report.step,
        iterationMs: report.iterationMs,
        fakeLoss: report.fakeLoss,
        generatorLoss: report.generatorLoss
      })
      if (report.checkpoint !== undefined) post({ type: "checkpoint", step: report.step })
    }
    if (report.evaluation !== undefined) {
      const samples = yield* generatorSamples
      post({ type: "evaluation", step: report.step, fd: report.evaluation.frechetDistance, mmd: report.evaluation.mmd, samples }, [samples.buffer])
    }
  })

/** The newest intact checkpoint's step, if the store has one. */
const lastGood = Effect.gen(function*() {
  const store = yield* CheckpointStore
  const entries = yield* Effect.orElseSucceed(store.list, () => [])
  return entries.find((e) => !e.best && e.status._tag === "Intact")?.step
})

const run = (settings: RunSettings, storeName: string, resume: boolean) =>
  Effect.gen(function*() {
    const choice = settings.engine === "auto"
      ? yield* BrowserEngine.chooseEngine
      : { name: settings.engine, reason: "chosen in the page" }
    const built = yield* BrowserEngine.makeEngine(choice.name, {
      ...(settings.threads === undefined ? {} : { threads: settings.threads }),
      wasmPaths: {
        "tfjs-backend-wasm.wasm": wasmPlain,
        "tfjs-backend-wasm-simd.wasm": wasmSimd,
        "tfjs-backend-wasm-threaded-simd.wasm": wasmThreaded
      }
    })
    post({
      type: "engine",
      name: built.info.name,
      ...(built.info.adapter === undefined ? {} : { adapter: built.info.adapter }),
      reason: choice.reason,
      threads: built.engine.facts.threads,
      simd: built.engine.facts.simd,
      crossOriginIsolated: built.info.crossOriginIsolated
    })
    const mixture = yield* mixtureOf(settings)
    const config = yield* configOf(settings)
    if (!resume) yield* Effect.promise(() => BrowserStore.deleteIndexedDbStore(storeName))
    const preset = Config.DISTILL_PRESETS.lowDimensional.teacherFit!
    const fit = {
      hidden: preset.hidden,
      depth: preset.depth,
      // The exact teacher's MLP only initialises G and ψ (`npm start` fits 300 steps); a DSM teacher is that MLP.
      steps: settings.teacher === "exact" ? 300 : preset.steps,
      reportEvery: 50,
      onProgress: (step: number, loss: number) =>
        post({ type: "phase", text: `fitting the ${settings.teacher === "exact" ? "initial" : "teacher"} MLP: step ${step + 1}, loss ${loss.toFixed(4)}` })
    }
    teacherName = settings.mixture.kind === "preset" ? `${settings.teacher === "exact" ? "gmm" : "gmm-dsm"}:${settings.mixture.name}` : "drawn mixture"
    post({ type: "phase", text: "fitting the MLP…" })
    const runLayer = BrowserRun.layer(config, {
      teacher: BrowserRun.mixtureTeacher(mixture, settings.teacher, { ...fit, name: teacherName }),
      metrics: BrowserRun.mixtureMetrics(mixture, { referenceSize: REFERENCE_SAMPLES, mmdSize: 2000, name: teacherName }),
      checkpoints: BrowserStore.layerIndexedDb(storeName)
    })
    const body = Effect.gen(function*() {
      services = yield* Effect.context<Generator | CheckpointStore | Teacher>()
      post({ type: "phase", text: `the teacher's Heun-${HEUN_STEPS} baseline…` })
      yield* teacherBaseline(config.seed)
      // Each pass restores the newest checkpoint (none: step 0) and runs until paused or done; a pause ends the
      // stream, which writes its final checkpoint, and the next pass continues from it.
      while (true) {
        if (!paused) post({ type: "running", step: currentStep })
        post({ type: "phase", text: paused ? "restoring the newest checkpoint…" : "distilling" })
        yield* Stream.runForEach(
          Distill.distill(config, { resume: true, evalSamples: EVAL_SAMPLES, shouldStop: Effect.sync(() => paused) }),
          onReport
        )
        if (currentStep >= config.steps) {
          post({ type: "done", step: currentStep })
          return
        }
        post({ type: "paused", step: currentStep })
        yield* waitWhilePaused
      }
    })
    yield* body.pipe(
      Effect.catchAll((e) =>
        Effect.flatMap(lastGood, (step) =>
          Effect.sync(() => post({ type: "error", message: e.message, ...(step === undefined ? {} : { lastGood: step }) })))
      ),
      Effect.provide(Layer.provideMerge(runLayer, Layer.succeed(Engine, built.engine)))
    )
  }).pipe(
    Effect.scoped,
    Effect.catchAll((e) => Effect.sync(() => post({ type: "error", message: e.message }))),
    Effect.catchAllDefect((d) => Effect.sync(() => post({ type: "error", message: `unexpected failure: ${d instanceof Error ? d.message : String(d)}` })))
  )

const withServices = <A>(f: (ctx: Context.Context<Generator | CheckpointStore | Teacher>) => A) =>
  services === undefined ? post({ type: "error", message: "the run has not started yet" }) : f(services)

scope.onmessage = (event) => {
  const message = event.data
  switch (message.type) {
    case "start":
      paused = message.paused
      void Effect.runPromise(run(message.settings, message.store, message.resume))
      return
    case "pause":
      paused = true
      return
    case "resume":
      paused = false
      wake?.()
      wake = undefined
      return
    case "export":
      return withServices((ctx) => {
        const bytes = Effect.runSync(Effect.provide(BrowserRun.exportGenerator({ step: currentStep, teacher: teacherName }), ctx))
        post({ type: "exported", bytes, step: currentStep }, [bytes.buffer])
      })
    case "poison":
      return withServices((ctx) => {
        const generator = Context.get(ctx, Generator)
        for (const v of Object.values(generator.weights.variables)) v.assign(tf.fill(v.shape, Number.NaN))
      })
  }
}

