/**
 * The gradient of the fused GroupNorm (`SidGroupNormGrad`, the contract of `domain/GroupNorm.ts`) in WGSL for the
 * `webgpu` backend. With x̂ = (x − μ)·r, z = x̂·γ + β and dz = dy (after SiLU: dy·s·(1 + z·(1 − s)),
 * s = 1/(1 + e^(−z))): dβ = Σ dz and dγ = Σ dz·x̂ per channel (one reduction each), the per-(sample, group) sums
 * S₁ = Σ γ·dz and S₂ = Σ γ·dz·x̂ (one reduction), then dx = r·(γ·dz − S₁/m − x̂·S₂/m) with m = H·W·C/G.
 * Float32 throughout; within 1e-6 relative (L2) of the composed ops' gradient (`test/WebGpu.test.ts`).
 *
 * @since 0.1.0
 */
import type * as tf from "@tensorflow/tfjs"
import { GROUP_NORM_GRAD_KERNEL } from "../../../domain/nn/GroupNorm.js"
import type { KernelPatch } from "../Patches.js"
import {
  GROUP_ELEMENT,
  groupDims,
  GroupNormProgram,
  groupUniforms,
  reduction,
  type WebGpuProgramRunner
} from "./GroupNormShaders.js"

/** WGSL: (dz, x̂) of flat element i in sample n, channel c. Reads every input (see GroupNormShaders). */
const dzAt = (silu: boolean): string => `
  fn dzAt(i : i32, n : i32, c : i32) -> vec2<f32> {
    let ng = n * uniforms.groups + c / uniforms.cpg;
    let xhat = (X[i] - Mean[ng]) * Rstd[ng];
    let z = xhat * Gamma[c] + Beta[c];
    let s = 1.0 / (1.0 + exp(-1.0 * z));
    let dz = ${silu ? "Dy[i] * (s * (1.0 + z * (1.0 - s)))" : "Dy[i]"};
    return vec2<f32>(dz, xhat);
  }
`

const INPUTS = ["Dy", "X", "Gamma", "Beta", "Mean", "Rstd"]

/** Per channel: Σ dz (which 0) or Σ dz·x̂ (which 1) over samples and pixels. */
const channelCode = (silu: boolean, which: 0 | 1): string =>
  reduction(
    dzAt(silu),
    "uniforms.hw * uniforms.n",
    "let n = k / uniforms.hw;\n" +
      "      let i = k * uniforms.c + outputIndex;\n" +
      `      let v = dzAt(i, n, outputIndex);\n      acc = acc + ${which === 0 ? "v.x" : "v.x * v.y"};`,
    "total"
  )

/** Per (sample, group): S₁ = Σ γ·dz (even outputs) and S₂ = Σ γ·dz·x̂ (odd outputs). */
const groupCode = (silu: boolean): string =>
  reduction(
    `${GROUP_ELEMENT}\n${dzAt(silu)}`,
    "uniforms.hw * uniforms.cpg",
    "let ng = outputIndex / 2;\n" +
      "      let n = ng / uniforms.groups;\n" +
      "      let g = ng % uniforms.groups;\n" +
      "      let i = groupElement(n, g, k);\n" +
      "      let c = g * uniforms.cpg + k % uniforms.cpg;\n" +
      "      let v = dzAt(i, n, c);\n" +
      "      acc = acc + select(Gamma[c] * v.x, Gamma[c] * v.x * v.y, outputIndex % 2 == 1);",
    "total"
  )

const dxCode = (silu: boolean): string => `
  ${dzAt(silu)}
  fn main(index : i32) {
    if (index < uniforms.size) {
      let c = index % uniforms.c;
      let n = index / (uniforms.hw * uniforms.c);
      let ng = n * uniforms.groups + c / uniforms.cpg;
      let v = dzAt(index, n, c);
      let m = f32(uniforms.hw * uniforms.cpg);
      setOutputAtIndex(index, Rstd[ng] * (Gamma[c] * v.x - S[2 * ng] / m - v.y * S[2 * ng + 1] / m));
    }
  }
`

/**
 * The `SidGroupNormGrad` kernel on `webgpu`: outputs dx, dγ, dβ.
 *
 * @since 0.1.0
 * @category patches
 */
export const groupNormGradPatch: KernelPatch = {
  kernelName: GROUP_NORM_GRAD_KERNEL,
  backendName: "webgpu",
  make: () => (args) => {
    const { beta, dy, gamma, mean, rstd, x } = args.inputs as Record<"dy" | "x" | "gamma" | "beta" | "mean" | "rstd", tf.TensorInfo>
    const attrs = args.attrs ?? {}
    const silu = attrs["activation"] === "silu"
    const d = groupDims(x!, Number(attrs["groups"]))
    const uniforms = groupUniforms(d, Number(attrs["epsilon"]))
    const backend = args.backend as WebGpuProgramRunner & { readonly disposeData: (id: tf.DataId) => boolean }
    const inputs = [dy!, x!, gamma!, beta!, mean!, rstd!]
    const perChannel = (which: 0 | 1) =>
      backend.runWebGPUProgram(
        new GroupNormProgram(
          `sid_gn_grad_channel_${which}_${silu}`,
          INPUTS,
          [d.c],
          true,
          channelCode(silu, which)
        ),
        inputs,
        "float32",
        uniforms
      )
    const dbeta = perChannel(0)
    const dgamma = perChannel(1)
    const sums = backend.runWebGPUProgram(
      new GroupNormProgram(`sid_gn_grad_group_${silu}`, INPUTS, [d.n * d.groups * 2], true, groupCode(silu)),
      inputs,
      "float32",
      uniforms
    )
    const dx = backend.runWebGPUProgram(
      new GroupNormProgram(`sid_gn_grad_dx_${silu}`, [...INPUTS, "S"], x!.shape, false, dxCode(silu)),
      [...inputs, sums],
      "float32",
      uniforms
    )
    backend.disposeData(sums.dataId)
    return [dx, dgamma, dbeta]
  }
}
