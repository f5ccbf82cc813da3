/**
 * Plots of a distillation run as PNG bytes (docs/algorithm.md §12: scatter plots of the 2-D toy, log(metric) against
 * iterations).
 *
 * Charts are declared in Vega-Lite, compiled and rendered to SVG headlessly by Vega, and rasterised by resvg. Text
 * uses the DejaVu Sans font shipped in the `dejavu-fonts-ttf` package, so the images read the same with or without
 * system fonts.
 *
 * @module
 */
import { Resvg } from "@resvg/resvg-js"
import { Effect, Schema } from "effect"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import * as vega from "vega"
import * as vegaLite from "vega-lite"
import type { TopLevelSpec } from "vega-lite"

/** A plot could not be built or rendered. */
export class PlotError extends Schema.TaggedError<PlotError>()("PlotError", {
  reason: Schema.String
}) {
  override get message(): string {
    return `plot: ${this.reason}`
  }
}

/** 2-D points: pairs, or a flat [x0, y0, x1, y1, …] array (the layout of an [N, 2] tensor's data). */
export type Points2D = ReadonlyArray<readonly [number, number]> | Float32Array | Float64Array

/** One panel of a scatter figure. */
export interface ScatterPanel {
  readonly title: string
  readonly points: Points2D
}

/** Settings of a scatter figure. */
export interface ScatterOptions {
  /** Size of the whole PNG in pixels (default 300 px per panel × 330). */
  readonly width?: number
  readonly height?: number
  /** Axis range used for both coordinates of every panel (default: the range of all points). */
  readonly domain?: readonly [number, number]
  readonly title?: string
  /** Marker area in px² (default 4) and opacity (default 0.35). */
  readonly pointSize?: number
  readonly opacity?: number
}

/** One line of a line plot. */
export interface LineSeries {
  readonly name: string
  readonly points: ReadonlyArray<readonly [number, number]>
  /** Draw dashed (e.g. a reference level). */
  readonly dashed?: boolean
}

/** Settings of a line plot. */
export interface LineOptions {
  readonly width?: number
  readonly height?: number
  readonly title?: string
  readonly xTitle?: string
  readonly yTitle?: string
  /** Logarithmic y axis (default true); values ≤ 0 are raised to `floor`. */
  readonly logY?: boolean
  /** Smallest plotted y on a log axis (default 1e-6). */
  readonly floor?: number
}

const FONT_FAMILY = "DejaVu Sans"

const fontFiles = (): ReadonlyArray<string> => {
  try {
    const dir = dirname(createRequire(import.meta.url).resolve("dejavu-fonts-ttf/package.json"))
    return [join(dir, "ttf", "DejaVuSans.ttf"), join(dir, "ttf", "DejaVuSans-Bold.ttf")]
  } catch {
    return []
  }
}

const pairs = (points: Points2D): Array<{ readonly x: number; readonly y: number }> => {
  if (points instanceof Float32Array || points instanceof Float64Array) {
    const out: Array<{ x: number; y: number }> = []
    for (let i = 0; i + 1 < points.length; i += 2) out.push({ x: points[i]!, y: points[i + 1]! })
    return out
  }
  return points.map(([x, y]) => ({ x, y }))
}

const baseConfig = {
  font: FONT_FAMILY,
  background: "white",
  view: { stroke: "#888" },
  title: { fontSize: 14 },
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: "#e6e6e6" },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 0 }
} as const

/** Renders a Vega-Lite spec to an SVG string (headless, no canvas). */
export const renderSvg = (spec: TopLevelSpec): Effect.Effect<string, PlotError> =>
  Effect.tryPromise({
    try: async () => {
      const compiled = vegaLite.compile(spec).spec
      const view = new vega.View(vega.parse(compiled), { renderer: "none" })
      try {
        return await view.toSVG()
      } finally {
        view.finalize()
      }
    },
    catch: (e) => new PlotError({ reason: `rendering failed: ${e instanceof Error ? e.message : String(e)}` })
  })

const svgSize = (svg: string): { readonly width: number; readonly height: number } => {
  const open = svg.slice(0, svg.indexOf(">"))
  const width = Number(/\bwidth="([\d.]+)"/.exec(open)?.[1])
  const height = Number(/\bheight="([\d.]+)"/.exec(open)?.[1])
  return { width: width > 0 ? width : 1, height: height > 0 ? height : 1 }
}

/**
 * Rasterises an SVG to a PNG of exactly width × height: the drawing is scaled to fit, centred, on white.
 */
export const svgToPng = (svg: string, width: number, height: number): Effect.Effect<Uint8Array, PlotError> =>
  Effect.try({
    try: () => {
      const inner = svgSize(svg)
      const body = svg.replace(/^<\?xml[^>]*>\s*/, "")
      const framed = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
        `<rect width="${width}" height="${height}" fill="white"/>` +
        `<svg x="0" y="0" width="${width}" height="${height}" viewBox="0 0 ${inner.width} ${inner.height}" ` +
        `preserveAspectRatio="xMidYMid meet">${body}</svg></svg>`
      const files = fontFiles()
      const png = new Resvg(framed, {
        background: "white",
        font: {
          fontFiles: [...files],
          loadSystemFonts: files.length === 0,
          defaultFontFamily: FONT_FAMILY,
          sansSerifFamily: FONT_FAMILY
        }
      }).render().asPng()
      return new Uint8Array(png.buffer, png.byteOffset, png.byteLength)
    },
    catch: (e) => new PlotError({ reason: `rasterising failed: ${e instanceof Error ? e.message : String(e)}` })
  })

const checkSize = (width: number, height: number) =>
  Number.isInteger(width) && Number.isInteger(height) && width >= 16 && height >= 16 && width <= 8192 && height <= 8192
    ? Effect.void
    : Effect.fail(new PlotError({ reason: `size must be whole pixels in [16, 8192], got ${width}×${height}` }))

/**
 * Side-by-side scatter plots of 2-D samples on shared axes (docs/algorithm.md §12: ground truth, the teacher's sampler and the
 * one-step generator), as PNG bytes of the requested size.
 */
export const scatterPanels = (
  panels: ReadonlyArray<ScatterPanel>,
  options: ScatterOptions = {}
): Effect.Effect<Uint8Array, PlotError> =>
  Effect.gen(function*() {
    if (panels.length === 0) return yield* new PlotError({ reason: "no panels to plot" })
    const width = options.width ?? 300 * panels.length
    const height = options.height ?? 330
    yield* checkSize(width, height)
    const data = panels.map((p) => pairs(p.points).filter((q) => Number.isFinite(q.x) && Number.isFinite(q.y)))
    let domain = options.domain
    if (domain === undefined) {
      let lo = Infinity
      let hi = -Infinity
      for (const d of data) {
        for (const q of d) {
          lo = Math.min(lo, q.x, q.y)
          hi = Math.max(hi, q.x, q.y)
        }
      }
      domain = Number.isFinite(lo) && hi > lo ? [lo, hi] : [-1, 1]
    }
    const side = Math.max(60, Math.floor(Math.min((width - 60 * panels.length) / panels.length, height - 90)))
    const spec: TopLevelSpec = {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      ...(options.title === undefined ? {} : { title: options.title }),
      config: baseConfig,
      hconcat: panels.map((p, i) => ({
        title: p.title,
        width: side,
        height: side,
        data: { values: data[i]! },
        mark: { type: "circle", size: options.pointSize ?? 4, opacity: options.opacity ?? 0.35, color: "#1f5fa8" },
        encoding: {
          x: { field: "x", type: "quantitative", scale: { domain: [...domain!], clamp: true, nice: false }, title: "x₁" },
          y: { field: "y", type: "quantitative", scale: { domain: [...domain!], clamp: true, nice: false }, title: "x₂" }
        }
      }))
    }
    const svg = yield* renderSvg(spec)
    return yield* svgToPng(svg, width, height)
  })

/**
 * Lines of (x, y) points, by default on a log y axis (docs/algorithm.md §12: log(metric) against iterations), as PNG bytes of
 * the requested size. Dashed series draw reference levels.
 */
export const linePlot = (
  series: ReadonlyArray<LineSeries>,
  options: LineOptions = {}
): Effect.Effect<Uint8Array, PlotError> =>
  Effect.gen(function*() {
    if (series.length === 0) return yield* new PlotError({ reason: "no series to plot" })
    const width = options.width ?? 720
    const height = options.height ?? 420
    yield* checkSize(width, height)
    const logY = options.logY ?? true
    const floor = options.floor ?? 1e-6
    const values = series.flatMap((s) =>
      s.points
        .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y))
        .map(([x, y]) => ({ x, y: logY ? Math.max(y, floor) : y, series: s.name, style: s.dashed === true ? "dashed" : "solid" }))
    )
    const names = series.map((s) => s.name)
    const spec: TopLevelSpec = {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      ...(options.title === undefined ? {} : { title: options.title }),
      config: baseConfig,
      width: Math.max(60, width - 260),
      height: Math.max(60, height - 90),
      data: { values },
      mark: { type: "line", point: { size: 18 }, strokeWidth: 2 },
      encoding: {
        x: { field: "x", type: "quantitative", title: options.xTitle ?? "x" },
        y: {
          field: "y",
          type: "quantitative",
          title: options.yTitle ?? "y",
          scale: logY ? { type: "log" } : { zero: false },
          axis: logY ? { format: ".0e" } : {}
        },
        color: { field: "series", type: "nominal", title: null, sort: names, scale: { scheme: names.length > 10 ? "category20" : "category10" } },
        strokeDash: {
          field: "style",
          type: "nominal",
          legend: null,
          scale: { domain: ["solid", "dashed"], range: [[1, 0], [6, 4]] }
        }
      }
    }
    const svg = yield* renderSvg(spec)
    return yield* svgToPng(svg, width, height)
  })
