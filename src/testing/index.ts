/**
 * sid-ts/testing: fast-check arbitraries and Monte Carlo checks for property tests of score-distillation code
 * (spec §4.2 identities, §10 exact teachers).
 *
 * @module
 */
export * from "./Arbitraries.js"
export * from "./MonteCarloCheck.js"
