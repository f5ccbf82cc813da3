/**
 * What the `webgpu` engine reports about its adapter: who made it, what it is, whether it is a software
 * (fallback) adapter, and its limits, as given by WebGPU's `GPUAdapterInfo` and `GPUSupportedLimits`.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * The adapter a `webgpu` engine runs on.
 *
 * - `vendor`, `architecture`, `device`, `description`: `GPUAdapterInfo`'s strings (may be empty where the
 *   implementation withholds them).
 * - `isFallbackAdapter`: a software adapter (for example Mesa's llvmpipe): runs on the CPU.
 * - `limits`: every numeric `GPUSupportedLimits` entry of the adapter; `requested`: the limits the engine raised on
 *   its device above WebGPU's defaults.
 * - `features`: the adapter's optional features.
 *
 * @since 0.1.0
 * @category models
 */
export class WebGpuAdapterReport extends Schema.Class<WebGpuAdapterReport>("WebGpuAdapterReport")({
  vendor: Schema.String,
  architecture: Schema.String,
  device: Schema.String,
  description: Schema.String,
  isFallbackAdapter: Schema.Boolean,
  limits: Schema.Record({ key: Schema.String, value: Schema.Number }),
  requested: Schema.Record({ key: Schema.String, value: Schema.Number }),
  features: Schema.Array(Schema.String)
}) {
  /** One line for logs and the start of a run. */
  get summary(): string {
    const name = this.description !== "" ? this.description : `${this.vendor} ${this.device}`.trim()
    return `${name} (vendor ${this.vendor || "?"}, architecture ${this.architecture || "?"}` +
      `${this.isFallbackAdapter ? ", software fallback adapter" : ""}; maxBufferSize ` +
      `${this.limits["maxBufferSize"] ?? "?"}, maxStorageBuffersPerShaderStage ` +
      `${this.limits["maxStorageBuffersPerShaderStage"] ?? "?"})`
  }
}
