import fc from "fast-check"
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import {
  decodeSafetensors,
  encodeSafetensors,
  type NamedArray,
  SafetensorsFormatError
} from "../src/domain/data/Safetensors.js"

const namedArray = fc
  .array(fc.integer({ min: 0, max: 4 }), { minLength: 0, maxLength: 3 })
  .chain((shape) => {
    const n = shape.reduce((a, b) => a * b, 1)
    return fc.oneof(
      fc.float32Array({ minLength: n, maxLength: n, noNaN: true }).map(
        (v): NamedArray => ({ dtype: "float32", shape, values: v })
      ),
      fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { minLength: n, maxLength: n }).map(
        (v): NamedArray => ({ dtype: "int32", shape, values: Int32Array.from(v) })
      )
    )
  })

describe("Safetensors", () => {
  it("round-trips any named arrays and metadata bit for bit, with an 8-byte aligned header", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(fc.string({ minLength: 1 }).filter((s) => s !== "__metadata__"), namedArray), {
          selector: ([name]) => name,
          maxLength: 5
        }),
        fc.dictionary(fc.string().filter((s) => s !== "__proto__"), fc.string()),
        (entries, metadata) => {
          const bytes = encodeSafetensors(entries, metadata)
          const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true))
          expect(headerLength % 8).toBe(0)
          const file = decodeSafetensors(bytes)
          expect([...file.tensors.keys()].sort()).toEqual(entries.map(([n]) => n).sort())
          for (const [name, t] of entries) {
            const d = file.tensors.get(name)!
            expect(d.dtype).toBe(t.dtype)
            expect(d.shape).toEqual(t.shape)
            expect(Buffer.from(d.values.buffer, d.values.byteOffset, d.values.byteLength)).toEqual(
              Buffer.from(t.values.buffer, t.values.byteOffset, t.values.byteLength)
            )
          }
          expect(file.metadata).toEqual(Object.keys(metadata).length > 0 ? metadata : {})
        }
      ),
      { numRuns: 100 }
    )
  })

  it("keeps a tensor named __proto__ (a name like any other)", () => {
    const values = Float32Array.from([1.5, -2])
    const file = decodeSafetensors(encodeSafetensors([["__proto__", { dtype: "float32", shape: [2], values }], ["w", { dtype: "float32", shape: [2], values }]]))
    expect([...file.tensors.keys()].sort()).toEqual(["__proto__", "w"])
    expect(Array.from(file.tensors.get("__proto__")!.values)).toEqual([1.5, -2])
  })

  it("reads the EDM golden files written by the Python safetensors package", () => {
    const file = decodeSafetensors(
      new Uint8Array(readFileSync(new URL("./fixtures/edm/songunet-ddpmpp-tiny.safetensors", import.meta.url)))
    )
    expect(file.metadata["format"]).toBe("edm-golden-v1")
    expect(file.tensors.get("input.x")?.shape).toEqual([4, 3, 16, 16])
    expect(file.tensors.get("input.sigma")?.values[3]).toBe(80)
    const weights = [...file.tensors.entries()].filter(([n]) => n.startsWith("model."))
    expect(weights.reduce((n, [, t]) => n + t.values.length, 0)).toBe(177_667)
  })

  it("rejects truncated and corrupt files with a message that says what is wrong", () => {
    const good = encodeSafetensors([["w", { dtype: "float32", shape: [2, 3], values: new Float32Array(6) }]])
    const expectError = (bytes: Uint8Array, pattern: RegExp) => {
      expect(() => decodeSafetensors(bytes)).toThrow(SafetensorsFormatError)
      expect(() => decodeSafetensors(bytes)).toThrow(pattern)
    }
    expectError(good.subarray(0, 5), /too short/)
    expectError(good.subarray(0, 20), /header length/)
    expectError(good.subarray(0, good.byteLength - 4), /outside the .* data bytes/)
    const corrupt = Uint8Array.from(good)
    corrupt[9] = 0x7b
    corrupt[10] = 0x7b
    expectError(corrupt, /not valid UTF-8 JSON|not a JSON object/)
    const wrongSize = encodeSafetensors([["w", { dtype: "float32", shape: [6], values: new Float32Array(6) }]])
    const text = new TextDecoder().decode(wrongSize).replace('"shape":[6]', '"shape":[5]')
    expectError(new TextEncoder().encode(text), /expected 20/)
  })
})
