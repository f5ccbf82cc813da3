/**
 * The MNIST comparison of issue 14 point 4: SiD, SiD + augmentation, SiDA, SiD²A and 2- and 4-step SiD, each run by
 * `examples/mnist.ts --variant <name>` on the same teacher (`<out>/teacher`) and the same budget (iterations, batch,
 * learning rates, evaluation samples and seeds), each in its own `<out>/variants/<name>/`. Every finished variant
 * appends one row to `<out>/variants.jsonl` and rewrites `<out>/variants.md`, a table with the teacher's Heun-35 row:
 * MNIST-FID, KID, precision, recall (against the held-out digits) and the first evaluated iteration at which the
 * generator's FID is at or below the teacher's — and draws `<out>/variants-fid.png`, every variant's FID against
 * iterations on one chart with the teacher's level dashed. Each variant's sample grids are in its `distill/samples/`.
 *
 * @since 0.1.0
 */
import { appendFile, readFile } from "node:fs/promises"
import { join } from "node:path"
import { Effect } from "effect"
import { writeFileAtomic } from "../src/platform/AtomicFile.js"
import { linePlot } from "../src/report/Plots.js"
import type { DistillConfig } from "../src/domain/config/DistillConfig.js"
import type { SampleMetrics } from "../src/services/node/Metrics.js"

/** The variants, in table order. */
export const MNIST_VARIANTS = ["sid", "sid-aug", "sida", "sid2a", "sid-2step", "sid-4step"] as const
/** A variant's name. */
export type MnistVariant = (typeof MNIST_VARIANTS)[number]

/** What distinguishes each variant (docs/sida.md, docs/few-step.md). */
export const VARIANT_DESCRIPTIONS: Readonly<Record<MnistVariant, string>> = {
  sid: "SiD, data-free (docs/algorithm.md §8.1)",
  "sid-aug": "SiD with EDM's augmentation of the fake step (p = --augment, default 0.12; docs/algorithm.md §13.4)",
  sida: "SiDA: the fake score doubles as a discriminator on the MNIST training split (docs/algorithm.md §13)",
  sid2a: "SiD²A: SiDA started from the sid variant's EMA generator (run the sid variant first)",
  "sid-2step": "SiD with a 2-step generator (σ 2.5, 1.25; docs/few-step.md)",
  "sid-4step": "SiD with a 4-step generator (σ 2.5, 1.875, 1.25, 0.625; docs/few-step.md)"
}

/** Parses `--variant`; throws an Error listing the names for anything else. */
export const parseVariant = (text: string): MnistVariant => {
  const found = MNIST_VARIANTS.find((v) => v === text)
  if (found === undefined) throw new Error(`--variant must be one of ${MNIST_VARIANTS.join(", ")}; got "${text}"`)
  return found
}

/** Where a variant's run lives: `<out>/variants/<name>` (its `distill/` and `summary.json`). */
export const variantDir = (out: string, variant: MnistVariant): string => join(out, "variants", variant)

/** Settings of the variants that have any. */
export interface VariantSettings {
  /** Augmentation probability of `sid-aug` (SiD's CIFAR-10 value 0.12 by default). */
  readonly augment: number
  /**
   * SiDA's warm-ups in thousands of images (SiDA's code uses 100 and 200 kimg of 100–300 Mimg runs; a short MNIST
   * budget needs them scaled down, by default to 2 % and 5 % of the run's images).
   */
  readonly generatorWarmupKimg: number
  readonly adversarialWarmupKimg: number
}

/** The default settings for a budget of `images` generator images (iterations × batch). */
export const defaultVariantSettings = (images: number): VariantSettings => ({
  augment: 0.12,
  generatorWarmupKimg: (0.02 * images) / 1000,
  adversarialWarmupKimg: (0.05 * images) / 1000
})

/** The config overrides of a variant (encoded form), on top of the shared budget. */
export const variantOverrides = (
  variant: MnistVariant,
  out: string,
  settings: VariantSettings
): Partial<typeof DistillConfig.Encoded> => {
  const sida = {
    adversarial: true,
    data: "mnist" as const,
    generatorWarmupKimg: settings.generatorWarmupKimg,
    adversarialWarmupKimg: settings.adversarialWarmupKimg
  }
  switch (variant) {
    case "sid":
      return {}
    case "sid-aug":
      return { augment: settings.augment }
    case "sida":
      return sida
    case "sid2a":
      return { ...sida, initGenerator: join(variantDir(out, "sid"), "distill") }
    case "sid-2step":
      return { generatorSteps: 2 }
    case "sid-4step":
      return { generatorSteps: 4 }
  }
}

/** One row of the comparison. */
export interface VariantRow {
  readonly variant: string
  readonly description: string
  readonly iterations: number
  readonly batch: number
  readonly generatorSteps: number
  readonly evalSamples: number
  readonly fid: number
  readonly kid: number
  readonly precision: number | null
  readonly recall: number | null
  readonly bestFid: number
  readonly bestStep: number
  /** First evaluated iteration with FID ≤ the teacher's Heun-35 FID (null: never within the budget). */
  readonly firstAtTeacherFid: number | null
  readonly teacherFid: number
  readonly seconds: number
}

/** The first evaluated step whose FID is at or below `target` (null when none is). */
export const firstAtOrBelow = (evaluations: ReadonlyArray<{ readonly step: number; readonly fid: number }>, target: number): number | null =>
  evaluations.find((e) => e.fid <= target)?.step ?? null

const fidOf = (m: SampleMetrics): number => m.fid ?? m.frechetDistance

/** The row of a finished variant from its summary's figures. */
export const variantRow = (
  variant: MnistVariant,
  config: DistillConfig,
  evalSamples: number,
  summary: {
    readonly teacher: { readonly heun35: SampleMetrics }
    readonly generator: { readonly final: SampleMetrics; readonly best: { readonly step: number; readonly fid: number }; readonly seconds: number }
    readonly evaluations: ReadonlyArray<{ readonly step: number; readonly fid: number }>
  }
): VariantRow => {
  const teacherFid = fidOf(summary.teacher.heun35)
  const final = summary.generator.final
  return {
    variant,
    description: VARIANT_DESCRIPTIONS[variant],
    iterations: config.steps,
    batch: config.batchSize,
    generatorSteps: config.generatorSteps,
    evalSamples,
    fid: fidOf(final),
    kid: final.mmd,
    precision: final.precision ?? null,
    recall: final.recall ?? null,
    bestFid: summary.generator.best.fid,
    bestStep: summary.generator.best.step,
    firstAtTeacherFid: firstAtOrBelow(summary.evaluations, teacherFid),
    teacherFid,
    seconds: summary.generator.seconds
  }
}

const cell = (v: number | null, digits: number): string => (v === null ? "—" : v.toFixed(digits))

/**
 * The comparison as a Markdown table: the teacher's Heun-35 row, then the newest row of each variant in table order.
 */
export const variantTable = (rows: ReadonlyArray<VariantRow>, teacher: SampleMetrics): string => {
  const newest = new Map<string, VariantRow>()
  for (const r of rows) newest.set(r.variant, r)
  const lines = [
    "| variant | iterations × batch | NFE | MNIST-FID | KID | precision | recall | best FID (iteration) | first iteration ≤ teacher FID |",
    "|---|---|---|---|---|---|---|---|---|",
    `| teacher, Heun-35 | — | 35 | ${fidOf(teacher).toFixed(2)} | ${teacher.mmd.toFixed(4)} | ${cell(teacher.precision ?? null, 3)} | ${
      cell(teacher.recall ?? null, 3)
    } | — | — |`
  ]
  for (const v of MNIST_VARIANTS) {
    const r = newest.get(v)
    if (r === undefined) continue
    lines.push(
      `| ${v} | ${r.iterations} × ${r.batch} | ${r.generatorSteps} | ${r.fid.toFixed(2)} | ${r.kid.toFixed(4)} | ${cell(r.precision, 3)} | ${
        cell(r.recall, 3)
      } | ${r.bestFid.toFixed(2)} (${r.bestStep}) | ${r.firstAtTeacherFid ?? "not reached"} |`
    )
  }
  return lines.join("\n") + "\n"
}

/** The evaluations in a variant's `summary.json` (none when it has not finished). */
const summaryEvaluations = (out: string, variant: MnistVariant): Promise<ReadonlyArray<{ readonly step: number; readonly fid: number }>> =>
  readFile(join(variantDir(out, variant), "summary.json"), "utf8").then(
    (text) => (JSON.parse(text) as { readonly evaluations: ReadonlyArray<{ readonly step: number; readonly fid: number }> }).evaluations,
    () => []
  )

/**
 * Appends a row to `<out>/variants.jsonl`, rewrites `<out>/variants.md` from every row there, and redraws
 * `<out>/variants-fid.png` from every finished variant's `summary.json`.
 */
export const appendVariantRow = async (out: string, row: VariantRow, teacher: SampleMetrics): Promise<void> => {
  const jsonl = join(out, "variants.jsonl")
  await appendFile(jsonl, JSON.stringify(row) + "\n")
  const rows = (await readFile(jsonl, "utf8")).split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as VariantRow)
  const table = variantTable(rows, teacher)
  await Effect.runPromise(writeFileAtomic(join(out, "variants.md"), new TextEncoder().encode(table)))
  const evaluations = await Promise.all(MNIST_VARIANTS.map((v) => summaryEvaluations(out, v)))
  const sidEnd = Math.max(0, ...(evaluations[MNIST_VARIANTS.indexOf("sid")] ?? []).map((e) => e.step))
  // SiD²A continues the sid variant's generator: its iterations are drawn after the ones it started from.
  const series = MNIST_VARIANTS.map((v, i) => ({
    name: v === "sid2a" ? "sid2a (after sid)" : v,
    points: (evaluations[i] ?? []).map((e) => [e.step + (v === "sid2a" ? sidEnd : 0), e.fid] as const)
  })).filter((s) => s.points.length > 0)
  const last = Math.max(1, ...series.flatMap((s) => s.points.map(([x]) => x)))
  const png = linePlot(
    [...series, { name: "teacher, Heun-35", points: [[0, fidOf(teacher)], [last, fidOf(teacher)]], dashed: true }],
    { title: "MNIST-FID of the SiD variants (same teacher)", xTitle: "iterations (SiD²A's after those of the sid run it starts from)", yTitle: "MNIST-FID (log scale)" }
  )
  await Effect.runPromise(Effect.flatMap(png, (bytes) => writeFileAtomic(join(out, "variants-fid.png"), bytes)))
}
