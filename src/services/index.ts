/**
 * sid-ts/services: the service tags (`Context.Tag`) a pipeline is assembled from, with their typed errors.
 *
 * @module
 */
export * from "./CheckpointStore.js"
export * from "./DataFreeSampler.js"
export * from "./DistillationLoss.js"
export * from "./Engine.js"
export * from "./FakeScore.js"
export * from "./Generator.js"
export * from "./Metrics.js"
export * from "./Teacher.js"
export * from "./TrainableWeights.js"
export * from "./Dataset.js"
export * from "./TeacherCheckpointStore.js"
export * from "./FeatureExtractor.js"
export * from "./RealData.js"
