/**
 * Seeded, splittable random streams with a serialisable state.
 *
 * Each stream is a xoshiro128** generator (Blackman & Vigna) whose 128-bit state is four uint32 words, seeded through
 * splitmix32 so that nearby seeds give unrelated streams. `split(seed, label)` derives an independent stream per
 * purpose (latents, σ draws, noise, …), so adding a draw to one purpose never shifts another's numbers. The state is
 * plain data: checkpoints store it and a resumed run draws exactly the numbers the uninterrupted run would have.
 *
 * All functions are pure: they take a state and return new values plus the next state.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"

/**
 * The four 32-bit words of a xoshiro128** state (never all zero). Its schema, as checkpoints store it, is
 * `StreamState` in `domain/config/Records.ts`.
 *
 * @since 0.1.0
 * @category models
 */
export type StreamState = readonly [number, number, number, number]

const splitmix32 = (x: number): [number, number] => {
  const next = (x + 0x9e3779b9) >>> 0
  let z = next
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
  return [next, (z ^ (z >>> 16)) >>> 0]
}

const hashLabel = (label: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193) >>> 0
  return h
}

/**
 * A stream seeded from an integer seed and an optional label naming its purpose.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeStream = (seed: number, label = ""): StreamState => {
  let x = (Math.trunc(seed) ^ hashLabel(label)) >>> 0
  x = (x ^ Math.imul(Math.floor(Math.abs(seed) / 0x100000000) >>> 0, 0x27d4eb2d)) >>> 0
  const words: Array<number> = []
  for (let i = 0; i < 4; i++) {
    const [next, out] = splitmix32(x)
    x = next
    words.push(out)
  }
  if (!words.some((w) => w !== 0)) words[0] = 1
  return [words[0]!, words[1]!, words[2]!, words[3]!]
}

/**
 * An independent child stream, derived from the parent's current state and a label. The parent is unchanged.
 *
 * @since 0.1.0
 * @category utils
 */
export const split = (state: StreamState, label: string): StreamState =>
  makeStream(((state[0] ^ Math.imul(state[1], 0x9e3779b1) ^ state[2] ^ state[3]) >>> 0) + hashLabel(label), label)

const rotl = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0

/**
 * `n` uniform uint32 words and the next state.
 *
 * @since 0.1.0
 * @category utils
 */
export const nextUint32 = (state: StreamState, n: number): { readonly values: Uint32Array; readonly state: StreamState } => {
  let [s0, s1, s2, s3] = state
  const values = new Uint32Array(n)
  for (let i = 0; i < n; i++) {
    values[i] = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0
    const t = (s1 << 9) >>> 0
    s2 = (s2 ^ s0) >>> 0
    s3 = (s3 ^ s1) >>> 0
    s1 = (s1 ^ s2) >>> 0
    s0 = (s0 ^ s3) >>> 0
    s2 = (s2 ^ t) >>> 0
    s3 = rotl(s3, 11)
  }
  return { values, state: [s0, s1, s2, s3] }
}

/**
 * `n` uniforms in (0, 1) (never exactly 0 or 1) and the next state.
 *
 * @since 0.1.0
 * @category utils
 */
export const uniforms = (state: StreamState, n: number): { readonly values: Float32Array; readonly state: StreamState } => {
  const raw = nextUint32(state, n)
  const values = new Float32Array(n)
  for (let i = 0; i < n; i++) values[i] = ((raw.values[i]! >>> 8) + 0.5) / 16777216
  return { values, state: raw.state }
}

/**
 * A uniformly random permutation of 0 … n−1 (Fisher–Yates, one uniform per position) drawn from `state`.
 *
 * @since 0.1.0
 * @category utils
 */
export const permutation = (state: StreamState, n: number): Int32Array => {
  const perm = Int32Array.from({ length: n }, (_, i) => i)
  const u = uniforms(state, n).values
  for (let i = n - 1; i > 0; i--) {
    const j = Math.min(i, Math.floor(u[i]! * (i + 1)))
    const t = perm[i]!
    perm[i] = perm[j]!
    perm[j] = t
  }
  return perm
}

/**
 * `n` standard normals (Box–Muller on pairs of uniforms) and the next state.
 *
 * @since 0.1.0
 * @category utils
 */
export const normals = (state: StreamState, n: number): { readonly values: Float32Array; readonly state: StreamState } => {
  const pairs = Math.ceil(n / 2)
  const u = uniforms(state, 2 * pairs)
  const values = new Float32Array(n)
  for (let i = 0; i < pairs; i++) {
    const r = Math.sqrt(-2 * Math.log(u.values[2 * i]!))
    const theta = 2 * Math.PI * u.values[2 * i + 1]!
    values[2 * i] = r * Math.cos(theta)
    if (2 * i + 1 < n) values[2 * i + 1] = r * Math.sin(theta)
  }
  return { values, state: u.state }
}

/**
 * A tensor of standard normals (times `scale`) from the stream (seed, label): deterministic on every engine.
 * Prefer it to `tf.randomNormal(…, seed)`, which silently draws from `Math.random` when the seed is 0.
 *
 * @since 0.1.0
 * @category utils
 */
export const normalTensor = (shape: ReadonlyArray<number>, seed: number, label: string, scale = 1): tf.Tensor => {
  const size = shape.reduce((a, b) => a * b, 1)
  const values = normals(makeStream(seed, label), size).values
  if (scale !== 1) for (let i = 0; i < size; i++) values[i]! *= scale
  return tf.tensor(values, [...shape])
}

/**
 * A tensor of uniforms in (0, 1) from the stream (seed, label): deterministic on every engine.
 *
 * @since 0.1.0
 * @category utils
 */
export const uniformTensor = (shape: ReadonlyArray<number>, seed: number, label: string): tf.Tensor =>
  tf.tensor(uniforms(makeStream(seed, label), shape.reduce((a, b) => a * b, 1)).values, [...shape])
