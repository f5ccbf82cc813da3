/**
 * A turn of the event loop (a macrotask). Long synchronous tensor tests take one between their parts, so that vitest's
 * worker RPC (which gives up after 60 s) is served also on a busy machine.
 */
export const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
