/**
 * Learning-rate decay for distillation (docs/algorithm.md §9.4): an optional inverse-square-root decay by images seen,
 * the schedule of EDM2 (Karras et al., 2024), wrapped around any optimiser whose learning rate is a setting (Adam,
 * on engine tensors or in host memory). SiD itself trains at constant rates; the decay is off unless asked for.
 *
 * @since 0.2.0
 */
import type { AdamConfig } from "./Adam.js"
import type { Optimizer } from "./Optimizer.js"

/**
 * The factor of the learning rate for the update taken after `step` updates of `batch` images each:
 * 1 / √max(step·batch / refImages, 1) — 1 until `refImages` images, then falling as 1/√images. A non-positive
 * `refImages` is no decay (1 throughout).
 *
 * @since 0.2.0
 * @category utils
 */
export const inverseSqrtDecay = (refImages: number, batch: number) => (step: number): number =>
  refImages <= 0 ? 1 : 1 / Math.sqrt(Math.max((step * batch) / refImages, 1))

/**
 * The optimiser `make(config)` with its learning rate multiplied by `factor(step)` at each update, `step` being the
 * number of updates taken before it (the optimiser state's count, so a resumed run continues the schedule exactly).
 * Both the engine update and the host update (`adamHost`) follow it.
 *
 * @since 0.2.0
 * @category constructors
 */
export const withLearningRateSchedule = (
  make: (config: AdamConfig) => Optimizer,
  config: AdamConfig,
  factor: (step: number) => number,
  label: string
): Optimizer => {
  const base = make(config)
  const at = (step: number): Optimizer => make({ ...config, learningRate: config.learningRate * factor(step) })
  const host = base.host
  return {
    ...base,
    name: `${base.name}, ${label}`,
    update: (params, grads, state) => at(state.step).update(params, grads, state),
    ...(host === undefined ? {} : { host: (step, value, grad, slots) => at(step).host!(step, value, grad, slots) })
  }
}
