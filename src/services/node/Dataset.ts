/**
 * MNIST as a `Dataset` on Node (the `mnist` package, loaded when the layer is built). Re-exports the portable
 * `services/Dataset.ts` (the service and its error).
 *
 * @module
 */
export * from "../Dataset.js"

export * from "./internal/mnistDataset.js"
