/**
 * sid-ts: Score identity Distillation for TypeScript.
 *
 * - `domain`: the pure maths (schedules, preconditioning, exact mixtures, score identities, losses, metrics, networks).
 * - `services`: the service tags a pipeline is assembled from (Teacher, Generator, FakeScore, DataFreeSampler,
 *   DistillationLoss, Metrics, CheckpointStore, Engine).
 * - `layers`: their implementations as scoped layers, and `Distillation.layer` composing a run.
 * - `pipeline`: the distillation `Stream` and its parts.
 * - `testing`: fast-check arbitraries and Monte Carlo checks for your own property tests.
 * - `loadGenerator(path)`: a finished run's one-step generator from the file `sid export` wrote (also
 *   `layers.GeneratorLoader`; `sid-ts/browser` reads the same files without Node).
 *
 * Subpath imports (`sid-ts/domain`, `sid-ts/services`, `sid-ts/layers`, `sid-ts/pipeline`, `sid-ts/testing`) load only
 * what they name.
 *
 * @module sid-ts
 */
export * as domain from "./domain/index.js"
export * as layers from "./layers/index.js"
export * as pipeline from "./pipeline/index.js"
export * as services from "./services/index.js"
export * as testing from "./testing/index.js"
export {
  GeneratorCorruptError,
  GeneratorNotFoundError,
  loadGenerator,
  type LoadGeneratorError,
  type OneStepGenerator,
  UnknownGeneratorArchitectureError
} from "./services/node/Generator.js"
