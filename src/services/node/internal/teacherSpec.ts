/**
 * Teacher arguments as text — `gmm:<preset>`, `gmm-dsm:<preset>`, `edm:<file>`, or a teacher file — and the layer each
 * names (the CLI's `--teacher`).
 *
 * @module
 */
import { createHash } from "node:crypto"
import { createReadStream } from "node:fs"
import { open } from "node:fs/promises"
import type { TeacherFitSettings, TeacherKind } from "../../../domain/config/DistillConfig.js"
import type * as GaussianMixture from "../../../domain/data/GaussianMixture.js"
import { Effect, Layer } from "effect"
import { networkFromDescription } from "../../../domain/nn/Network.js"
import type { TeacherIdentity } from "../../../domain/config/RunSpec.js"
import type { Engine } from "../../../engine/Engine.js"
import { type Teacher, TeacherError } from "../Teacher.js"
import { layerEdmFile } from "./edmTeacher.js"
import { layerFile, layerGaussianMixture, layerTrainedOnMixture, type MixtureFitOptions, mixturePreset, TEACHER_FORMAT } from "../Teacher.js"

/**
 * A parsed `--teacher` argument.
 *
 * @since 0.1.0
 * @category models
 */
export type TeacherSpec =
  | { readonly kind: "gmm"; readonly preset: string }
  | { readonly kind: "gmm-dsm"; readonly preset: string }
  | { readonly kind: "edm"; readonly path: string }
  | { readonly kind: "file"; readonly path: string }

/**
 * Parses a teacher argument: `gmm:<preset>` (the exact mixture), `gmm-dsm:<preset>` (an MLP trained in process by
 * denoising score matching on the mixture's samples), `edm:<file.safetensors>` (an EDM checkpoint converted to
 * safetensors), or a path to a sid-ts teacher file (`file:<path>` or any other text).
 *
 * @since 0.1.0
 * @category utils
 */
export const parseTeacherSpec = (text: string): TeacherSpec => {
  if (text.startsWith("gmm:")) return { kind: "gmm", preset: text.slice(4) }
  if (text.startsWith("edm:")) return { kind: "edm", path: text.slice(4) }
  if (text.startsWith("gmm-dsm:")) return { kind: "gmm-dsm", preset: text.slice(8) }
  return { kind: "file", path: text.startsWith("file:") ? text.slice(5) : text }
}

/**
 * The mixture behind a teacher argument, when it names one.
 *
 * @since 0.1.0
 * @category utils
 */
export const mixtureOfSpec = (spec: TeacherSpec): Effect.Effect<GaussianMixture.GaussianMixture | undefined, TeacherError> =>
  spec.kind === "file" || spec.kind === "edm" ? Effect.succeed(undefined) : mixturePreset(spec.preset)

/**
 * The teacher layer for a parsed argument.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromSpec = (spec: TeacherSpec, fit: MixtureFitOptions = {}): Layer.Layer<Teacher, TeacherError, Engine> => {
  switch (spec.kind) {
    case "file":
      return layerFile(spec.path)
    case "edm":
      return layerEdmFile(spec.path)
    case "gmm":
      return Layer.unwrapEffect(
        Effect.map(mixturePreset(spec.preset), (m) => layerGaussianMixture(m, { ...fit, name: `gmm:${spec.preset}` }))
      )
    case "gmm-dsm":
      return Layer.unwrapEffect(
        Effect.map(mixturePreset(spec.preset), (m) => layerTrainedOnMixture(m, { ...fit, name: `gmm-dsm:${spec.preset}` }))
      )
  }
}

const sha256OfFile = (path: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const hash = createHash("sha256")
    createReadStream(path).on("error", reject).on("data", (chunk) => hash.update(chunk)).on("end", () => resolve(hash.digest("hex")))
  })

/**
 * What a run records about its teacher (`RunSpec.teacher`): the argument, a SHA-256 of the teacher file or of the
 * mixture preset's definition (so a changed file or preset is noticed on resume), and the steps of the in-process fit
 * of mixture teachers. Fails with a {@link TeacherError} when the file cannot be read or the preset is unknown — before
 * anything is built or written.
 *
 * @since 0.1.0
 * @category utils
 */
export const teacherIdentity = (
  text: string,
  fitSteps: number,
  fitNetwork?: Pick<TeacherFitSettings, "hidden" | "depth">
): Effect.Effect<TeacherIdentity, TeacherError> => {
  const spec = parseTeacherSpec(text)
  switch (spec.kind) {
    case "file":
    case "edm":
      return Effect.tryPromise({
        try: () => sha256OfFile(spec.path),
        catch: (e) =>
          new TeacherError({
            teacher: text,
            reason: `cannot read the file ${spec.path} (${e instanceof Error ? e.message : String(e)})`,
            fix: "Give the path of a teacher file (sid teacher train writes one), edm:<file.safetensors>, or gmm:<preset>."
          })
      }).pipe(Effect.map((sha256) => ({ spec: text, sha256, fitSteps: null })))
    case "gmm":
    case "gmm-dsm":
      return Effect.map(mixturePreset(spec.preset), (m) => ({
        spec: text,
        sha256: createHash("sha256").update(JSON.stringify(m)).digest("hex"),
        fitSteps,
        ...(fitNetwork === undefined ? {} : { fitNetwork: { hidden: fitNetwork.hidden, depth: fitNetwork.depth } })
      }))
  }
}

/** The metadata strings of a safetensors file, from its header alone (the tensors are not read). */
const readSafetensorsMetadata = async (path: string): Promise<Record<string, string>> => {
  const file = await open(path, "r")
  try {
    const length = Buffer.alloc(8)
    await file.read(length, 0, 8, 0)
    const size = Number(length.readBigUInt64LE(0))
    if (size <= 0 || size > 100_000_000) throw new Error(`implausible safetensors header length ${size}`)
    const header = Buffer.alloc(size)
    await file.read(header, 0, size, 8)
    const parsed = JSON.parse(header.toString("utf8")) as { __metadata__?: Record<string, string> }
    return parsed.__metadata__ ?? {}
  } finally {
    await file.close()
  }
}

/**
 * The kind of a teacher, which chooses the run's preset (`DISTILL_PRESETS`): mixtures (`gmm:`, `gmm-dsm:`)
 * are low-dimensional, EDM networks are image teachers, and a teacher file is what its recorded architecture's data
 * shape says (vector data: low-dimensional; anything else: images). Reads only a teacher file's header.
 *
 * @since 0.2.0
 * @category utils
 */
export const teacherKind = (spec: TeacherSpec): Effect.Effect<TeacherKind, TeacherError> => {
  switch (spec.kind) {
    case "gmm":
    case "gmm-dsm":
      return Effect.succeed("lowDimensional")
    case "edm":
      return Effect.succeed("images")
    case "file":
      return Effect.tryPromise({
        try: () => readSafetensorsMetadata(spec.path),
        catch: (e) =>
          new TeacherError({
            teacher: spec.path,
            reason: `cannot read the file ${spec.path} (${e instanceof Error ? e.message : String(e)})`,
            fix: "Give the path of a teacher file (sid teacher train writes one), edm:<file.safetensors>, or gmm:<preset>."
          })
      }).pipe(
        Effect.flatMap((metadata) =>
          Effect.try({
            try: () => {
              if (metadata["format"] !== TEACHER_FORMAT) {
                throw new Error(`its metadata format is ${JSON.stringify(metadata["format"])}, expected "${TEACHER_FORMAT}"`)
              }
              const network = networkFromDescription(JSON.parse(metadata["network"] ?? "null"))
              return network.dataShape.length === 1 ? "lowDimensional" as const : "images" as const
            },
            catch: (e) =>
              new TeacherError({
                teacher: spec.path,
                reason: `not a sid-ts teacher file: ${e instanceof Error ? e.message : String(e)}`,
                fix: "Pass a teacher file written by sid-ts (sid teacher train), or edm:<file.safetensors> for EDM weights."
              })
          })
        )
      )
  }
}
