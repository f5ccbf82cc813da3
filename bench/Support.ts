/**
 * What every benchmark shares: its command-line options and writing its JSON report.
 *
 * @module
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const args = process.argv.slice(2)

/** True when `--name` is on the command line. */
export const flag = (name: string): boolean => args.includes(`--${name}`)

/** The value after `--name`, if given. */
export const option = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : undefined
}

/** Prints the report as JSON and writes it to `--out` or `bench/results/<name>-<date>.json`; returns the path. */
export const writeReport = (name: string, report: { readonly date: string }): string => {
  const json = JSON.stringify(report, null, 2)
  process.stdout.write(`${json}\n`)
  const out = option("out") ?? join(dirname(fileURLToPath(import.meta.url)), "results", `${name}-${report.date.slice(0, 10)}.json`)
  mkdirSync(dirname(out), { recursive: true })
  writeFileSync(out, `${json}\n`)
  return out
}

/** A progress line on stderr (stdout carries the JSON report). */
export const log = (msg: string): void => {
  process.stderr.write(`${msg}\n`)
}

/** Median of the values (NaN when empty). */
export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** The `q`-quantile of the values (0 ≤ q ≤ 1; nearest rank, NaN when empty). */
export const quantile = (xs: ReadonlyArray<number>, q: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))]!
}

/** `x` rounded to `digits` decimals. */
export const round = (x: number, digits = 2): number => Math.round(x * 10 ** digits) / 10 ** digits

/** Peak resident memory of this process so far, MiB. */
export const maxRssMiB = (): number => round(process.resourceUsage().maxRSS / 1024, 1)

/** An image batch shape of the convolution benchmarks. */
export interface Shape {
  readonly height: number
  readonly width: number
  readonly channels: number
  readonly batch: number
}

/** Parses `HxWxCxB` (e.g. `32x32x3x32`); throws on anything else. */
export const parseShape = (s: string): Shape => {
  const [height, width, channels, batch] = s.split("x").map(Number)
  if (![height, width, channels, batch].every((n) => Number.isInteger(n) && n! > 0)) {
    throw new Error(`bad shape "${s}", expected HxWxCxB`)
  }
  return { height: height!, width: width!, channels: channels!, batch: batch! }
}

/** EDM's CIFAR-10 DDPM++ configuration (`--arch=ddpmpp`, unconditional), as EDMPrecond keyword arguments. */
export const CIFAR10_DDPMPP: Readonly<Record<string, unknown>> = {
  img_resolution: 32,
  img_channels: 3,
  label_dim: 0,
  model_type: "SongUNet",
  augment_dim: 9,
  model_channels: 128,
  channel_mult: [2, 2, 2],
  channel_mult_emb: 4,
  num_blocks: 4,
  attn_resolutions: [16],
  dropout: 0.13,
  embedding_type: "positional",
  channel_mult_noise: 1,
  encoder_type: "standard",
  decoder_type: "standard",
  resample_filter: [1, 1]
}
