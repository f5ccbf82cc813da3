/**
 * The reference convolutional denoiser of docs/engines.md §4, built from raw TF.js ops in NHWC (NVlabs/edm and the
 * PyTorch peer use NCHW): stem conv3×3 C→32; ResBlock(32→32) @H, avgPool2, ResBlock(32→64) @H/2, avgPool2,
 * ResBlock(64→64) @H/4; nearest ×2, concat, ResBlock(128→64) @H/2; nearest ×2, concat, ResBlock(96→32) @H;
 * GroupNorm, SiLU, conv3×3 32→C. ResBlock: GN(8, affine) → SiLU → conv3×3 → + Linear(emb) → GN → SiLU → conv3×3,
 * plus a 1×1 skip when Cin ≠ Cout. σ-embedding: sinusoidal 32 → Linear 128 → SiLU → Linear 128.
 * 365,699 parameters for C = 3 and 364,545 for C = 1. GroupNorm + SiLU and Adam are the library's own
 * (src/domain/nn/GroupNorm.ts, src/domain/optim/Adam.ts), and so are the convolutions and linear layers (src/domain/nn/Conv2d.ts, Dense.ts), so an engine's
 * fused kernels for them count, as they do in training.
 *
 * @since 0.1.0
 */
import type * as Tf from "@tensorflow/tfjs"
import { type AdamConfig, type AdamState, adamUpdate, initAdam } from "../src/domain/optim/Adam.js"
import { P_MEAN, P_STD } from "../src/domain/edm/Edm.js"
import { groupNorm } from "../src/domain/nn/GroupNorm.js"
import { conv2dBias } from "../src/domain/nn/Conv2d.js"
import { dense, type DenseActivation } from "../src/domain/nn/Dense.js"
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
 * Builds the denoiser's variables (He-normal convs, zero biases, unit GroupNorm scales) with `tf` from the engine.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeReferenceDenoiser = (tf: TF, channels: number, seed = 0): ReferenceDenoiser => {
  const variables: Array<Tf.Variable> = []
  let nextSeed = seed
  const v = (t: Tf.Tensor): Tf.Variable => {
    const variable = tf.variable(t, true)
    t.dispose()
    variables.push(variable)
    return variable
  }
  const weight = (shape: Array<number>, fanIn: number) =>
    v(tf.randomNormal(shape, 0, Math.sqrt(2 / fanIn), "float32", nextSeed++))
  const zeros = (n: number) => v(tf.zeros([n]))
  const ones = (n: number) => v(tf.ones([n]))

  const conv = (k: number, cin: number, cout: number) => ({ w: weight([k, k, cin, cout], k * k * cin), b: zeros(cout) })
  const linear = (cin: number, cout: number) => ({ w: weight([cin, cout], cin), b: zeros(cout) })
  const norm = (c: number) => ({ gamma: ones(c), beta: zeros(c) })
  const block = (cin: number, cout: number) => ({
    n1: norm(cin),
    c1: conv(3, cin, cout),
    emb: linear(EMB, cout),
    n2: norm(cout),
    c2: conv(3, cout, cout),
    skip: cin === cout ? undefined : conv(1, cin, cout)
  })

  const emb1 = linear(2 * FREQS, EMB)
  const emb2 = linear(EMB, EMB)
  const stem = conv(3, channels, 32)
  const r1 = block(32, 32)
  const r2 = block(32, 64)
  const r3 = block(64, 64)
  const r4 = block(128, 64)
  const r5 = block(96, 32)
  const outNorm = norm(32)
  const out = conv(3, 32, channels)

  type Conv = { readonly w: Tf.Variable; readonly b: Tf.Variable }
  type Norm = { readonly gamma: Tf.Variable; readonly beta: Tf.Variable }
  type Block = ReturnType<typeof block>

  const applyConv = (x: Tf.Tensor4D, c: Conv) => conv2dBias(x, c.w as Tf.Tensor4D, c.b, 1, "same")
  const applyLinear = (x: Tf.Tensor2D, l: Conv, activation: DenseActivation = "linear"): Tf.Tensor2D =>
    dense(x, l.w as Tf.Tensor2D, l.b, activation)
  const normSilu = (x: Tf.Tensor4D, n: Norm): Tf.Tensor4D => groupNorm(x, GROUPS, n.gamma, n.beta, 1e-5, "silu")
  const resBlock = (x: Tf.Tensor4D, e: Tf.Tensor2D, p: Block): Tf.Tensor4D => {
    const cout = p.c1.b.shape[0]!
    let h = applyConv(normSilu(x, p.n1), p.c1)
    h = tf.add(h, applyLinear(e, p.emb).reshape([x.shape[0], 1, 1, cout])) as Tf.Tensor4D
    h = applyConv(normSilu(h, p.n2), p.c2)
    const skip = p.skip === undefined ? x : applyConv(x, p.skip)
    return tf.add(h, skip)
  }
  const up = (x: Tf.Tensor4D) => tf.image.resizeNearestNeighbor(x, [x.shape[1] * 2, x.shape[2] * 2])
  const pool = (x: Tf.Tensor4D) => tf.avgPool(x, 2, 2, "valid")

  const apply = (x: Tf.Tensor4D, sigma: Tf.Tensor1D): Tf.Tensor4D => {
    const cNoise = tf.div(tf.log(sigma), 4).reshape([-1, 1])
    const freqs = tf.exp(tf.mul(tf.range(0, FREQS), -Math.log(10_000) / FREQS)).reshape([1, FREQS])
    const angles = tf.mul(cNoise, freqs)
    const sinusoid = tf.concat([tf.sin(angles), tf.cos(angles)], 1) as Tf.Tensor2D
    const e = applyLinear(applyLinear(sinusoid, emb1, "silu"), emb2)
    const h0 = applyConv(x, stem)
    const s1 = resBlock(h0, e, r1)
    const s2 = resBlock(pool(s1), e, r2)
    const h3 = resBlock(pool(s2), e, r3)
    const h4 = resBlock(tf.concat([up(h3), s2], 3) as Tf.Tensor4D, e, r4)
    const h5 = resBlock(tf.concat([up(h4), s1], 3) as Tf.Tensor4D, e, r5)
    return applyConv(normSilu(h5, outNorm), out)
  }

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
  const net = makeReferenceDenoiser(tf, channels, 1)
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
