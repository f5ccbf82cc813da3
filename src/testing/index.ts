/**
 * sid-ts/testing: fast-check arbitraries and Monte Carlo checks for property tests of score-distillation code
 * (docs/algorithm.md §5 identities, §4, §10 exact teachers).
 *
 * @module sid-ts/testing
 */
export * from "./Arbitraries.js"
export * from "./MonteCarloCheck.js"
