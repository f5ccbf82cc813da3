/**
 * Shared pieces of the WGSL GroupNorm kernels (`SidGroupNorm`, `SidGroupNormGrad`): a program in
 * tfjs-backend-webgpu's shape, and the uniforms describing an NHWC tensor's groups.
 *
 * Reductions run one workgroup of {@link REDUCE_WORKGROUP} threads per output value (per sample and group, or per
 * channel): strided float32 partial sums, then a tree in workgroup memory. Element-wise passes run one thread per entry.
 * WebGPU's automatic bind-group layout drops bindings a shader never reads while the backend binds every input, so every
 * shader here reads all of its inputs.
 *
 * @since 0.1.0
 */
import type * as tf from "@tensorflow/tfjs"

/**
 * Threads per reduction workgroup.
 *
 * @since 0.1.0
 * @category constants
 */
export const REDUCE_WORKGROUP = 256

const ELEMENTWISE_WORKGROUP = 128

/**
 * A uniform value as the backend takes it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Uniform {
  readonly type: "int32" | "float32"
  readonly data: Array<number>
}

/**
 * The part of the webgpu backend the kernels call.
 *
 * @since 0.1.0
 * @category models
 */
export interface WebGpuProgramRunner {
  readonly runWebGPUProgram: (
    program: object,
    inputs: Array<tf.TensorInfo>,
    dtype: tf.DataType,
    uniforms?: Array<Uniform>
  ) => tf.TensorInfo
}

/**
 * One shader: a reduction (`reduce`: one workgroup per output value) or an element-wise pass.
 *
 * @since 0.1.0
 * @category models
 */
export class GroupNormProgram {
  readonly uniforms = "n : i32, hw : i32, c : i32, cpg : i32, groups : i32, eps : f32,"
  readonly size = true
  readonly workgroupSize: [number, number, number]
  readonly outputShape: Array<number>
  readonly dispatchLayout: { x: Array<number> }
  readonly dispatch: [number, number, number]
  constructor(
    readonly shaderKey: string,
    readonly variableNames: Array<string>,
    outputShape: ReadonlyArray<number>,
    reduce: boolean,
    private readonly code: string
  ) {
    this.outputShape = [...outputShape]
    this.dispatchLayout = { x: outputShape.map((_, i) => i) }
    const size = outputShape.reduce((a, b) => a * b, 1)
    this.workgroupSize = [reduce ? REDUCE_WORKGROUP : ELEMENTWISE_WORKGROUP, 1, 1]
    this.dispatch = [reduce ? size : Math.ceil(size / ELEMENTWISE_WORKGROUP), 1, 1]
  }
  getUserCode(): string {
    return this.code
  }
}

/**
 * [N, H·W, C, G] of an NHWC tensor split into `groups` channel groups.
 *
 * @since 0.1.0
 * @category utils
 */
export const groupDims = (x: tf.TensorInfo, groups: number) => {
  const [n, h, w, c] = x.shape as [number, number, number, number]
  return { n, hw: h * w, c, groups, cpg: c / groups }
}

/**
 * The uniforms of every GroupNorm shader.
 *
 * @since 0.1.0
 * @category utils
 */
export const groupUniforms = (d: ReturnType<typeof groupDims>, eps: number): Array<Uniform> => [
  { type: "int32", data: [d.n] },
  { type: "int32", data: [d.hw] },
  { type: "int32", data: [d.c] },
  { type: "int32", data: [d.cpg] },
  { type: "int32", data: [d.groups] },
  { type: "float32", data: [eps] }
]

/**
 * A workgroup reduction: `body` adds to `acc` for element `k` of the output value `outputIndex`'s `length` elements
 * (both WGSL expressions of `outputIndex`), and `finish` turns the total into the output.
 *
 * @since 0.1.0
 * @category utils
 */
export const reduction = (
  helpers: string,
  length: string,
  body: string,
  finish: string
): string => `
  var<workgroup> partial : array<f32, ${REDUCE_WORKGROUP}>;
  ${helpers}
  fn main(index : i32) {
    let outputIndex = index / ${REDUCE_WORKGROUP};
    let len = ${length};
    var acc = 0.0;
    for (var k = i32(localId.x); k < len && outputIndex < uniforms.size; k = k + ${REDUCE_WORKGROUP}) {
      ${body}
    }
    partial[localId.x] = acc;
    workgroupBarrier();
    for (var s = ${REDUCE_WORKGROUP / 2}u; s > 0u; s = s / 2u) {
      if (localId.x < s) {
        partial[localId.x] = partial[localId.x] + partial[localId.x + s];
      }
      workgroupBarrier();
    }
    if (localId.x == 0u && outputIndex < uniforms.size) {
      let total = partial[0];
      setOutputAtIndex(outputIndex, ${finish});
    }
  }
`

/**
 * WGSL giving the flat index of element `k` of group `g` of sample `n` (`k` runs over H·W·C/G).
 *
 * @since 0.1.0
 * @category utils
 */
export const GROUP_ELEMENT = "fn groupElement(n : i32, g : i32, k : i32) -> i32 {\n" +
  "    return (n * uniforms.hw + k / uniforms.cpg) * uniforms.c + g * uniforms.cpg + k % uniforms.cpg;\n  }"
