#!/usr/bin/env node
// The package's install step: builds the optional native CPU kernels (native/, the `wasm-native` engine) when this
// machine has what they need, and otherwise says in one line what to install. It never fails the install and never
// downloads anything (node-gyp is pointed at the installed Node headers). SID_SKIP_NATIVE=1 skips it.
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const say = (line) => console.log(`sid-ts: ${line}`)
const hint = "apt-get install g++ make python3 libopenblas-dev libdnnl-dev && npm run build:native"

const main = () => {
  if (process.env.SID_SKIP_NATIVE === "1") return
  if (!existsSync(join(root, "native", "binding.gyp"))) return
  if (process.platform !== "linux" || process.arch !== "x64") {
    say(`native CPU kernels are built on Linux x64 only; the wasm engine is used here (${process.platform}-${process.arch})`)
    return
  }
  const has = (command) => spawnSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" }).status === 0
  const missing = [
    ...["g++", "make", "python3"].filter((c) => !has(c)),
    ...(["/usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h", "/usr/include/openblas/cblas.h", "/usr/include/x86_64-linux-gnu/cblas.h"]
        .some(existsSync)
      ? []
      : ["libopenblas-dev"])
  ]
  const nodeDir = dirname(dirname(process.execPath))
  if (!existsSync(join(nodeDir, "include", "node", "node_api.h"))) missing.push(`Node's headers (${join(nodeDir, "include", "node")})`)
  if (missing.length > 0) {
    say(`optional native CPU kernels not built (missing: ${missing.join(", ")}); for 5-8x faster CPU training: ${hint}`)
    return
  }
  const gyp = join(root, "node_modules", "node-gyp", "bin", "node-gyp.js")
  const npmGyp = process.env.npm_config_node_gyp
  const bundled = join(nodeDir, "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js")
  const script = [gyp, npmGyp, bundled].find((p) => p !== undefined && existsSync(p))
  if (script === undefined) {
    say(`optional native CPU kernels not built (node-gyp not found); build them with: npm run build:native`)
    return
  }
  say("building the optional native CPU kernels (native/, about a minute)...")
  const built = spawnSync(process.execPath, [script, "rebuild", "--directory", "native", `--nodedir=${nodeDir}`], {
    cwd: root,
    stdio: ["ignore", "ignore", "pipe"],
    timeout: 600_000
  })
  if (built.status === 0) {
    say(`native CPU kernels built (${existsSync("/usr/include/oneapi/dnnl/dnnl.hpp") ? "oneDNN + OpenBLAS" : "OpenBLAS; libdnnl-dev adds oneDNN convolutions"}): the auto engine uses wasm-native`)
  } else {
    const reason = (built.stderr?.toString() ?? "").split("\n").find((l) => /error/i.test(l)) ?? `exit ${built.status ?? built.signal}`
    say(`optional native CPU kernels not built (${reason.trim().slice(0, 160)}); the wasm engine is used. Retry with: npm run build:native`)
  }
}

try {
  main()
} catch (e) {
  say(`optional native CPU kernels not built (${e instanceof Error ? e.message : String(e)})`)
}
