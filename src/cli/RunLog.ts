/**
 * What a run shows and records: a progress bar on a TTY (plain lines otherwise) and a JSONL log of every report.
 *
 * @module
 */
import { appendFile, mkdir } from "node:fs/promises"
import { dirname } from "node:path"
import cliProgress from "cli-progress"
import { Effect, Schema } from "effect"
import type { SampleMetrics } from "../services/node/Metrics.js"
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

/** A duration as `1h02m`, `3m05s` or `42s`. */
export const formatDuration = (ms: number): string => {
  if (!Number.isFinite(ms) || ms < 0) return "?"
  const total = Math.round(ms / 1000)
  const h = Math.floor(total / 3600)
  const m = Math.floor((total % 3600) / 60)
  const sec = total % 60
  return h > 0 ? `${h}h${String(m).padStart(2, "0")}m` : m > 0 ? `${m}m${String(sec).padStart(2, "0")}s` : `${sec}s`
}

/**
 * The time left, from the pace of this invocation so far (evaluations and checkpoints included, as they recur at
 * their intervals): elapsed × remaining / done; undefined before the first iteration.
 */
export const estimateRemainingMs = (elapsedMs: number, stepsDone: number, stepsLeft: number): number | undefined =>
  stepsDone <= 0 ? undefined : (elapsedMs * stepsLeft) / stepsDone

const percent = (x: number | undefined): string => (x === undefined ? "?" : `${(100 * x).toFixed(1)}%`)

const present = (values: ReadonlyArray<number | null> | undefined): Array<number> =>
  (values ?? []).filter((v): v is number => v !== null && Number.isFinite(v))

/**
 * The shape figures of a mixture evaluation, for a log line: between-mode mass, in-mode spread, the worst mode's
 * mean error, the modes' mean covariance error, and the MMD at each bandwidth; empty when the metrics have none.
 */
export const describeShape = (m: SampleMetrics): string => {
  const parts: Array<string> = []
  if (m.betweenModeFraction !== undefined) parts.push(`between ${percent(m.betweenModeFraction)}`)
  if (m.inModeSpread !== undefined) parts.push(`spread ${m.inModeSpread.toFixed(2)}×`)
  const meanErrors = present(m.modeMeanErrors)
  if (meanErrors.length > 0) parts.push(`mode mean err ≤ ${Math.max(...meanErrors).toFixed(2)}σ`)
  const covErrors = present(m.modeCovarianceErrors)
  if (covErrors.length > 0) parts.push(`cov err ${(covErrors.reduce((a, b) => a + b, 0) / covErrors.length).toFixed(2)}`)
  if (m.mmdByBandwidth !== undefined && m.mmdByBandwidth.length > 0) {
    parts.push(`MMD²@h ${m.mmdByBandwidth.map((b) => `${b.bandwidth}:${fmt(b.mmd)}`).join(" ")}`)
  }
  return parts.join("  ")
}

/**
 * A one-line summary of an evaluation (FID, KID, IS, precision/recall for images; FD, MMD, modes, off-mode mass and
 * the shape figures of {@link describeShape} for mixtures).
 */
export const describeEvaluation = (m: SampleMetrics): string => {
  if (m.fid !== undefined) {
    return `FID ${fmt(m.fid)}  KID ${fmt(m.mmd)}` +
      (m.inceptionScore === undefined ? "" : `  IS ${m.inceptionScore.toFixed(2)}`) +
      `  precision ${percent(m.precision)}  recall ${percent(m.recall)}` +
      (m.classifierAccuracy === undefined ? "" : `  (classifier held-out accuracy ${percent(m.classifierAccuracy)})`)
  }
  const shape = describeShape(m)
  return `FD ${fmt(m.frechetDistance)}  MMD² ${fmt(m.mmd)}` +
    (m.modesCovered === undefined ? "" : `  modes ${m.modesCovered}/${m.modeWeights?.length ?? "?"}`) +
    (m.offModeFraction === undefined ? "" : `  off-mode ${(100 * m.offModeFraction).toFixed(1)}%`) +
    (shape === "" ? "" : `  ${shape}`)
}

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
  /** The clock in milliseconds (default `performance.now`), for the elapsed time and the ETA. */
  readonly now?: () => number
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
          format: "step {value}/{total} |{bar}| fake {fake} gen {gen} | {rate} samples/s | {elapsed} elapsed, ETA {left}",
          hideCursor: true,
          etaBuffer: 50
        },
        cliProgress.Presets.shades_classic
      )
      : undefined
    let started = false
    const every = Math.max(1, Math.floor(options.totalSteps / 50))
    const now = options.now ?? (() => performance.now())
    let pace: { readonly t0: number; readonly step0: number } | undefined
    const timing = (step: number) => {
      const t = now()
      pace ??= { t0: t, step0: step }
      const elapsed = t - pace.t0
      const left = estimateRemainingMs(elapsed, step - pace.step0, options.totalSteps - step)
      return { elapsed: formatDuration(elapsed), left: left === undefined ? "?" : formatDuration(left) }
    }
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
      const time = timing(r.step)
      if (bar !== undefined) {
        const payload = { fake: fmt(r.fakeLoss), gen: fmt(r.generatorLoss), rate: r.samplesPerSecond.toFixed(0), ...time }
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
            `|∇θ| ${fmt(r.generatorGradNorm)}${sida}  ${r.samplesPerSecond.toFixed(0)} samples/s  ${time.elapsed} elapsed, ETA ${time.left}`
        )
      }
    }
    return {
      report: (r) => Effect.zipRight(append(r), Effect.sync(() => show(r))),
      note: (line, record) => Effect.zipRight(append(record), Effect.sync(() => say(line))),
      close: Effect.sync(() => bar?.stop())
    }
  })
