/**
 * Least-squares fit of log y against x: the rate of an exponential trend y ≈ exp(a + b·x). SiD reports that FID falls
 * "exponentially fast" early in distillation (Zhou et al. 2024, §5): a straight line in log FID against iterations,
 * whose slope b this fit measures.
 *
 * @module
 */

/**
 * The fitted line ln y = intercept + slope·x and its coefficient of determination.
 *
 * @since 0.1.0
 * @category models
 */
export interface LogLinearFit {
  /** Change of ln y per unit of x (negative for a falling trend). */
  readonly slope: number
  readonly intercept: number
  /** R² of the fit in log space (1 for points exactly on a line). */
  readonly r2: number
  /** Points used (those with finite x and finite y > 0). */
  readonly points: number
}

/**
 * Fits ln y = a + b·x by ordinary least squares over the points with finite x and finite y > 0. Throws a RangeError
 * when fewer than two usable points remain or all their x are equal.
 *
 * @since 0.1.0
 * @category utils
 */
export const logLinearFit = (points: ReadonlyArray<readonly [number, number]>): LogLinearFit => {
  const usable = points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && y > 0)
  const n = usable.length
  if (n < 2) throw new RangeError(`a log-linear fit needs at least 2 points with y > 0, got ${n}`)
  const xs = usable.map(([x]) => x)
  const ys = usable.map(([, y]) => Math.log(y))
  const mx = xs.reduce((a, b) => a + b, 0) / n
  const my = ys.reduce((a, b) => a + b, 0) / n
  let sxx = 0
  let sxy = 0
  let syy = 0
  for (let i = 0; i < n; i++) {
    const dx = xs[i]! - mx
    const dy = ys[i]! - my
    sxx += dx * dx
    sxy += dx * dy
    syy += dy * dy
  }
  if (sxx === 0) throw new RangeError("a log-linear fit needs at least two distinct x values")
  const slope = sxy / sxx
  return { slope, intercept: my - slope * mx, r2: syy === 0 ? 1 : (sxy * sxy) / (sxx * syy), points: n }
}
