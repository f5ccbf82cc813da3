/**
 * EDM's own networks (NVlabs/edm SongUNet and DhariwalUNet) as pure functions of state-dict-named parameters.
 *
 * @module
 */
export * as Config from "./NetworkConfig.js"
export * as DhariwalUNet from "./DhariwalUNet.js"
export * as Layers from "./Blocks.js"
export * as SongUNet from "./SongUNet.js"
export * as StateDict from "./StateDict.js"
