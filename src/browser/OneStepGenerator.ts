/**
 * The distilled one-step generator in a web page (or anywhere) with `@tensorflow/tfjs` alone: no Effect, no Node.
 *
 * Load a file that `sid export` writes — EDM safetensors for EDM networks, the sid-ts generator format for the MLP and
 * the small UNet (docs/generator-format.md) — and draw samples with one network evaluation each:
 * x = D(σ_init·z; σ_init) (docs/algorithm.md §6). `generate(n, seed)` draws the latents `sid sample --seed` draws, so both give the
 * same samples. This module and everything it imports depend only on `@tensorflow/tfjs` (a test checks the import
 * graph).
 *
 * @module sid-ts/browser
 */
import { decodeGeneratorFile } from "../domain/data/GeneratorFile.js"
import { oneStepGenerator, type OneStepGenerator } from "../domain/sid/OneStep.js"

export { EDM_GENERATOR_FORMAT, GeneratorFileError, SID_GENERATOR_FORMAT } from "../domain/data/GeneratorFile.js"
export type { GeneratorFileFormat } from "../domain/data/GeneratorFile.js"
export { fixedLatents, LATENT_STREAM } from "../domain/sid/OneStep.js"
export type { GeneratorProvenance, OneStepGenerator } from "../domain/sid/OneStep.js"

/**
 * Reads a generator file written by `sid export` (either format). Throws a `GeneratorFileError` saying what is wrong
 * with the file (`problem`: "corrupt" or "unknown-architecture") and what to do.
 *
 * @since 0.1.0
 * @category constructors
 */
export const loadOneStepGenerator = (bytes: Uint8Array): OneStepGenerator => oneStepGenerator(decodeGeneratorFile(bytes))
