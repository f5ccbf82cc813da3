/**
 * Teachers read from files on Node: sid-ts teacher files (`layerFile`), EDM networks (`layerEdmFile`), and the
 * `--teacher` spec of the command line (`parseTeacherSpec`, `layerFromSpec`, `teacherIdentity`); writing teacher
 * files. Re-exports the portable `services/Teacher.ts` (the service, mixture teachers, the teacher-file encoding).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { readFile } from "node:fs/promises"
import { Effect, Layer } from "effect"
import { type LoadedDenoiser, type Network, networkFromDescription } from "../../domain/nn/Network.js"
import { compareShapes, type Parameters, shapesMatch } from "../../domain/nn/Parameters.js"
import { decodeSafetensors, type SafetensorsFile } from "../../domain/data/Safetensors.js"
import { fromNamedArrays, shapesWithPrefix } from "../../domain/data/NamedTensors.js"
import { type Engine, withEngineEffect } from "../../engine/Engine.js"
import { writeFileAtomic } from "../../platform/AtomicFile.js"
import { encodeTeacherFile, fromWeights, Teacher, TEACHER_FORMAT, TeacherError } from "../Teacher.js"

export * from "../Teacher.js"

/**
 * Writes a teacher file atomically.
 *
 * @since 0.1.0
 * @category utils
 */
export const writeTeacherFile = (
  path: string,
  network: Network,
  params: Parameters,
  sigmaData: number
): Effect.Effect<void, TeacherError> =>
  writeFileAtomic(path, encodeTeacherFile(network, params, sigmaData)).pipe(
    Effect.mapError((e) =>
      new TeacherError({ teacher: path, reason: `could not write the teacher file (${e.message})`, fix: "Check the path and free disk space." })
    )
  )

/**
 * Reads and decodes a safetensors file, mapping an unreadable file and a malformed one to the caller's error
 * (`fix` is the advice for a malformed file).
 *
 * @since 0.1.0
 * @category utils
 */
export const readSafetensorsFile = <E>(
  path: string,
  fail: (reason: string, fix: string) => E,
  fix: string
): Effect.Effect<SafetensorsFile, E> =>
  Effect.tryPromise({
    try: () => readFile(path),
    catch: (e) => fail(`cannot read the file (${e instanceof Error ? e.message : String(e)})`, "Check the path.")
  }).pipe(
    Effect.flatMap((bytes) =>
      Effect.try({
        try: () => decodeSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)),
        catch: (e) => fail(`not a valid safetensors file: ${e instanceof Error ? e.message : String(e)}`, fix)
      })
    )
  )

/**
 * Reads a teacher file (validating format, architecture and every tensor's name and shape); needs the engine.
 *
 * @since 0.1.0
 * @category utils
 */
export const readTeacherFile = (
  path: string
): Effect.Effect<
  LoadedDenoiser,
  TeacherError,
  Engine
> =>
  withEngineEffect(Effect.gen(function*() {
    const fail = (reason: string, fix: string) => new TeacherError({ teacher: path, reason, fix })
    const file = yield* readSafetensorsFile(path, fail, "Re-create the teacher file.")
    if (file.metadata["format"] !== TEACHER_FORMAT) {
      return yield* fail(
        `metadata format is ${JSON.stringify(file.metadata["format"])}, expected "${TEACHER_FORMAT}"`,
        "Pass a teacher file written by sid-ts (or `edm:<file>` for EDM weights)."
      )
    }
    const network = yield* Effect.try({
      try: () => networkFromDescription(JSON.parse(file.metadata["network"] ?? "null")),
      catch: (e) => fail(`bad architecture metadata: ${e instanceof Error ? e.message : String(e)}`, "Re-create the teacher file.")
    })
    const sigmaData = Number(file.metadata["sigma_data"])
    if (!(sigmaData > 0)) return yield* fail(`sigma_data metadata is ${file.metadata["sigma_data"]}`, "Re-create the teacher file.")
    const mismatch = compareShapes(network.shapes, shapesWithPrefix(file.tensors, ""))
    if (!shapesMatch(mismatch)) {
      return yield* fail(
        `weights do not fit the architecture: missing [${mismatch.missing.join(", ")}], unexpected [${
          mismatch.unexpected.join(", ")
        }], mis-shaped [${mismatch.misShaped.map((m) => `${m.name} ${JSON.stringify(m.actual)} ≠ ${JSON.stringify(m.expected)}`).join(", ")}]`,
        "Re-create the teacher file."
      )
    }
    return { network, params: fromNamedArrays(file.tensors), sigmaData }
  }))

/**
 * A network teacher loaded from a teacher file; its tensors are disposed on release.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFile = (path: string): Layer.Layer<Teacher, TeacherError, Engine> =>
  Layer.scoped(
    Teacher,
    Effect.map(
      Effect.acquireRelease(readTeacherFile(path), (t) => Effect.sync(() => tf.dispose(Object.values(t.params)))),
      (t) => fromWeights(path, t.network, t.params, t.sigmaData)
    )
  )

export * from "./internal/edmTeacher.js"

export * from "./internal/teacherSpec.js"
