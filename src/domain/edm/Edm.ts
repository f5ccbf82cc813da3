/**
 * EDM constants shared by the schedules, the preconditioning and the losses.
 *
 * Maths: `docs/algorithm.md` §2.1 (NVlabs/edm `generate.py`, `training/loss.py`, `training/networks.py`).
 *
 * @module
 */

/**
 * Smallest noise level of the ρ-schedule (docs/algorithm.md §2.1).
 *
 * @since 0.1.0
 * @category constants
 */
export const SIGMA_MIN = 0.002

/**
 * Largest noise level of the ρ-schedule (docs/algorithm.md §2.1).
 *
 * @since 0.1.0
 * @category constants
 */
export const SIGMA_MAX = 80

/**
 * Curvature of the ρ-schedule (docs/algorithm.md §2.1).
 *
 * @since 0.1.0
 * @category constants
 */
export const RHO = 7

/**
 * Standard deviation of the data that EDM preconditioning assumes (docs/algorithm.md §2.1).
 *
 * @since 0.1.0
 * @category constants
 */
export const SIGMA_DATA = 0.5

/**
 * Mean of ln σ for the log-normal training noise (docs/algorithm.md §2.1, `P_mean`).
 *
 * @since 0.1.0
 * @category constants
 */
export const P_MEAN = -1.2

/**
 * Standard deviation of ln σ for the log-normal training noise (docs/algorithm.md §2.1, `P_std`).
 *
 * @since 0.1.0
 * @category constants
 */
export const P_STD = 1.2

/**
 * Fixed input noise level of the SiD one-step generator (docs/algorithm.md §6, `--init_sigma`).
 *
 * @since 0.1.0
 * @category constants
 */
export const SIGMA_INIT = 2.5

/**
 * Upper end of the generator-loss time, in thousandths (docs/algorithm.md §8.1, `--tmax`).
 *
 * @since 0.1.0
 * @category constants
 */
export const TMAX = 800
