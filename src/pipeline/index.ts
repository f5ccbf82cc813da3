/**
 * sid-ts/pipeline: programs over the services — one SiD iteration, the distillation stream, checkpoint capture and
 * restore, evaluation.
 *
 * @module sid-ts/pipeline
 */
export * as Checkpointing from "./Checkpointing.js"
export * as Distill from "./Distill.js"
export * as Evaluation from "./Evaluation.js"
export * as Iteration from "./Iteration.js"
export * as TeacherTraining from "./node/TeacherTraining.js"
export * as Sida from "./Sida.js"
export * as TrainingState from "./node/TrainingState.js"
