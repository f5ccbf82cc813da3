import { spawn } from "node:child_process"
import { mkdtemp, readdir, stat } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"

const sid = (args: ReadonlyArray<string>) => {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/bin.ts", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, SID_ENGINE: "wasm" }
  })
  let out = ""
  child.stdout.on("data", (d: Buffer) => (out += d.toString()))
  child.stderr.on("data", (d: Buffer) => (out += d.toString()))
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  return { output: () => out, exit }
}

describe("sid distill with SiDA and augmentation flags (docs/sida.md §7)", () => {
  it("refuses SiDA without real data, a dataset that does not fit the teacher, and augmentation of non-image data, writing nothing", async () => {
    const root = await mkdtemp(join(tmpdir(), "sid-sida-cli-"))
    const noData = sid(["distill", "--adversarial", "--run-dir", join(root, "a")])
    expect(await noData.exit).toBe(1)
    expect(noData.output()).toMatch(/error: adversarial: SiDA's discriminator needs real images.*--data mnist/)
    await expect(stat(join(root, "a"))).rejects.toThrow()

    const badData = sid(["distill", "--data", "cifar", "--run-dir", join(root, "b")])
    expect(await badData.exit).toBe(1)
    expect(badData.output()).toMatch(/--data = "cifar": must be null .* or mnist/)

    const common = ["--teacher-fit-steps", "5", "--baseline-samples", "0", "--reference", "none", "--steps", "1", "--batch", "4"]
    const mismatch = sid(["distill", ...common, "--adversarial", "--data", "mnist", "--run-dir", join(root, "c")])
    expect(await mismatch.exit).toBe(1)
    expect(mismatch.output()).toMatch(/error: data: the dataset mnist has one-channel 16, 28 or 32-pixel images, but the teacher's samples are \[2\]/)
    const left = await readdir(join(root, "c")).catch(() => [] as Array<string>)
    expect(left.filter((n) => n === "config.json" || n === "log.jsonl")).toEqual([])

    const augment = sid(["distill", ...common, "--augment", "0.2", "--run-dir", join(root, "d")])
    expect(await augment.exit).toBe(1)
    expect(augment.output()).toMatch(/error: augment: augmentation transforms images \[H, W, C\].*\[2\]/)
  }, 180_000)
})
