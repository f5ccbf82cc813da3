/**
 * sid-ts/layers: a namespace per service module — its tag, interface, errors and layer constructors
 * (`Teacher.layerFile(path)`, `Engine.wasm`, `Metrics.layerFromReference(…)`) — and `Distillation.layer(config, parts)`,
 * the composed layer of a whole run. These are the Node modules (each the portable module plus its Node-bound
 * layers: files, MNIST, the native engines); `sid-ts/browser/distill` exports the portable ones.
 *
 * The names in the second block are the pre-0.2 module names, kept as aliases of the service module that now holds
 * them; they will be removed in 0.3.
 *
 * @module sid-ts/layers
 */
export * as CheckpointStore from "../services/node/CheckpointStore.js"
export * as DataFreeSampler from "../services/DataFreeSampler.js"
export * as Dataset from "../services/node/Dataset.js"
export * as Distillation from "./node/Distillation.js"
export * as DistillationLoss from "../services/DistillationLoss.js"
export * as Engine from "../engine/node/Engine.js"
export * as EventLoop from "../engine/EventLoop.js"
export * as FakeScore from "../services/FakeScore.js"
export * as FeatureExtractor from "../services/node/FeatureExtractor.js"
export * as Generator from "../services/node/Generator.js"
export * as Metrics from "../services/node/Metrics.js"
export * as RealData from "../services/node/RealData.js"
export * as Teacher from "../services/node/Teacher.js"
export * as TeacherCheckpointStore from "../services/node/TeacherCheckpointStore.js"
export * as TrainableWeights from "../services/TrainableWeights.js"

/** @deprecated since 0.2: the Teacher module holds it (`Teacher.fitDenoiser…`). */
export * as DenoiserFit from "../services/node/Teacher.js"
/** @deprecated since 0.2: `Teacher.layerEdmFile`. */
export * as EdmTeacher from "../services/node/Teacher.js"
/** @deprecated since 0.2: `Teacher.parseTeacherSpec`, `Teacher.layerFromSpec`. */
export * as TeacherSpec from "../services/node/Teacher.js"
/** @deprecated since 0.2: `Generator.exportGenerator`. */
export * as GeneratorExport from "../services/node/Generator.js"
/** @deprecated since 0.2: `Generator.loadGenerator`. */
export * as GeneratorLoader from "../services/node/Generator.js"
/** @deprecated since 0.2: `Generator.layerFromExport`. */
export * as GeneratorInit from "../services/node/Generator.js"
/** @deprecated since 0.2: `Dataset.layer` (MNIST). */
export * as MnistDataset from "../services/node/Dataset.js"
/** @deprecated since 0.2: `Metrics.layerImages…`. */
export * as ImageMetrics from "../services/node/Metrics.js"
/** @deprecated since 0.2: `Metrics.parseReferenceSpec`, `Metrics.layerFromReference`. */
export * as ReferenceSpec from "../services/node/Metrics.js"
