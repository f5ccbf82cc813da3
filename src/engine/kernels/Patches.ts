/**
 * The kernel patch set that the engine layers install (docs/engines.md §3), with reference-counted
 * install/restore so that building an engine layer twice in one process (two tests, two layers) is safe: the first
 * install saves the kernel it replaces, the last release re-registers it (or unregisters ours if there was none).
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import type { RawKernelFunc } from "./Backend.js"
import { cpuDelegate } from "./CpuDelegate.js"
import { resizeNearestNeighborGradCpu, resizeNearestNeighborGradWasm } from "./ResizeNearestNeighborGrad.js"
import { makeBatchMatMul } from "./WasmBatchMatMul.js"
import { conv2DBackpropFilter, makeConv2DBackpropInput } from "./WasmConv2D.js"

/**
 * One kernel replacement: `make` receives the kernel registered before (if any) and returns ours. Patches with
 * different `id`s may stack on one kernel (the native kernels sit on top of the wasm patches); each id is
 * reference-counted on its own, and releases are expected in reverse order of installs.
 *
 * @since 0.1.0
 * @category models
 */
export interface KernelPatch {
  readonly kernelName: string
  readonly backendName: string
  readonly id?: string
  readonly make: (stock: RawKernelFunc | undefined) => RawKernelFunc
}

const requireStock = (name: string, stock: RawKernelFunc | undefined): RawKernelFunc => {
  if (stock === undefined) throw new Error(`Cannot patch '${name}': the stock wasm kernel is not registered`)
  return stock
}

/**
 * Patches for the wasm backend: fast `Conv2DBackpropFilter` (missing in stock), fast stride-1 `Conv2DBackpropInput`,
 * cpu delegates for the depthwise gradients and `UnsortedSegmentSum`, a `ResizeNearestNeighborGrad` that honours
 * `halfPixelCenters` and one-pixel inputs with `alignCorners`, and a `BatchMatMul` that transposes operands itself
 * instead of using XNNPACK's slow transposed path.
 *
 * @since 0.1.0
 * @category patches
 */
export const wasmPatches: ReadonlyArray<KernelPatch> = [
  { kernelName: "Conv2DBackpropFilter", backendName: "wasm", make: () => conv2DBackpropFilter },
  {
    kernelName: "Conv2DBackpropInput",
    backendName: "wasm",
    make: (stock) => makeConv2DBackpropInput(requireStock("Conv2DBackpropInput", stock))
  },
  {
    kernelName: "DepthwiseConv2dNativeBackpropFilter",
    backendName: "wasm",
    make: () => cpuDelegate("DepthwiseConv2dNativeBackpropFilter")
  },
  {
    kernelName: "DepthwiseConv2dNativeBackpropInput",
    backendName: "wasm",
    make: () => cpuDelegate("DepthwiseConv2dNativeBackpropInput")
  },
  { kernelName: "UnsortedSegmentSum", backendName: "wasm", make: () => cpuDelegate("UnsortedSegmentSum") },
  { kernelName: "ResizeNearestNeighborGrad", backendName: "wasm", make: () => resizeNearestNeighborGradWasm },
  { kernelName: "BatchMatMul", backendName: "wasm", make: (stock) => makeBatchMatMul(requireStock("BatchMatMul", stock)) }
]

/**
 * Patches for the cpu backend: the fixed `ResizeNearestNeighborGrad` (stock is wrong for batch > 1).
 *
 * @since 0.1.0
 * @category patches
 */
export const cpuPatches: ReadonlyArray<KernelPatch> = [
  { kernelName: "ResizeNearestNeighborGrad", backendName: "cpu", make: () => resizeNearestNeighborGradCpu }
]

interface Installed {
  count: number
  readonly previous: tf.KernelConfig | undefined
}

const installed = new Map<string, Installed>()

const keyOf = (p: KernelPatch) => `${p.backendName}_${p.kernelName}${p.id === undefined ? "" : `#${p.id}`}`

/**
 * `backend/kernel` labels of the patches, as reported in the engine facts.
 *
 * @since 0.1.0
 * @category utils
 */
export const labels = (patches: ReadonlyArray<KernelPatch>): Array<string> =>
  patches.map((p) => `${p.backendName}/${p.kernelName}${p.id === undefined ? "" : ` (${p.id})`}`)

/**
 * Installs `patches` (reference-counted) and returns the function that undoes exactly this install.
 * The stock config's `setupFunc`/`disposeFunc` are kept on a replaced kernel (docs/engines.md §3.1).
 *
 * @since 0.1.0
 * @category patches
 */
export const install = (patches: ReadonlyArray<KernelPatch>): () => void => {
  const done: Array<KernelPatch> = []
  try {
    for (const patch of patches) {
      const key = keyOf(patch)
      const entry = installed.get(key)
      if (entry !== undefined) {
        entry.count++
      } else {
        const previous = tf.getKernel(patch.kernelName, patch.backendName) as tf.KernelConfig | undefined
        const kernelFunc = patch.make(previous?.kernelFunc as RawKernelFunc | undefined) as tf.KernelFunc
        if (previous !== undefined) tf.unregisterKernel(patch.kernelName, patch.backendName)
        tf.registerKernel({ ...previous, kernelName: patch.kernelName, backendName: patch.backendName, kernelFunc })
        installed.set(key, { count: 1, previous })
      }
      done.push(patch)
    }
  } catch (error) {
    release(done)
    throw error
  }
  let released = false
  return () => {
    if (released) return
    released = true
    release(done)
  }
}

const release = (patches: ReadonlyArray<KernelPatch>): void => {
  for (const patch of [...patches].reverse()) {
    const key = keyOf(patch)
    const entry = installed.get(key)
    if (entry === undefined) continue
    entry.count--
    if (entry.count > 0) continue
    installed.delete(key)
    if (tf.getKernel(patch.kernelName, patch.backendName) !== undefined) {
      tf.unregisterKernel(patch.kernelName, patch.backendName)
    }
    if (entry.previous !== undefined) tf.registerKernel(entry.previous)
  }
}

/**
 * How many live installs hold each patched kernel (for tests and diagnostics).
 *
 * @since 0.1.0
 * @category utils
 */
export const installCount = (backendName: string, kernelName: string, id?: string): number =>
  installed.get(`${backendName}_${kernelName}${id === undefined ? "" : `#${id}`}`)?.count ?? 0
