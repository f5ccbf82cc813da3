/**
 * The portable half of the `webgpu` engine, shared by Node (`engine/node/WebGpu.ts`, Dawn) and web pages
 * (`browser/Engine.ts`, the browser's own WebGPU): the device limits the engine asks for, the watch on a device's
 * uncaptured errors and loss that turns the next host read into a typed error, and the project's WebGPU kernels (the
 * chunked `AddN`, the fused Adam and GroupNorm (+ SiLU) kernels and GroupNorm's gradient) with their installer.
 * Nothing here imports Node (docs/architecture.md, "Portable and Node-bound modules").
 *
 * @since 0.2.0
 */
import * as tf from "@tensorflow/tfjs"
import { installGradients } from "./kernels/Gradients.js"
import { groupNormGradient } from "./kernels/GroupNormGradient.js"
import { install, type KernelPatch } from "./kernels/Patches.js"
import { addNPatch } from "./kernels/webgpu/AddN.js"
import { adamPatch } from "./kernels/webgpu/Adam.js"
import { groupNormPatch } from "./kernels/webgpu/GroupNorm.js"
import { groupNormGradPatch } from "./kernels/webgpu/GroupNormGrad.js"
import { WebGpuDeviceError, WebGpuDeviceLost, WebGpuSyncRead } from "./WebGpuErrors.js"

interface GpuDeviceLostInfo {
  readonly reason?: string
  readonly message?: string
}

/**
 * The part of `GPUDevice` the engine uses (structurally: the engine depends on neither the DOM nor `@webgpu/types`).
 *
 * @since 0.2.0
 * @category models
 */
export interface WatchedDevice {
  readonly lost: Promise<GpuDeviceLostInfo>
  readonly addEventListener: (type: "uncapturederror", listener: (event: { readonly error?: { readonly message?: string } }) => void) => void
}

/**
 * The numeric entries of a `GPUSupportedLimits` (its entries are prototype getters: the chain is walked).
 *
 * @since 0.2.0
 * @category utils
 */
export const numericLimits = (limits: object): Record<string, number> => {
  const out: Record<string, number> = {}
  for (let o: object | null = limits; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
    for (const key of Object.getOwnPropertyNames(o)) {
      if (key === "constructor" || key in out) continue
      const value = (limits as Record<string, unknown>)[key]
      if (typeof value === "number") out[key] = value
    }
  }
  return out
}

/** The limits the engine raises on its device: the adapter's own, where they exceed WebGPU's defaults. */
const LIMITS = [
  "maxComputeWorkgroupStorageSize",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupSizeX",
  "maxComputeInvocationsPerWorkgroup",
  "maxStorageBuffersPerShaderStage"
] as const

/**
 * The `requiredLimits` the engine requests its device with: the adapter's values of the limits tfjs-backend-webgpu
 * raises, plus `maxStorageBuffersPerShaderStage` (WebGPU's default of 8 is what broke `AddN`).
 *
 * @since 0.2.0
 * @category utils
 */
export const requiredLimits = (adapterLimits: object): Record<string, number> => {
  const all = numericLimits(adapterLimits)
  return Object.fromEntries(LIMITS.flatMap((k) => (all[k] === undefined ? [] : [[k, all[k]] as const])))
}

/**
 * What happened to a device: errors it raised that no read has reported yet, and whether (and why) it was lost.
 *
 * @since 0.1.0
 * @category models
 */
export interface DeviceHealth {
  readonly errors: Array<string>
  lost: GpuDeviceLostInfo | undefined
  released: boolean
}

/**
 * Fails with the first problem `health` records (loss first), clearing reported errors.
 *
 * @since 0.1.0
 * @category utils
 */
export const checkHealth = (health: DeviceHealth): void => {
  if (health.lost !== undefined) {
    throw new WebGpuDeviceLost({ reason: health.lost.reason ?? "unknown", detail: health.lost.message ?? "" })
  }
  if (health.errors.length > 0) throw new WebGpuDeviceError({ errors: health.errors.splice(0) })
}

/**
 * Starts recording `device`'s uncaptured errors (validation, out-of-memory) and its loss (unless released first).
 *
 * @since 0.2.0
 * @category constructors
 */
export const watchDevice = (device: WatchedDevice): DeviceHealth => {
  const health: DeviceHealth = { errors: [], lost: undefined, released: false }
  device.addEventListener("uncapturederror", (event) => {
    health.errors.push(event.error?.message ?? "unknown device error")
  })
  void device.lost.then((info) => {
    if (!health.released) health.lost = { reason: info.reason ?? "unknown", message: info.message ?? "" }
  })
  return health
}

const text = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause)).split("\n")[0]!

interface ReadingBackend {
  read: (dataId: tf.DataId) => Promise<tf.BackendValues>
  readSync: (dataId: tf.DataId) => tf.BackendValues
  readonly tensorMap?: { get: (dataId: tf.DataId) => { shape?: Array<number> } | undefined }
}

/**
 * Wraps `backend`'s host reads: an asynchronous read fails with the device problems `health` recorded
 * ({@link WebGpuDeviceError}, {@link WebGpuDeviceLost}), so a result computed by failed work is never returned; a
 * synchronous read the backend cannot do (Node has no `OffscreenCanvas`) fails with {@link WebGpuSyncRead}.
 *
 * @since 0.2.0
 * @category utils
 */
export const guardReads = (backend: tf.KernelBackend, health: DeviceHealth): void => {
  const be = backend as unknown as ReadingBackend
  const read = be.read.bind(backend)
  const readSync = be.readSync.bind(backend)
  be.read = async (dataId) => {
    checkHealth(health)
    let values: tf.BackendValues
    try {
      values = await read(dataId)
    } catch (error) {
      checkHealth(health)
      throw error
    }
    checkHealth(health)
    return values
  }
  be.readSync = (dataId) => {
    try {
      return readSync(dataId)
    } catch (error) {
      if (error instanceof ReferenceError || /OffscreenCanvas/.test(text(error))) {
        throw new WebGpuSyncRead({ shape: be.tensorMap?.get(dataId)?.shape ?? [] })
      }
      throw error
    }
  }
}

/**
 * The kernel patches of the `webgpu` engine for a device binding `maxStorageBuffers` storage buffers per shader:
 * the chunked `AddN`, the fused Adam update and the fused GroupNorm (+ SiLU) with its gradient kernel.
 *
 * @since 0.1.0
 * @category patches
 */
export const webGpuPatches = (maxStorageBuffers: number): ReadonlyArray<KernelPatch> => [
  addNPatch(maxStorageBuffers - 1),
  adamPatch,
  groupNormPatch,
  groupNormGradPatch
]

/**
 * Installs the `webgpu` engine's kernels ({@link webGpuPatches}) and GroupNorm's gradient (one `SidGroupNormGrad`
 * call, as `wasm-native` registers it) on the registered `webgpu` backend; the returned function restores what they
 * replaced. Both engines (Node's and the page's) install exactly this.
 *
 * @since 0.2.0
 * @category patches
 */
export const installWebGpuKernels = (maxStorageBuffers: number): () => void => {
  const restoreKernels = install(webGpuPatches(maxStorageBuffers))
  try {
    const restoreGradients = installGradients([groupNormGradient])
    return () => {
      restoreGradients()
      restoreKernels()
    }
  } catch (error) {
    restoreKernels()
    throw error
  }
}
