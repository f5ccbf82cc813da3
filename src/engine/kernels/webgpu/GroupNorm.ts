/**
 * The fused GroupNorm (+ SiLU) forward (`SidGroupNorm`, the contract of `domain/GroupNorm.ts`) in WGSL for the
 * `webgpu` backend: three dispatches instead of the ~20 of the composed ops — the per-(sample, group) mean,
 * then 1/√(var + ε) from the squared deviations (two passes, as `tf.moments` computes them), then
 * y = act(((x − μ)·r)·γ + β), with SiLU as z·(1/(1 + e^(−z))) like the backend's sigmoid.
 *
 * Precision: float32 throughout, with the reductions summed in a different order from the composed ops' and WGSL's
 * `inverseSqrt`/`exp` within a few ULP: the result is within 1e-6 relative (L2) of the composed ops on the same
 * engine, not bit-identical (`test/WebGpu.test.ts`).
 *
 * @since 0.1.0
 */
import type * as tf from "@tensorflow/tfjs"
import { GROUP_NORM_KERNEL } from "../../../domain/nn/GroupNorm.js"
import type { KernelPatch } from "../Patches.js"
import {
  GROUP_ELEMENT,
  groupDims,
  GroupNormProgram,
  groupUniforms,
  reduction,
  type WebGpuProgramRunner
} from "./GroupNormShaders.js"

const meanCode = reduction(
  GROUP_ELEMENT,
  "uniforms.hw * uniforms.cpg",
  "acc = acc + X[groupElement(outputIndex / uniforms.groups, outputIndex % uniforms.groups, k)];",
  "total / f32(len)"
)

const rstdCode = reduction(
  GROUP_ELEMENT,
  "uniforms.hw * uniforms.cpg",
  "let d = X[groupElement(outputIndex / uniforms.groups, outputIndex % uniforms.groups, k)] - Mean[outputIndex];\n" +
    "      acc = acc + d * d;",
  "inverseSqrt(total / f32(len) + uniforms.eps)"
)

const applyCode = (silu: boolean): string => `
  fn main(index : i32) {
    if (index < uniforms.size) {
      let c = index % uniforms.c;
      let ng = (index / (uniforms.hw * uniforms.c)) * uniforms.groups + c / uniforms.cpg;
      let z = (X[index] - Mean[ng]) * Rstd[ng] * Gamma[c] + Beta[c];
      setOutputAtIndex(index, ${silu ? "z * (1.0 / (1.0 + exp(-1.0 * z)))" : "z"});
    }
  }
`

/**
 * The `SidGroupNorm` kernel on `webgpu`: outputs y, mean [N, G] and rstd [N, G].
 *
 * @since 0.1.0
 * @category patches
 */
export const groupNormPatch: KernelPatch = {
  kernelName: GROUP_NORM_KERNEL,
  backendName: "webgpu",
  make: () => (args) => {
    const { beta, gamma, x } = args.inputs as Record<"x" | "gamma" | "beta", tf.TensorInfo>
    const attrs = args.attrs ?? {}
    const silu = attrs["activation"] === "silu"
    const d = groupDims(x!, Number(attrs["groups"]))
    const uniforms = groupUniforms(d, Number(attrs["epsilon"]))
    const backend = args.backend as WebGpuProgramRunner
    const stats = [d.n, d.groups]
    const mean = backend.runWebGPUProgram(new GroupNormProgram("sid_gn_mean", ["X"], stats, true, meanCode), [x!], "float32", uniforms)
    const rstd = backend.runWebGPUProgram(
      new GroupNormProgram("sid_gn_rstd", ["X", "Mean"], stats, true, rstdCode),
      [x!, mean],
      "float32",
      uniforms
    )
    const y = backend.runWebGPUProgram(
      new GroupNormProgram(`sid_gn_apply_${silu}`, ["X", "Gamma", "Beta", "Mean", "Rstd"], x!.shape, false, applyCode(silu)),
      [x!, gamma!, beta!, mean, rstd],
      "float32",
      uniforms
    )
    return [y, mean, rstd]
  }
}
