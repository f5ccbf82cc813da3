/**
 * The reference denoiser of docs/engines.md §4 is the library's own small UNet (`src/domain/nn/UNet.ts` with its
 * defaults), trained as the library trains it: stem conv3×3 C→32; ResBlock(32→32) @H, avgPool2, ResBlock(32→64) @H/2,
 * avgPool2, ResBlock(64→64) @H/4; nearest ×2, concat, ResBlock(128→64) @H/2; nearest ×2, concat, ResBlock(96→32) @H;
 * GroupNorm, SiLU, conv3×3 32→C; σ-embedding sinusoidal 32 → Linear 128 → SiLU → Linear 128. 365,699 parameters for
 * C = 3 and 364,545 for C = 1. `bench/vs_torch.py` builds the same network in PyTorch (NCHW), so
 * `bench:vs-torch` compares the same work; the library's fused kernels (dense, conv + bias, GroupNorm + SiLU, Adam)
 * count as they do in training.
 *
 * @since 0.1.0
 */
import type * as Tf from "@tensorflow/tfjs"
import { type AdamConfig, type AdamState, adamUpdate, initAdam } from "../src/domain/optim/Adam.js"
import { P_MEAN, P_STD } from "../src/domain/edm/Edm.js"
import { applyUNet, initUNet, type UNetSpec, unetSpec } from "../src/domain/nn/UNet.js"
import type { Shape } from "./Support.js"

type TF = typeof Tf

const GROUPS = 8
const EMB = 128
const FREQS = 16

/**
 * A built denoiser: its variables, the forward pass `(x, σ) ↦ x̂₀` and the parameter count.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReferenceDenoiser {
  readonly variables: ReadonlyArray<Tf.Variable>
  readonly parameterCount: number
  readonly apply: (x: Tf.Tensor4D, sigma: Tf.Tensor1D) => Tf.Tensor4D
  readonly dispose: () => void
}

/**
 * Expected parameter counts (docs/engines.md §4).
 *
 * @since 0.1.0
 * @category constants
 */
export const expectedParameterCount = (channels: number): number => (channels === 3 ? 365_699 : channels === 1 ? 364_545 : NaN)

/**
 * Forward convolution FLOPs (2·MAC, conv layers including 1×1 skips) of one forward pass (docs/engines.md §4: 7.126
 * GFLOP for
 * 32×32×3 at batch 32, 5.398 GFLOP for 28×28×1).
 *
 * @since 0.1.0
 * @category utils
 */
export const convFlops = (height: number, width: number, channels: number, batch: number): number => {
  let mac = 0
  const conv = (h: number, w: number, k: number, cin: number, cout: number) => {
    mac += h * w * k * k * cin * cout
  }
  const res = (h: number, w: number, cin: number, cout: number) => {
    conv(h, w, 3, cin, cout)
    conv(h, w, 3, cout, cout)
    if (cin !== cout) conv(h, w, 1, cin, cout)
  }
  const [h2, w2] = [Math.floor(height / 2), Math.floor(width / 2)]
  const [h4, w4] = [Math.floor(h2 / 2), Math.floor(w2 / 2)]
  conv(height, width, 3, channels, 32)
  res(height, width, 32, 32)
  res(h2, w2, 32, 64)
  res(h4, w4, 64, 64)
  res(h2, w2, 128, 64)
  res(height, width, 96, 32)
  conv(height, width, 3, 32, channels)
  return 2 * mac * batch
}

/**
 * The library's small UNet (`domain/nn/UNet.ts`) with its defaults (`unetSpec`): stem 32 channels, channel
 * multipliers [1, 2, 2], one residual block per resolution, GroupNorm with 8 groups, σ-embedding 32 → 128; the same
 * 365,699 / 364,545 parameters as the PyTorch twin in `bench/vs_torch.py`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const referenceSpec = (height: number, width: number, channels: number): UNetSpec => {
  const spec = unetSpec([height, width, channels])
  if (spec.baseChannels !== 32 || spec.groups !== GROUPS || spec.embedChannels !== EMB || spec.noiseChannels !== 2 * FREQS) {
    throw new Error("the UNet defaults no longer match the reference network of bench/vs_torch.py")
  }
  return spec
}

/**
 * Builds the library's UNet in the reference configuration ({@link referenceSpec}) as engine variables (He-normal
 * convolutions, zero biases, unit GroupNorm scales: `initUNet`), with `tf` from the engine.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeReferenceDenoiser = (tf: TF, channels: number, seed = 0, height = 32, width = 32): ReferenceDenoiser => {
  const spec = referenceSpec(height, width, channels)
  const initial = initUNet(spec, seed)
  const named: Record<string, Tf.Variable> = {}
  for (const [name, t] of Object.entries(initial)) {
    named[name] = tf.variable(t, true)
    t.dispose()
  }
  const variables = Object.values(named)
  const apply = (x: Tf.Tensor4D, sigma: Tf.Tensor1D): Tf.Tensor4D =>
    tf.tidy(() => applyUNet(spec, named, x, tf.div(tf.log(sigma), 4) as Tf.Tensor1D))
  return {
    variables,
    parameterCount: variables.reduce((n, t) => n + t.size, 0),
    apply,
    dispose: () => variables.forEach((t) => t.dispose())
  }
}

/**
 * The benchmarked training task (docs/engines.md §4): the reference denoiser on one fixed batch x₀ ~ N(0, 0.5²) of
 * `shape`, the
 * EDM loss at log-normal σ with fresh σ and noise every call (seeded), the library's Adam at lr 1e-4, β (0.9, 0.999),
 * ε 1e-8 (PyTorch's defaults). Checks the parameter count.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReferenceTraining {
  readonly net: ReferenceDenoiser
  /** The loss at fresh σ and noise. */
  readonly loss: () => Tf.Scalar
  /** One Adam step; returns the loss it minimised (read off the engine, so the step has finished). */
  readonly step: () => number
  readonly dispose: () => void
}

/**
 * Builds {@link ReferenceTraining} on the engine `tf`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeReferenceTraining = (tf: TF, shape: Shape): ReferenceTraining => {
  const { batch, channels, height, width } = shape
  const net = makeReferenceDenoiser(tf, channels, 1, height, width)
  const expected = expectedParameterCount(channels)
  if (!Number.isNaN(expected) && net.parameterCount !== expected) {
    net.dispose()
    throw new Error(`parameter count ${net.parameterCount} != ${expected} (docs/engines.md §4)`)
  }
  const x0 = tf.randomNormal([batch, height, width, channels], 0, 0.5, "float32", 7) as Tf.Tensor4D
  const adam: AdamConfig = { learningRate: 1e-4, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 }
  const names = net.variables.map((_, i) => `p${i}`)
  const named = <T>(xs: ReadonlyArray<T>): Record<string, T> => Object.fromEntries(xs.map((x, i) => [names[i]!, x]))
  let state: AdamState = initAdam(named(net.variables))
  let seed = 100
  const loss = () => {
    const sigma = tf.exp(tf.add(tf.mul(tf.randomNormal([batch], 0, 1, "float32", seed++), P_STD), P_MEAN)) as Tf.Tensor1D
    const s4 = sigma.reshape([batch, 1, 1, 1])
    const noisy = tf.add(x0, tf.mul(s4, tf.randomNormal(x0.shape, 0, 1, "float32", seed++)))
    const input = tf.div(noisy, tf.sqrt(tf.add(tf.square(s4), 1))) as Tf.Tensor4D
    return tf.mean(tf.squaredDifference(net.apply(input, sigma), x0)) as Tf.Scalar
  }
  const step = () => {
    const { grads, value } = tf.variableGrads(loss, net.variables as Array<Tf.Variable>)
    const next = adamUpdate(adam, named(net.variables), named(net.variables.map((v) => grads[v.name]!)), state)
    net.variables.forEach((v, i) => v.assign(next.params[names[i]!]!))
    tf.dispose([Object.values(grads), Object.values(next.params), Object.values(state.m), Object.values(state.v)])
    state = next.state
    const cost = value.dataSync()[0]!
    value.dispose()
    return cost
  }
  return {
    net,
    loss,
    step,
    dispose: () => {
      tf.dispose([Object.values(state.m), Object.values(state.v)])
      x0.dispose()
      net.dispose()
    }
  }
}
