/**
 * The safetensors file format, as pure bytes ↔ named arrays.
 *
 * Layout (huggingface/safetensors): an unsigned 64-bit little-endian header length, a UTF-8 JSON header mapping each
 * tensor name to `{ dtype, shape, data_offsets: [begin, end) }` (offsets counted from the first byte after the
 * header) plus an optional `__metadata__` object of strings, then the raw little-endian data. The header is padded
 * with spaces to a multiple of 8 bytes, as the Python package writes it, so files written here load there and back.
 *
 * Decoding validates everything a corrupt or truncated file could get wrong and throws {@link SafetensorsFormatError}
 * naming the problem.
 *
 * @module
 */

/**
 * Element types sid-ts reads. F16, BF16 and F64 are widened/narrowed to float32; I64 to int32 when exact.
 *
 * @since 0.1.0
 * @category models
 */
export type SafetensorsDtype = "F32" | "F16" | "BF16" | "F64" | "I32" | "I64" | "U8" | "BOOL"

/**
 * One decoded tensor: its shape and row-major values (float32 for float types, int32 for integer types).
 *
 * @since 0.1.0
 * @category models
 */
export interface NamedArray {
  readonly dtype: "float32" | "int32"
  readonly shape: ReadonlyArray<number>
  readonly values: Float32Array | Int32Array
}

/**
 * A decoded file: tensors by name, in header order, and the metadata strings.
 *
 * @since 0.1.0
 * @category models
 */
export interface SafetensorsFile {
  readonly tensors: ReadonlyMap<string, NamedArray>
  readonly metadata: Readonly<Record<string, string>>
}

/**
 * Thrown when bytes are not a valid safetensors file; the message says what is wrong.
 *
 * @since 0.1.0
 * @category errors
 */
export class SafetensorsFormatError extends Error {
  override readonly name = "SafetensorsFormatError"
}

const BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I32: 4, I64: 8, U8: 1, BOOL: 1 }

const halfToFloat = (h: number): number => {
  const sign = h & 0x8000 ? -1 : 1
  const exp = (h >> 10) & 0x1f
  const frac = h & 0x3ff
  if (exp === 0) return sign * Math.pow(2, -14) * (frac / 1024)
  if (exp === 31) return frac === 0 ? sign * Infinity : NaN
  return sign * Math.pow(2, exp - 15) * (1 + frac / 1024)
}

const product = (shape: ReadonlyArray<number>): number => shape.reduce((a, b) => a * b, 1)

const decodeValues = (dtype: SafetensorsDtype, view: DataView, count: number, name: string): NamedArray["values"] => {
  switch (dtype) {
    case "F32": {
      const out = new Float32Array(count)
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true)
      return out
    }
    case "F64": {
      const out = new Float32Array(count)
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(8 * i, true)
      return out
    }
    case "F16": {
      const out = new Float32Array(count)
      for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(2 * i, true))
      return out
    }
    case "BF16": {
      const out = new Float32Array(count)
      const word = new DataView(new ArrayBuffer(4))
      for (let i = 0; i < count; i++) {
        word.setUint32(0, view.getUint16(2 * i, true) << 16, true)
        out[i] = word.getFloat32(0, true)
      }
      return out
    }
    case "I32": {
      const out = new Int32Array(count)
      for (let i = 0; i < count; i++) out[i] = view.getInt32(4 * i, true)
      return out
    }
    case "I64": {
      const out = new Int32Array(count)
      for (let i = 0; i < count; i++) {
        const v = view.getBigInt64(8 * i, true)
        if (v > 2147483647n || v < -2147483648n) {
          throw new SafetensorsFormatError(`tensor "${name}": I64 value ${v} does not fit in int32`)
        }
        out[i] = Number(v)
      }
      return out
    }
    case "U8":
    case "BOOL": {
      const out = new Int32Array(count)
      for (let i = 0; i < count; i++) out[i] = view.getUint8(i)
      return out
    }
  }
}

const isDtype = (s: unknown): s is SafetensorsDtype => typeof s === "string" && s in BYTES

/**
 * Decodes a safetensors file. Throws {@link SafetensorsFormatError} on a truncated, corrupt or inconsistent file.
 *
 * @since 0.1.0
 * @category utils
 */
export const decodeSafetensors = (bytes: Uint8Array): SafetensorsFile => {
  if (bytes.byteLength < 8) {
    throw new SafetensorsFormatError(`file is ${bytes.byteLength} bytes long: too short for a safetensors header`)
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const headerLength = view.getBigUint64(0, true)
  if (headerLength > BigInt(bytes.byteLength - 8)) {
    throw new SafetensorsFormatError(
      `header length ${headerLength} exceeds the ${bytes.byteLength - 8} bytes after the length field (truncated file?)`
    )
  }
  const dataStart = 8 + Number(headerLength)
  let header: unknown
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, dataStart)))
  } catch (e) {
    throw new SafetensorsFormatError(`header is not valid UTF-8 JSON: ${String(e)}`)
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new SafetensorsFormatError("header is not a JSON object")
  }
  const dataLength = bytes.byteLength - dataStart
  const tensors = new Map<string, NamedArray>()
  let metadata: Record<string, string> = {}
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof entry !== "object" || entry === null || Object.values(entry).some((v) => typeof v !== "string")) {
        throw new SafetensorsFormatError("__metadata__ must be an object of strings")
      }
      metadata = { ...(entry as Record<string, string>) }
      continue
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown }
    if (!isDtype(e.dtype)) throw new SafetensorsFormatError(`tensor "${name}": unsupported dtype ${String(e.dtype)}`)
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new SafetensorsFormatError(`tensor "${name}": shape must be a list of non-negative integers`)
    }
    const offsets = e.data_offsets
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) {
      throw new SafetensorsFormatError(`tensor "${name}": data_offsets must be two non-negative integers`)
    }
    const [begin, end] = offsets as [number, number]
    const shape = e.shape as Array<number>
    const count = product(shape)
    if (end < begin || end > dataLength) {
      throw new SafetensorsFormatError(
        `tensor "${name}": data_offsets [${begin}, ${end}) lie outside the ${dataLength} data bytes (truncated file?)`
      )
    }
    if (end - begin !== count * BYTES[e.dtype]) {
      throw new SafetensorsFormatError(
        `tensor "${name}": ${end - begin} bytes for shape [${shape}] of ${e.dtype}, expected ${count * BYTES[e.dtype]}`
      )
    }
    const slice = new DataView(bytes.buffer, bytes.byteOffset + dataStart + begin, end - begin)
    const values = decodeValues(e.dtype, slice, count, name)
    tensors.set(name, { dtype: values instanceof Float32Array ? "float32" : "int32", shape, values })
  }
  return { tensors, metadata }
}

/**
 * Encodes named arrays (float32 → F32, int32 → I32) and metadata strings into safetensors bytes.
 *
 * @since 0.1.0
 * @category utils
 */
export const encodeSafetensors = (
  tensors: Iterable<readonly [string, NamedArray]>,
  metadata: Readonly<Record<string, string>> = {}
): Uint8Array => {
  const entries = Array.from(tensors)
  // No prototype: a tensor may be named "__proto__", which on a plain object would set the prototype instead.
  const header: Record<string, unknown> = Object.create(null) as Record<string, unknown>
  if (Object.keys(metadata).length > 0) header["__metadata__"] = metadata
  let offset = 0
  for (const [name, t] of entries) {
    if (name === "__metadata__") throw new SafetensorsFormatError(`"__metadata__" cannot name a tensor`)
    if (t.values.length !== product(t.shape)) {
      throw new SafetensorsFormatError(`tensor "${name}": ${t.values.length} values for shape [${t.shape}]`)
    }
    const size = t.values.length * 4
    header[name] = { dtype: t.dtype === "float32" ? "F32" : "I32", shape: t.shape, data_offsets: [offset, offset + size] }
    offset += size
  }
  let json = new TextEncoder().encode(JSON.stringify(header))
  const padded = Math.ceil(json.byteLength / 8) * 8
  if (padded !== json.byteLength) {
    const p = new Uint8Array(padded).fill(0x20)
    p.set(json)
    json = p
  }
  const out = new Uint8Array(8 + json.byteLength + offset)
  const view = new DataView(out.buffer)
  view.setBigUint64(0, BigInt(json.byteLength), true)
  out.set(json, 8)
  let at = 8 + json.byteLength
  for (const [, t] of entries) {
    for (let i = 0; i < t.values.length; i++) {
      if (t.dtype === "float32") view.setFloat32(at + 4 * i, t.values[i]!, true)
      else view.setInt32(at + 4 * i, t.values[i]!, true)
    }
    at += t.values.length * 4
  }
  return out
}
