/**
 * The settings of a command that are not hyper-parameters (the teacher, the reference, evaluation sizes, the run
 * directory), in the same one-row-per-setting form as the configs (`Setting.ts`): `sid distill` and
 * `sid teacher train` build these flags, their help and their defaults from here.
 *
 * @module
 */
import { Schema } from "effect"
import { DISTILL_PRESETS } from "./DistillConfig.js"
import { setting, type SettingTable } from "./Setting.js"

/** A whole number ≥ `min`; the rule names what the number counts. */
export const wholeNumber = (min: number, what: string) => {
  const message = { message: () => `must be a whole number ≥ ${min} (${what})` }
  return Schema.Number.annotations(message).pipe(Schema.int(message), Schema.greaterThanOrEqualTo(min, message))
}

/** {@link wholeNumber} or null (where null means "the default"), with the same one rule. */
export const wholeNumberOrNull = (min: number, what: string) =>
  Schema.NullOr(wholeNumber(min, what)).annotations({
    message: () => ({ message: `must be a whole number ≥ ${min} (${what})`, override: true })
  })

const FIT = DISTILL_PRESETS.lowDimensional.teacherFit

const Text = Schema.String.pipe(Schema.minLength(1, { message: () => "must not be empty" }))

/** The settings of `sid distill` beside its {@link DistillConfig} (teacher, reference, evaluation, run directory). */
export const DISTILL_RUN_SETTINGS = {
  teacher: setting(
    Text,
    "gmm:ring8",
    "teacher",
    "the teacher: gmm:<name> (an exact Gaussian mixture), gmm-dsm:<name> (an MLP fitted in process to the mixture's " +
      "samples), edm:<file> (a pretrained EDM network, safetensors) or a teacher file (`sid teacher train` writes one); " +
      "a resumed run keeps its own",
    { placeholder: "<spec>" }
  ),
  reference: setting(
    Text,
    "auto",
    "reference",
    "reference set of the metrics: gmm:<name>, mnist (FID, IS, precision/recall in LeNet features), none, or auto (the " +
      "teacher's mixture, or MNIST for one-channel 16/28/32-pixel image teachers)",
    { placeholder: "<spec>" }
  ),
  evalSamples: setting(wholeNumber(1, "samples per evaluation"), 10_000, "eval-samples", "samples per evaluation", {
    placeholder: "<n>"
  }),
  baselineSamples: setting(
    wholeNumberOrNull(0, "0 skips the baseline"),
    null,
    "baseline-samples",
    "samples of the teacher's Heun-sampler baseline evaluation (0 skips it)",
    { input: "number", placeholder: "<n>", defaultText: "the --eval-samples value" }
  ),
  teacherFitSteps: setting(
    wholeNumberOrNull(1, "steps of the teacher network's fit"),
    null,
    "teacher-fit-steps",
    "steps of the in-process MLP fit of a gmm: or gmm-dsm: teacher",
    { input: "number", placeholder: "<n>", defaultText: `the preset's, ${FIT.steps}` }
  ),
  teacherHidden: setting(
    wholeNumberOrNull(1, "hidden width of the fitted MLP"),
    null,
    "teacher-hidden",
    "hidden width of the MLP fitted in process for a gmm: or gmm-dsm: teacher; G and ψ start from it",
    { input: "number", placeholder: "<n>", defaultText: `the preset's, ${FIT.hidden}` }
  ),
  teacherDepth: setting(
    wholeNumberOrNull(1, "hidden layers of the fitted MLP"),
    null,
    "teacher-depth",
    "hidden layers of the MLP fitted in process for a gmm: or gmm-dsm: teacher",
    { input: "number", placeholder: "<n>", defaultText: `the preset's, ${FIT.depth}` }
  ),
  runDir: setting(Text, "runs/distill", "run-dir", "where the config, the JSONL log and the checkpoints go", {
    placeholder: "<dir>"
  }),
  keep: setting(wholeNumber(1, "checkpoints kept"), 3, "keep", "checkpoints kept, newest first", { placeholder: "<n>" })
} as const satisfies SettingTable

/** The settings of `sid teacher train` beside its `TeacherTrainingConfig`. */
export const TEACHER_RUN_SETTINGS = {
  runDir: setting(Text, "runs/teacher", "run-dir", "where teacher.safetensors, the checkpoints, config.json and log.jsonl go", {
    placeholder: "<dir>"
  })
} as const satisfies SettingTable
