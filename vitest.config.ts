import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["test/setup.ts"],
    // One wasm thread per test process (and the CLIs they start): two forks on two cores, each with XNNPACK's pool,
    // would only add spinning threads. test/WasmThreads.test.ts starts the threaded engine itself.
    env: { SID_WASM_THREADS: "1" },
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } }
  }
})
