/**
 * `n` seeded pseudo-random float32 values, uniform in [−scale/2, scale/2) (a 32-bit linear congruential generator:
 * cheap, and the same values on every machine).
 */
export const randoms = (n: number, seed: number, scale = 1): Float32Array => {
  let s = seed >>> 0
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return (s / 4294967296 - 0.5) * scale
  })
}
