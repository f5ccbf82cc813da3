import { probeWebGpu } from "../src/engine/WebGpu.js"
const t0 = performance.now()
const p = await probeWebGpu()
console.log(p._tag, (performance.now() - t0).toFixed(0), "ms")
