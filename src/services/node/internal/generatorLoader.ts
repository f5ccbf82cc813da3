/**
 * Loading a finished run's generator: `loadGenerator(path)` reads a file that `sid export` wrote (EDM format for EDM
 * networks, the sid-ts generator format for the others; docs/generator-format.md) and returns a ready one-step
 * generator, x = D(σ_init·z; σ_init) (docs/algorithm.md §6), whose `generate(n, seed)` draws the samples `sid sample --seed` and
 * `sid-ts/browser` draw for that seed.
 *
 * @module
 */
import { readFile } from "node:fs/promises"
import { Effect, Schema, type Scope } from "effect"
import { decodeGeneratorFile, GeneratorFileError } from "../../../domain/data/GeneratorFile.js"
import { oneStepGenerator, type OneStepGenerator } from "../../../domain/sid/OneStep.js"
import { type Engine, withEngineEffect } from "../../../engine/Engine.js"

export type { GeneratorProvenance, OneStepGenerator } from "../../../domain/sid/OneStep.js"

/**
 * The generator file does not exist or cannot be read.
 *
 * @since 0.1.0
 * @category errors
 */
export class GeneratorNotFoundError extends Schema.TaggedError<GeneratorNotFoundError>()("GeneratorNotFoundError", {
  path: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `generator ${this.path}: cannot read the file (${this.reason}). Check the path, or write the file with ` +
      "`sid export --run-dir <run> --out <file>`."
  }
}

/**
 * The file is not a readable generator file: not safetensors, metadata missing or malformed, or tensors that do not fit.
 *
 * @since 0.1.0
 * @category errors
 */
export class GeneratorCorruptError extends Schema.TaggedError<GeneratorCorruptError>()("GeneratorCorruptError", {
  path: Schema.String,
  reason: Schema.String,
  fix: Schema.String
}) {
  override get message(): string {
    return `generator ${this.path}: ${this.reason}. ${this.fix}.`
  }
}

/**
 * The file names a network kind (or file format) that this version of sid-ts does not know.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnknownGeneratorArchitectureError
  extends Schema.TaggedError<UnknownGeneratorArchitectureError>()("UnknownGeneratorArchitectureError", {
    path: Schema.String,
    reason: Schema.String,
    fix: Schema.String
  })
{
  override get message(): string {
    return `generator ${this.path}: ${this.reason}. ${this.fix}.`
  }
}

/**
 * Why {@link loadGenerator} failed.
 *
 * @since 0.1.0
 * @category errors
 */
export type LoadGeneratorError = GeneratorNotFoundError | GeneratorCorruptError | UnknownGeneratorArchitectureError

const fromFileError = (path: string, e: unknown): GeneratorCorruptError | UnknownGeneratorArchitectureError => {
  if (e instanceof GeneratorFileError) {
    return e.problem === "unknown-architecture"
      ? new UnknownGeneratorArchitectureError({ path, reason: e.reason, fix: e.fix })
      : new GeneratorCorruptError({ path, reason: e.reason, fix: e.fix })
  }
  return new GeneratorCorruptError({
    path,
    reason: e instanceof Error ? e.message : String(e),
    fix: "Export the generator again with `sid export --run-dir <run> --out <file>`"
  })
}

/**
 * Decodes the bytes of a generator file (either format) into a one-step generator; the caller owns it (`dispose`).
 * `path` only names the file in errors. Its weights are tensors, so it needs the engine.
 *
 * @since 0.1.0
 * @category utils
 */
export const decodeGenerator = (
  bytes: Uint8Array,
  path = "<bytes>"
): Effect.Effect<OneStepGenerator, GeneratorCorruptError | UnknownGeneratorArchitectureError, Engine> =>
  withEngineEffect(Effect.try({ try: () => oneStepGenerator(decodeGeneratorFile(bytes)), catch: (e) => fromFileError(path, e) }))

/**
 * Reads a generator file into a one-step generator that the caller owns (`dispose` frees its weights); needs the
 * engine.
 *
 * @since 0.1.0
 * @category utils
 */
export const readGenerator = (path: string): Effect.Effect<OneStepGenerator, LoadGeneratorError, Engine> =>
  Effect.tryPromise({
    try: () => readFile(path),
    catch: (e) => new GeneratorNotFoundError({ path, reason: e instanceof Error ? e.message : String(e) })
  }).pipe(Effect.flatMap((bytes) => decodeGenerator(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path)))

/**
 * A ready one-step generator from a file that `sid export` wrote, with its weights freed when the scope closes. It
 * needs the {@link Engine} its weights live in (e.g. `Effect.provide(layers.Engine.wasm)`). Fails with {@link GeneratorNotFoundError} (no such file), {@link GeneratorCorruptError} (not a readable generator
 * file) or {@link UnknownGeneratorArchitectureError} (a network or format this version does not know).
 *
 * ```ts
 * const images = yield* Effect.scoped(
 *   Effect.map(loadGenerator("generator.safetensors"), (g) => g.generate(16, 0))
 * ).pipe(Effect.provide(Engine.wasm)) // Engine from "sid-ts/layers"
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const loadGenerator = (path: string): Effect.Effect<OneStepGenerator, LoadGeneratorError, Scope.Scope | Engine> =>
  Effect.acquireRelease(readGenerator(path), (g) => Effect.sync(() => g.dispose()))
