/**
 * The one place where EDM's PyTorch layouts meet sid-ts's TF.js layouts (docs/algorithm.md §2.3 backbones, §2.5 teachers).
 *
 * EDM (NVlabs/edm `training/networks.py`) stores Linear weights as [out, in], conv weights (and the `[1, 1, k, k]`
 * resampling-filter buffers) as OIHW, and runs NCHW activations. The sid-ts EDM networks are pure functions of named
 * parameters in TF.js layouts: Linear weights [in, out], conv weights HWIO [kh, kw, in, out], activations NHWC. The
 * rule is by rank and nothing else: rank 4 is OIHW ↔ HWIO, rank 2 is [out, in] ↔ [in, out], every other rank is kept
 * as is (biases, GroupNorm scales, the Fourier `freqs` buffer).
 *
 * Names map one-to-one: a parameter is named by the inner network's `state_dict()` name (`EDMPrecond.model`), that is
 * the EDMPrecond name with its `model.` prefix stripped (`model.enc.16x16_conv.weight` ↔ `enc.16x16_conv.weight`).
 * Buffers (`*.resample_filter`, `map_noise.freqs`) are parameters too, so a state dict round-trips exactly; the
 * networks pass them through a stop-gradient, so they never move in training.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { compareShapes, type ParameterShapes, type Parameters, type ShapeMismatch, shapesMatch } from "../nn/Parameters.js"
import type { NamedArray } from "../data/Safetensors.js"

/**
 * The prefix of EDMPrecond's `state_dict()` names for the inner network (docs/algorithm.md §2.3).
 *
 * @since 0.1.0
 * @category constants
 */
export const EDM_MODEL_PREFIX = "model."

/**
 * TF.js layout of an EDM (PyTorch) shape: OIHW → HWIO for rank 4, [out, in] → [in, out] for rank 2.
 *
 * @since 0.1.0
 * @category utils
 */
export const paramShapeFromEdm = (edmShape: ReadonlyArray<number>): ReadonlyArray<number> => {
  if (edmShape.length === 4) return [edmShape[2]!, edmShape[3]!, edmShape[1]!, edmShape[0]!]
  if (edmShape.length === 2) return [edmShape[1]!, edmShape[0]!]
  return [...edmShape]
}

/**
 * EDM (PyTorch) layout of a TF.js shape: the inverse of {@link paramShapeFromEdm}.
 *
 * @since 0.1.0
 * @category utils
 */
export const edmShapeFromParam = (shape: ReadonlyArray<number>): ReadonlyArray<number> => {
  if (shape.length === 4) return [shape[3]!, shape[2]!, shape[0]!, shape[1]!]
  if (shape.length === 2) return [shape[1]!, shape[0]!]
  return [...shape]
}

const toParamPerm = (rank: number): Array<number> | undefined =>
  rank === 4 ? [2, 3, 1, 0] : rank === 2 ? [1, 0] : undefined

const toEdmPerm = (rank: number): Array<number> | undefined =>
  rank === 4 ? [3, 2, 0, 1] : rank === 2 ? [1, 0] : undefined

/**
 * Thrown when a state dict does not fit a network; the message lists every missing, unexpected and mis-shaped name.
 *
 * @since 0.1.0
 * @category errors
 */
export class EdmStateDictError extends Error {
  override readonly name = "EdmStateDictError"
  constructor(readonly mismatch: ShapeMismatch, prefix: string) {
    const parts: Array<string> = []
    if (mismatch.missing.length > 0) parts.push(`missing: ${mismatch.missing.map((n) => prefix + n).join(", ")}`)
    if (mismatch.unexpected.length > 0) {
      parts.push(`unexpected: ${mismatch.unexpected.map((n) => prefix + n).join(", ")}`)
    }
    if (mismatch.misShaped.length > 0) {
      parts.push(
        `mis-shaped: ${
          mismatch.misShaped.map((m) => `${prefix}${m.name} (expected [${m.expected}], got [${m.actual}])`).join(", ")
        }`
      )
    }
    super(`EDM state dict does not fit the network: ${parts.join("; ")}`)
  }
}

/**
 * Options of {@link fromEdmStateDict} and {@link toEdmStateDict}.
 *
 * @since 0.1.0
 * @category models
 */
export interface StateDictOptions {
  /** Name prefix of the network's entries; entries without it are ignored on load. Default `"model."`. */
  readonly prefix?: string
}

/**
 * Converts EDM state-dict arrays (PyTorch layouts, names with `prefix`) into sid-ts parameters for a network whose
 * parameter shapes (TF.js layouts, names without prefix) are `shapes` (docs/algorithm.md §2.3, §2.5). Entries whose name lacks the
 * prefix (e.g. `input.x` in a golden file) are ignored. Throws one {@link EdmStateDictError} listing every missing,
 * unexpected and mis-shaped name (shapes compared in the EDM layout). The caller owns the returned tensors.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromEdmStateDict = (
  shapes: ParameterShapes,
  tensors: ReadonlyMap<string, NamedArray> | Iterable<readonly [string, NamedArray]>,
  options: StateDictOptions = {}
): Record<string, tf.Tensor> => {
  const prefix = options.prefix ?? EDM_MODEL_PREFIX
  const selected = new Map<string, NamedArray>()
  for (const [name, array] of tensors) {
    if (name.startsWith(prefix)) selected.set(name.slice(prefix.length), array)
  }
  const expected = Object.fromEntries(Object.entries(shapes).map(([n, s]) => [n, edmShapeFromParam(s)]))
  const actual = Object.fromEntries([...selected].map(([n, a]) => [n, a.shape]))
  const mismatch = compareShapes(expected, actual)
  if (!shapesMatch(mismatch)) throw new EdmStateDictError(mismatch, prefix)
  return tf.tidy(() => {
    const out: Record<string, tf.Tensor> = {}
    for (const name of Object.keys(shapes)) {
      const array = selected.get(name)!
      const t = tf.tensor(Float32Array.from(array.values), [...array.shape], "float32")
      const perm = toParamPerm(array.shape.length)
      out[name] = perm === undefined ? t : tf.transpose(t, perm)
    }
    return out
  })
}

/**
 * Converts sid-ts parameters back into EDM state-dict arrays (PyTorch layouts, names with `prefix`), in the order of
 * `shapes` (which the EDM networks build in `state_dict()` order). Throws {@link EdmStateDictError} when the
 * parameters do not fit `shapes`.
 *
 * @since 0.1.0
 * @category utils
 */
export const toEdmStateDict = (
  shapes: ParameterShapes,
  params: Parameters,
  options: StateDictOptions = {}
): Array<readonly [string, NamedArray]> => {
  const prefix = options.prefix ?? EDM_MODEL_PREFIX
  const mismatch = compareShapes(shapes, Object.fromEntries(Object.entries(params).map(([n, t]) => [n, t.shape])))
  if (!shapesMatch(mismatch)) throw new EdmStateDictError(mismatch, "")
  return Object.keys(shapes).map((name) => {
    const t = params[name]!
    const perm = toEdmPerm(t.rank)
    const converted = perm === undefined ? t.clone() : tf.transpose(t, perm)
    const values = Float32Array.from(converted.dataSync())
    converted.dispose()
    const array: NamedArray = { dtype: "float32", shape: edmShapeFromParam(t.shape), values }
    return [prefix + name, array] as const
  })
}
