/**
 * The one error of every config schema ({@link ConfigError}) and the one decoder that produces it
 * ({@link decodeConfig}): each rejected setting is an issue naming the field, the value given and the rule it broke.
 *
 * @module
 */
import { Either, ParseResult, Schema } from "effect"

/**
 * One rejected setting: the field (or, once a CLI has renamed it, the flag), the value given, and the rule it broke.
 *
 * @since 0.1.0
 * @category models
 */
export const ConfigIssue = Schema.Struct({
  field: Schema.String,
  value: Schema.Unknown,
  rule: Schema.String
})
/**
 * @see {@link ConfigIssue}
 *
 * @since 0.1.0
 * @category models
 */
export type ConfigIssue = typeof ConfigIssue.Type

/** A value as an issue shows it: numbers and booleans as they are, anything else as (shortened) JSON. */
export const renderValue = (value: unknown): string => {
  if (value === undefined) return "undefined"
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") return String(value)
  try {
    const json = JSON.stringify(value) ?? String(value)
    return json.length > 60 ? `${json.slice(0, 57)}...` : json
  } catch {
    return String(value)
  }
}

/**
 * A configuration that failed validation, whichever config it is (`config` names it: "distillation config",
 * "teacher-training config"). `message` lists the issues one per line (`alpha = -1: must be a finite number ≥ 0 …`)
 * and says how to fix them.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", {
  config: Schema.String,
  issues: Schema.Array(ConfigIssue)
}) {
  override get message(): string {
    const lines = this.issues.map((issue) => `  ${issue.field} = ${renderValue(issue.value)}: ${issue.rule}`)
    const count = this.issues.length === 1 ? "1 setting" : `${this.issues.length} settings`
    return [
      `Invalid ${this.config} (${count}):`,
      ...lines,
      "Fix the values above (or leave a setting out to use its default) and run again."
    ].join("\n")
  }
}

const valueAt = (input: unknown, path: ReadonlyArray<PropertyKey>): unknown =>
  path.reduce<unknown>(
    (current, key) => (current !== null && typeof current === "object" ? (current as Record<PropertyKey, unknown>)[key] : undefined),
    input
  )

/**
 * Converts a Schema `ParseError` from decoding `input` with a config class named `name` into a {@link ConfigError}
 * (one issue per top-level field, ParseResult's `ArrayFormatter`), the value given looked up in `input`.
 */
export const configErrorFromParseError = (
  error: ParseResult.ParseError,
  input: unknown,
  about: { readonly name: string; readonly config: string; readonly keys: ReadonlyArray<string> }
): ConfigError => {
  const seen = new Set<string>()
  const issues: Array<ConfigIssue> = []
  for (const issue of ParseResult.ArrayFormatter.formatErrorSync(error)) {
    const field = issue.path.length === 0 ? "(config)" : String(issue.path[0])
    if (seen.has(field)) continue
    seen.add(field)
    const rule = issue._tag === "Unexpected"
      ? `is not a ${about.name} setting (known settings: ${about.keys.join(", ")}); check its spelling`
      : issue.path.length === 0
      ? "must be an object of settings, e.g. { \"steps\": 10000 }"
      : issue.message
    issues.push({ field, value: valueAt(input, issue.path.slice(0, 1)), rule })
  }
  return new ConfigError({ config: about.config, issues })
}

/**
 * A pure decoder of untrusted input (a parsed config file, CLI flags, a recorded config) into the config class
 * `schema`: `Either.right(config)` or `Either.left(ConfigError)` listing every bad setting. Unknown keys are rejected,
 * so a misspelt setting is not silently replaced by its default.
 */
export const decodeConfig = <A, I>(
  schema: Schema.Schema<A, I> & { readonly fields: Schema.Struct.Fields; readonly identifier: string },
  config: string
) => {
  const about = { name: schema.identifier, config, keys: Object.keys(schema.fields) }
  const decode = Schema.decodeUnknownEither(schema, { errors: "all", onExcessProperty: "error" })
  return (input: unknown): Either.Either<A, ConfigError> =>
    Either.mapLeft(decode(input), (error) => configErrorFromParseError(error, input, about))
}
