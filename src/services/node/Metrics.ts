/**
 * Metrics whose reference is read on Node: the `--reference` spec of the command line (`parseReferenceSpec`,
 * `layerFromReference`) and MNIST-FID against the committed LeNet. Re-exports the portable `services/Metrics.ts`
 * (the service, mixture metrics, image metrics over any `Dataset` and `FeatureExtractor`).
 *
 * @module
 */
export * from "../Metrics.js"

export * from "./internal/referenceSpec.js"
