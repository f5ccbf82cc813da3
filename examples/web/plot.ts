/**
 * Canvas drawing for the demo: scatter panels on shared axes, the mixture's modes, and the FD/MMD curves on a log
 * scale with the teacher's levels dashed.
 *
 * @module
 */

/** A square data window [min, max]² shared by the panels. */
export interface Axes {
  readonly min: number
  readonly max: number
}

/** A mode: centre and standard deviation. */
export interface Mode {
  readonly x: number
  readonly y: number
  readonly std: number
}

/** A point of a curve. */
export interface Point {
  readonly x: number
  readonly y: number
}

/** Axes holding every mode with 4 standard deviations to spare (at least [-1.2, 1.2]). */
export const axesFor = (modes: ReadonlyArray<Mode>): Axes => {
  const reach = Math.max(1.2, ...modes.map((m) => Math.max(Math.abs(m.x), Math.abs(m.y)) + 4 * m.std))
  return { min: -reach, max: reach }
}

const frame = (c: HTMLCanvasElement, axes: Axes) => {
  const g = c.getContext("2d")!
  g.clearRect(0, 0, c.width, c.height)
  g.strokeStyle = "#e5e7eb"
  g.lineWidth = 1
  const px = (v: number) => ((v - axes.min) / (axes.max - axes.min)) * c.width
  const py = (v: number) => c.height - ((v - axes.min) / (axes.max - axes.min)) * c.height
  for (let v = Math.ceil(axes.min * 2) / 2; v <= axes.max; v += 0.5) {
    g.beginPath()
    g.moveTo(px(v), 0)
    g.lineTo(px(v), c.height)
    g.moveTo(0, py(v))
    g.lineTo(c.width, py(v))
    g.stroke()
  }
  return { g, px, py }
}

/** Samples [n, 2] (row-major) as dots. */
export const drawScatter = (c: HTMLCanvasElement, samples: Float32Array, axes: Axes): void => {
  const { g, px, py } = frame(c, axes)
  g.fillStyle = "rgba(37, 99, 235, 0.35)"
  for (let i = 0; i + 1 < samples.length; i += 2) g.fillRect(px(samples[i]!) - 1, py(samples[i + 1]!) - 1, 2, 2)
}

/** The modes: a dot at each centre and circles at 1 and 2 standard deviations. */
export const drawModes = (c: HTMLCanvasElement, modes: ReadonlyArray<Mode>, axes: Axes): void => {
  const { g, px, py } = frame(c, axes)
  const scale = c.width / (axes.max - axes.min)
  for (const m of modes) {
    g.fillStyle = "#dc2626"
    g.beginPath()
    g.arc(px(m.x), py(m.y), 2.5, 0, 2 * Math.PI)
    g.fill()
    g.strokeStyle = "rgba(220, 38, 38, 0.6)"
    for (const k of [1, 2]) {
      g.beginPath()
      g.arc(px(m.x), py(m.y), k * m.std * scale, 0, 2 * Math.PI)
      g.stroke()
    }
  }
  if (modes.length === 0) {
    g.fillStyle = "#6b7280"
    g.font = "13px system-ui"
    g.fillText("click to place a mode, drag to size it", 12, 22)
  }
}

/** FD (blue) and MMD (orange) against iterations on a log scale, with the teacher's levels dashed. */
export const drawCurves = (
  c: HTMLCanvasElement,
  curve: ReadonlyArray<Point & { readonly mmd: number }>,
  teacherFd: number,
  teacherMmd: number
): void => {
  const g = c.getContext("2d")!
  g.clearRect(0, 0, c.width, c.height)
  const left = 54
  const bottom = c.height - 28
  const values = [...curve.flatMap((p) => [p.y, p.mmd]), teacherFd, teacherMmd].filter((v) => Number.isFinite(v) && v > 0)
  const lo = Math.floor(Math.log10(Math.min(1e-4, ...values)))
  const hi = Math.ceil(Math.log10(Math.max(1e-1, ...values)))
  const xMax = Math.max(100, ...curve.map((p) => p.x))
  const px = (x: number) => left + (x / xMax) * (c.width - left - 10)
  const py = (v: number) => bottom - ((Math.log10(v) - lo) / (hi - lo)) * (bottom - 10)
  g.strokeStyle = "#9ca3af"
  g.fillStyle = "#4b5563"
  g.font = "11px system-ui"
  g.beginPath()
  g.moveTo(left, 10)
  g.lineTo(left, bottom)
  g.lineTo(c.width - 10, bottom)
  g.stroke()
  for (let e = lo; e <= hi; e++) {
    g.fillText(`1e${e}`, 8, py(10 ** e) + 4)
    g.strokeStyle = "#f3f4f6"
    g.beginPath()
    g.moveTo(left + 1, py(10 ** e))
    g.lineTo(c.width - 10, py(10 ** e))
    g.stroke()
  }
  g.fillText("0", left - 3, bottom + 14)
  g.fillText(`${xMax} iterations`, c.width - 90, bottom + 14)
  const line = (color: string, points: ReadonlyArray<Point>, dashed: boolean) => {
    const finite = points.filter((p) => Number.isFinite(p.y) && p.y > 0)
    if (finite.length === 0) return
    g.strokeStyle = color
    g.lineWidth = 2
    g.setLineDash(dashed ? [6, 4] : [])
    g.beginPath()
    finite.forEach((p, i) => (i === 0 ? g.moveTo(px(p.x), py(p.y)) : g.lineTo(px(p.x), py(p.y))))
    g.stroke()
    g.setLineDash([])
    g.lineWidth = 1
  }
  line("#2563eb", curve, false)
  line("#ea580c", curve.map((p) => ({ x: p.x, y: p.mmd })), false)
  line("#2563eb", [{ x: 0, y: teacherFd }, { x: xMax, y: teacherFd }], true)
  line("#ea580c", [{ x: 0, y: teacherMmd }, { x: xMax, y: teacherMmd }], true)
}
