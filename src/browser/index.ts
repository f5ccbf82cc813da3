/**
 * `sid-ts/browser/distill`: distillation in a web page or Web Worker. The domain (maths), the service tags, the
 * distillation stream and evaluation, the engines a page can run (`webgpu`, `wasm`, `cpu`), checkpoint stores in
 * IndexedDB and in memory, the 2-D mixture teachers and metrics, and the generator's export. Nothing in its import
 * graph comes from Node (a test walks it).
 *
 * ```ts
 * import { BrowserStore, BrowserRun, BrowserEngine, Distill, Config } from "sid-ts/browser/distill"
 * const config = Config.DistillConfig.make({ ...Config.DISTILL_PRESETS.lowDimensional.config, steps: 1000 })
 * const run = BrowserRun.layer(config, { teacher, metrics, checkpoints: BrowserStore.layerIndexedDb("ring8") })
 * Distill.distill(config, { resume: true }).pipe(Stream.provideLayer(Layer.provide(run, BrowserEngine.engineLayer("wasm"))))
 * ```
 *
 * @module
 */
export * as Domain from "../domain/index.js"
export * as Config from "../domain/config/DistillConfig.js"
export * as GaussianMixture from "../domain/data/GaussianMixture.js"
export * from "../services/index.js"
export * as MixtureTeacher from "../services/Teacher.js"
export * as MixtureMetrics from "../services/Metrics.js"
export * as Distillation from "../layers/Distillation.js"
export * as Distill from "../pipeline/Distill.js"
export * as Evaluation from "../pipeline/Evaluation.js"
export * as Checkpointing from "../pipeline/Checkpointing.js"
export * as Iteration from "../pipeline/Iteration.js"
export * as BrowserEngine from "./Engine.js"
export * as BrowserStore from "./CheckpointStore.js"
export * as BrowserRun from "./Distillation.js"
export { GeneratorFileError, loadOneStepGenerator } from "./OneStepGenerator.js"
export type { OneStepGenerator } from "./OneStepGenerator.js"
