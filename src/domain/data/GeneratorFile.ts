/**
 * Generator files: a distilled one-step generator (docs/algorithm.md §6) as safetensors bytes, in one of two formats.
 *
 * - `edm-safetensors-v1` for EDM networks (SongUNet, DhariwalUNet): the EDMPrecond state dict (names `model.*`,
 *   PyTorch layouts) with the EDMPrecond arguments as JSON in `config`, readable by EDM/SiD's Python code and by
 *   `--teacher edm:` (docs/algorithm.md §2.3, §2.5).
 * - `sid-ts-generator-v1` for every other network (the vector MLP, the small UNet): the parameters under their sid-ts
 *   names and TF.js layouts, with the architecture `{ kind, spec }` as JSON in `network` (as in teacher files and
 *   checkpoint manifests).
 *
 * Both carry `sigma_init`, `sigma_data`, `label_dim`, `data_shape`, `source` and the provenance (`run_dir`, `step`,
 * `teacher`, `weights`) in their metadata, and `generator_steps` for a few-step generator (k > 1, docs/few-step.md;
 * absent, as in files written before it existed: k = 1). docs/generator-format.md describes the layout. This module depends on
 * `@tensorflow/tfjs` alone (the browser entry imports it).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { type EdmArchitecture, edmConfigFromArchitecture, edmNetwork, parseEdmConfig } from "../edm/NetworkConfig.js"
import { fromEdmStateDict, toEdmStateDict } from "../edm/StateDict.js"
import { type LoadedDenoiser, type Network, NETWORK_KINDS, networkFromDescription } from "../nn/Network.js"
import type { GeneratorProvenance, OneStepWeights } from "../sid/OneStep.js"
import { compareShapes, shapesMatch } from "../nn/Parameters.js"
import { decodeSafetensors, encodeSafetensors, type NamedArray, type SafetensorsFile } from "./Safetensors.js"
import { checkGeneratorSteps, MAX_GENERATOR_STEPS } from "../sid/FewStep.js"

/**
 * Format tag of a generator file of an EDM network (EDM's own layout).
 *
 * @since 0.1.0
 * @category constants
 */
export const EDM_GENERATOR_FORMAT = "edm-safetensors-v1"

/**
 * Format tag of a generator file of any other network (sid-ts names and layouts).
 *
 * @since 0.1.0
 * @category constants
 */
export const SID_GENERATOR_FORMAT = "sid-ts-generator-v1"

/**
 * The formats of generator files.
 *
 * @since 0.1.0
 * @category models
 */
export type GeneratorFileFormat = typeof EDM_GENERATOR_FORMAT | typeof SID_GENERATOR_FORMAT

/**
 * Thrown when bytes are not a generator file this version reads; `problem` says whether they are damaged or unknown.
 *
 * @since 0.1.0
 * @category errors
 */
export class GeneratorFileError extends Error {
  override readonly name = "GeneratorFileError"
  constructor(
    /** "corrupt": not a readable generator file; "unknown-architecture": a network or format this version lacks. */
    readonly problem: "corrupt" | "unknown-architecture",
    /** What is wrong. */
    readonly reason: string,
    /** What to do about it. */
    readonly fix: string
  ) {
    super(`${reason}. ${fix}`)
  }
}

/**
 * A decoded generator file: the generator's weights (the caller owns the tensors) and the file's format.
 *
 * @since 0.1.0
 * @category models
 */
export interface DecodedGenerator extends OneStepWeights {
  readonly format: GeneratorFileFormat
}

const REEXPORT = "Export the generator again with `sid export --run-dir <run> --out <file>`"

const isEdmKind = (kind: string): kind is EdmArchitecture["kind"] => kind === "songunet" || kind === "dhariwalunet"

/**
 * The format a generator of this network kind is written in: EDM's for EDM networks, sid-ts's otherwise.
 *
 * @since 0.1.0
 * @category utils
 */
export const generatorFileFormat = (kind: string): GeneratorFileFormat =>
  isEdmKind(kind) ? EDM_GENERATOR_FORMAT : SID_GENERATOR_FORMAT

const namedArray = (t: tf.Tensor): NamedArray => ({ dtype: "float32", shape: t.shape, values: Float32Array.from(t.dataSync()) })

const provenanceMetadata = (p: GeneratorProvenance): Record<string, string> => ({
  ...(p.runDir === undefined ? {} : { run_dir: p.runDir }),
  ...(p.step === undefined ? {} : { step: String(p.step) }),
  ...(p.teacher === undefined ? {} : { teacher: p.teacher }),
  ...(p.weights === undefined ? {} : { weights: p.weights })
})

/**
 * The bytes of a generator file for these weights, in {@link generatorFileFormat} of their network. Throws an Error
 * when the parameters do not fit the network or `generatorSteps` is not an integer in 1..4.
 *
 * @since 0.1.0
 * @category utils
 */
export const encodeGeneratorFile = (weights: OneStepWeights): Uint8Array => {
  const { network } = weights
  if (weights.generatorSteps !== undefined) checkGeneratorSteps(weights.generatorSteps)
  const format = generatorFileFormat(network.description.kind)
  const common = {
    format,
    sigma_init: String(weights.sigmaInit),
    sigma_data: String(weights.sigmaData),
    label_dim: String(network.labelDim),
    data_shape: JSON.stringify(network.dataShape),
    source: "sid-ts",
    ...((weights.generatorSteps ?? 1) === 1 ? {} : { generator_steps: String(weights.generatorSteps) }),
    ...provenanceMetadata(weights.provenance)
  }
  if (format === EDM_GENERATOR_FORMAT) {
    const architecture = network.description as EdmArchitecture
    const config = edmConfigFromArchitecture(architecture, { sigmaData: weights.sigmaData })
    return encodeSafetensors(toEdmStateDict(network.shapes, weights.params), { ...common, config: JSON.stringify(config) })
  }
  const mismatch = compareShapes(network.shapes, Object.fromEntries(Object.entries(weights.params).map(([n, t]) => [n, t.shape])))
  if (!shapesMatch(mismatch)) {
    throw new Error(`the parameters do not fit the ${network.description.kind} network: ${describeMismatch(mismatch)}`)
  }
  const arrays = Object.keys(network.shapes).map((name) => [name, namedArray(weights.params[name]!)] as const)
  return encodeSafetensors(arrays, { ...common, network: JSON.stringify(network.description) })
}

const describeMismatch = (m: ReturnType<typeof compareShapes>): string =>
  [
    m.missing.length > 0 ? `missing ${m.missing.join(", ")}` : "",
    m.unexpected.length > 0 ? `unexpected ${m.unexpected.join(", ")}` : "",
    m.misShaped.length > 0
      ? `mis-shaped ${m.misShaped.map((x) => `${x.name} [${x.actual.join(", ")}] (expected [${x.expected.join(", ")}])`).join(", ")}`
      : ""
  ].filter((s) => s !== "").join("; ")

const corrupt = (reason: string, fix: string = REEXPORT): GeneratorFileError => new GeneratorFileError("corrupt", reason, fix)

const attempt = <A>(f: () => A, reason: (message: string) => string): A => {
  try {
    return f()
  } catch (e) {
    if (e instanceof GeneratorFileError) throw e
    throw corrupt(reason(e instanceof Error ? e.message : String(e)))
  }
}

const positiveNumber = (metadata: Readonly<Record<string, string>>, key: string): number => {
  const text = metadata[key]
  const value = Number(text)
  if (text === undefined || !(Number.isFinite(value) && value > 0)) {
    throw corrupt(`the metadata needs \`${key}\` (a positive number), got ${JSON.stringify(text ?? null)}`)
  }
  return value
}

/** k of a generator file: `generator_steps`, an integer in 1 … MAX_GENERATOR_STEPS; absent: 1 (one-step). */
const generatorStepsOf = (metadata: Readonly<Record<string, string>>): number => {
  const text = metadata["generator_steps"]
  if (text === undefined) return 1
  const value = Number(text)
  if (!(Number.isInteger(value) && value >= 1 && value <= MAX_GENERATOR_STEPS)) {
    throw corrupt(`the metadata's \`generator_steps\` must be an integer in 1..${MAX_GENERATOR_STEPS}, got ${JSON.stringify(text)}`)
  }
  return value
}

const provenanceOf = (metadata: Readonly<Record<string, string>>): GeneratorProvenance => {
  const step = Number(metadata["step"])
  const weights = metadata["weights"]
  return {
    ...(metadata["run_dir"] === undefined ? {} : { runDir: metadata["run_dir"] }),
    ...(metadata["step"] !== undefined && Number.isInteger(step) && step >= 0 ? { step } : {}),
    ...(metadata["teacher"] === undefined ? {} : { teacher: metadata["teacher"] }),
    ...(weights === "ema" || weights === "live" ? { weights } : {})
  }
}

const checkDeclared = (metadata: Readonly<Record<string, string>>, network: Network): void => {
  const labelDim = metadata["label_dim"]
  if (labelDim !== undefined && Number(labelDim) !== network.labelDim) {
    throw corrupt(`the metadata says label_dim ${labelDim}, but the network has ${network.labelDim} classes`)
  }
  const dataShape = metadata["data_shape"]
  if (dataShape !== undefined && dataShape !== JSON.stringify(network.dataShape)) {
    throw corrupt(`the metadata says data_shape ${dataShape}, but the network makes ${JSON.stringify(network.dataShape)}`)
  }
}

const decodeSid = (file: SafetensorsFile): LoadedDenoiser => {
  const { metadata } = file
  const text = metadata["network"]
  if (text === undefined) throw corrupt("the metadata has no `network` (the architecture as JSON)")
  const description = attempt(() => JSON.parse(text) as unknown, (m) => `the \`network\` metadata is not JSON (${m})`)
  if (typeof description !== "object" || description === null || typeof (description as { kind?: unknown }).kind !== "string") {
    throw corrupt(`the \`network\` metadata is not { kind, spec }: ${text.slice(0, 200)}`)
  }
  const { kind, spec } = description as { readonly kind: string; readonly spec?: unknown }
  if (!NETWORK_KINDS.includes(kind)) {
    throw new GeneratorFileError(
      "unknown-architecture",
      `the generator is a "${kind}" network, which this version of sid-ts does not know (known: ${NETWORK_KINDS.join(", ")})`,
      "Load it with the sid-ts version that wrote it, or export it again with this one"
    )
  }
  const network = attempt(() => networkFromDescription({ kind, spec }), (m) => `the \`network\` metadata is malformed (${m})`)
  const sigmaData = positiveNumber(metadata, "sigma_data")
  checkDeclared(metadata, network)
  const mismatch = compareShapes(network.shapes, Object.fromEntries([...file.tensors].map(([n, a]) => [n, a.shape])))
  if (!shapesMatch(mismatch)) throw corrupt(`the tensors do not fit the ${kind} network: ${describeMismatch(mismatch)}`)
  const notFloat = [...file.tensors].filter(([, a]) => a.dtype !== "float32").map(([n]) => n)
  if (notFloat.length > 0) throw corrupt(`tensors ${notFloat.join(", ")} are not floating point`)
  const params = tf.tidy(() => {
    const out: Record<string, tf.Tensor> = {}
    for (const name of Object.keys(network.shapes)) {
      const a = file.tensors.get(name)!
      out[name] = tf.tensor(a.values, [...a.shape], "float32")
    }
    return out
  })
  return { network, params, sigmaData }
}

const decodeEdm = (file: SafetensorsFile): LoadedDenoiser => {
  const text = file.metadata["config"]
  if (text === undefined) throw corrupt("the metadata has no `config` (the EDMPrecond arguments as JSON)")
  const raw = attempt(() => JSON.parse(text) as unknown, (m) => `the \`config\` metadata is not JSON (${m})`)
  const modelType = typeof raw === "object" && raw !== null ? (raw as { model_type?: unknown }).model_type : undefined
  if (modelType !== undefined && modelType !== "SongUNet" && modelType !== "DhariwalUNet") {
    throw new GeneratorFileError(
      "unknown-architecture",
      `the generator is an EDM ${JSON.stringify(modelType)} network; sid-ts knows SongUNet and DhariwalUNet`,
      "Export a SongUNet or DhariwalUNet generator"
    )
  }
  const config = attempt(() => parseEdmConfig(text), (m) => m)
  const network = edmNetwork(config.architecture)
  checkDeclared(file.metadata, network)
  const params = attempt(() => fromEdmStateDict(network.shapes, file.tensors), (m) => m)
  return { network, params, sigmaData: config.sigmaData }
}

/**
 * Reads the bytes of a generator file in either format (an EDM file without a `format` tag but with `config` and
 * `sigma_init` is read as EDM). The caller owns the returned tensors. Throws {@link GeneratorFileError}: "corrupt"
 * for bytes that are not safetensors, missing or malformed metadata, or tensors that do not fit the network;
 * "unknown-architecture" for a format tag or network kind this version does not know.
 *
 * @since 0.1.0
 * @category utils
 */
export const decodeGeneratorFile = (bytes: Uint8Array): DecodedGenerator => {
  const file = attempt(() => decodeSafetensors(bytes), (m) => `not a safetensors file (${m})`)
  const tag = file.metadata["format"]
  const format: GeneratorFileFormat | undefined = tag === SID_GENERATOR_FORMAT
    ? SID_GENERATOR_FORMAT
    : tag === EDM_GENERATOR_FORMAT || (tag === undefined && file.metadata["config"] !== undefined)
    ? EDM_GENERATOR_FORMAT
    : undefined
  if (format === undefined) {
    if (tag === undefined) throw corrupt("not a generator file: its metadata has neither `format` nor EDM's `config`")
    throw new GeneratorFileError(
      "unknown-architecture",
      `the file's format is "${tag}", not a generator format this version of sid-ts reads (${SID_GENERATOR_FORMAT}, ${EDM_GENERATOR_FORMAT})`,
      tag.includes("teacher") || tag.includes("checkpoint")
        ? "This is not a generator; write one from a run with `sid export --run-dir <run> --out <file>`"
        : "Load it with the sid-ts version that wrote it, or export it again with this one"
    )
  }
  const sigmaInit = positiveNumber(file.metadata, "sigma_init")
  const generatorSteps = generatorStepsOf(file.metadata)
  const { network, params, sigmaData } = format === SID_GENERATOR_FORMAT ? decodeSid(file) : decodeEdm(file)
  return { format, network, params, sigmaInit, sigmaData, generatorSteps, provenance: provenanceOf(file.metadata) }
}
