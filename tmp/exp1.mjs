import { create, globals } from "webgpu"
Object.assign(globalThis, globals)
globalThis.navigator = { gpu: create([]) }
const tf = await import("@tensorflow/tfjs")
const wg = await import("@tensorflow/tfjs-backend-webgpu")
console.log("exports", Object.keys(wg).slice(0, 10))
const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" })
const i = adapter.info
console.log({ vendor: i.vendor, arch: i.architecture, device: i.device, desc: i.description, fb: i.isFallbackAdapter, fb2: adapter.isFallbackAdapter, type: i.adapterType, backend: i.backendType })
const device = await adapter.requestDevice({})
const errors = []
console.log("has addEventListener", typeof device.addEventListener, "lost", typeof device.lost?.then)
device.addEventListener?.("uncapturederror", (e) => { errors.push(e.error.message.slice(0, 80)); console.log("UNCAPTURED at", Date.now() % 100000) })
tf.removeBackend("webgpu")
tf.registerBackend("webgpu", () => new wg.WebGPUBackend(device, adapter.info), 0)
await tf.setBackend("webgpu"); await tf.ready()
const be = tf.backend()
const read = be.read.bind(be)
be.read = async (id) => { const v = await read(id); console.log("read resolved at", Date.now() % 100000, "errors", errors.length); return v }
for (const n of [4, 9]) {
  const xs = Array.from({ length: n }, (_, k) => tf.scalar(k + 1).add(0))
  const s = tf.addN(xs)
  console.log(n, await s.data())
}
await new Promise((r) => setTimeout(r, 200))
console.log("errors", errors)
try { tf.scalar(1).add(1).dataSync() } catch (e) { console.log("sync:", e.message) }
device.destroy()
try { console.log(await tf.scalar(2).add(1).data()) } catch (e) { console.log("after destroy:", e.message) }
console.log(await device.lost)
