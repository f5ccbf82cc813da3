/**
 * Typed errors of the `webgpu` engine: each says what was wrong and what to do. The package-missing case is
 * the shared `EnginePackageNotInstalled`; everything specific to WebGPU is here. This module imports nothing from the
 * engine service, so the service's error union can include these errors without an import cycle.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

const DEBIAN_FIX = "Debian/Ubuntu: `apt-get install libvulkan1 mesa-vulkan-drivers` (on Debian bookworm take " +
  "mesa-vulkan-drivers >= 25 from bookworm-backports: `apt-get install -t bookworm-backports mesa-vulkan-drivers`)"

/**
 * The Vulkan loader `libvulkan.so.1` could not be loaded, so Dawn (the WebGPU implementation behind the `webgpu`
 * package) cannot reach any GPU on Linux.
 *
 * @since 0.1.0
 * @category errors
 */
export class WebGpuVulkanMissing extends Schema.TaggedError<WebGpuVulkanMissing>()("WebGpuVulkanMissing", {
  library: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `The "webgpu" engine needs the Vulkan loader ${this.library}, which could not be loaded (${this.detail}). ` +
      `Fix: install the loader and a Vulkan driver for your GPU (${DEBIAN_FIX}; NVIDIA: the driver's Vulkan ICD, ` +
      `inside containers the NVIDIA container toolkit with the "graphics" capability), check with ` +
      "`vulkaninfo --summary`, or choose another engine (SID_ENGINE=wasm-native or wasm)."
  }
}

/**
 * `navigator.gpu.requestAdapter()` returned no adapter: Vulkan loads, but no driver offers a device Dawn accepts.
 *
 * @since 0.1.0
 * @category errors
 */
export class WebGpuNoAdapter extends Schema.TaggedError<WebGpuNoAdapter>()("WebGpuNoAdapter", {
  detail: Schema.String
}) {
  override get message(): string {
    return `The "webgpu" engine found no WebGPU adapter (${this.detail}). Fix: install a Vulkan driver for your GPU ` +
      `and check that \`vulkaninfo --summary\` lists it (${DEBIAN_FIX}; Debian bookworm's own mesa 22.3.6 is too ` +
      "old for Dawn); or choose another engine (SID_ENGINE=wasm-native or wasm)."
  }
}

/**
 * Only a software (fallback) adapter exists, such as Mesa's llvmpipe: a "GPU" run would land on a CPU rasteriser,
 * slower than the CPU engines. Refused unless the user opts in.
 *
 * @since 0.1.0
 * @category errors
 */
export class WebGpuSoftwareAdapter extends Schema.TaggedError<WebGpuSoftwareAdapter>()("WebGpuSoftwareAdapter", {
  description: Schema.String
}) {
  override get message(): string {
    return `The "webgpu" engine found only a software adapter (${this.description}), which runs on the CPU and is ` +
      `far slower than the CPU engines. Fix: install your GPU's Vulkan driver (check \`vulkaninfo --summary\`), or ` +
      `choose SID_ENGINE=wasm-native / wasm; to use the software adapter on purpose (tests, correctness checks) pass ` +
      "--allow-software-gpu or set SID_WEBGPU_SOFTWARE=1."
  }
}

/**
 * The GPU device was lost while the engine was in use (driver reset, GPU removed, out of memory, or destroyed by
 * someone else). Results computed after the loss do not exist; the run must stop and resume from its last checkpoint.
 *
 * @since 0.1.0
 * @category errors
 */
export class WebGpuDeviceLost extends Schema.TaggedError<WebGpuDeviceLost>()("WebGpuDeviceLost", {
  reason: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `The WebGPU device was lost during the run (reason: ${this.reason}; ${this.detail}). Nothing computed ` +
      `after the loss was kept. Fix: check the GPU and driver (dmesg, nvidia-smi), then resume the run from its last ` +
      "checkpoint (sid distill --resume), on this engine or another."
  }
}

/**
 * The device reported an error (WebGPU validation, out-of-memory or internal error) for work the engine submitted:
 * the result of that work is not valid, so the read that would have returned it fails instead.
 *
 * @since 0.1.0
 * @category errors
 */
export class WebGpuDeviceError extends Schema.TaggedError<WebGpuDeviceError>()("WebGpuDeviceError", {
  errors: Schema.Array(Schema.String)
}) {
  override get message(): string {
    const first = (this.errors[0] ?? "unknown").split("\n")[0]
    return `The WebGPU device rejected work the "webgpu" engine submitted (${this.errors.length} error(s); first: ` +
      `${first}), so its results are invalid and were not returned. This is a bug in a kernel or a device limit ` +
      `exceeded: report it with the full messages, and run on SID_ENGINE=wasm-native or wasm meanwhile.`
  }
}

/**
 * A synchronous host read (`dataSync`, `arraySync`, `bufferSync`) on the `webgpu` engine: tfjs-backend-webgpu reads
 * synchronously through an `OffscreenCanvas`, which Node does not have.
 *
 * @since 0.1.0
 * @category errors
 */
export class WebGpuSyncRead extends Schema.TaggedError<WebGpuSyncRead>()("WebGpuSyncRead", {
  shape: Schema.Array(Schema.Number)
}) {
  override get message(): string {
    return `A synchronous read (dataSync/arraySync) of a tensor of shape [${this.shape}] on the "webgpu" engine: ` +
      `WebGPU in Node can only read asynchronously. Fix: read with \`await tensor.data()\` / \`array()\` (batched ` +
      "into one read per step), or run this code on SID_ENGINE=wasm-native or wasm."
  }
}

/**
 * Every error specific to the `webgpu` engine.
 *
 * @since 0.1.0
 * @category errors
 */
export type WebGpuError =
  | WebGpuVulkanMissing
  | WebGpuNoAdapter
  | WebGpuSoftwareAdapter
  | WebGpuDeviceLost
  | WebGpuDeviceError
  | WebGpuSyncRead
