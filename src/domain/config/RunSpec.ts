/**
 * The run spec: everything that decides a distillation run's trajectory, as one validated record.
 *
 * A run writes it to `config.json` and into every checkpoint's manifest. A resumed run starts from the recorded spec;
 * what it may change is only what leaves the trajectory alone ({@link RUN_ONLY_SETTINGS}: length, evaluation and
 * checkpoint intervals, where the optimiser state lives). Any other difference is a {@link RunSpecMismatch} that
 * lists each setting, recorded against requested.
 *
 * @module
 */
import { Either, Schema } from "effect"
import { type ConfigError, decodeDistillConfig, DISTILL_FLAGS, DistillConfig, RUN_ONLY_SETTINGS } from "./DistillConfig.js"

/** Format tag of a run spec record. */
export const RUN_SPEC_FORMAT = "sid-ts-run-v1"

/** The MLP of a mixture teacher's in-process fit when a run does not record it (runs recorded before presets existed: 4 × 128). */
export const LEGACY_FIT_NETWORK = { hidden: 128, depth: 4 } as const

/**
 * The teacher of a run: the argument that named it, a SHA-256 of its content (the teacher file, or the canonical JSON
 * of a built-in mixture preset), the steps of the in-process network fit (null where there is none) and the fitted
 * MLP's width and depth (absent where there is no fit, and in records written before it was recorded:
 * {@link LEGACY_FIT_NETWORK}).
 */
export const TeacherIdentity = Schema.Struct({
  spec: Schema.String,
  sha256: Schema.String,
  fitSteps: Schema.NullOr(Schema.NonNegativeInt),
  fitNetwork: Schema.optional(Schema.Struct({ hidden: Schema.Positive.pipe(Schema.int()), depth: Schema.Positive.pipe(Schema.int()) }))
})
/** @see {@link TeacherIdentity} */
export type TeacherIdentity = typeof TeacherIdentity.Type

/** The record of a run: its config, its teacher and the reference set its evaluations measure against. */
export class RunSpec extends Schema.Class<RunSpec>("RunSpec")({
  format: Schema.Literal(RUN_SPEC_FORMAT),
  config: DistillConfig,
  teacher: TeacherIdentity,
  /** The reference argument (`gmm:<preset>`, `mnist`, `none`, …) as resolved at the start of the run. */
  reference: Schema.String,
  /**
   * The preset the run started from (`DISTILL_PRESETS`: `lowDimensional` or `images`), for the record: the config
   * holds the resolved values, so a resume never reapplies it. Absent in runs started without one.
   */
  preset: Schema.optional(Schema.String),
  /**
   * Samples per evaluation at the start of the run: a resumed run evaluates on as many unless `--eval-samples` says
   * otherwise (metrics on another sample size are not comparable, FD and FID least of all). Absent in runs recorded
   * before it was.
   */
  evalSamples: Schema.optional(Schema.Positive.pipe(Schema.int()))
}) {}

/** One setting that differs between a recorded run and a request. */
export const SettingDifference = Schema.Struct({
  /** The setting's path (`alpha`, `teacher.spec`, …). */
  setting: Schema.String,
  /** Its command-line flag, where it has one. */
  flag: Schema.optional(Schema.String),
  recorded: Schema.Unknown,
  requested: Schema.Unknown
})
/** @see {@link SettingDifference} */
export type SettingDifference = typeof SettingDifference.Type

const show = (v: unknown): string => (typeof v === "string" ? v : JSON.stringify(v) ?? "undefined")

/**
 * A resume asked for settings that would change the recorded run's trajectory. The message lists each setting,
 * recorded against requested, and how to proceed.
 */
export class RunSpecMismatch extends Schema.TaggedError<RunSpecMismatch>()("RunSpecMismatch", {
  /** Where the run is recorded (a run directory or a checkpoint store). */
  location: Schema.String,
  differences: Schema.Array(SettingDifference),
  /** What a resumed run may change, in words (default: the distillation's run-only settings). */
  mayChange: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const lines = this.differences.map((d) =>
      `  ${d.setting}${d.flag === undefined ? "" : ` (--${d.flag})`}: recorded ${show(d.recorded)}, requested ${show(d.requested)}`
    )
    return [
      `the run in ${this.location} was recorded with other settings, and a resumed run keeps them:`,
      ...lines,
      `Resume without these flags to continue the run as recorded (only ${
        this.mayChange ?? `${RUN_ONLY_SETTINGS.map((k) => `--${DISTILL_FLAGS[k].flag}`).join(", ")}, evaluation sizes, the engine and the keep policy`
      } may change), or start a new run in another --run-dir.`
    ].join("\n")
  }
}

const sameValue = (a: unknown, b: unknown): boolean => Object.is(a, b) || JSON.stringify(a) === JSON.stringify(b)

/**
 * The settings of two records of one config schema that differ, except those in `runOnly` (the ones a resumed run may
 * change); `flags` names each setting's command-line flag.
 */
export const settingDifferences = <K extends string>(
  recorded: { readonly [k in K]: unknown },
  requested: { readonly [k in K]: unknown },
  keys: ReadonlyArray<K>,
  runOnly: ReadonlyArray<K>,
  flags: (key: K) => string | undefined = () => undefined
): Array<SettingDifference> =>
  keys.filter((k) => !runOnly.includes(k) && !sameValue(recorded[k], requested[k])).map((k) => {
    const flag = flags(k)
    return { setting: k, ...(flag === undefined ? {} : { flag }), recorded: recorded[k], requested: requested[k] }
  })

/** The settings of `requested` that differ from `recorded` and would change the trajectory (config only). */
export const configDifferences = (recorded: DistillConfig, requested: DistillConfig): Array<SettingDifference> =>
  settingDifferences(
    recorded,
    requested,
    Object.keys(DistillConfig.fields) as Array<keyof typeof DistillConfig.fields>,
    RUN_ONLY_SETTINGS,
    (k) => DISTILL_FLAGS[k].flag
  )

const fitNetworkOf = (spec: RunSpec): { readonly hidden: number; readonly depth: number } =>
  spec.teacher.fitNetwork ?? LEGACY_FIT_NETWORK

/** Every difference of `requested` from `recorded` that would change the trajectory: config, teacher and reference. */
export const runSpecDifferences = (recorded: RunSpec, requested: RunSpec): Array<SettingDifference> => {
  const others: Array<readonly [string, string, unknown, unknown]> = [
    ["teacher.spec", "teacher", recorded.teacher.spec, requested.teacher.spec],
    ...(recorded.teacher.spec === requested.teacher.spec
      ? [["teacher.sha256", "teacher", recorded.teacher.sha256, requested.teacher.sha256] as const]
      : []),
    ["teacher.fitSteps", "teacher-fit-steps", recorded.teacher.fitSteps, requested.teacher.fitSteps],
    ...(recorded.teacher.fitSteps === null && requested.teacher.fitSteps === null ? [] : [
      ["teacher.fitNetwork.hidden", "teacher-hidden", fitNetworkOf(recorded).hidden, fitNetworkOf(requested).hidden] as const,
      ["teacher.fitNetwork.depth", "teacher-depth", fitNetworkOf(recorded).depth, fitNetworkOf(requested).depth] as const
    ]),
    ["reference", "reference", recorded.reference, requested.reference]
  ]
  return [
    ...configDifferences(recorded.config, requested.config),
    ...others.filter(([, , a, b]) => !sameValue(a, b)).map(([setting, flag, a, b]) => ({
      setting,
      flag,
      recorded: a,
      requested: b
    }))
  ]
}

/** Settings of earlier versions that no longer exist (σ_data belongs to the teacher, not to the run). */
const RETIRED_SETTINGS: ReadonlyArray<string> = ["sigmaData"]

/**
 * Decodes a config as recorded by any version of sid-ts (a run's `config.json` or a checkpoint manifest): retired
 * settings are dropped, missing ones take the defaults they had when they were introduced (the current defaults).
 */
export const decodeRecordedConfig = (input: unknown): Either.Either<DistillConfig, ConfigError> => {
  if (input === null || typeof input !== "object" || Array.isArray(input)) return decodeDistillConfig(input)
  const copy: Record<string, unknown> = { ...(input as Record<string, unknown>) }
  for (const k of RETIRED_SETTINGS) delete copy[k]
  return decodeDistillConfig(copy)
}

/** A run record as read back: a full {@link RunSpec}, or (from earlier versions) only the config. */
export type RecordedRun =
  | { readonly _tag: "RunSpec"; readonly spec: RunSpec }
  | { readonly _tag: "ConfigOnly"; readonly config: DistillConfig }

/** Run records that cannot be read as either form. */
export class RunRecordError extends Schema.TaggedError<RunRecordError>()("RunRecordError", {
  path: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `run record ${this.path}: ${this.reason}. It is not changed; start a new run in another --run-dir, or ` +
      "repair the file from a checkpoint manifest (which holds the same record)."
  }
}

const decodeSpec = Schema.decodeUnknownEither(RunSpec, { onExcessProperty: "error", errors: "all" })

/** Reads a run record (`config.json`, parsed) of this version or an earlier one. */
export const decodeRunRecord = (path: string, input: unknown): Either.Either<RecordedRun, RunRecordError> => {
  const isSpec = input !== null && typeof input === "object" && (input as { format?: unknown }).format === RUN_SPEC_FORMAT
  if (isSpec) {
    const raw = input as { config?: unknown }
    return Either.flatMap(
      Either.mapLeft(decodeRecordedConfig(raw.config), (e) => new RunRecordError({ path, reason: e.message })),
      (config) =>
        Either.map(
          Either.mapLeft(
            decodeSpec({ ...(input as object), config: Schema.encodeSync(DistillConfig)(config) }),
            (e) => new RunRecordError({ path, reason: e.message })
          ),
          (spec) => ({ _tag: "RunSpec", spec }) as const
        )
    )
  }
  return Either.map(
    Either.mapLeft(decodeRecordedConfig(input), (e) => new RunRecordError({ path, reason: e.message })),
    (config) => ({ _tag: "ConfigOnly", config }) as const
  )
}

/** Encodes a run spec to a plain JSON-ready object (every config field written). */
export const encodeRunSpec = (spec: RunSpec): typeof RunSpec.Encoded => Schema.encodeSync(RunSpec)(spec)
