/**
 * Exporting the one-step generator G_θ(z) = D_θ(σ_init·z; σ_init) (docs/algorithm.md §6) of a distillation checkpoint as a
 * generator file (`domain/GeneratorFile`, docs/generator-format.md):
 *
 * - EDM networks (SongUNet, DhariwalUNet) keep EDM's format: the EDMPrecond state dict (names `model.*`, PyTorch
 *   layouts, docs/algorithm.md §2.3, §2.5) with the EDMPrecond arguments as JSON in the metadata key `config`, so EDM/SiD Python
 *   code can load it back, and `--teacher edm:` reads it like any EDM teacher;
 * - every other network (the vector MLP, the small UNet) is written in the sid-ts generator format: sid-ts names and
 *   layouts, the architecture as JSON in `network`.
 *
 * Both record `sigma_init`, `sigma_data`, `label_dim`, `data_shape` and the provenance (run directory, step, teacher,
 * weights); `loadGenerator` and `sid-ts/browser` read either.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Schema } from "effect"
import {
  EDM_GENERATOR_FORMAT,
  encodeGeneratorFile,
  type GeneratorFileFormat,
  generatorFileFormat
} from "../../../domain/data/GeneratorFile.js"
import { networkFromDescription } from "../../../domain/nn/Network.js"
import type { OneStepWeights } from "../../../domain/sid/OneStep.js"
import { compareShapes, shapesMatch } from "../../../domain/nn/Parameters.js"
import { type Checkpoint, CheckpointError } from "../CheckpointStore.js"
import { type Engine, withEngineEffect } from "../../../engine/Engine.js"
import { writeFileAtomic } from "../../../platform/AtomicFile.js"
import { fromNamedArrays, shapesWithPrefix } from "../../../domain/data/NamedTensors.js"
import { MAX_GENERATOR_STEPS } from "../../../domain/sid/FewStep.js"

export { EDM_GENERATOR_FORMAT, SID_GENERATOR_FORMAT } from "../../../domain/data/GeneratorFile.js"

/**
 * Format tag of an exported EDM generator file (the format every export had before the sid-ts format existed).
 *
 * @since 0.1.0
 * @category constants
 */
export const GENERATOR_EXPORT_FORMAT = EDM_GENERATOR_FORMAT

/**
 * A checkpoint's generator could not be exported (wrong architecture, missing tensors, or the write failed).
 *
 * @since 0.1.0
 * @category errors
 */
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

/**
 * Options of {@link exportGenerator}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ExportOptions {
  /** θ_ema (default; what evaluation uses, docs/algorithm.md §9.1) or the live θ. */
  readonly weights?: "ema" | "live"
  /** The run directory, recorded as provenance (`run_dir`). */
  readonly runDir?: string
  /**
   * k, the steps the generator takes when sampled (docs/few-step.md), recorded in the file as `generator_steps`;
   * default: the run's own (`generatorSteps` of the checkpoint's config; 1 for runs from before it existed).
   */
  readonly generatorSteps?: number
}

/**
 * k of a checkpoint's run (`generatorSteps` of its encoded config); 1 when the config predates it.
 *
 * @since 0.2.0
 * @category utils
 */
export const checkpointGeneratorSteps = (checkpoint: Checkpoint): number => {
  const config = checkpoint.manifest.config
  const k = typeof config === "object" && config !== null ? (config as { readonly generatorSteps?: unknown }).generatorSteps : undefined
  return typeof k === "number" ? k : 1
}

/**
 * What {@link exportGenerator} wrote.
 *
 * @since 0.1.0
 * @category models
 */
export interface ExportedGenerator {
  readonly path: string
  readonly format: GeneratorFileFormat
  /** The network kind (`mlp`, `unet`, `songunet`, `dhariwalunet`). */
  readonly kind: string
  readonly step: number
  readonly weights: "ema" | "live"
  /** k, the steps the file's generator takes (docs/few-step.md). */
  readonly generatorSteps: number
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/**
 * The one-step generator of a checkpoint (`generator.ema.*`, or `generator.params.*` with `weights: "live"`), with
 * its network, σ_init, σ_data and provenance. The caller owns the tensors (so it needs the engine). Fails with {@link CheckpointError} when
 * the manifest's network is unknown or malformed, or when the weights do not fit it.
 *
 * @since 0.1.0
 * @category utils
 */
export const checkpointGenerator = (
  checkpoint: Checkpoint,
  options: ExportOptions = {}
): Effect.Effect<OneStepWeights, CheckpointError, Engine> =>
  withEngineEffect(Effect.gen(function*() {
    const weights = options.weights ?? "ema"
    const { manifest } = checkpoint
    const path = options.runDir ?? "checkpoint"
    const generatorSteps = options.generatorSteps ?? checkpointGeneratorSteps(checkpoint)
    if (!(Number.isInteger(generatorSteps) && generatorSteps >= 1 && generatorSteps <= MAX_GENERATOR_STEPS)) {
      return yield* new CheckpointError({
        path,
        reason: `generator steps must be an integer in 1..${MAX_GENERATOR_STEPS}, got ${generatorSteps}`
      })
    }
    const network = yield* Effect.try({
      try: () => networkFromDescription(manifest.network),
      catch: (e) => new CheckpointError({ path, reason: `the checkpoint's network cannot be rebuilt (${message(e)})` })
    })
    const prefix = weights === "ema" ? "generator.ema." : "generator.params."
    const mismatch = compareShapes(network.shapes, shapesWithPrefix(checkpoint.tensors, prefix))
    if (!shapesMatch(mismatch)) {
      return yield* new CheckpointError({
        path,
        reason: `the ${weights === "ema" ? "EMA" : "live"} generator's weights (${prefix}*) do not fit its ${manifest.network.kind} network`,
        missing: mismatch.missing,
        unexpected: mismatch.unexpected,
        misShaped: mismatch.misShaped.map((m) => m.name)
      })
    }
    return {
      network,
      params: fromNamedArrays(checkpoint.tensors, prefix),
      sigmaInit: manifest.sigmaInit,
      sigmaData: manifest.sigmaData,
      generatorSteps,
      provenance: {
        ...(options.runDir === undefined ? {} : { runDir: options.runDir }),
        step: manifest.step,
        teacher: manifest.teacher,
        weights
      }
    }
  }))

/**
 * Writes the generator of a loaded checkpoint to `outPath` atomically as a generator file: EDM's format for
 * SongUNet/DhariwalUNet networks, the sid-ts generator format for the others (docs/generator-format.md). Metadata:
 * `format`, `sigma_init`, `sigma_data`, `label_dim`, `data_shape`, `source` ("sid-ts"), `step`, `teacher`,
 * `weights`, `run_dir` (when given), and `config` (EDM) or `network` (sid-ts). Fails with {@link ExportError} when the
 * checkpoint's generator cannot be rebuilt or the file cannot be written.
 *
 * @since 0.1.0
 * @category utils
 */
export const exportGenerator = (
  checkpoint: Checkpoint,
  outPath: string,
  options: ExportOptions = {}
): Effect.Effect<ExportedGenerator, ExportError, Engine> =>
  Effect.gen(function*() {
    const fail = (reason: string, fix: string) => new ExportError({ target: outPath, reason, fix })
    const bytes = yield* Effect.acquireUseRelease(
      checkpointGenerator(checkpoint, options).pipe(
        Effect.mapError((e) => fail(e.message, "The checkpoint is damaged or from another version; export an intact checkpoint."))
      ),
      (generator) =>
        Effect.try({
          try: () => encodeGeneratorFile(generator),
          catch: (e) => fail(`the generator cannot be encoded (${message(e)})`, "Export an intact checkpoint.")
        }),
      (generator) => Effect.sync(() => tf.dispose(Object.values(generator.params)))
    )
    yield* writeFileAtomic(outPath, bytes).pipe(
      Effect.mapError((e) => fail(`cannot write the file (${e.message})`, "Check that the directory is writable."))
    )
    const kind = checkpoint.manifest.network.kind
    return {
      path: outPath,
      format: generatorFileFormat(kind),
      kind,
      step: checkpoint.manifest.step,
      weights: options.weights ?? "ema",
      generatorSteps: options.generatorSteps ?? checkpointGeneratorSteps(checkpoint)
    }
  })

/**
 * {@link exportGenerator} restricted to EDM networks: fails with {@link ExportError} for any other network instead
 * of writing the sid-ts format (for callers that need a file EDM's Python code reads).
 *
 * @since 0.1.0
 * @category utils
 */
export const exportGeneratorEdm = (
  checkpoint: Checkpoint,
  outPath: string,
  options: ExportOptions = {}
): Effect.Effect<ExportedGenerator, ExportError, Engine> => {
  const kind = checkpoint.manifest.network.kind
  return generatorFileFormat(kind) === EDM_GENERATOR_FORMAT
    ? exportGenerator(checkpoint, outPath, options)
    : Effect.fail(
      new ExportError({
        target: outPath,
        reason: `the generator is a "${kind}" network; only EDM networks (songunet, dhariwalunet) export to EDM format`,
        fix: "Distil an EDM teacher (`--teacher edm:<file.safetensors>`) to get an EDM generator, or use `exportGenerator`, " +
          "which writes other networks in the sid-ts generator format."
      })
    )
}
