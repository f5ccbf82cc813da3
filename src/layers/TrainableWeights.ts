/**
 * Scoped construction of {@link TrainableWeights}: variables and optimiser slots created on acquisition, disposed on
 * release.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, type Scope } from "effect"
import { countNonFinite, globalNorm, sanitizeGradients } from "../domain/Gradients.js"
import type { Optimizer } from "../domain/Optimizer.js"
import { compareShapes, type Parameters, shapesMatch, shapesOf } from "../domain/Parameters.js"
import type { StepStatistics, TrainableWeights } from "../services/TrainableWeights.js"

let instances = 0

const variablesLike = (params: Parameters, zero: boolean, scope: string): Record<string, tf.Variable> =>
  Object.fromEntries(
    Object.keys(params).sort().map((name) => {
      const p = params[name]!
      const variable = tf.tidy(() => tf.variable(zero ? tf.zerosLike(p) : tf.clone(p), !zero, `${scope}/${name}`))
      return [name, variable] as const
    })
  )

const assignAll = (target: Readonly<Record<string, tf.Variable>>, source: Parameters, what: string): void => {
  const mismatch = compareShapes(shapesOf(target), shapesOf(source))
  if (!shapesMatch(mismatch)) {
    throw new Error(
      `${what} does not fit: missing [${mismatch.missing}], unexpected [${mismatch.unexpected}], ` +
        `mis-shaped [${mismatch.misShaped.map((m) => m.name)}]`
    )
  }
  for (const [name, v] of Object.entries(target)) v.assign(source[name]!)
}

/** Variables holding a copy of `initial`, zero optimiser slots, step 0; all disposed when the scope closes. */
export const makeTrainableWeights = (
  initial: Parameters,
  optimizer: Optimizer
): Effect.Effect<TrainableWeights, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const scope = `sid-ts/trainable-${instances++}`
      return {
        variables: variablesLike(initial, false, `${scope}/params`),
        slots: Object.fromEntries(
          optimizer.slotNames.map((slot) => [slot, variablesLike(initial, true, `${scope}/${slot}`)] as const)
        )
      }
    }),
    (s) =>
      Effect.sync(() => tf.dispose([...Object.values(s.variables), ...Object.values(s.slots).flatMap((v) => Object.values(v))]))
  ).pipe(
    Effect.map(({ slots, variables }) => {
      let step = 0
      const list = Object.keys(variables).sort().map((n) => variables[n]!)
      const applyGradients = (byVariable: Parameters): StepStatistics => {
        const grads: Record<string, tf.Tensor> = {}
        for (const [name, variable] of Object.entries(variables)) {
          const g = byVariable[variable.name]
          if (g !== undefined) grads[name] = g
        }
        const [norm, bad] = tf.tidy(() => [globalNorm(grads), countNonFinite(grads)])
        const gradNorm = norm!.dataSync()[0]!
        const nonFinite = bad!.dataSync()[0]!
        tf.dispose([norm!, bad!])
        tf.tidy(() => {
          const next = optimizer.update(variables, sanitizeGradients(grads), { step, slots })
          for (const name of Object.keys(variables)) variables[name]!.assign(next.params[name]!)
          for (const [slot, vars] of Object.entries(slots)) {
            for (const [name, v] of Object.entries(vars)) v.assign(next.state.slots[slot]![name]!)
          }
          step = next.state.step
        })
        return { gradNorm, nonFinite }
      }
      return {
        variables,
        list,
        optimizer,
        applyGradients,
        optimizerState: () => ({ step, slots }),
        restore: (state) => {
          assignAll(variables, state.params, "parameters")
          for (const [slot, vars] of Object.entries(slots)) {
            const source = state.optimizer.slots[slot]
            if (source === undefined) throw new Error(`optimizer slot "${slot}" is missing`)
            assignAll(vars, source, `optimizer slot "${slot}"`)
          }
          step = state.optimizer.step
        }
      } satisfies TrainableWeights
    })
  )
