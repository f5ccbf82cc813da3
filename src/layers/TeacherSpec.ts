/**
 * Teacher arguments as text — `gmm:<preset>`, `gmm-dsm:<preset>`, `edm:<file>`, or a teacher file — and the layer each
 * names (the CLI's `--teacher`).
 *
 * @module
 */
import type * as GaussianMixture from "../domain/GaussianMixture.js"
import { Effect, Layer } from "effect"
import type { Teacher, TeacherError } from "../services/Teacher.js"
import { layerEdmFile } from "./EdmTeacher.js"
import { layerFile, layerGaussianMixture, layerTrainedOnMixture, type MixtureFitOptions, mixturePreset } from "./Teacher.js"

/** A parsed `--teacher` argument. */
export type TeacherSpec =
  | { readonly kind: "gmm"; readonly preset: string }
  | { readonly kind: "gmm-dsm"; readonly preset: string }
  | { readonly kind: "edm"; readonly path: string }
  | { readonly kind: "file"; readonly path: string }

/**
 * Parses a teacher argument: `gmm:<preset>` (the exact mixture), `gmm-dsm:<preset>` (an MLP trained in process by
 * denoising score matching on the mixture's samples), `edm:<file.safetensors>` (an EDM checkpoint converted to
 * safetensors), or a path to a sid-ts teacher file (`file:<path>` or any other text).
 */
export const parseTeacherSpec = (text: string): TeacherSpec => {
  if (text.startsWith("gmm:")) return { kind: "gmm", preset: text.slice(4) }
  if (text.startsWith("edm:")) return { kind: "edm", path: text.slice(4) }
  if (text.startsWith("gmm-dsm:")) return { kind: "gmm-dsm", preset: text.slice(8) }
  return { kind: "file", path: text.startsWith("file:") ? text.slice(5) : text }
}

/** The mixture behind a teacher argument, when it names one. */
export const mixtureOfSpec = (spec: TeacherSpec): Effect.Effect<GaussianMixture.GaussianMixture | undefined, TeacherError> =>
  spec.kind === "file" || spec.kind === "edm" ? Effect.succeed(undefined) : mixturePreset(spec.preset)

/** The teacher layer for a parsed argument. */
export const layerFromSpec = (spec: TeacherSpec, fit: MixtureFitOptions = {}): Layer.Layer<Teacher, TeacherError> => {
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
