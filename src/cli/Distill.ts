/**
 * `sid distill`: the distillation run as a command.
 *
 * Every value is validated before anything is written: the flags (each error names its flag), the `--config` file,
 * the teacher (its file is hashed, its preset looked up) and the reference. Then the run directory is claimed (an
 * exclusive lock; a fresh start never mixes with an earlier run), the run spec is recorded in `config.json`, and the
 * stream runs. A resumed run starts from the recorded spec: flags may change only what leaves the trajectory alone.
 *
 * @module
 */
import { engineFlag } from "./EngineOption.js"
import { Command, type Options } from "@effect/cli"
import { mkdir, readdir, readFile, rename } from "node:fs/promises"
import { join } from "node:path"
import { Effect, Either, Layer, Option, Ref, Schema, Stream } from "effect"
import {
  decodeDistillConfig,
  describePreset,
  DISTILL_FLAGS,
  DISTILL_PRESETS,
  DISTILL_SETTINGS,
  distillPreset,
  type DistillConfig,
  encodeDistillConfig,
  TEACHER_KINDS,
  type TeacherKind
} from "../domain/config/DistillConfig.js"
import { DISTILL_RUN_SETTINGS, wholeNumber } from "../domain/config/RunSettings.js"
import { generatorName } from "../domain/sid/FewStep.js"
import {
  configDifferences,
  decodeRunRecord,
  encodeRunSpec,
  LEGACY_FIT_NETWORK,
  type RecordedRun,
  RUN_SPEC_FORMAT,
  RunRecordError,
  RunSpec,
  runSpecDifferences,
  RunSpecMismatch
} from "../domain/config/RunSpec.js"
import { writeFileAtomic } from "../platform/AtomicFile.js"
import * as CheckpointStore from "../services/node/CheckpointStore.js"
import * as Distillation from "../layers/node/Distillation.js"
import * as Engine from "../engine/node/Engine.js"
import * as ReferenceSpec from "../services/node/Metrics.js"
import { claimRunDirectory, type ClaimMode, rewindLog, RunDirectoryError } from "../platform/RunDirectory.js"
import * as TeacherSpec from "../services/node/Teacher.js"
import { WebGpuAdapterReport } from "../engine/WebGpuAdapter.js"
import { distill } from "../pipeline/Distill.js"
import { evaluateTeacher } from "../pipeline/Evaluation.js"
import { checkSidaConfig } from "../services/node/RealData.js"
import { BestScore, CheckpointStore as CheckpointStoreTag } from "../services/node/CheckpointStore.js"
import { Generator as GeneratorTag } from "../services/node/Generator.js"
import { Metrics as MetricsTag, type SampleMetrics } from "../services/node/Metrics.js"
import {
  decodeFlag,
  docsOf,
  FlagError,
  nameFlags,
  numberOrText,
  optionsOf,
  settingFlags,
  settingOverrides,
  type SettingValues,
  switchFlag,
  textFlag
} from "./Flags.js"
import type { CliNode } from "./Help.js"
import { Engine as EngineTag } from "../engine/node/Engine.js"
import { evaluationsInLog, makeRunArtifacts, plottedValue } from "./RunArtifacts.js"
import { type ClosingSummary, drawForClosing, summaryTable, writeSamplesPlot } from "./RunSummary.js"
import { describeEvaluation, makeRunLog, toJsonLine } from "./RunLog.js"

/** A `--config` file could not be read or parsed. */
export class ConfigFileError extends Schema.TaggedError<ConfigFileError>()("ConfigFileError", {
  path: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `--config ${this.path}: cannot read it as JSON (${this.reason}). Pass a JSON object of DistillConfig fields.`
  }
}

const RUN = DISTILL_RUN_SETTINGS

const FIT = distillPreset("lowDimensional").teacherFit!

/** The values the presets give a setting, for its help. */
const presetValues = (key: string): ReadonlyArray<readonly [string, unknown]> =>
  TEACHER_KINDS.flatMap((kind) => {
    const config = DISTILL_PRESETS[kind].config as Partial<Record<string, unknown>>
    return key in config ? [[kind, config[key]] as const] : []
  })

const runFlags = settingFlags(RUN)
const configFlags = settingFlags(DISTILL_SETTINGS, presetValues)

const runDirFlags = {
  runDir: runFlags.runDir,
  config: textFlag("config", "a JSON file of DistillConfig fields; flags given on the command line override it", {
    placeholder: "<file>",
    default: "none"
  }),
  engine: engineFlag,
  allowSoftwareGpu: switchFlag(
    "allow-software-gpu",
    "let --engine webgpu run on a software (fallback) adapter such as Mesa's llvmpipe (env SID_WEBGPU_SOFTWARE=1): " +
      "for correctness checks, far slower than the CPU engines"
  ),
  resume: switchFlag(
    "resume",
    "continue the run in --run-dir from its newest checkpoint, exactly where it stopped, with its recorded settings " +
      "(flags may change only --steps, --eval-every, --checkpoint-every, --low-memory, evaluation sizes, --engine, --keep)"
  ),
  resumeFrom: textFlag(
    "resume-from",
    "continue the run from the checkpoint of this step (e.g. when the newest is damaged); newer checkpoints are moved " +
      "to checkpoints/superseded-<time>/, never deleted",
    { value: "integer", placeholder: "<step>" }
  ),
  overwrite: switchFlag("overwrite", "start afresh where --run-dir holds a run: the old run is moved aside (never deleted)"),
  keep: runFlags.keep
} as const

const teacherFlags = {
  teacher: runFlags.teacher,
  reference: runFlags.reference,
  evalSamples: runFlags.evalSamples,
  baselineSamples: runFlags.baselineSamples,
  teacherFitSteps: runFlags.teacherFitSteps,
  teacherHidden: runFlags.teacherHidden,
  teacherDepth: runFlags.teacherDepth
} as const

/** The flags of `sid distill`, each with its documentation. */
export const distillFlags = { ...teacherFlags, ...runDirFlags, ...configFlags } as const

/** The options of `sid distill`. */
export const distillOptions = optionsOf(distillFlags)

/** The parsed arguments of `sid distill`. */
export type DistillArgs = {
  readonly [K in keyof typeof distillOptions]: (typeof distillOptions)[K] extends Options.Options<infer A> ? A : never
}
type Parsed = DistillArgs

type CountSetting = "evalSamples" | "baselineSamples" | "teacherFitSteps" | "teacherHidden" | "teacherDepth" | "keep"

/** A count flag of {@link DISTILL_RUN_SETTINGS}, decoded by its schema; `fallback` where absent (or null). */
const countFlag = (key: CountSetting, value: Option.Option<string>, fallback: number): Either.Either<number, FlagError> =>
  Option.match(value, {
    onNone: () => Either.right(fallback),
    onSome: (text) =>
      Either.map(
        decodeFlag(RUN[key].flag, RUN[key].schema as Schema.Schema<number | null>, text, (t) => (t.trim() === "null" ? null : numberOrText(t))),
        (v) => v ?? fallback
      )
  })

/** Everything a run needs, validated, before anything is written. */
export interface Plan {
  readonly mode: ClaimMode
  /** The kind of teacher, which chose the preset. */
  readonly kind: TeacherKind
  /** The settings given by the `--config` file or the flags where they differ from the preset's. */
  readonly overrides: ReadonlyArray<string>
  readonly runDir: string
  readonly spec: RunSpec
  /** The recorded run, when resuming. */
  readonly recorded?: RecordedRun
  readonly evalSamples: number
  readonly baselineSamples: number
  readonly keep: number
  /** The checkpoint step to resume from instead of the newest. */
  readonly resumeFrom?: number
}

const readJson = (path: string, onError: (reason: string) => ConfigFileError | RunRecordError) =>
  Effect.tryPromise({
    try: async () => JSON.parse(await readFile(path, "utf8")) as unknown,
    catch: (e) => onError(e instanceof Error ? e.message : String(e))
  })

/**
 * Validates every flag, the config file, the teacher and the reference; for a resume, checks the recorded run. The
 * config of a fresh run is the preset of the teacher's kind (`DISTILL_PRESETS`), then the `--config` file, then the
 * flags; a resumed run starts from its recorded config instead. Writes nothing.
 */
export const planDistill = (o: Parsed) =>
  Effect.gen(function*() {
    const runDir = Option.getOrElse(o.runDir, () => RUN.runDir.default)
    if (o.resume && o.overwrite) {
      return yield* new FlagError({ flag: "overwrite", value: "", rule: "cannot be combined with --resume (choose one)" })
    }
    const resumeFrom = yield* Option.match(o.resumeFrom, {
      onNone: () => Either.right(undefined),
      onSome: (text) => decodeFlag("resume-from", wholeNumber(0, "a checkpoint's step"), text)
    })
    if (resumeFrom !== undefined && o.overwrite) {
      return yield* new FlagError({ flag: "overwrite", value: "", rule: "cannot be combined with --resume-from (choose one)" })
    }
    const mode: ClaimMode = o.resume || resumeFrom !== undefined ? "resume" : o.overwrite ? "overwrite" : "fresh"
    const givenEvalSamples = yield* countFlag("evalSamples", o.evalSamples, RUN.evalSamples.default)
    const keep = yield* countFlag("keep", o.keep, RUN.keep.default)
    const fromFile = yield* Option.match(o.config, {
      onNone: () => Effect.succeed<unknown>({}),
      onSome: (path) => readJson(path, (reason) => new ConfigFileError({ path, reason }))
    })
    if (fromFile === null || typeof fromFile !== "object" || Array.isArray(fromFile)) {
      return yield* new ConfigFileError({ path: Option.getOrElse(o.config, () => ""), reason: "it is not a JSON object" })
    }
    const fromFlags = yield* settingOverrides(DISTILL_SETTINGS, o as SettingValues<typeof DISTILL_SETTINGS>)
    const recorded = mode === "resume"
      ? yield* readJson(join(runDir, "config.json"), (reason) => new RunRecordError({ path: join(runDir, "config.json"), reason }))
        .pipe(
          Effect.catchIf(
            (e) => e.reason.includes("ENOENT"),
            () =>
              new RunDirectoryError({
                path: runDir,
                reason: "it holds no config.json, so there is no run to resume",
                fix: "Check --run-dir, or start the run without --resume."
              })
          ),
          Effect.flatMap((json) => decodeRunRecord(join(runDir, "config.json"), json))
        )
      : undefined
    const recordedSpec = recorded?._tag === "RunSpec" ? recorded.spec : undefined
    const evalSamples = Option.isNone(o.evalSamples) ? recordedSpec?.evalSamples ?? givenEvalSamples : givenEvalSamples
    const baselineSamples = yield* countFlag("baselineSamples", o.baselineSamples, evalSamples)
    const teacherText = Option.getOrElse(o.teacher, () => recordedSpec?.teacher.spec ?? RUN.teacher.default)
    const kind = yield* TeacherSpec.teacherKind(TeacherSpec.parseTeacherSpec(teacherText))
    const preset = distillPreset(kind)
    const base = recorded === undefined
      ? { ...preset.config }
      : encodeDistillConfig(recorded._tag === "RunSpec" ? recorded.spec.config : recorded.config)
    const config = yield* Either.mapLeft(
      decodeDistillConfig({ ...base, ...fromFile, ...fromFlags }),
      (e) => nameFlags(DISTILL_SETTINGS, e, fromFlags)
    )
    yield* checkSidaConfig(config)
    const fit = preset.teacherFit ?? FIT
    const fitSteps = yield* countFlag("teacherFitSteps", o.teacherFitSteps, recordedSpec?.teacher.fitSteps ?? fit.steps)
    const recordedNetwork = recorded === undefined ? undefined : recordedSpec?.teacher.fitNetwork ?? LEGACY_FIT_NETWORK
    const hidden = yield* countFlag("teacherHidden", o.teacherHidden, recordedNetwork?.hidden ?? fit.hidden)
    const depth = yield* countFlag("teacherDepth", o.teacherDepth, recordedNetwork?.depth ?? fit.depth)
    const referenceText = Option.getOrElse(o.reference, () => recordedSpec?.reference ?? RUN.reference.default)
    yield* ReferenceSpec.parseReferenceSpec(referenceText)
    const teacher = yield* TeacherSpec.teacherIdentity(teacherText, fitSteps, { hidden, depth })
    const presetName = recorded === undefined ? kind : recordedSpec?.preset
    const spec = new RunSpec({
      format: RUN_SPEC_FORMAT,
      config,
      teacher,
      reference: referenceText,
      ...(presetName === undefined ? {} : { preset: presetName }),
      ...(recorded === undefined ? { evalSamples } : recordedSpec?.evalSamples === undefined ? {} : { evalSamples: recordedSpec.evalSamples })
    })
    if (recorded !== undefined) {
      const differences = recorded._tag === "RunSpec"
        ? runSpecDifferences(recorded.spec, spec)
        : configDifferences(recorded.config, config)
      if (differences.length > 0) return yield* new RunSpecMismatch({ location: runDir, differences })
    }
    const resolved = encodeDistillConfig(config) as Record<string, unknown>
    const overrides = Object.keys({ ...fromFile, ...fromFlags })
      .filter((k) => k in DISTILL_FLAGS && JSON.stringify((preset.config as Record<string, unknown>)[k]) !== JSON.stringify(resolved[k]))
      .map((k) => `--${DISTILL_FLAGS[k as keyof typeof DISTILL_FLAGS].flag} ${JSON.stringify(resolved[k])}`)
    if (preset.teacherFit !== undefined) {
      const given = [["teacher-fit-steps", o.teacherFitSteps, fitSteps, fit.steps], ["teacher-hidden", o.teacherHidden, hidden, fit.hidden], [
        "teacher-depth",
        o.teacherDepth,
        depth,
        fit.depth
      ]] as const
      for (const [flag, option, value, presetValue] of given) {
        if (Option.isSome(option) && value !== presetValue) overrides.push(`--${flag} ${value}`)
      }
    }
    return {
      mode,
      kind,
      overrides,
      runDir,
      spec,
      evalSamples,
      baselineSamples,
      keep,
      ...(recorded === undefined ? {} : { recorded }),
      ...(resumeFrom === undefined ? {} : { resumeFrom })
    } satisfies Plan
  })

const writeRecord = (runDir: string, spec: RunSpec) =>
  writeFileAtomic(join(runDir, "config.json"), new TextEncoder().encode(toJsonLine(encodeRunSpec(spec)) + "\n")).pipe(
    Effect.mapError((e) =>
      new RunDirectoryError({ path: join(runDir, "config.json"), reason: `cannot write it (${e.message})`, fix: "Choose a writable --run-dir." })
    )
  )

/** The `sid distill` handler. */
export const runDistill = (o: Parsed) =>
  Effect.scoped(
    Effect.gen(function*() {
      const p = yield* planDistill(o)
      if (o.engine === "auto") {
        const choice = yield* Engine.explainAuto()
        yield* Effect.sync(() => console.log(`engine: ${choice.name} (auto: ${choice.reason})`))
      }
      yield* startRun(p).pipe(
        Effect.provide(Engine.layer(o.engine, o.allowSoftwareGpu ? { allowSoftwareGpu: true } : undefined))
      )
    })
  )

/**
 * Runs a validated plan on the engine at hand: claims the run directory, checks the checkpoint a resume starts from
 * (before the teacher is fitted), and runs the stream. The run record is written when the run has started (its
 * services built), so a command that fails before that leaves the directory as it was.
 */
const startRun = (p: Plan) =>
  Effect.gen(function*() {
    const { config } = p.spec
    const claim = yield* claimRunDirectory(p.runDir, p.mode)
    for (const note of claim.notes) yield* Effect.sync(() => console.log(`run directory: ${note}`))
    const checkpointDir = join(p.runDir, "checkpoints")
    const store = yield* Effect.provide(CheckpointStoreTag, CheckpointStore.layerDirectory(checkpointDir, { keep: p.keep }))
    const checkpoints = Layer.succeed(CheckpointStoreTag, store)
    const recovered = yield* store.recover
    if (recovered.removed.length > 0) {
      console.log(`checkpoints: removed ${recovered.removed.length} file(s) left by an interrupted write: ${recovered.removed.join(", ")}`)
    }
    const logPath = join(p.runDir, "log.jsonl")
    if (p.mode === "resume") {
      const resumeStep = p.resumeFrom !== undefined
        ? (yield* store.load(p.resumeFrom)).manifest.step
        : Option.match(yield* store.latest, { onNone: () => 0, onSome: (c) => c.manifest.step })
      if (p.resumeFrom !== undefined) {
        const moved = yield* supersedeAfter(checkpointDir, resumeStep)
        if (moved !== undefined) console.log(`checkpoints: those after step ${resumeStep} moved to ${moved}`)
      }
      const dropped = yield* rewindLog(logPath, resumeStep)
      if (dropped > 0) console.log(`run log: ${dropped} record(s) after step ${resumeStep} dropped (the resumed run writes them again)`)
    }
    const unchanged = p.recorded?._tag === "RunSpec" && sameRecord(p.recorded.spec.config, config)
    const recordOnce = unchanged ? Effect.void : writeRecord(p.runDir, p.spec)
    const spec = TeacherSpec.parseTeacherSpec(p.spec.teacher.spec)
    const reference = yield* ReferenceSpec.parseReferenceSpec(p.spec.reference)
    const metrics = ReferenceSpec.layerFromReference(reference, spec, { name: p.spec.teacher.spec })
    const recordedFitSteps = p.spec.teacher.fitSteps ?? FIT.steps
    // The exact mixture's fitted MLP only initialises G and ψ (docs/algorithm.md §12.1): a resumed run loads both.
    const initialisesOnly = p.mode === "resume" && spec.kind === "gmm"
    const fitSteps = initialisesOnly ? 1 : recordedFitSteps
    const fitNetwork = p.spec.teacher.fitNetwork ?? LEGACY_FIT_NETWORK
    const fitEvery = Math.max(1, Math.floor(fitSteps / 5))
    yield* Effect.sync(() => {
      console.log(presetLine(p))
      const recordedSamples = p.spec.evalSamples
      if (p.mode === "resume" && recordedSamples !== undefined && recordedSamples !== p.evalSamples) {
        console.log(
          `evaluations: ${p.evalSamples} samples each (--eval-samples), the run recorded ${recordedSamples}: metrics before and after this step are not comparable (FD and FID depend on the sample size)`
        )
      }
      if (initialisesOnly) {
        console.log(`resuming: the teacher's ${recordedFitSteps}-step network fit is skipped (it only initialises G and ψ, which the checkpoint holds)`)
      }
    })
    const services = Distillation.layer(config, {
      teacher: TeacherSpec.layerFromSpec(spec, {
        steps: fitSteps,
        hidden: fitNetwork.hidden,
        depth: fitNetwork.depth,
        seed: config.seed,
        onProgress: (step, loss) => {
          if (!initialisesOnly && (step % fitEvery === 0 || step === fitSteps - 1)) {
            console.log(`fitting the teacher's network: step ${step + 1}/${fitSteps}  loss ${loss.toFixed(4)}`)
          }
        }
      }),
      metrics,
      checkpoints
    })
    const run = Effect.gen(function*() {
      yield* recordOnce
      const log = yield* makeRunLog({ totalSteps: config.steps, logPath })
      const artifacts = yield* makeRunArtifacts({
        runDir: p.runDir,
        logPath,
        seed: config.seed + 104_729,
        generatorSteps: config.generatorSteps
      })
      const evaluating = ReferenceSpec.hasReference(yield* MetricsTag)
      const body = Effect.gen(function*() {
        const engine = yield* EngineTag
        const adapter = engine.facts.adapter
        if (adapter !== undefined) {
          yield* log.note(`engine webgpu on ${adapter.summary}`, { adapter: Schema.encodeSync(WebGpuAdapterReport)(adapter) })
        } else if (engine.name === "wasm") {
          const threads = engine.facts.threads
          yield* log.note(`engine wasm on ${threads} thread${threads === 1 ? "" : "s"} (SID_WASM_THREADS sets how many)`, { threads })
        }
        if (!evaluating) yield* log.note("no reference set for this teacher: evaluations are skipped (see --reference)", {})
        if (evaluating && p.mode !== "resume" && p.baselineSamples > 0) {
          const t = yield* evaluateTeacher(p.baselineSamples, config.seed + 7919)
          yield* log.note(`teacher, Heun sampler (${t.evaluations} evaluations): ${describeEvaluation(t.metrics)}`, {
            teacherSampler: { evaluations: t.evaluations, samples: p.baselineSamples, metrics: t.metrics }
          })
          yield* artifacts.setBaseline(plottedValue(t.metrics), t.evaluations)
        }
        const last = yield* Ref.make<{ readonly step: number; readonly metrics: SampleMetrics } | undefined>(undefined)
        yield* distill(config, {
          resume: p.mode === "resume",
          ...(p.resumeFrom === undefined ? {} : { resumeFrom: p.resumeFrom }),
          evaluate: evaluating,
          evalSamples: p.evalSamples,
          record: { teacher: p.spec.teacher, reference: p.spec.reference }
        }).pipe(
          Stream.runForEach((r) =>
            Effect.zipRight(
              r.evaluation === undefined ? Effect.void : Ref.set(last, { step: r.step, metrics: r.evaluation }),
              Effect.zipRight(log.report(r), artifacts.onReport(r))
            )
          )
        )
        yield* log.close
        const closing = yield* closeRun(p.runDir, logPath, yield* Ref.get(last), config.seed + 104_729, config.generatorSteps)
        yield* writeSummary(p.runDir, closing)
      })
      yield* body.pipe(Effect.ensuring(log.close))
    })
    yield* run.pipe(Effect.provide(services))
  })

/**
 * The line that opens every run: the preset the teacher's kind chose (as the flags that set it) and what the config
 * file and the flags changed; a resumed run keeps its recorded settings.
 */
export const presetLine = (p: Pick<Plan, "kind" | "overrides" | "mode">): string =>
  p.mode === "resume"
    ? `preset ${p.kind}: the run's recorded settings are kept (config.json)`
    : `preset ${p.kind}: ${describePreset(p.kind)}` +
      (p.overrides.length === 0 ? "" : `\n  overridden: ${p.overrides.join(" ")}`)

/** Moves the checkpoints of steps after `step` into `superseded-<time>/` of the same directory (never deletes). */
const supersedeAfter = (dir: string, step: number) =>
  Effect.tryPromise({
    try: async () => {
      const later = (await readdir(dir)).filter((n) => Number(/^ckpt-(\d+)/.exec(n)?.[1] ?? -1) > step)
      if (later.length === 0) return undefined
      const aside = join(dir, `superseded-${new Date().toISOString().replace(/[:.]/g, "-")}`)
      await mkdir(aside)
      for (const name of later) await rename(join(dir, name), join(aside, name))
      return aside
    },
    catch: (e) =>
      new RunDirectoryError({ path: dir, reason: `cannot move the later checkpoints aside (${String(e)})`, fix: "Check the directory's permissions." })
  })

/**
 * The close of a run: draws both samplers (timed), prints the table of the teacher's Heun baseline
 * (this run's, or the one recorded in the log of the run it resumes) against the generator's last evaluation, and
 * writes `samples.png` for 2-D data. A failure to draw or plot is a warning, never a failed run.
 */
const closeRun = (
  runDir: string,
  logPath: string,
  last: { readonly step: number; readonly metrics: SampleMetrics } | undefined,
  seed: number,
  generatorSteps: number
) =>
  Effect.gen(function*() {
    const generator = yield* GeneratorTag
    const drawn = yield* drawForClosing(generator.dataShape.length === 1 ? 5000 : 0, seed)
    const baseline = (yield* evaluationsInLog(logPath)).baseline
    const step = last?.step ?? 0
    const closing: ClosingSummary = {
      teacher: {
        evaluations: drawn.evaluations,
        ...(baseline?.metrics === undefined ? {} : { metrics: baseline.metrics }),
        throughput: drawn.teacherThroughput
      },
      generator: {
        step,
        generatorSteps,
        ...(last === undefined ? {} : { metrics: last.metrics }),
        throughput: drawn.generatorThroughput
      }
    }
    const plot = yield* writeSamplesPlot(runDir, drawn, step, generatorSteps).pipe(
      Effect.catchAll((e) => Effect.as(Effect.logWarning(`samples.png: ${e.message}`), undefined))
    )
    yield* Effect.sync(() => {
      console.log(`\nsummary: teacher vs ${generatorName(generatorSteps)}${baseline?.samples === undefined ? "" : ` (${baseline.samples} samples each)`}`)
      console.log(summaryTable(closing))
      if (plot !== undefined) console.log(`samples: ${plot}`)
    })
    return closing
  }).pipe(Effect.catchAllDefect((e) => Effect.as(Effect.logWarning(`closing summary: ${String(e)}`), undefined)))

/**
 * Writes `summary.json` (the best checkpoint's step and figure, from `checkpoints/best/best.json`, and the closing
 * comparison when there is one) and prints the best.
 */
const writeSummary = (runDir: string, closing: ClosingSummary | undefined) =>
  Effect.gen(function*() {
    const bestDir = join(runDir, "checkpoints", "best")
    const score = yield* Effect.promise(() =>
      readFile(join(bestDir, "best.json"), "utf8").then(
        (text) => Option.getOrUndefined(Schema.decodeUnknownOption(Schema.parseJson(BestScore))(text)),
        () => undefined
      )
    )
    const summary = {
      best: score === undefined ? null : { step: score.step, metric: score.metric, value: score.value, checkpoint: bestDir },
      ...(closing === undefined ? {} : { final: closing })
    }
    if (score !== undefined) console.log(`best: step ${score.step}, ${score.metric} ${score.value.toPrecision(4)} (${bestDir})`)
    yield* writeFileAtomic(join(runDir, "summary.json"), new TextEncoder().encode(toJsonLine(summary) + "\n")).pipe(
      Effect.mapError((e) => new RunDirectoryError({ path: join(runDir, "summary.json"), reason: e.message, fix: "Choose a writable --run-dir." }))
    )
  })

const sameRecord = (a: DistillConfig, b: DistillConfig): boolean =>
  JSON.stringify(encodeDistillConfig(a)) === JSON.stringify(encodeDistillConfig(b))

const DISTILL_DESCRIPTION =
  "Distil a teacher into a one-step generator with Score identity Distillation (data-free). Ctrl-C stops after the " +
  "current iteration and writes a final checkpoint; --resume continues exactly where a run stopped."

/** `sid distill`. */
export const distillCommand = Command.make("distill", distillOptions, runDistill).pipe(
  Command.withDescription(DISTILL_DESCRIPTION)
)

/** The help of `sid distill`. */
export const distillHelp: CliNode = {
  path: ["distill"],
  summary: "distil a teacher into a one-step generator (SiD, data-free)",
  description: DISTILL_DESCRIPTION,
  sections: [
    { title: "Teacher and evaluation", flags: docsOf(teacherFlags) },
    { title: "Run", flags: docsOf(runDirFlags) },
    {
      title: "Settings (the teacher's preset, then the --config file, then these flags)",
      flags: docsOf(configFlags)
    }
  ],
  notes: [
    `Teachers: gmm:<name> and gmm-dsm:<name> take a mixture: ${Object.keys(TeacherSpec.mixturePresets).join(", ")}; ` +
    "edm:<file> a safetensors file of an EDM network (`sid export` writes one for an EDM-teacher run); any other " +
    "value is the path of a sid-ts teacher file.",
    ...TEACHER_KINDS.map((kind) => `Preset ${kind} (${DISTILL_PRESETS[kind].description}): ${describePreset(kind)}`),
    "Example: sid distill --teacher gmm:grid25 --steps 4000 --run-dir runs/grid25"
  ]
}
