/**
 * PyTorch peers of the benchmarks: the Python interpreter with Debian's python3-torch, whether it imports torch, and
 * one run of a peer script under an OpenMP wait policy (PyTorch's spinning default, or PASSIVE as the native addon
 * loads OpenMP), with the 1-minute load average before and after.
 *
 * @module
 */
import { spawnSync } from "node:child_process"
import { loadavg } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { flag, option, round } from "./Support.js"

/** The interpreter (`--python`, default Debian's /usr/bin/python3). */
export const python = option("python") ?? "/usr/bin/python3"

/** Threads PyTorch runs on (`--torch-threads`, default 2). */
export const torchThreads = Number(option("torch-threads") ?? 2)

/** OpenMP wait policies PyTorch is run with (`--torch-omp`, default both); ratios are to the faster. */
export const torchPolicies = (option("torch-omp") ?? "default,passive").split(",")

/** The 1-minute load average, two decimals. */
export const load1 = (): number => round(loadavg()[0]!, 2)

/** Whether `python` imports torch (and its version), or why not; `--no-torch` skips it. */
export const torchAvailable = (): { readonly ok: boolean; readonly version?: string; readonly reason?: string } => {
  if (flag("no-torch")) return { ok: false, reason: "--no-torch" }
  const r = spawnSync(python, ["-c", "import torch; print(torch.__version__)"], { encoding: "utf8" })
  return r.status === 0
    ? { ok: true, version: r.stdout.trim() }
    : { ok: false, reason: `${python} -c "import torch" failed: ${(r.stderr || String(r.error ?? "")).trim().split("\n").pop()}` }
}

/** One run of a peer script: its parsed JSON, the policy and the load around it. */
export interface TorchRun<A> {
  readonly policy: string
  readonly output: A
  readonly loadBefore: number
  readonly loadAfter: number
}

/** Runs `bench/<script>` with `args` on `torchThreads` threads (OpenBLAS on one) under `policy`; throws on failure. */
export const runTorchScript = <A>(script: string, args: ReadonlyArray<string>, policy: string): TorchRun<A> => {
  const loadBefore = load1()
  const env: Record<string, string | undefined> = { ...process.env, OPENBLAS_NUM_THREADS: "1", OMP_NUM_THREADS: String(torchThreads) }
  if (policy === "default") delete env["OMP_WAIT_POLICY"]
  else env["OMP_WAIT_POLICY"] = policy.toUpperCase()
  const path = join(dirname(fileURLToPath(import.meta.url)), script)
  const r = spawnSync(python, [path, ...args, "--threads", String(torchThreads)], { encoding: "utf8", env })
  if (r.status !== 0) throw new Error(`${script} failed: ${r.stderr}`)
  return { policy, output: JSON.parse(r.stdout) as A, loadBefore, loadAfter: load1() }
}
