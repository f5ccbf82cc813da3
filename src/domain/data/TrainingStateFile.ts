/**
 * Training-state files: the whole state of a distillation (G, G_ema, the fake score ψ, both Adam states, the counters,
 * the run's settings and random streams) as one safetensors file, `sid-ts-training-state-v1`
 * (docs/training-state.md), so a run can leave sid-ts for SiD's PyTorch training loop and come back
 * (`tools/sid_training_state.py` converts it to and from SiD's `training-state-*.pt`).
 *
 * Tensor names are the official training loop's: `G.*`, `G_ema.*`, `fake_score.*` for the three networks and
 * `g_optimizer.exp_avg.*`, `g_optimizer.exp_avg_sq.*`, `fake_score_optimizer.exp_avg.*`,
 * `fake_score_optimizer.exp_avg_sq.*` for Adam's moments, each followed by the parameter's name. For EDM networks
 * (SongUNet, DhariwalUNet) that name is EDMPrecond's (`model.enc.32x32_conv.weight`) in PyTorch layouts, with the
 * buffers (`resample_filter`, `freqs`) among the networks' tensors but not among the moments (torch's Adam has no state
 * for them); for the sid-ts networks (MLP, small UNet) it is the sid-ts name in TF.js layouts.
 *
 * Pure: bytes ↔ the checkpoint's named arrays, no tensors and no I/O. Every layout change is an exact permutation of
 * float32 values, so a state written and read back is bit for bit the checkpoint it came from.
 *
 * @module
 */
import { Schema } from "effect"
import { dhariwalUNetEntries, type DhariwalUNetSpec } from "../edm/DhariwalUNet.js"
import { type EdmArchitecture, edmConfigFromArchitecture } from "../edm/NetworkConfig.js"
import { songUNetEntries, type SongUNetSpec } from "../edm/SongUNet.js"
import { EDM_MODEL_PREFIX, edmShapeFromParam, paramShapeFromEdm } from "../edm/StateDict.js"
import { type Network, type NetworkDescription, networkFromDescription } from "../nn/Network.js"
import { describeNameLists } from "../nn/Parameters.js"
import { decodeSafetensors, encodeSafetensors, type NamedArray } from "./Safetensors.js"

/**
 * Format tag of a training-state file.
 *
 * @since 0.2.0
 * @category constants
 */
export const TRAINING_STATE_FORMAT = "sid-ts-training-state-v1"

/**
 * How the tensors of a training-state file are named and laid out: `edm` (EDMPrecond names, PyTorch layouts) for
 * SongUNet and DhariwalUNet, `sid-ts` (sid-ts names, TF.js layouts) for the others.
 *
 * @since 0.2.0
 * @category models
 */
export type TrainingStateLayout = "edm" | "sid-ts"

/**
 * One group of tensors: its prefix in the file and in a sid-ts checkpoint, and whether it holds Adam moments (which
 * exist for trainable parameters only).
 *
 * @since 0.2.0
 * @category models
 */
export interface TrainingStateGroup {
  readonly file: string
  readonly checkpoint: string
  readonly moments: boolean
}

/**
 * The seven tensor groups, in file order.
 *
 * @since 0.2.0
 * @category constants
 */
export const TRAINING_STATE_GROUPS: ReadonlyArray<TrainingStateGroup> = [
  { file: "G.", checkpoint: "generator.params.", moments: false },
  { file: "G_ema.", checkpoint: "generator.ema.", moments: false },
  { file: "fake_score.", checkpoint: "fake_score.params.", moments: false },
  { file: "g_optimizer.exp_avg.", checkpoint: "generator.optimizer.m.", moments: true },
  { file: "g_optimizer.exp_avg_sq.", checkpoint: "generator.optimizer.v.", moments: true },
  { file: "fake_score_optimizer.exp_avg.", checkpoint: "fake_score.optimizer.m.", moments: true },
  { file: "fake_score_optimizer.exp_avg_sq.", checkpoint: "fake_score.optimizer.v.", moments: true }
]

/**
 * What a training-state file holds, in sid-ts terms: the fields of a checkpoint manifest and the checkpoint's tensors
 * under their checkpoint names (`generator.params.*`, `generator.ema.*`, `generator.optimizer.{m,v}.*`,
 * `fake_score.params.*`, `fake_score.optimizer.{m,v}.*`).
 *
 * @since 0.2.0
 * @category models
 */
export interface TrainingState {
  readonly network: NetworkDescription
  /** Completed SiD iterations. */
  readonly step: number
  /** Images the generator has produced for its updates (cur_nimg). */
  readonly imagesSeen: number
  /** Adam step counts. */
  readonly optimizerSteps: { readonly generator: number; readonly fakeScore: number }
  readonly sigmaInit: number
  readonly sigmaData: number
  /** The teacher's description, as a checkpoint records it. */
  readonly teacher: string
  /** The encoded distillation config. */
  readonly config: unknown
  /** The encoded run spec, where the run recorded one. */
  readonly run?: unknown
  /** The random-stream states of the data-free sampler. */
  readonly sampler: unknown
  /** When the checkpoint was written (ISO 8601). */
  readonly createdAt: string
  readonly tensors: ReadonlyMap<string, NamedArray>
}

/**
 * What is wrong with a training state, or with writing or reading one:
 * - `corrupt`: not safetensors, or metadata missing or malformed;
 * - `unknown-architecture`: a network this version cannot rebuild;
 * - `mismatch`: tensors missing, unexpected or mis-shaped for the network (the lists say which);
 * - `not-adam`: a checkpoint whose optimiser state is not Adam's two moments;
 * - `exists`: the output is there and `--overwrite` was not given;
 * - `read-failed`, `write-failed`: the file system refused;
 * - `no-run`: a state without a recorded run spec, which `sid distill --resume` needs.
 *
 * @since 0.2.0
 * @category schemas
 */
export const TrainingStateProblem = Schema.Literal(
  "corrupt",
  "unknown-architecture",
  "mismatch",
  "not-adam",
  "exists",
  "read-failed",
  "write-failed",
  "no-run"
)
/**
 * @see {@link TrainingStateProblem}
 *
 * @since 0.2.0
 * @category schemas
 */
export type TrainingStateProblem = typeof TrainingStateProblem.Type

/**
 * A training state could not be written or read. The message names the file, what was wrong (with every missing,
 * unexpected and mis-shaped tensor) and what to do.
 *
 * @since 0.2.0
 * @category errors
 */
export class TrainingStateError extends Schema.TaggedError<TrainingStateError>()("TrainingStateError", {
  /** The file (or run directory) concerned. */
  path: Schema.String,
  problem: TrainingStateProblem,
  reason: Schema.String,
  /** What to do about it. */
  fix: Schema.String,
  missing: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  unexpected: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  misShaped: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] })
}) {
  override get message(): string {
    return `training state ${this.path}: ${this.reason}` + describeNameLists(this) + `\n  ${this.fix}`
  }
}

/**
 * The layout of a network's training state.
 *
 * @since 0.2.0
 * @category utils
 */
export const trainingStateLayout = (description: NetworkDescription): TrainingStateLayout =>
  description.kind === "songunet" || description.kind === "dhariwalunet" ? "edm" : "sid-ts"

/**
 * The names (sid-ts names, without prefix) of an EDM network's buffers — the resampling filters and the Fourier
 * frequencies, which torch keeps out of `parameters()` and so out of Adam's state; none for other networks.
 *
 * @since 0.2.0
 * @category utils
 */
export const bufferNames = (description: NetworkDescription): ReadonlySet<string> => {
  if (trainingStateLayout(description) === "sid-ts") return new Set()
  const entries = description.kind === "songunet"
    ? songUNetEntries(description.spec as SongUNetSpec)
    : dhariwalUNetEntries(description.spec as DhariwalUNetSpec)
  return new Set(entries.filter((e) => e.init.kind === "resampleFilter" || e.init.kind === "fourierFreqs").map((e) => e.name))
}

/** Row-major permutation of an array's axes: output axis k is input axis `perm[k]`. */
const permute = (values: Float32Array, shape: ReadonlyArray<number>, perm: ReadonlyArray<number>): Float32Array => {
  const rank = shape.length
  const inStrides = new Array<number>(rank).fill(1)
  for (let k = rank - 2; k >= 0; k--) inStrides[k] = inStrides[k + 1]! * shape[k + 1]!
  const outShape = perm.map((p) => shape[p]!)
  const strides = perm.map((p) => inStrides[p]!)
  const out = new Float32Array(values.length)
  const index = new Array<number>(rank).fill(0)
  for (let o = 0; o < out.length; o++) {
    let at = 0
    for (let k = 0; k < rank; k++) at += index[k]! * strides[k]!
    out[o] = values[at]!
    for (let k = rank - 1; k >= 0; k--) {
      if (++index[k]! < outShape[k]!) break
      index[k] = 0
    }
  }
  return out
}

/** TF.js → PyTorch axes (HWIO → OIHW, [in, out] → [out, in]), and back. */
const TO_EDM: Readonly<Record<number, ReadonlyArray<number>>> = { 4: [3, 2, 0, 1], 2: [1, 0] }
const TO_PARAM: Readonly<Record<number, ReadonlyArray<number>>> = { 4: [2, 3, 1, 0], 2: [1, 0] }

const toFileArray = (layout: TrainingStateLayout, a: NamedArray): NamedArray => {
  const perm = TO_EDM[a.shape.length]
  if (layout === "sid-ts" || perm === undefined) return a
  return { dtype: "float32", shape: edmShapeFromParam(a.shape), values: permute(a.values as Float32Array, a.shape, perm) }
}

const fromFileArray = (layout: TrainingStateLayout, a: NamedArray): NamedArray => {
  const perm = TO_PARAM[a.shape.length]
  if (layout === "sid-ts" || perm === undefined) return a
  return { dtype: "float32", shape: paramShapeFromEdm(a.shape), values: permute(a.values as Float32Array, a.shape, perm) }
}

const fileName = (layout: TrainingStateLayout, name: string): string => (layout === "edm" ? EDM_MODEL_PREFIX + name : name)

/** sid-ts config fields → the names SiD's `sid_train.py` gives them (its command-line options), for `settings`. */
const SETTING_NAMES: ReadonlyArray<readonly [string, string]> = [
  ["alpha", "alpha"],
  ["tmax", "tmax"],
  ["sigmaInit", "init_sigma"],
  ["fakeLr", "lr"],
  ["generatorLr", "glr"],
  ["generatorBeta1", "g_beta1"],
  ["beta2", "beta2"],
  ["epsilon", "eps"],
  ["fakeLossScale", "ls"],
  ["generatorLossScale", "lsg"],
  ["batchSize", "batch"],
  ["emaHalfLifeKimg", "ema_halflife_kimg"],
  ["emaRampupRatio", "ema_rampup_ratio"],
  ["dropout", "dropout"],
  ["augment", "augment"],
  ["pMean", "p_mean"],
  ["pStd", "p_std"],
  ["loss", "loss"],
  ["normalizer", "normalizer"],
  ["seed", "seed"]
]

/**
 * The run's settings under SiD's names (`alpha`, `lr`, `glr`, `g_beta1`, `beta2`, `eps`, `ls`, `lsg`, `batch`,
 * `ema_halflife_kimg`, …), from an encoded config; the fake score's β₁ is always 0 (`beta1`).
 *
 * @since 0.2.0
 * @category utils
 */
export const officialSettings = (config: unknown): Record<string, unknown> => {
  const record = typeof config === "object" && config !== null ? (config as Record<string, unknown>) : {}
  const out: Record<string, unknown> = { beta1: 0 }
  for (const [ours, theirs] of SETTING_NAMES) if (ours in record) out[theirs] = record[ours]
  return out
}

const fail = (path: string, problem: TrainingStateProblem, reason: string, fix: string, lists: {
  readonly missing?: ReadonlyArray<string>
  readonly unexpected?: ReadonlyArray<string>
  readonly misShaped?: ReadonlyArray<string>
} = {}): TrainingStateError => new TrainingStateError({ path, problem, reason, fix, ...lists })

const rebuild = (path: string, description: NetworkDescription, fix: string): Network => {
  try {
    return networkFromDescription(description)
  } catch (e) {
    throw fail(path, "unknown-architecture", `its network cannot be rebuilt (${e instanceof Error ? e.message : String(e)})`, fix)
  }
}

const sameShape = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i])

/**
 * The names a group holds for a network, in the network's own order (EDM: `state_dict()` order, which is also
 * `parameters()` order once the buffers are left out).
 */
const groupNames = (network: Network, buffers: ReadonlySet<string>, group: TrainingStateGroup): ReadonlyArray<string> =>
  Object.keys(network.shapes).filter((n) => !(group.moments && buffers.has(n)))

/**
 * The trainable parameters of a network under their file names, in the order of torch's `parameters()` (and so of
 * the indices of torch's Adam `state_dict`).
 *
 * @since 0.2.0
 * @category utils
 */
export const trainableParameterNames = (description: NetworkDescription): ReadonlyArray<string> => {
  const network = networkFromDescription(description)
  const buffers = bufferNames(description)
  const layout = trainingStateLayout(description)
  return Object.keys(network.shapes).filter((n) => !buffers.has(n)).map((n) => fileName(layout, n))
}

/**
 * The bytes of a training-state file. Every checkpoint tensor must belong to one of the seven groups and fit the
 * network; the moments of EDM buffers must be zero (they never receive a gradient), as the file leaves them out.
 * Throws {@link TrainingStateError} (`unknown-architecture`, `mismatch`, `not-adam`).
 *
 * @since 0.2.0
 * @category utils
 */
export const encodeTrainingState = (state: TrainingState, path = "training state"): Uint8Array => {
  const fix = "Export an intact checkpoint of a `sid distill` run (Adam on both networks)."
  const network = rebuild(path, state.network, fix)
  const layout = trainingStateLayout(state.network)
  const buffers = bufferNames(state.network)
  const missing: Array<string> = []
  const misShaped: Array<string> = []
  const claimed = new Set<string>()
  const out: Array<readonly [string, NamedArray]> = []
  for (const group of TRAINING_STATE_GROUPS) {
    for (const name of Object.keys(network.shapes)) {
      const key = group.checkpoint + name
      const array = state.tensors.get(key)
      if (array === undefined) {
        missing.push(key)
        continue
      }
      claimed.add(key)
      if (!sameShape(array.shape, network.shapes[name]!) || array.dtype !== "float32") {
        misShaped.push(`${key} ${array.dtype} ${JSON.stringify(array.shape)} ≠ float32 ${JSON.stringify(network.shapes[name])}`)
        continue
      }
      if (group.moments && buffers.has(name)) {
        if (array.values.some((x) => x !== 0)) {
          misShaped.push(`${key}: a buffer's moment is not zero, but torch's Adam keeps no state for buffers`)
        }
        continue
      }
      out.push([group.file + fileName(layout, name), toFileArray(layout, array)])
    }
  }
  const unexpected = [...state.tensors.keys()].filter((k) => !claimed.has(k))
  if (unexpected.some((k) => /^(generator|fake_score)\.optimizer\./.test(k)) || missing.some((k) => k.includes(".optimizer."))) {
    throw fail(path, "not-adam", "its optimiser state is not Adam's (moments m and v for both networks)", fix, { missing, unexpected })
  }
  if (missing.length + unexpected.length + misShaped.length > 0) {
    throw fail(path, "mismatch", `its tensors do not fit its ${state.network.kind} network`, fix, { missing, unexpected, misShaped })
  }
  const metadata: Record<string, string> = {
    format: TRAINING_STATE_FORMAT,
    layout,
    network: JSON.stringify(state.network),
    step: String(state.step),
    images_seen: String(state.imagesSeen),
    g_optimizer_step: String(state.optimizerSteps.generator),
    fake_score_optimizer_step: String(state.optimizerSteps.fakeScore),
    sigma_init: String(state.sigmaInit),
    sigma_data: String(state.sigmaData),
    teacher: state.teacher,
    settings: JSON.stringify(officialSettings(state.config)),
    parameters: JSON.stringify(trainableParameterNames(state.network)),
    buffers: JSON.stringify([...buffers].map((n) => fileName(layout, n))),
    config: JSON.stringify(state.config),
    sampler: JSON.stringify(state.sampler),
    created_at: state.createdAt,
    source: "sid-ts"
  }
  if (layout === "edm") {
    metadata["edm_config"] = JSON.stringify(edmConfigFromArchitecture(state.network as EdmArchitecture, { sigmaData: state.sigmaData }))
  }
  if (state.run !== undefined) metadata["run"] = JSON.stringify(state.run)
  return encodeSafetensors(out, metadata)
}

const CORRUPT_FIX = "Write it again with `sid state export` or `tools/sid_training_state.py to-sid-ts`."

const parseJson = (path: string, metadata: Readonly<Record<string, string>>, key: string): unknown => {
  const text = metadata[key]
  if (text === undefined) throw fail(path, "corrupt", `its metadata has no \`${key}\``, CORRUPT_FIX)
  try {
    return JSON.parse(text) as unknown
  } catch (e) {
    throw fail(path, "corrupt", `its metadata's \`${key}\` is not JSON (${e instanceof Error ? e.message : String(e)})`, CORRUPT_FIX)
  }
}

const numberAt = (path: string, metadata: Readonly<Record<string, string>>, key: string, integer: boolean): number => {
  const text = metadata[key]
  const value = Number(text)
  const ok = text !== undefined && text.trim() !== "" && Number.isFinite(value) && (!integer || (Number.isInteger(value) && value >= 0))
  if (!ok) {
    throw fail(path, "corrupt", `its metadata's \`${key}\` must be ${integer ? "a whole number" : "a finite number"}, got ${JSON.stringify(text ?? null)}`, CORRUPT_FIX)
  }
  return value
}

/**
 * Reads a training-state file back into checkpoint terms, checking the format, the metadata and every tensor against
 * the network (names, shapes, float32); the moments of EDM buffers come back as zeros. Throws
 * {@link TrainingStateError} (`corrupt`, `unknown-architecture`, `mismatch`).
 *
 * @since 0.2.0
 * @category utils
 */
export const decodeTrainingState = (bytes: Uint8Array, path = "training state"): TrainingState => {
  let file: ReturnType<typeof decodeSafetensors>
  try {
    file = decodeSafetensors(bytes)
  } catch (e) {
    throw fail(path, "corrupt", `it is not a safetensors file (${e instanceof Error ? e.message : String(e)})`, CORRUPT_FIX)
  }
  const { metadata } = file
  if (metadata["format"] !== TRAINING_STATE_FORMAT) {
    throw fail(
      path,
      "corrupt",
      `its format is ${JSON.stringify(metadata["format"] ?? null)}, not ${TRAINING_STATE_FORMAT}`,
      "Give a file written by `sid state export` (a generator file from `sid export` holds the generator alone)."
    )
  }
  const description = parseJson(path, metadata, "network")
  if (typeof description !== "object" || description === null || typeof (description as { kind?: unknown }).kind !== "string") {
    throw fail(path, "corrupt", "its `network` metadata is not { kind, spec }", CORRUPT_FIX)
  }
  const networkDescription = description as NetworkDescription
  const network = rebuild(path, networkDescription, "Read it with the sid-ts version that wrote it.")
  const layout = trainingStateLayout(networkDescription)
  if (metadata["layout"] !== layout) {
    throw fail(path, "corrupt", `its layout is ${JSON.stringify(metadata["layout"] ?? null)}, but a ${networkDescription.kind} network's is "${layout}"`, CORRUPT_FIX)
  }
  const buffers = bufferNames(networkDescription)
  const declared = parseJson(path, metadata, "parameters")
  const trainable = trainableParameterNames(networkDescription)
  if (JSON.stringify(declared) !== JSON.stringify(trainable)) {
    throw fail(path, "corrupt", "its `parameters` metadata does not list the network's trainable parameters in torch's order", CORRUPT_FIX)
  }
  const missing: Array<string> = []
  const misShaped: Array<string> = []
  const claimed = new Set<string>()
  const tensors = new Map<string, NamedArray>()
  for (const group of TRAINING_STATE_GROUPS) {
    const names = new Set(groupNames(network, buffers, group))
    for (const name of Object.keys(network.shapes)) {
      const key = group.checkpoint + name
      if (!names.has(name)) {
        tensors.set(key, { dtype: "float32", shape: network.shapes[name]!, values: new Float32Array(network.shapes[name]!.reduce((a, b) => a * b, 1)) })
        continue
      }
      const stored = group.file + fileName(layout, name)
      const array = file.tensors.get(stored)
      if (array === undefined) {
        missing.push(stored)
        continue
      }
      claimed.add(stored)
      const expected = layout === "edm" ? edmShapeFromParam(network.shapes[name]!) : network.shapes[name]!
      if (!sameShape(array.shape, expected) || array.dtype !== "float32") {
        misShaped.push(`${stored} ${array.dtype} ${JSON.stringify(array.shape)} ≠ float32 ${JSON.stringify(expected)}`)
        continue
      }
      tensors.set(key, fromFileArray(layout, array))
    }
  }
  const unexpected = [...file.tensors.keys()].filter((k) => !claimed.has(k))
  if (missing.length + unexpected.length + misShaped.length > 0) {
    throw fail(path, "mismatch", `its tensors do not fit its ${networkDescription.kind} network`, CORRUPT_FIX, { missing, unexpected, misShaped })
  }
  const run = metadata["run"] === undefined ? undefined : parseJson(path, metadata, "run")
  const teacher = metadata["teacher"]
  if (teacher === undefined) throw fail(path, "corrupt", "its metadata has no `teacher`", CORRUPT_FIX)
  return {
    network: networkDescription,
    step: numberAt(path, metadata, "step", true),
    imagesSeen: numberAt(path, metadata, "images_seen", true),
    optimizerSteps: {
      generator: numberAt(path, metadata, "g_optimizer_step", true),
      fakeScore: numberAt(path, metadata, "fake_score_optimizer_step", true)
    },
    sigmaInit: numberAt(path, metadata, "sigma_init", false),
    sigmaData: numberAt(path, metadata, "sigma_data", false),
    teacher,
    config: parseJson(path, metadata, "config"),
    ...(run === undefined ? {} : { run }),
    sampler: parseJson(path, metadata, "sampler"),
    createdAt: metadata["created_at"] ?? new Date(0).toISOString(),
    tensors
  }
}
