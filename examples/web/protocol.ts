/**
 * Messages between the demo page and its distillation worker.
 *
 * @module
 */

/** A preset mixture (as `gmm:<name>` in the CLI) or modes drawn on the canvas. */
export type MixtureChoice =
  | { readonly kind: "preset"; readonly name: "ring8" | "grid25" }
  | { readonly kind: "drawn"; readonly modes: ReadonlyArray<{ readonly x: number; readonly y: number; readonly std: number }> }

/** The settings of a run (the page's controls); everything else is the CLI's 2-D preset. */
export interface RunSettings {
  readonly mixture: MixtureChoice
  /** `exact`: the analytic posterior mean (`gmm:`); `dsm`: an MLP fitted in the page (`gmm-dsm:`). */
  readonly teacher: "exact" | "dsm"
  readonly alpha: number
  readonly tmax: number
  readonly learningRate: number
  readonly steps: number
  readonly evalEvery: number
  readonly checkpointEvery: number
  /** `auto`: WebGPU where an adapter exists, else wasm. */
  readonly engine: "auto" | "webgpu" | "wasm" | "cpu"
  readonly seed: number
  /** wasm threads (default: TF.js's choice, half the logical cores; `?threads=N` in the page's URL sets it). */
  readonly threads?: number
}

/** Page → worker. */
export type ToWorker =
  /** Start (or, with `resume`, continue from the newest stored checkpoint) a run; `paused`: restore, then wait. */
  | { readonly type: "start"; readonly settings: RunSettings; readonly store: string; readonly resume: boolean; readonly paused: boolean }
  | { readonly type: "pause" }
  | { readonly type: "resume" }
  | { readonly type: "export" }
  /** Fault injection for the browser test: the live generator's weights become NaN (a diverged run). */
  | { readonly type: "poison" }

/** A set of 2-D samples, row-major [n, 2]. */
export type Samples = Float32Array

/** Worker → page. */
export type FromWorker =
  | {
    readonly type: "engine"
    readonly name: string
    readonly adapter?: string
    readonly reason: string
    readonly threads: number
    readonly simd: boolean
    readonly crossOriginIsolated: boolean
  }
  | { readonly type: "phase"; readonly text: string }
  | { readonly type: "teacher"; readonly samples: Samples; readonly fd: number; readonly mmd: number; readonly heunSteps: number }
  | { readonly type: "resumed"; readonly step: number }
  | { readonly type: "step"; readonly step: number; readonly iterationMs: number; readonly fakeLoss: number; readonly generatorLoss: number }
  | { readonly type: "evaluation"; readonly step: number; readonly fd: number; readonly mmd: number; readonly samples: Samples }
  | { readonly type: "checkpoint"; readonly step: number }
  | { readonly type: "paused"; readonly step: number }
  | { readonly type: "running"; readonly step: number }
  | { readonly type: "done"; readonly step: number }
  | { readonly type: "exported"; readonly bytes: Uint8Array; readonly step: number }
  /** Something went wrong; `lastGood`: the newest intact checkpoint's step, if any (the page offers to resume from it). */
  | { readonly type: "error"; readonly message: string; readonly lastGood?: number }
