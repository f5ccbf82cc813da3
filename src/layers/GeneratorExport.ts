/**
 * Exporting the one-step generator G_θ(z) = D_θ(σ_init·z; σ_init) (spec §2) of a distillation checkpoint as an EDM
 * safetensors file: the EDMPrecond state dict (names `model.*`, PyTorch layouts, spec §1.3, §1.6) with the EDMPrecond
 * arguments as JSON in the metadata key `config`, so EDM/SiD Python code can load it back, and `--teacher edm:` reads
 * it like any EDM teacher. The metadata also records `sigma_init`: the generator is that denoiser evaluated once at
 * σ_init on σ_init·z.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Schema } from "effect"
import { type EdmArchitecture, edmConfigFromArchitecture } from "../domain/edm/Config.js"
import { toEdmStateDict } from "../domain/edm/StateDict.js"
import { networkFromDescription } from "../domain/Network.js"
import { encodeSafetensors } from "../domain/Safetensors.js"
import type { Checkpoint } from "../services/CheckpointStore.js"
import { writeFileAtomic } from "./AtomicFile.js"

/** Format tag of an exported generator file. */
export const GENERATOR_EXPORT_FORMAT = "edm-safetensors-v1"

/** A checkpoint's generator could not be exported (wrong architecture, missing tensors, or the write failed). */
export class ExportError extends Schema.TaggedError<ExportError>()("ExportError", {
  /** Where the export was going. */
  target: Schema.String,
  reason: Schema.String,
  fix: Schema.String
}) {
  override get message(): string {
    return `export ${this.target}: ${this.reason}. ${this.fix}`
  }
}

/** Options of {@link exportGeneratorEdm}. */
export interface ExportOptions {
  /** θ_ema (default; what evaluation uses, spec §5.1) or the live θ. */
  readonly weights?: "ema" | "live"
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

const isEdmKind = (kind: string): kind is EdmArchitecture["kind"] => kind === "songunet" || kind === "dhariwalunet"

/**
 * Writes the generator of a loaded checkpoint (`generator.ema.*`, or `generator.params.*` with `weights: "live"`) to
 * `outPath` atomically as an EDM safetensors file (spec §1.3, §1.6, §2). Metadata: `format` ("edm-safetensors-v1"),
 * `config` (EDMPrecond arguments, JSON), `sigma_init`, `sigma_data`, `source` ("sid-ts"), `step`, `weights`.
 * Fails with {@link ExportError} when the network is not a SongUNet/DhariwalUNet, when tensors are missing or
 * mis-shaped, or when the file cannot be written.
 */
export const exportGeneratorEdm = (
  checkpoint: Checkpoint,
  outPath: string,
  options: ExportOptions = {}
): Effect.Effect<void, ExportError> =>
  Effect.gen(function*() {
    const weights = options.weights ?? "ema"
    const fail = (reason: string, fix: string) => new ExportError({ target: outPath, reason, fix })
    const { manifest } = checkpoint
    const kind = manifest.network.kind
    if (!isEdmKind(kind)) {
      return yield* fail(
        `the generator is a "${kind}" network; only EDM networks (songunet, dhariwalunet) export to EDM format`,
        "Distil an EDM teacher (`--teacher edm:<file.safetensors>`) to get an exportable generator, or keep using the " +
          "sid-ts checkpoint itself for other networks."
      )
    }
    const network = yield* Effect.try({
      try: () => networkFromDescription(manifest.network),
      catch: (e) => fail(`the checkpoint's network description is malformed (${message(e)})`, "Use a checkpoint written by sid-ts.")
    })
    const architecture = { kind, spec: network.description.spec } as EdmArchitecture
    const prefix = weights === "ema" ? "generator.ema." : "generator.params."
    const arrays = yield* Effect.try({
      try: () => {
        const params: Record<string, tf.Tensor> = {}
        try {
          for (const [name, array] of checkpoint.tensors) {
            if (name.startsWith(prefix)) {
              params[name.slice(prefix.length)] = tf.tensor(array.values, [...array.shape], array.dtype)
            }
          }
          return toEdmStateDict(network.shapes, params)
        } finally {
          tf.dispose(Object.values(params))
        }
      },
      catch: (e) =>
        fail(
          `the checkpoint's ${prefix}* tensors do not fit its ${architecture.kind} network (${message(e)})`,
          "The checkpoint is damaged or from another version; export an intact checkpoint."
        )
    })
    const config = edmConfigFromArchitecture(architecture, { sigmaData: manifest.sigmaData })
    const bytes = encodeSafetensors(arrays, {
      format: GENERATOR_EXPORT_FORMAT,
      config: JSON.stringify(config),
      sigma_init: String(manifest.sigmaInit),
      sigma_data: String(manifest.sigmaData),
      source: "sid-ts",
      step: String(manifest.step),
      weights
    })
    yield* writeFileAtomic(outPath, bytes).pipe(
      Effect.mapError((e) => fail(`cannot write the file (${e.message})`, "Check that the directory is writable."))
    )
  })
