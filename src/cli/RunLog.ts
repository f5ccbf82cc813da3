/**
 * What a run shows and records: a progress bar on a TTY (plain lines otherwise) and a JSONL log of every report.
 *
 * @module
 */
import { appendFile, mkdir } from "node:fs/promises"
import { dirname } from "node:path"
import cliProgress from "cli-progress"
import { Effect, Schema } from "effect"
import type { SampleMetrics } from "../services/Metrics.js"
import { StartReport, type StepReport } from "../pipeline/Distill.js"

/**
 * A file of a run's record — its JSONL log, its saved config — could not be written (a full disk, no permission,
 * something in the way).
 */
export class RunLogError extends Schema.TaggedError<RunLogError>()("RunLogError", {
  path: Schema.String,
  /** The system's error code (ENOSPC, EACCES, …) when there is one. */
  code: Schema.optional(Schema.String),
  reason: Schema.String
}) {
  /** What to do about it. */
  get fix(): string {
    switch (this.code) {
      case "ENOSPC":
      case "EDQUOT":
        return "Free disk space (the newest complete checkpoint is kept), then continue the run with --resume"
      case "EACCES":
      case "EPERM":
      case "EROFS":
        return "Make the run directory writable or choose another --run-dir"
      case "EISDIR":
      case "ENOTDIR":
      case "EEXIST":
        return "Something else is in the way of the file; move it aside or choose another --run-dir"
      default:
        return "Check the run directory and its disk, then continue the run with --resume"
    }
  }

  override get message(): string {
    return `cannot write ${this.path}: ${this.reason}. ${this.fix}.`
  }
}

/** A {@link RunLogError} for a failed file operation on `path`. */
export const runLogError = (path: string, cause: unknown): RunLogError => {
  const code = typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string"
    ? cause.code
    : undefined
  const text = (cause instanceof Error ? cause.message : String(cause)).split("\n")[0]!
  return new RunLogError({ path, reason: text, ...(code === undefined ? {} : { code }) })
}

/** How a line is appended to a file (`fs.promises.appendFile` by default; tests inject failures). */
export type AppendLine = (path: string, text: string) => Promise<void>

/** Appends `record` as one JSON line to `path`; a failure is a {@link RunLogError}. */
export const appendJsonLine = (
  path: string,
  record: unknown,
  append: AppendLine = appendFile
): Effect.Effect<void, RunLogError> =>
  Effect.tryPromise({ try: () => append(path, toJsonLine(record) + "\n"), catch: (e) => runLogError(path, e) })

/** JSON with NaN/±Infinity written as null (JSON has no such numbers). */
export const toJsonLine = (value: unknown): string =>
  JSON.stringify(value, (_key, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v))

const fmt = (x: number): string => (Number.isFinite(x) ? (Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4 ? x.toFixed(4) : x.toExponential(2)) : String(x))

const percent = (x: number | undefined): string => (x === undefined ? "?" : `${(100 * x).toFixed(1)}%`)

/** A one-line summary of an evaluation (FID, KID, IS, precision/recall for images; FD, MMD, modes for mixtures). */
export const describeEvaluation = (m: SampleMetrics): string =>
  m.fid !== undefined
    ? `FID ${fmt(m.fid)}  KID ${fmt(m.mmd)}` +
      (m.inceptionScore === undefined ? "" : `  IS ${m.inceptionScore.toFixed(2)}`) +
      `  precision ${percent(m.precision)}  recall ${percent(m.recall)}` +
      (m.classifierAccuracy === undefined ? "" : `  (classifier held-out accuracy ${percent(m.classifierAccuracy)})`)
    : `FD ${fmt(m.frechetDistance)}  MMD ${fmt(m.mmd)}` +
  (m.modesCovered === undefined ? "" : `  modes ${m.modesCovered}/${m.modeWeights?.length ?? "?"}`) +
  (m.offModeFraction === undefined ? "" : `  off-mode ${(100 * m.offModeFraction).toFixed(1)}%`)

/** Reports of a run to a TTY bar or to plain lines, and to a JSONL file; a failed write is a {@link RunLogError}. */
export interface RunLog {
  readonly report: (r: StartReport | StepReport) => Effect.Effect<void, RunLogError>
  /** A line for the reader and a record for the log. */
  readonly note: (line: string, record: Record<string, unknown>) => Effect.Effect<void, RunLogError>
  readonly close: Effect.Effect<void>
}

/** A run log for `totalSteps` iterations writing JSONL to `logPath` (its directory is created). */
export const makeRunLog = (options: {
  readonly totalSteps: number
  readonly logPath: string
  readonly tty?: boolean
  readonly write?: (line: string) => void
  /** Appends to the log file (default `fs.promises.appendFile`). */
  readonly append?: AppendLine
}): Effect.Effect<RunLog, RunLogError> =>
  Effect.gen(function*() {
    yield* Effect.tryPromise({
      try: () => mkdir(dirname(options.logPath), { recursive: true }),
      catch: (e) => runLogError(options.logPath, e)
    })
    const append = (record: unknown) => appendJsonLine(options.logPath, record, options.append)
    const write = options.write ?? ((line: string) => process.stdout.write(line + "\n"))
    const tty = options.tty ?? process.stdout.isTTY === true
    const bar = tty
      ? new cliProgress.SingleBar(
        {
          format: "step {value}/{total} |{bar}| fake {fake} gen {gen} | {rate} samples/s | ETA {eta_formatted}",
          hideCursor: true,
          etaBuffer: 50
        },
        cliProgress.Presets.shades_classic
      )
      : undefined
    let started = false
    const every = Math.max(1, Math.floor(options.totalSteps / 50))
    const say = (line: string) => {
      if (bar !== undefined) {
        bar.stop()
        write(line)
        started = false
      } else write(line)
    }
    const show = (r: StartReport | StepReport) => {
      if (r instanceof StartReport) {
        say(
          `start at step ${r.step}${r.resumedFrom === undefined ? "" : ` (resumed from ${r.resumedFrom})`}` +
            (r.evaluation === undefined ? "" : `: ${describeEvaluation(r.evaluation)}`)
        )
        return
      }
      if (r.evaluation !== undefined) say(`step ${r.step}: ${describeEvaluation(r.evaluation)}`)
      if (r.checkpoint !== undefined) say(`step ${r.step}: checkpoint ${r.checkpoint}`)
      if (bar !== undefined) {
        const payload = { fake: fmt(r.fakeLoss), gen: fmt(r.generatorLoss), rate: r.samplesPerSecond.toFixed(0) }
        if (!started) {
          bar.start(options.totalSteps, r.step, payload)
          started = true
        } else bar.update(r.step, payload)
      } else if (r.step % every === 0 || r.step === options.totalSteps) {
        const sida = r.discriminatorLoss === undefined
          ? ""
          : `  D ${fmt(r.discriminatorLoss)}  adv ${fmt(r.adversarialLoss ?? 0)}${r.generatorFrozen === true ? "  (G warming up)" : ""}`
        write(
          `step ${r.step}/${options.totalSteps}  fake ${fmt(r.fakeLoss)}  gen ${fmt(r.generatorLoss)}  ` +
            `|∇θ| ${fmt(r.generatorGradNorm)}${sida}  ${r.samplesPerSecond.toFixed(0)} samples/s`
        )
      }
    }
    return {
      report: (r) => Effect.zipRight(append(r), Effect.sync(() => show(r))),
      note: (line, record) => Effect.zipRight(append(record), Effect.sync(() => say(line))),
      close: Effect.sync(() => bar?.stop())
    }
  })
