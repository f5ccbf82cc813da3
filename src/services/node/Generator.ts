/**
 * The generator's files on Node: exporting a checkpoint's generator (`exportGenerator`, `sid export`), loading an
 * exported one (`loadGenerator`), and starting a run's generator from one (`layerFromExport`, SiD²A). Re-exports the
 * portable `services/Generator.ts` (the service and its layer).
 *
 * @module
 */
export * from "../Generator.js"

export * from "./internal/generatorExport.js"

export * from "./internal/generatorLoader.js"

export * from "./internal/generatorInit.js"
