/**
 * The fused Adam update (`SidAdam`, the contract of `domain/Adam.ts`'s `ADAM_KERNEL`) as WGSL for the `webgpu`
 * backend: three element-wise shaders (new m, new v, new parameter), each computing the composed update's
 * float32 operations in the composed order — m₁ = m·β₁ + g·(1−β₁), v₁ = v·β₂ + (g·g)·(1−β₂),
 * p₁ = p − ((m₁/c₁) / (√(v₁/c₂) + ε))·lr with c = 1 − βᵗ — instead of the ~13 dispatches the composed ops take.
 *
 * Precision: WGSL does not require correctly rounded division or square root (2.5 ULP), and a shader compiler may
 * contract a·b + c into a fused multiply-add, so the result is not guaranteed bit-identical to the composed ops on
 * every device; it is within 1e-6 relative of them (checked against the `cpu` engine by `test/WebGpuKernels.test.ts`).
 *
 * @since 0.1.0
 */
import type * as tf from "@tensorflow/tfjs"
import { ADAM_KERNEL } from "../../../domain/optim/Adam.js"
import type { KernelPatch } from "../Patches.js"

type Part = "m" | "v" | "p"

interface Uniform {
  readonly type: "float32"
  readonly data: Array<number>
}

interface WebGpuBackendLike {
  readonly runWebGPUProgram: (program: object, inputs: Array<tf.TensorInfo>, dtype: tf.DataType, uniforms?: Array<Uniform>) => tf.TensorInfo
}

const WORKGROUP = 128

const body: Record<Part, string> = {
  m: "setOutputAtIndex(index, m1);",
  v: "setOutputAtIndex(index, v1);",
  p: "let u = (m1 / uniforms.c1) / (sqrt(v1 / uniforms.c2) + uniforms.eps);\n" +
    "          setOutputAtIndex(index, p - u * uniforms.lr);"
}

/** One of the three shaders, in tfjs-backend-webgpu's program shape (it generates bindings, uniforms and `_start`). */
class AdamProgram {
  readonly variableNames = ["P", "G", "M", "V"]
  readonly uniforms = "b1 : f32, g1 : f32, b2 : f32, g2 : f32, c1 : f32, c2 : f32, eps : f32, lr : f32,"
  readonly size = true
  readonly workgroupSize: [number, number, number] = [WORKGROUP, 1, 1]
  readonly outputShape: Array<number>
  readonly dispatchLayout: { x: Array<number> }
  readonly dispatch: [number, number, number]
  readonly shaderKey: string
  constructor(shape: ReadonlyArray<number>, readonly part: Part) {
    this.outputShape = [...shape]
    this.dispatchLayout = { x: shape.map((_, i) => i) }
    const size = shape.reduce((a, b) => a * b, 1)
    this.dispatch = [Math.ceil(size / WORKGROUP), 1, 1]
    this.shaderKey = `sid_adam_${part}`
  }
  getUserCode(): string {
    // Every shader reads all four inputs: WebGPU's automatic bind group layout omits unused bindings, and the
    // backend binds every input.
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let g = getGByOutputIndex(index);
          let m1 = getMByOutputIndex(index) * uniforms.b1 + g * uniforms.g1;
          let v1 = getVByOutputIndex(index) * uniforms.b2 + (g * g) * uniforms.g2;
          let p = getPByOutputIndex(index);
          ${body[this.part]}
        }
      }
    `
  }
}

/**
 * The float32 constants of one update: β₁, 1−β₁, β₂, 1−β₂, c₁, c₂, ε, lr (each rounded from double once, as the
 * composed ops' scalars are).
 *
 * @since 0.1.0
 * @category utils
 */
export const adamConstants = (attrs: tf.NamedAttrMap): Array<number> => {
  const b1 = Number(attrs["beta1"])
  const b2 = Number(attrs["beta2"])
  const t = Number(attrs["step"])
  return [b1, 1 - b1, b2, 1 - b2, 1 - Math.pow(b1, t), 1 - Math.pow(b2, t), Number(attrs["epsilon"]), Number(attrs["learningRate"])]
    .map(Math.fround)
}

/**
 * The `SidAdam` kernel on `webgpu`: outputs the new parameter, m and v.
 *
 * @since 0.1.0
 * @category patches
 */
export const adamPatch: KernelPatch = {
  kernelName: ADAM_KERNEL,
  backendName: "webgpu",
  make: () => (args) => {
    const { param, grad, m, v } = args.inputs as Record<"param" | "grad" | "m" | "v", tf.TensorInfo>
    const backend = args.backend as WebGpuBackendLike
    const uniforms = adamConstants(args.attrs ?? {}).map((x): Uniform => ({ type: "float32", data: [x] }))
    const inputs = [param!, grad!, m!, v!]
    return (["p", "m", "v"] as const).map((part) =>
      backend.runWebGPUProgram(new AdamProgram(param!.shape, part), inputs, "float32", uniforms)
    )
  }
}
