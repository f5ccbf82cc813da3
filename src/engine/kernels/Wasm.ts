/**
 * The plain `wasm` engine's own kernels, in JavaScript on the wasm heap (no native addon; docs/engines.md §3.5): the
 * fused dense layer and its SiLU gradient, Adam over one or all parameters, the EMA over all parameters and the
 * gradient statistics of a step, one kernel per file in `wasm/`; plus `Identity` and same-dtype `Cast` that share
 * their input's data, which lets the engine save tensors for the gradient without a dispatch (`SharedClone.ts`). Each
 * implements its contract in `KernelNames.ts`; all but the gradient norm give the composed ops' bits. Portable: nothing
 * here needs Node (the browser's `wasm` engine installs the same kernels).
 *
 * @since 0.2.0
 */
import type * as tf from "@tensorflow/tfjs"
import { dispatchSavingGradients } from "./Gradients.js"
import type { KernelPatch } from "./Patches.js"
import { wasmAdamPatches } from "./wasm/Adam.js"
import { wasmDenseGradient, wasmDensePatches } from "./wasm/Dense.js"
import { wasmEmaAllPatches } from "./wasm/EmaAll.js"
import { wasmGradientStatisticsPatches } from "./wasm/GradientStatistics.js"
import { wasmSumPatches } from "./wasm/Sum.js"
import { wasmViewPatches } from "./wasm/Views.js"

/**
 * The plain-wasm kernel patches, installed on top of the wasm patches (`Patches.wasmPatches`).
 *
 * @since 0.2.0
 * @category patches
 */
export const wasmFusedPatches: ReadonlyArray<KernelPatch> = [
  ...wasmViewPatches,
  ...wasmSumPatches,
  ...wasmDensePatches,
  ...wasmAdamPatches,
  ...wasmEmaAllPatches,
  ...wasmGradientStatisticsPatches
]

/**
 * The gradients that go with {@link wasmFusedPatches}: the lazy fused-dense gradient, and `Sum` / `Mean` gradients
 * that broadcast with a backend kernel and the cast-free element-wise ones (`Gradients.dispatchSavingGradients`).
 *
 * @since 0.2.0
 * @category gradients
 */
export const wasmFusedGradients: ReadonlyArray<tf.GradConfig> = [...dispatchSavingGradients, wasmDenseGradient]
