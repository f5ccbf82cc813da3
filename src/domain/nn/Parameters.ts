/**
 * Named parameters: a network's weights as a flat `name → tensor` map.
 *
 * Every network in sid-ts is a pure function of such a map, so one checkpoint format (safetensors names) serves all
 * of them, and the teacher, generator, EMA and fake-score copies are just different maps with the same names.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"

/**
 * A network's parameters: a flat map from a dotted name (`"layers.0.weight"`) to its tensor.
 *
 * @since 0.1.0
 * @category models
 */
export type Parameters = Readonly<Record<string, tf.Tensor>>

/**
 * The shape of every parameter, by name: what a checkpoint must provide for a network.
 *
 * @since 0.1.0
 * @category models
 */
export type ParameterShapes = Readonly<Record<string, ReadonlyArray<number>>>

/**
 * Shapes of a parameter map, by name.
 *
 * @since 0.1.0
 * @category utils
 */
export const shapesOf = (params: Parameters): ParameterShapes =>
  Object.fromEntries(Object.entries(params).map(([name, t]) => [name, t.shape]))

/**
 * Total number of scalar parameters.
 *
 * @since 0.1.0
 * @category utils
 */
export const countParameters = (params: Parameters): number =>
  Object.values(params).reduce((n, t) => n + t.size, 0)

/**
 * Copies every tensor (the copies are new tensors the caller owns).
 *
 * @since 0.1.0
 * @category utils
 */
export const cloneParameters = (params: Parameters): Record<string, tf.Tensor> =>
  Object.fromEntries(Object.entries(params).map(([name, t]) => [name, tf.clone(t)]))

/**
 * Disposes every tensor of the map.
 *
 * @since 0.1.0
 * @category utils
 */
export const disposeParameters = (params: Parameters): void => {
  for (const t of Object.values(params)) t.dispose()
}

/**
 * Names sorted, so iteration order never depends on construction order.
 *
 * @since 0.1.0
 * @category utils
 */
export const parameterNames = (params: Parameters): ReadonlyArray<string> => Object.keys(params).sort()

/**
 * How a loaded parameter map differs from the expected shapes: names missing from it, names it has that are not
 * expected, and names whose shape differs. All three empty means the map fits.
 *
 * @since 0.1.0
 * @category models
 */
export interface ShapeMismatch {
  readonly missing: ReadonlyArray<string>
  readonly unexpected: ReadonlyArray<string>
  readonly misShaped: ReadonlyArray<{
    readonly name: string
    readonly expected: ReadonlyArray<number>
    readonly actual: ReadonlyArray<number>
  }>
}

/**
 * Compares actual parameter shapes with the expected ones.
 *
 * @since 0.1.0
 * @category utils
 */
export const compareShapes = (expected: ParameterShapes, actual: ParameterShapes): ShapeMismatch => {
  const missing = Object.keys(expected).filter((n) => !(n in actual)).sort()
  const unexpected = Object.keys(actual).filter((n) => !(n in expected)).sort()
  const misShaped = Object.keys(expected)
    .filter((n) => n in actual)
    .sort()
    .flatMap((name) => {
      const e = expected[name] ?? []
      const a = actual[name] ?? []
      return e.length === a.length && e.every((d, i) => d === a[i]) ? [] : [{ name, expected: e, actual: a }]
    })
  return { missing, unexpected, misShaped }
}

/**
 * True when a comparison found no difference.
 *
 * @since 0.1.0
 * @category utils
 */
export const shapesMatch = (m: ShapeMismatch): boolean =>
  m.missing.length === 0 && m.unexpected.length === 0 && m.misShaped.length === 0

/**
 * The missing, unexpected and mis-shaped names of an error, one indented line each (the first 20 names of each; an
 * empty list gives no line), for error messages.
 *
 * @since 0.2.0
 * @category utils
 */
export const describeNameLists = (lists: {
  readonly missing: ReadonlyArray<string>
  readonly unexpected: ReadonlyArray<string>
  readonly misShaped: ReadonlyArray<string>
}): string => {
  const list = (label: string, names: ReadonlyArray<string>) =>
    names.length === 0 ? "" : `\n  ${label} (${names.length}): ${names.slice(0, 20).join(", ")}${names.length > 20 ? ", …" : ""}`
  return list("missing", lists.missing) + list("unexpected", lists.unexpected) + list("mis-shaped", lists.misShaped)
}
