import { expect } from "vitest"

/**
 * Relative L2 error ‖a − b‖ / max(‖b‖, floor), in float64; the floor keeps near-zero references from blowing it up.
 * Fails the test when the lengths differ.
 */
export const relativeL2 = (a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-15): number => {
  expect(a.length).toBe(b.length)
  let num = 0
  let den = 0
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2
    den += b[i]! ** 2
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), floor)
}
