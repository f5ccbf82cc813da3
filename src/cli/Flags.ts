/**
 * Command-line flags read as text and validated by the schemas, so that every bad value names its flag, the value and
 * the rule — before anything is created on disk.
 *
 * @module
 */
import { HelpDoc, Options, ValidationError } from "@effect/cli"
import { Effect, Either, Option, ParseResult, Schema } from "effect"
import {
  type ConfigError,
  DISTILL_DEFAULTS,
  DISTILL_FLAGS,
  DISTILL_PRESETS,
  type SettingFlag,
  TEACHER_KINDS
} from "../domain/config/DistillConfig.js"

/** A flag's value broke its rule. */
export class FlagError extends Schema.TaggedError<FlagError>()("FlagError", {
  flag: Schema.String,
  value: Schema.String,
  rule: Schema.String
}) {
  override get message(): string {
    return this.value.length === 0 || this.value.startsWith("--")
      ? `--${this.flag} needs a value: it ${this.rule}.`
      : `--${this.flag} ${this.value}: ${this.rule}.`
  }
}

/** An optional text flag with a description (the default, if any, is said in the description). */
export const textFlag = (flag: string, description: string): Options.Options<Option.Option<string>> =>
  Options.text(flag).pipe(Options.withDescription(description), Options.optional)

/** A number given as text: a JSON number parses, anything else stays text for the schema to reject. */
export const numberOrText = (text: string): number | string => {
  const trimmed = text.trim()
  if (trimmed.length === 0) return text
  const n = Number(trimmed)
  return Number.isNaN(n) && trimmed !== "NaN" ? text : n
}

/** Decodes one flag's text with a schema; a failure is a {@link FlagError} with the schema's rule. */
export const decodeFlag = <A, I>(
  flag: string,
  schema: Schema.Schema<A, I>,
  text: string,
  parse: (text: string) => unknown = numberOrText
): Either.Either<A, FlagError> => {
  if (text.startsWith("--")) return Either.left(new FlagError({ flag, value: text, rule: "must be followed by its value" }))
  return Either.mapLeft(Schema.decodeUnknownEither(schema)(parse(text)), (e) =>
    new FlagError({
      flag,
      value: text,
      rule: ParseResult.ArrayFormatter.formatErrorSync(e).map((i) => i.message).join("; ")
    }))
}

/** A whole number within bounds, for flags that are not config settings. */
export const IntegerFlag = (min: number, what: string) =>
  Schema.Number.pipe(
    Schema.int({ message: () => `must be a whole number ≥ ${min} (${what})` }),
    Schema.greaterThanOrEqualTo(min, { message: () => `must be a whole number ≥ ${min} (${what})` })
  ).annotations({ message: () => `must be a whole number ≥ ${min} (${what})` })

const defaultText = (value: unknown): string => (value === null ? "the network's own" : JSON.stringify(value))

/**
 * Help text of a config setting's flag: its description and its default, with the presets' values where they set it
 * (`sid distill` chooses a preset by the teacher's kind).
 */
export const settingHelp = (setting: SettingFlag, value: unknown, presets: ReadonlyArray<readonly [string, unknown]> = []): string =>
  `${setting.description} (default ${defaultText(value)}` +
  (presets.length === 0 ? "" : `; preset ${presets.map(([kind, v]) => `${kind} ${defaultText(v)}`).join(", ")}`) + ")"

const presetValues = (k: keyof Settings): ReadonlyArray<readonly [string, unknown]> =>
  TEACHER_KINDS.flatMap((kind) => {
    const config = DISTILL_PRESETS[kind].config as Partial<Record<keyof Settings, unknown>>
    return k in config ? [[kind, config[k]] as const] : []
  })

type Settings = typeof DISTILL_DEFAULTS
type BooleanSetting = { [K in keyof Settings]: Settings[K] extends boolean ? K : never }[keyof Settings]
type ValueSetting = Exclude<keyof Settings, BooleanSetting>

const isBoolean = (k: keyof Settings): k is BooleanSetting => typeof DISTILL_DEFAULTS[k] === "boolean"

/**
 * The flags of every config setting: text flags for values, a pair of switches `--x` / `--no-x` for booleans (a
 * preset may turn a setting either way, and a flag overrides it either way).
 */
export const settingOptions = () => {
  const values = {} as { [K in ValueSetting]: Options.Options<Option.Option<string>> }
  const switches = {} as { [K in BooleanSetting]: Options.Options<Option.Option<boolean>> }
  for (const k of Object.keys(DISTILL_FLAGS) as Array<keyof Settings>) {
    const setting = DISTILL_FLAGS[k]
    const help = settingHelp(setting, DISTILL_DEFAULTS[k], presetValues(k))
    if (isBoolean(k)) {
      switches[k] = Options.all([
        Options.boolean(setting.flag).pipe(Options.withDescription(`${help}; --no-${setting.flag} turns it off`)),
        Options.boolean(`no-${setting.flag}`).pipe(Options.withDescription(`turns --${setting.flag} off`))
      ]).pipe(
        Options.mapEffect(([on, off]) =>
          on && off
            ? Effect.fail(ValidationError.invalidValue(HelpDoc.p(`--${setting.flag} and --no-${setting.flag}: give one or the other`)))
            : Effect.succeed(on ? Option.some(true) : off ? Option.some(false) : Option.none<boolean>())
        )
      )
    } else {
      values[k] = textFlag(setting.flag, help)
    }
  }
  return { ...values, ...switches }
}

/** The parsed values of {@link settingOptions}. */
export type SettingValues = { readonly [K in ValueSetting]: Option.Option<string> } & {
  readonly [K in BooleanSetting]: Option.Option<boolean>
}

/** The settings given as flags, as raw config input (numbers parsed, text kept for the schema to judge). */
export const settingOverrides = (values: SettingValues): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const k of Object.keys(DISTILL_FLAGS) as Array<keyof Settings>) {
    const v: Option.Option<string | boolean> = values[k]
    if (Option.isNone(v)) continue
    const given = v.value
    out[k] = typeof given === "boolean" || k === "loss" ? given : given === "null" ? null : numberOrText(given)
  }
  return out
}

/**
 * A config error whose settings came from flags, rewritten to name the flags (`--batch = 1.5: …`); settings from a
 * config file keep their names.
 */
export const nameFlags = (error: ConfigError, fromFlags: Record<string, unknown>): ConfigError => {
  const issues = error.issues.map((issue) => {
    const setting = DISTILL_FLAGS[issue.field as keyof Settings] as SettingFlag | undefined
    return setting !== undefined && issue.field in fromFlags ? { ...issue, field: `--${setting.flag}` } : issue
  })
  return new (error.constructor as typeof ConfigError)({ issues })
}
