/**
 * sid-ts/layers: implementations of the services as scoped layers, one namespace per service
 * (`Teacher.layerFile(path)`, `Engine.wasm`, `Distillation.layer(config, parts)`, …).
 *
 * @module
 */
export * as CheckpointStore from "./CheckpointStore.js"
export * as DataFreeSampler from "./DataFreeSampler.js"
export * as DenoiserFit from "./DenoiserFit.js"
export * as Distillation from "./Distillation.js"
export * as DistillationLoss from "./DistillationLoss.js"
export * as EdmTeacher from "./EdmTeacher.js"
export * as Engine from "./Engine.js"
export * as EventLoop from "./EventLoop.js"
export * as FakeScore from "./FakeScore.js"
export * as Generator from "./Generator.js"
export * as GeneratorExport from "./GeneratorExport.js"
export * as GeneratorLoader from "./GeneratorLoader.js"
export * as Metrics from "./Metrics.js"
export * as Teacher from "./Teacher.js"
export * as TeacherSpec from "./TeacherSpec.js"
export * as TrainableWeights from "./TrainableWeights.js"
export * as MnistDataset from "./MnistDataset.js"
export * as TeacherCheckpointStore from "./TeacherCheckpointStore.js"
export * as FeatureExtractor from "./FeatureExtractor.js"
export * as ImageMetrics from "./ImageMetrics.js"
export * as ReferenceSpec from "./ReferenceSpec.js"
export * as RealData from "./RealData.js"
export * as GeneratorInit from "./GeneratorInit.js"
