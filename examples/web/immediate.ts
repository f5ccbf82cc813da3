/**
 * `setImmediate` for the worker, on a `MessageChannel`: the library gives the event loop a turn between iterations
 * with `setImmediate` where it exists, else `setTimeout(0)`, which browsers clamp to 4 ms after a few nested calls
 * (a tenth of a 2-D SiD iteration). A message-channel turn lets the worker's messages (pause, export) in without that
 * delay. Imported first, before the library reads `globalThis.setImmediate`.
 *
 * @module
 */
type Task = () => void

const holder = globalThis as unknown as {
  setImmediate?: (run: Task) => number
  clearImmediate?: (handle: number) => void
}

if (typeof holder.setImmediate !== "function") {
  const channel = new MessageChannel()
  const tasks = new Map<number, Task>()
  let next = 1
  channel.port1.onmessage = (event: MessageEvent<number>) => {
    const task = tasks.get(event.data)
    tasks.delete(event.data)
    task?.()
  }
  holder.setImmediate = (run) => {
    const handle = next++
    tasks.set(handle, run)
    channel.port2.postMessage(handle)
    return handle
  }
  holder.clearImmediate = (handle) => void tasks.delete(handle)
}

export {}
