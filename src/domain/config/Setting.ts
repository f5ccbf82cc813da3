/**
 * One row per setting: its schema (the rule), its default, its command-line flag and a one-line description. A config
 * class takes its fields from a table of settings ({@link fieldsOf}), its defaults are read from it
 * ({@link defaultsOf}), and the CLI builds its flags and help from the same rows, so nothing is stated twice.
 *
 * @module
 */
import { Schema } from "effect"

/** How a flag's text becomes a value: a number, text, a comma-separated list of numbers, or an on/off switch. */
export type SettingInput = "number" | "text" | "list" | "switch"

/** A setting of a config: schema (with its rule as the message), default (encoded form), flag and description. */
export interface Setting<S extends Schema.Schema.AnyNoContext = Schema.Schema.AnyNoContext> {
  /** The field's schema; its `message` annotation states the rule. */
  readonly schema: S
  /** The default, in encoded form (plain numbers, booleans, strings, arrays, null). */
  readonly default: Schema.Schema.Encoded<S>
  /** The flag's name without dashes (kebab-case); a switch is turned off by `--no-<flag>`. */
  readonly flag: string
  /** One line saying what the setting does. */
  readonly description: string
  /** How the flag's text is read. */
  readonly input: SettingInput
  /** The default as help shows it, where the value alone does not say it (e.g. null: "the network's own rate"). */
  readonly defaultText?: string
  /** The value's placeholder in the help (`<n>`, `<dir>`); absent: one for its input. */
  readonly placeholder?: string
}

/**
 * A setting row. `input` is inferred from the default (number, boolean → switch, string → text, array → list) and must
 * be given where the default is null.
 */
export const setting = <S extends Schema.Schema.AnyNoContext>(
  schema: S,
  defaultValue: Schema.Schema.Encoded<S>,
  flag: string,
  description: string,
  options: { readonly input?: SettingInput; readonly defaultText?: string; readonly placeholder?: string } = {}
): Setting<S> => {
  const input = options.input ??
    (typeof defaultValue === "number"
      ? "number"
      : typeof defaultValue === "boolean"
      ? "switch"
      : typeof defaultValue === "string"
      ? "text"
      : Array.isArray(defaultValue)
      ? "list"
      : undefined)
  if (input === undefined) throw new Error(`setting --${flag}: say how its flag is read (its default is ${String(defaultValue)})`)
  return {
    schema,
    default: defaultValue,
    flag,
    description,
    input,
    ...(options.defaultText === undefined ? {} : { defaultText: options.defaultText }),
    ...(options.placeholder === undefined ? {} : { placeholder: options.placeholder })
  }
}

/** A table of settings, keyed by config field. */
export type SettingTable = { readonly [key: string]: Setting }

/** The fields of a config class built from a table: every field optional on input, taking its default. */
export type FieldsOf<T extends SettingTable> = {
  readonly [K in keyof T]: Schema.optionalWith<
    T[K]["schema"],
    { default: () => Schema.Schema.Type<T[K]["schema"]>; exact: true }
  >
}

/**
 * The fields of a config class: each `Schema.optionalWith(schema, { default, exact: true })`, so a missing key takes
 * its default, an explicit `undefined` is rejected and encoding writes every field. Every default is decoded by its
 * own schema here, so a default that breaks its rule fails at load.
 */
export const fieldsOf = <T extends SettingTable>(table: T): FieldsOf<T> => {
  const fields: Record<string, unknown> = {}
  for (const [key, row] of Object.entries(table)) {
    const value: unknown = Schema.decodeUnknownSync(row.schema)(row.default)
    fields[key] = Schema.optionalWith(row.schema, { default: () => value, exact: true })
  }
  return fields as FieldsOf<T>
}

/** The defaults of a table, in encoded form. */
export type DefaultsOf<T extends SettingTable> = { readonly [K in keyof T]: T[K]["default"] }

/** The defaults of a table, in encoded form (plain values). */
export const defaultsOf = <T extends SettingTable>(table: T): DefaultsOf<T> =>
  Object.fromEntries(Object.entries(table).map(([key, row]) => [key, row.default])) as DefaultsOf<T>
