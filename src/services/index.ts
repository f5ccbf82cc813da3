/**
 * sid-ts/services: the service tags (`Context.Tag`) a pipeline is assembled from, with their typed errors.
 * Each service's module (`sid-ts/services/<Name>`, or the `layers` namespaces) also holds its layer constructors.
 *
 * @module sid-ts/services
 */
export { CHECKPOINT_FORMAT, CheckpointManifest, type StoredCheckpoint, type Checkpoint, DEFAULT_KEEP, KeepCount, CheckpointProblem, CheckpointError, CheckpointStatus, CheckpointEntry, BEST_FORMAT, BestScore, type ScoreOffer, type BestOutcome, type BestCheckpoint, type RecoveryReport, type CheckpointStoreOf, type CheckpointStoreShape, CheckpointStore } from "./CheckpointStore.js"
export { type Draws, SamplerState, type DataFreeSamplerShape, DataFreeSampler } from "./DataFreeSampler.js"
export { DistillationLoss } from "./DistillationLoss.js"
export { EngineName, EngineFacts, type EngineShape, Engine, withEngine, withEngineEffect, EngineNameConfig, EnginePackageNotInstalled, EngineNativeAddonMissing, EngineSharedLibraryMissing, EngineGpuNotVisible, EngineNativeKernelsNotBuilt, EngineInitFailed, EngineConflict, EngineNotActive, type EngineError } from "../engine/Engine.js"
export { type FakeScoreShape, FakeScore } from "./FakeScore.js"
export { type GeneratorWeights, type GeneratorShape, Generator } from "./Generator.js"
export { SampleMetrics, MetricsError, type MetricsShape, Metrics } from "./Metrics.js"
export { type TeacherWeights, type TeacherShape, Teacher, TeacherError } from "./Teacher.js"
export { type StepStatistics, type ApplyGradientsOptions, type TrainableWeights } from "./TrainableWeights.js"
export { type DatasetSplit, type DatasetShape, Dataset, DatasetError } from "./Dataset.js"
export { TEACHER_CHECKPOINT_FORMAT, StreamStateSchema, TeacherStreams, TeacherCheckpointManifest, type TeacherCheckpoint, type TeacherCheckpointStoreShape, TeacherCheckpointStore } from "./TeacherCheckpointStore.js"
export { FeatureExtractorError, type Extracted, type FeatureExtractorShape, FeatureExtractor } from "./FeatureExtractor.js"
export { type RealBatch, type RealDataShape, RealData, SidaSetupError } from "./RealData.js"
