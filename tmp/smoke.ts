import { Effect } from "effect"
import * as Engine from "../src/layers/Engine.js"
import { Engine as EngineTag } from "../src/services/Engine.js"
const prog = Effect.gen(function*() {
  const e = yield* EngineTag
  const tf = e.tf
  console.log(e.facts.adapter?.summary, e.facts.patchedKernels)
  const xs = Array.from({ length: 40 }, (_, k) => tf.scalar(k + 1).add(tf.zeros([1000])))
  const s = tf.addN(xs)
  console.log("addN", (yield* Effect.promise(() => s.data()))[0], 820)
  try { s.dataSync() } catch (err) { console.log("sync:", (err as Error).message.slice(0, 80), (err as {_tag?:string})._tag) }
  tf.dispose([...xs, s])
})
await Effect.runPromise(Effect.scoped(prog).pipe(Effect.provide(Engine.makeWebGpu({ allowSoftwareGpu: true })), Effect.catchAll((e) => Effect.sync(() => console.log("ERR", e._tag, e.message)))))
const tf = await import("@tensorflow/tfjs")
console.log("backend after", tf.getBackend(), "navigator", typeof (globalThis as any).navigator, typeof (globalThis as any).GPUBufferUsage)
await Effect.runPromise(Engine.makeWebGpu().pipe(Effect.scoped as any, (l: any) => Effect.scoped(Effect.provide(Effect.void, Engine.makeWebGpu())), Effect.catchAll((e: any) => Effect.sync(() => console.log("refused:", e._tag, e.message.slice(0, 100))))) as any)
