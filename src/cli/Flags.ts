/**
 * Command-line flags that carry their own documentation: each {@link Flag} is an `@effect/cli` option together with a
 * {@link FlagDoc} (name, value, description, default) from which `--help`, `docs/cli.md` and the argument check of
 * `Argv.ts` are made. The flags of config settings are built from the settings tables (`DISTILL_SETTINGS`,
 * `TEACHER_SETTINGS`), so their names, help and defaults are stated once, in `src/domain/config`.
 *
 * Values are read as text and validated by the schemas, so that every bad value names its flag, the value and the
 * rule — before anything is created on disk.
 *
 * @module
 */
import { HelpDoc, Options, ValidationError } from "@effect/cli"
import { Effect, Either, Option, ParseResult, Schema } from "effect"
import { ConfigError } from "../domain/config/ConfigError.js"
import { TEACHER_KINDS } from "../domain/config/DistillConfig.js"
import type { Setting, SettingTable } from "../domain/config/Setting.js"

const TEACHER_KIND_COUNT = TEACHER_KINDS.length

/** A flag's value broke its rule, or is missing, or is not of its kind. */
export class FlagError extends Schema.TaggedError<FlagError>()("FlagError", {
  flag: Schema.String,
  value: Schema.String,
  rule: Schema.String
}) {
  override get message(): string {
    if (this.value.length === 0 || this.value.startsWith("--")) return `--${this.flag} needs a value: it ${this.rule}.`
    if (this.rule.startsWith("is ")) return `--${this.flag}: '${this.value}' ${this.rule}.`
    return `--${this.flag} ${this.value}: ${this.rule}.`
  }
}

/** What a flag's value is: how `Argv.ts` checks it and how the help names it. */
export type FlagValue = "number" | "integer" | "text" | "list" | "switch"

/** The documentation of a flag: everything `--help` and `docs/cli.md` say about it. */
export interface FlagDoc {
  /** The name without dashes (kebab-case). */
  readonly name: string
  readonly value: FlagValue
  /** The value's placeholder in the help (`<n>`, `<file>`); absent for a switch. */
  readonly placeholder?: string
  readonly description: string
  /** The default as the help shows it; absent where there is none. */
  readonly default?: string
  /** A switch that `--no-<name>` turns off. */
  readonly negatable?: boolean
  /** The only values accepted. */
  readonly choices?: ReadonlyArray<string>
  /** A number flag that also accepts `null`. */
  readonly nullable?: boolean
  /** A flag the command cannot run without. */
  readonly required?: boolean
}

/** A flag: its `@effect/cli` option and its documentation. */
export interface Flag<A> {
  readonly doc: FlagDoc
  readonly options: Options.Options<A>
}

const placeholderOf: Record<FlagValue, string | undefined> = {
  number: "<x>",
  integer: "<n>",
  text: "<text>",
  list: "<n,n,…>",
  switch: undefined
}

const docOf = (doc: Omit<FlagDoc, "placeholder"> & { readonly placeholder?: string }): FlagDoc => {
  const placeholder = doc.placeholder ?? placeholderOf[doc.value]
  return placeholder === undefined ? doc : { ...doc, placeholder }
}

/** A flag read as text (checked later by a schema), optional; `defaultText` says what its absence means. */
export const textFlag = (
  name: string,
  description: string,
  options: { readonly value?: FlagValue; readonly placeholder?: string; readonly default?: string } = {}
): Flag<Option.Option<string>> => ({
  doc: docOf({ name, value: options.value ?? "text", description, ...withDefault(options.default), ...placeholder(options.placeholder) }),
  options: Options.text(name).pipe(Options.withDescription(description), Options.optional)
})

const withDefault = (text: string | undefined) => (text === undefined ? {} : { default: text })
const placeholder = (text: string | undefined) => (text === undefined ? {} : { placeholder: text })

/** An on/off switch, off unless given. */
export const switchFlag = (name: string, description: string): Flag<boolean> => ({
  doc: { name, value: "switch", description },
  options: Options.boolean(name).pipe(Options.withDescription(description))
})

/** An integer flag with a default. */
export const integerFlag = (name: string, description: string, defaultValue: number): Flag<number> => ({
  doc: docOf({ name, value: "integer", description, default: String(defaultValue) }),
  options: Options.integer(name).pipe(Options.withDefault(defaultValue), Options.withDescription(description))
})

/** A number flag with a default. */
export const numberFlag = (name: string, description: string, defaultValue: number): Flag<number> => ({
  doc: docOf({ name, value: "number", description, default: String(defaultValue) }),
  options: Options.float(name).pipe(Options.withDefault(defaultValue), Options.withDescription(description))
})

/** An optional integer flag; `defaultText` says what its absence means. */
export const optionalIntegerFlag = (name: string, description: string, defaultText?: string): Flag<Option.Option<number>> => ({
  doc: docOf({ name, value: "integer", description, ...withDefault(defaultText) }),
  options: Options.integer(name).pipe(Options.withDescription(description), Options.optional)
})

/** An optional number flag; `defaultText` says what its absence means. */
export const optionalNumberFlag = (name: string, description: string, defaultText?: string): Flag<Option.Option<number>> => ({
  doc: docOf({ name, value: "number", description, ...withDefault(defaultText) }),
  options: Options.float(name).pipe(Options.withDescription(description), Options.optional)
})

/** A text flag (a path, a name) with a default. */
export const pathFlag = (name: string, placeholderText: string, description: string, defaultValue: string): Flag<string> => ({
  doc: { name, value: "text", placeholder: placeholderText, description, default: defaultValue },
  options: Options.text(name).pipe(Options.withDefault(defaultValue), Options.withDescription(description))
})

/** A text flag (a path, a name) that must be given. */
export const requiredTextFlag = (name: string, placeholderText: string, description: string): Flag<string> => ({
  doc: { name, value: "text", placeholder: placeholderText, description, default: "none: required", required: true },
  options: Options.text(name).pipe(Options.withDescription(description))
})

/** One of a few words, with a default. */
export const choiceFlag = <const C extends string>(
  name: string,
  choices: ReadonlyArray<C>,
  description: string,
  defaultValue: C
): Flag<C> => ({
  doc: { name, value: "text", placeholder: `<${choices.join("|")}>`, description, default: defaultValue, choices },
  options: Options.choice(name, choices).pipe(Options.withDefault(defaultValue), Options.withDescription(description))
})

/** An option documented by `doc` (for options with their own parsing, such as `--engine`). */
export const documented = <A>(doc: FlagDoc, options: Options.Options<A>): Flag<A> => ({ doc: docOf(doc), options })

/** The `@effect/cli` options of a record of flags, for `Command.make`. */
export const optionsOf = <F extends { readonly [k: string]: Flag<unknown> }>(
  flags: F
): { readonly [K in keyof F]: F[K]["options"] } =>
  Object.fromEntries(Object.entries(flags).map(([k, f]) => [k, f.options])) as { readonly [K in keyof F]: F[K]["options"] }

/** The documentation of a record of flags, in order. */
export const docsOf = (flags: { readonly [k: string]: Flag<unknown> }): ReadonlyArray<FlagDoc> => Object.values(flags).map((f) => f.doc)

/** A number given as text: a JSON number parses, anything else stays text for the schema to reject. */
export const numberOrText = (text: string): number | string => {
  const trimmed = text.trim()
  if (trimmed.length === 0) return text
  const n = Number(trimmed)
  return Number.isNaN(n) && trimmed !== "NaN" ? text : n
}

/** Whether a text reads as a number (`1e-4`, `-2`, `Infinity` included; `""`, `abc`, `1,2` not). */
export const isNumberText = (text: string): boolean => text.trim().length > 0 && !Number.isNaN(Number(text.trim()))

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

/** A setting's default as the help shows it. */
export const shownValue = (value: unknown): string =>
  typeof value === "number"
    ? value !== 0 && Math.abs(value) < 1e-3 ? value.toExponential() : String(value)
    : Array.isArray(value)
    ? value.join(",")
    : String(value)

/**
 * A setting's default as its help shows it: the value (on/off for a switch), or, where presets set it, the value of
 * each preset (and the setting's own default where some preset leaves it).
 */
export const settingDefault = (row: Setting, presets: ReadonlyArray<readonly [string, unknown]>): string => {
  const show = (v: unknown) => (typeof v === "boolean" ? (v ? "on" : "off") : shownValue(v))
  const own = row.defaultText ?? show(row.default)
  if (presets.length === 0 || presets.every(([, v]) => show(v) === own)) return own
  const byPreset = `preset ${presets.map(([kind, v]) => `${kind} ${show(v)}`).join(", ")}`
  return presets.length < TEACHER_KIND_COUNT ? `${byPreset}, else ${own}` : byPreset
}

/** The flags of a table of settings: a switch pair `--x` / `--no-x` for booleans, a text flag for the others. */
export type SettingFlags<T extends SettingTable> = {
  readonly [K in keyof T]: T[K]["default"] extends boolean ? Flag<Option.Option<boolean>> : Flag<Option.Option<string>>
}

/** The parsed values of {@link SettingFlags}. */
export type SettingValues<T extends SettingTable> = {
  readonly [K in keyof T]: T[K]["default"] extends boolean ? Option.Option<boolean> : Option.Option<string>
}

/**
 * The flags of every setting of a table, with help and defaults from the table. `presetsOf(key)` lists the values
 * presets give a setting (`sid distill` chooses a preset by the teacher's kind), shown beside the default.
 */
export const settingFlags = <T extends SettingTable>(
  table: T,
  presetsOf: (key: string) => ReadonlyArray<readonly [string, unknown]> = () => []
): SettingFlags<T> => {
  const out: Record<string, Flag<unknown>> = {}
  for (const [key, row] of Object.entries(table) as Array<[string, Setting]>) {
    const defaultText = settingDefault(row, presetsOf(key))
    if (row.input === "switch") {
      const on = Options.boolean(row.flag).pipe(Options.withDescription(row.description))
      const off = Options.boolean(`no-${row.flag}`).pipe(Options.withDescription(`turns --${row.flag} off`))
      out[key] = {
        doc: { name: row.flag, value: "switch", description: row.description, default: defaultText, negatable: true },
        options: Options.all([on, off]).pipe(
          Options.mapEffect(([yes, no]) =>
            yes && no
              ? Effect.fail(ValidationError.invalidValue(HelpDoc.p(`--${row.flag} and --no-${row.flag}: give one or the other`)))
              : Effect.succeed(yes ? Option.some(true) : no ? Option.some(false) : Option.none<boolean>())
          )
        )
      }
    } else {
      const nullable = row.default === null || Schema.is(row.schema)(null)
      out[key] = {
        doc: docOf({
          name: row.flag,
          value: row.input === "number" ? "number" : row.input,
          description: row.description,
          default: defaultText,
          ...(row.placeholder === undefined ? {} : { placeholder: row.placeholder }),
          ...(nullable ? { nullable: true } : {})
        }),
        options: Options.text(row.flag).pipe(Options.withDescription(row.description), Options.optional)
      }
    }
  }
  return out as SettingFlags<T>
}

/**
 * The settings given as flags, as raw config input: switches as booleans, `null` as null, numbers parsed (text that is
 * not a number is a {@link FlagError} naming the flag), lists split at commas.
 */
export const settingOverrides = <T extends SettingTable>(
  table: T,
  values: SettingValues<T>
): Either.Either<Record<string, unknown>, FlagError> => {
  const out: Record<string, unknown> = {}
  for (const [key, row] of Object.entries(table) as Array<[string, Setting]>) {
    const v = (values as Record<string, Option.Option<string | boolean>>)[key]
    if (v === undefined || Option.isNone(v)) continue
    const given = v.value
    if (typeof given === "boolean" || row.input === "text") {
      out[key] = given === "null" ? null : given
    } else if (given === "null") {
      out[key] = null
    } else if (row.input === "list") {
      const items = given.split(",")
      if (!items.every(isNumberText)) {
        return Either.left(new FlagError({ flag: row.flag, value: given, rule: "is not a comma-separated list of numbers" }))
      }
      out[key] = items.map(Number)
    } else {
      if (!isNumberText(given)) return Either.left(new FlagError({ flag: row.flag, value: given, rule: "is not a number" }))
      out[key] = Number(given)
    }
  }
  return Either.right(out)
}

/**
 * A config error whose settings came from flags, rewritten to name the flags (`--batch = 1.5: …`); settings from a
 * config file keep their names.
 */
export const nameFlags = (table: SettingTable, error: ConfigError, fromFlags: Record<string, unknown>): ConfigError => {
  const issues = error.issues.map((issue) => {
    const row = table[issue.field]
    return row !== undefined && issue.field in fromFlags ? { ...issue, field: `--${row.flag}` } : issue
  })
  return new ConfigError({ config: error.config, issues })
}
