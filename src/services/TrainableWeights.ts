/**
 * Trainable weights: a network's parameters as variables together with their Adam state.
 *
 * The generator and the fake score each own one. They are plain objects handed out by scoped layers, which create
 * the variables on acquisition and dispose them on release.
 *
 * @module
 */
import type { Optimizer, OptimizerState, HostUpdate } from "../domain/optim/Optimizer.js"
import * as tf from "@tensorflow/tfjs"
import { Effect, type Scope } from "effect"
import { sanitizeGradients, sanitizeGradientValue } from "../domain/nn/Gradients.js"
import { gradientStatistics } from "../domain/optim/GradientStatistics.js"
import { compareShapes, type Parameters, shapesMatch, shapesOf } from "../domain/nn/Parameters.js"
import { type Engine, withEngineEffect } from "../engine/Engine.js"
import { cacheOnHost, type HostValues, needsAsyncReads, type Reads } from "../domain/data/HostReads.js"

/**
 * Statistics of one optimiser step.
 *
 * @since 0.1.0
 * @category models
 */
export interface StepStatistics {
  /** Global L2 norm of the gradient before sanitisation (NaN when it has non-finite entries). */
  readonly gradNorm: number
  /** Number of NaN/Inf gradient entries that were sanitised (docs/algorithm.md §9.1). */
  readonly nonFinite: number
}

/**
 * Options of {@link TrainableWeights.applyGradients}.
 *
 * @since 0.2.0
 * @category models
 */
export interface ApplyGradientsOptions {
  /** Clip every gradient entry by value to [−clipValue, clipValue] after sanitisation (PyTorch `clip_grad_value_`). */
  readonly clipValue?: number
  /**
   * Statistics the caller measures itself (with `gradientStatistics`, read in its own batched host read): returned as
   * given instead of being computed and read here. Honoured by weights whose optimiser state lives on the engine;
   * host-optimiser weights measure while they read each gradient anyway.
   */
  readonly statistics?: StepStatistics
}

/**
 * Variables, their optimiser state and the optimiser's step count.
 *
 * @since 0.1.0
 * @category models
 */
export interface TrainableWeights {
  /** The parameters, by name. */
  readonly variables: Readonly<Record<string, tf.Variable>>
  /** The parameters in name order, for `tf.variableGrads`. */
  readonly list: ReadonlyArray<tf.Variable>
  /** The optimiser (Adam by default, docs/algorithm.md §9.1). */
  readonly optimizer: Optimizer
  /**
   * Sanitises the gradients (docs/algorithm.md §9.1) and applies one optimiser update. Gradients are keyed by variable name, as
   * `tf.variableGrads(f, list)` returns them; parameters without a gradient are left unchanged. With `clipValue`, every
   * sanitised entry is then clipped to [−clipValue, clipValue] (SiDA's fake score, docs/algorithm.md §13); the statistics are of
   * the gradient as given.
   */
  readonly applyGradients: (grads: Parameters, options?: ApplyGradientsOptions) => StepStatistics
  /** The optimiser's slots and step count, for checkpoints (tensors are the live variables: read, don't dispose). */
  readonly optimizerState: () => OptimizerState
  /** Restores parameters, optimiser slots and step count (from a checkpoint). Names and shapes must match. */
  readonly restore: (state: { readonly params: Parameters; readonly optimizer: OptimizerState }) => void
}

/**
 * The statistics of an optimiser step whose values are still on the engine: the tensors to read (owned by the
 * caller, who disposes them after reading) and how their values make the statistics.
 *
 * @since 0.2.0
 * @category models
 */
export interface PendingStatistics {
  readonly tensors: ReadonlyArray<tf.Tensor>
  readonly finish: (values: HostValues) => StepStatistics
}

/**
 * {@link TrainableWeights.applyGradients} with its host reads left to the caller, for engines that read only
 * asynchronously (`webgpu`) and to batch a step's reads into one: weights whose optimiser state lives on the engine
 * measure the statistics there (`gradientStatistics`, the same figures `applyGradients` reads) and return them
 * unread; host-optimiser weights (which read every gradient and parameter) first have the engine keep host copies
 * of them in one request ({@link cacheOnHost}), then update as `applyGradients` does. Where reads are synchronous
 * (the CPU engines) a read is a copy, so it is `applyGradients` itself: the statistics read at once, the gradients
 * sanitised only when one has a non-finite entry (deferred statistics must sanitise every step, about a hundred
 * kernel dispatches per SiD iteration of the MLP). `grads` are keyed by variable name (as `tf.variableGrads` returns
 * them). The same update as `applyGradients`.
 *
 * @since 0.2.0
 * @category utils
 */
export function* applyGradientsReads(
  weights: TrainableWeights,
  grads: Parameters,
  options: Omit<ApplyGradientsOptions, "statistics"> = {}
): Reads<PendingStatistics> {
  if (!needsAsyncReads()) {
    const stats = weights.applyGradients(grads, options)
    return { tensors: [], finish: () => stats }
  }
  if (weights.optimizer.host !== undefined) {
    const used = weights.list.filter((v) => grads[v.name] !== undefined)
    yield* cacheOnHost([...used.map((v) => grads[v.name]!), ...used])
    const stats = weights.applyGradients(grads, options)
    return { tensors: [], finish: () => stats }
  }
  const byName: Record<string, tf.Tensor> = {}
  for (const [name, variable] of Object.entries(weights.variables)) {
    const g = grads[variable.name]
    if (g !== undefined) byName[name] = g
  }
  const { nonFinite: bad, norm } = gradientStatistics(byName)
  try {
    weights.applyGradients(grads, { ...options, statistics: { gradNorm: 0, nonFinite: 0 } })
  } catch (error) {
    tf.dispose([norm, bad])
    throw error
  }
  return { tensors: [norm, bad], finish: ([n, b]) => ({ gradNorm: n![0]!, nonFinite: b![0]! }) }
}

/*
 * Layers.
 *
 * Scoped construction of {@link TrainableWeights}: variables and optimiser slots created on acquisition, disposed on
 * release.
 */

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

/**
 * Variables holding a copy of `initial`, zero optimiser slots, step 0; all disposed when the scope closes (tensors,
 * so it needs the engine). With a host
 * optimiser (`optimizer.host`, e.g. `adamHost`) the slots are `Float32Array`s outside the engine and each step updates
 * one parameter at a time (see `makeHostWeights`); otherwise the slots are variables and one tensor update
 * covers all parameters.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeTrainableWeights = (
  initial: Parameters,
  optimizer: Optimizer
): Effect.Effect<TrainableWeights, never, Scope.Scope | Engine> =>
  withEngineEffect(
    optimizer.host === undefined ? makeEngineWeights(initial, optimizer) : makeHostWeights(initial, optimizer, optimizer.host)
  )

const makeEngineWeights = (
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
      const applyGradients = (byVariable: Parameters, options: ApplyGradientsOptions = {}): StepStatistics => {
        const grads: Record<string, tf.Tensor> = {}
        for (const [name, variable] of Object.entries(variables)) {
          const g = byVariable[variable.name]
          if (g !== undefined) grads[name] = g
        }
        let { gradNorm, nonFinite } = options.statistics ?? { gradNorm: 0, nonFinite: 0 }
        if (options.statistics === undefined) {
          const { nonFinite: bad, norm } = gradientStatistics(grads)
          gradNorm = norm.dataSync()[0]!
          nonFinite = bad.dataSync()[0]!
          tf.dispose([norm, bad])
        }
        tf.tidy(() => {
          const clip = options.clipValue
          // Sanitising changes only non-finite entries: with none, the gradients are already clean.
          // (Only when measured here: a caller that passes its own statistics reads them later.)
          const clean = options.statistics === undefined && nonFinite === 0 ? grads : sanitizeGradients(grads)
          const clipped = clip === undefined
            ? clean
            : Object.fromEntries(Object.entries(clean).map(([n, g]) => [n, tf.clipByValue(g, -clip, clip)]))
          const next = optimizer.update(variables, clipped, { step, slots })
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

/**
 * Trainable weights whose optimiser state lives in host memory (docs/algorithm.md §9.1): the engine holds only the parameters and,
 * during a step, one parameter's update. A step reads each gradient, sanitises it as `sanitizeGradient` does (NaN → 0,
 * ±Inf → ±1e5, finite values untouched), applies `host` to a copy of the parameter's values and its slots, and
 * assigns the result. The gradient norm is accumulated in float64. `optimizerState().slots` materialises the slots as tensors on demand
 * (for a checkpoint); they stay owned by these weights and are disposed at the next step, restore or release.
 */
const makeHostWeights = (
  initial: Parameters,
  optimizer: Optimizer,
  host: HostUpdate
): Effect.Effect<TrainableWeights, never, Scope.Scope> => {
  let materialised: Record<string, Record<string, tf.Tensor>> | undefined
  const dropMaterialised = () => {
    if (materialised !== undefined) tf.dispose(Object.values(materialised).flatMap((t) => Object.values(t)))
    materialised = undefined
  }
  return Effect.acquireRelease(
    Effect.sync(() => {
      const scope = `sid-ts/trainable-${instances++}`
      const variables = variablesLike(initial, false, `${scope}/params`)
      const slots: Record<string, Record<string, Float32Array>> = Object.fromEntries(
        optimizer.slotNames.map((slot) => [
          slot,
          Object.fromEntries(Object.entries(variables).map(([n, v]) => [n, new Float32Array(v.size)]))
        ] as const)
      )
      return { variables, slots }
    }),
    (s) =>
      Effect.sync(() => {
        dropMaterialised()
        tf.dispose(Object.values(s.variables))
      })
  ).pipe(
    Effect.map(({ slots, variables }) => {
      let step = 0
      const list = Object.keys(variables).sort().map((n) => variables[n]!)
      const scratch = new Float32Array(Math.max(0, ...list.map((v) => v.size)))
      const slotsOf = (name: string): Record<string, Float32Array> =>
        Object.fromEntries(Object.entries(slots).map(([slot, arrays]) => [slot, arrays[name]!]))
      const applyGradients = (byVariable: Parameters, options: ApplyGradientsOptions = {}): StepStatistics => {
        dropMaterialised()
        const clip = options.clipValue
        let sumSquares = 0
        let nonFinite = 0
        for (const name of Object.keys(variables).sort()) {
          const variable = variables[name]!
          const g = byVariable[variable.name]
          if (g === undefined) continue
          const raw = g.dataSync()
          const grad = scratch.subarray(0, raw.length)
          for (let i = 0; i < raw.length; i++) {
            const x = raw[i]!
            sumSquares += x * x
            if (!Number.isFinite(x)) nonFinite++
            const clean = sanitizeGradientValue(x)
            grad[i] = clip === undefined ? clean : Math.min(clip, Math.max(-clip, clean))
          }
          const value = Float32Array.from(variable.dataSync() as Float32Array)
          host(step, value, grad, slotsOf(name))
          tf.tidy(() => variable.assign(tf.tensor(value, variable.shape, "float32")))
        }
        step += 1
        return { gradNorm: Math.sqrt(sumSquares), nonFinite }
      }
      const optimizerState = (): OptimizerState => ({
        step,
        get slots() {
          if (materialised === undefined) {
            materialised = Object.fromEntries(
              Object.entries(slots).map(([slot, arrays]) => [
                slot,
                Object.fromEntries(
                  Object.entries(variables).map(([n, v]) => [n, tf.tensor(arrays[n]!.slice(), v.shape, "float32")])
                )
              ])
            )
          }
          return materialised
        }
      })
      return {
        variables,
        list,
        optimizer,
        applyGradients,
        optimizerState,
        restore: (state) => {
          dropMaterialised()
          const shapes = shapesOf(variables)
          for (const slot of Object.keys(slots)) {
            const source = state.optimizer.slots[slot]
            if (source === undefined) throw new Error(`optimizer slot "${slot}" is missing`)
            const mismatch = compareShapes(shapes, shapesOf(source))
            if (!shapesMatch(mismatch)) {
              throw new Error(
                `optimizer slot "${slot}" does not fit: missing [${mismatch.missing}], unexpected [${mismatch.unexpected}], ` +
                  `mis-shaped [${mismatch.misShaped.map((m) => m.name)}]`
              )
            }
          }
          assignAll(variables, state.params, "parameters")
          for (const [slot, arrays] of Object.entries(slots)) {
            const source = state.optimizer.slots[slot]!
            for (const [n, array] of Object.entries(arrays)) array.set(source[n]!.dataSync() as Float32Array)
          }
          step = state.optimizer.step
        }
      } satisfies TrainableWeights
    })
  )
}
