import { execFileSync, spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Exit, Layer, Option, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { distillConfig } from "../src/domain/config/DistillConfig.js"
import { RUN_SPEC_FORMAT } from "../src/domain/config/RunSpec.js"
import { decodeSafetensors, encodeSafetensors, type NamedArray } from "../src/domain/data/Safetensors.js"
import { decodeTrainingState, TRAINING_STATE_FORMAT, type TrainingState } from "../src/domain/data/TrainingStateFile.js"
import { songUNetNetwork, songUNetSpec } from "../src/domain/edm/SongUNet.js"
import { fromEdmStateDict } from "../src/domain/edm/StateDict.js"
import { mlpSpec } from "../src/domain/nn/Mlp.js"
import { mlpNetwork, type Network, unetNetwork } from "../src/domain/nn/Network.js"
import { unetSpec } from "../src/domain/nn/UNet.js"
import { adamUpdate } from "../src/domain/optim/Adam.js"
import { distill } from "../src/pipeline/Distill.js"
import { importTrainingState, readTrainingState, writeTrainingState } from "../src/pipeline/node/TrainingState.js"
import * as Distillation from "../src/layers/node/Distillation.js"
import * as Metrics from "../src/services/node/Metrics.js"
import { type Checkpoint, CheckpointStore as StoreTag } from "../src/services/node/CheckpointStore.js"
import { Teacher as TeacherTag } from "../src/services/node/Teacher.js"
import { spawnSid } from "./support/cli.js"
import { activeEngine, CheckpointStore, runWithEngine, Teacher, tf, useEngine } from "./support/distillation.js"

let release: () => Promise<void>
let dir: string
beforeAll(async () => {
  release = await useEngine("wasm")
  dir = await mkdtemp(join(tmpdir(), "sid-state-"))
})
afterAll(async () => {
  await release()
  await rm(dir, { recursive: true, force: true })
})

const networks: ReadonlyArray<readonly [string, Network, number]> = [
  ["mlp", mlpNetwork(mlpSpec(2, { hidden: 16, depth: 2 })), 16],
  ["unet", unetNetwork(unetSpec([8, 8, 1], { baseChannels: 8, channelMult: [1, 2], groups: 4, labelDim: 3 })), 2],
  ["songunet", songUNetNetwork(songUNetSpec(8, 1, { modelChannels: 16, channelMult: [1, 2], numBlocks: 1, attnResolutions: [] })), 2]
]

const record = (kind: string) => ({ teacher: { spec: `tiny ${kind}`, sha256: "0".repeat(64), fitSteps: null }, reference: "none" })

/**
 * `steps` SiD iterations of a tiny run in `runDir` (a checkpoint every 2), continuing its newest checkpoint if there is
 * one, as `sid distill --resume` does; the teacher is the network's seeded initial weights. Returns the newest checkpoint.
 */
const runTo = (network: Network, runDir: string, steps: number, batchSize: number): Promise<Checkpoint> => {
  const config = distillConfig({
    steps,
    batchSize,
    evalEvery: 1_000_000,
    checkpointEvery: 2,
    generatorLr: 1e-3,
    fakeLr: 1e-4,
    emaHalfLifeKimg: 0.01,
    emaRampupRatio: null
  })
  const kind = network.description.kind
  const teacher = Layer.scoped(
    TeacherTag,
    Effect.acquireRelease(
      Effect.sync(() => Teacher.fromWeights(`tiny ${kind}`, network, network.init(3), 0.5)),
      (t) => Effect.sync(() => tf.dispose(Object.values(t.weights.params)))
    )
  )
  const services = Distillation.layer(config, {
    teacher,
    metrics: Metrics.layerUnavailable(network.dataShape),
    checkpoints: CheckpointStore.layerDirectory(join(runDir, "checkpoints"))
  }).pipe(Layer.provide(activeEngine))
  return runWithEngine(
    Effect.gen(function*() {
      yield* distill(config, { evaluate: false, resume: true, record: record(kind) }).pipe(Stream.runDrain)
      return Option.getOrThrow(yield* Effect.flatMap(StoreTag, (s) => s.latest))
    }).pipe(Effect.provide(services))
  )
}

const bytesOf = (a: NamedArray) => Buffer.from(a.values.buffer, a.values.byteOffset, a.values.byteLength)

/** Every tensor bit for bit, and every field of the manifests but the file name, checksum and time. */
const expectSameCheckpoint = (a: Checkpoint, b: Checkpoint) => {
  expect([...b.tensors.keys()].sort()).toEqual([...a.tensors.keys()].sort())
  const differing = [...a.tensors].filter(([n, t]) => {
    const u = b.tensors.get(n)!
    return JSON.stringify(u.shape) !== JSON.stringify(t.shape) || !bytesOf(u).equals(bytesOf(t))
  }).map(([n]) => n)
  expect(differing).toEqual([])
  const fields = (c: Checkpoint) => {
    const { weightsFile: _f, weightsSha256: _s, tensors: _t, createdAt: _c, ...rest } = c.manifest
    return JSON.parse(JSON.stringify(rest)) as unknown
  }
  expect(fields(b)).toEqual(fields(a))
}

const readFileBytes = async (path: string) => {
  const b = await readFile(path)
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
}

const stateFiles = new Map<string, { readonly file: string; readonly checkpoint: Checkpoint; readonly network: Network }>()

describe("training-state files (issue 16.6)", () => {
  it.each(networks)(
    "a %s run exported, imported into a new run directory and resumed continues bit for bit as the original",
    async (kind, network, batch) => {
      const before = tf.memory().numTensors
      const runA = join(dir, `${kind}-a`)
      const runB = join(dir, `${kind}-b`)
      const atTwo = await runTo(network, runA, 2, batch)
      expect(atTwo.manifest.step).toBe(2)
      const file = join(dir, `${kind}.safetensors`)
      const written = await Effect.runPromise(writeTrainingState(atTwo, file))
      expect(written).toMatchObject({ path: file, kind, step: 2, imagesSeen: 2 * batch, layout: kind === "songunet" ? "edm" : "sid-ts" })
      stateFiles.set(kind, { file, checkpoint: atTwo, network })

      const { tensors, metadata } = decodeSafetensors(await readFileBytes(file))
      expect(metadata).toMatchObject({ format: TRAINING_STATE_FORMAT, step: "2", images_seen: String(2 * batch), source: "sid-ts" })
      expect(JSON.parse(metadata["settings"]!)).toMatchObject({ glr: 1e-3, lr: 1e-4, g_beta1: 0, beta1: 0, beta2: 0.999, eps: 1e-8, lsg: 100, ls: 1, batch })
      const parameters = JSON.parse(metadata["parameters"]!) as Array<string>
      const buffers = JSON.parse(metadata["buffers"]!) as Array<string>
      if (kind === "songunet") {
        // EDMPrecond's names and PyTorch layouts; buffers among the networks' tensors, never among Adam's moments.
        expect(buffers.length).toBeGreaterThan(0)
        expect([...tensors.keys()].every((n) => /^(G|G_ema|fake_score|g_optimizer\.exp_avg(_sq)?|fake_score_optimizer\.exp_avg(_sq)?)\.model\./.test(n))).toBe(true)
        const conv = parameters.find((n) => n.endsWith("conv.weight"))!
        const hwio = atTwo.tensors.get(`generator.params.${conv.slice("model.".length)}`)!.shape
        expect(tensors.get(`G.${conv}`)!.shape).toEqual([hwio[3], hwio[2], hwio[0], hwio[1]])
        for (const b of buffers) {
          expect(tensors.has(`G.${b}`)).toBe(true)
          expect(tensors.has(`g_optimizer.exp_avg.${b}`)).toBe(false)
        }
        expect(JSON.parse(metadata["edm_config"]!)).toMatchObject({ model_type: "SongUNet", img_resolution: 8 })
      } else {
        expect(buffers).toEqual([])
      }
      expect(tensors.size).toBe(3 * (parameters.length + buffers.length) + 4 * parameters.length)

      expectSameCheckpoint(atTwo, await Effect.runPromise(readTrainingState(file)))
      const imported = await Effect.runPromise(Effect.scoped(importTrainingState(file, runB)))
      expect(imported).toMatchObject({ runDir: runB, step: 2, imagesSeen: 2 * batch, kind })
      const spec = JSON.parse(await readFile(join(runB, "config.json"), "utf8")) as { format: string; teacher: { spec: string } }
      expect(spec.format).toBe(RUN_SPEC_FORMAT)
      expect(spec.teacher.spec).toBe(`tiny ${kind}`)

      const original = await runTo(network, runA, 4, batch)
      const continued = await runTo(network, runB, 4, batch)
      expect(original.manifest.step).toBe(4)
      expectSameCheckpoint(original, continued)
      expect(tf.memory().numTensors).toBe(before)
    },
    240_000
  )

  it("refuses to overwrite, and names what is wrong with a damaged or foreign file", async () => {
    const { file, checkpoint } = stateFiles.get("mlp") ?? { file: "", checkpoint: undefined }
    expect(checkpoint).toBeDefined()
    const exists = await Effect.runPromiseExit(writeTrainingState(checkpoint!, file))
    expect(Exit.isFailure(exists) && JSON.stringify(exists.cause)).toMatch(/"problem":"exists"/)
    await Effect.runPromise(writeTrainingState(checkpoint!, file, { overwrite: true }))

    const taken = join(dir, "mlp-a")
    const refused = await Effect.runPromiseExit(Effect.scoped(importTrainingState(file, taken)))
    expect(Exit.isFailure(refused) && String(refused.cause)).toMatch(/already holds a run.*--overwrite/s)
    const replaced = await Effect.runPromise(Effect.scoped(importTrainingState(file, taken, { overwrite: true })))
    expect(replaced.notes.join(" ")).toMatch(/moved the previous run aside/)

    const { tensors, metadata } = decodeSafetensors(await readFileBytes(file))
    const damaged = new Map(tensors)
    const [dropped] = [...damaged.keys()].filter((n) => n.startsWith("g_optimizer.exp_avg_sq."))
    damaged.delete(dropped!)
    const [reshaped] = [...damaged.keys()].filter((n) => n.startsWith("G_ema."))
    const r = damaged.get(reshaped!)!
    damaged.set(reshaped!, { ...r, shape: [r.values.length] })
    const bad = join(dir, "damaged.safetensors")
    await writeFile(bad, encodeSafetensors(damaged, metadata))
    const mismatch = await Effect.runPromiseExit(readTrainingState(bad))
    expect(Exit.isFailure(mismatch)).toBe(true)
    const message = Exit.isFailure(mismatch) ? String(mismatch.cause) : ""
    expect(message).toContain(`missing (1): ${dropped}`)
    expect(message).toContain(`mis-shaped (1): ${reshaped}`)
    expect(existsSync(join(dir, "never"))).toBe(false)
    const intoNothing = await Effect.runPromiseExit(Effect.scoped(importTrainingState(bad, join(dir, "never"))))
    expect(Exit.isFailure(intoNothing)).toBe(true)
    expect(existsSync(join(dir, "never"))).toBe(false)

    const foreign = join(dir, "foreign.safetensors")
    await writeFile(foreign, encodeSafetensors(tensors, { ...metadata, format: "edm-safetensors-v1" }))
    const notOurs = await Effect.runPromiseExit(readTrainingState(foreign))
    expect(Exit.isFailure(notOurs) && String(notOurs.cause)).toMatch(/format is "edm-safetensors-v1"/)
    const { run: _run, ...withoutRun } = metadata
    const noRun = join(dir, "no-run.safetensors")
    await writeFile(noRun, encodeSafetensors(tensors, withoutRun))
    const refusedNoRun = await Effect.runPromiseExit(Effect.scoped(importTrainingState(noRun, join(dir, "no-run"))))
    expect(Exit.isFailure(refusedNoRun) && JSON.stringify(refusedNoRun.cause)).toMatch(/"problem":"no-run"/)
  })
})

describe("sid state export / import (the CLI)", () => {
  it("exports a run, imports it elsewhere, and `sid distill --resume` continues both to the same checkpoint", async () => {
    const args = ["--teacher", "gmm:ring8", "--teacher-fit-steps", "10", "--batch", "16", "--eval-every", "1000000", "--eval-samples", "200", "--baseline-samples", "0", "--checkpoint-every", "2"]
    const a = join(dir, "cli-a")
    const b = join(dir, "cli-b")
    const file = join(dir, "cli.safetensors")
    const first = spawnSid(["distill", ...args, "--steps", "2", "--run-dir", a])
    expect(await first.exit, first.output()).toBe(0)
    const exported = spawnSid(["state", "export", "--run-dir", a, "--out", file])
    expect(await exported.exit, exported.output()).toBe(0)
    expect(exported.output()).toMatch(/training state of a mlp run at step 2, 32 images seen/)
    const again = spawnSid(["state", "export", "--run-dir", a, "--out", file])
    expect(await again.exit).toBe(1)
    expect(again.output()).toMatch(/already exists.*--overwrite/s)
    const imported = spawnSid(["state", "import", "--file", file, "--run-dir", b])
    expect(await imported.exit, imported.output()).toBe(0)
    const resumedA = spawnSid(["distill", "--resume", "--steps", "4", "--run-dir", a])
    const resumedB = spawnSid(["distill", "--resume", "--steps", "4", "--run-dir", b])
    expect(await resumedA.exit, resumedA.output()).toBe(0)
    expect(await resumedB.exit, resumedB.output()).toBe(0)
    const newest = async (runDir: string) => {
      const manifests = (await readdir(join(runDir, "checkpoints"))).filter((f) => /^ckpt-\d+\.json$/.test(f)).sort()
      const manifest = JSON.parse(await readFile(join(runDir, "checkpoints", manifests.at(-1)!), "utf8")) as { step: number; weightsFile: string }
      return { step: manifest.step, tensors: decodeSafetensors(await readFileBytes(join(runDir, "checkpoints", manifest.weightsFile))).tensors }
    }
    const [x, y] = [await newest(a), await newest(b)]
    expect([x.step, y.step]).toEqual([4, 4])
    expect([...y.tensors.keys()].sort()).toEqual([...x.tensors.keys()].sort())
    expect([...x.tensors].filter(([n, t]) => !bytesOf(t).equals(bytesOf(y.tensors.get(n)!))).map(([n]) => n)).toEqual([])
  }, 600_000)
})

/** A Python 3 with torch: Debian's python3-torch is /usr/bin/python3's; the `python3` on PATH may be another. */
const pythonWithTorch = ((): string | undefined => {
  for (const python of ["/usr/bin/python3", "python3"]) {
    if (spawnSync(python, ["-c", "import torch"], { stdio: "ignore" }).status === 0) return python
  }
  return undefined
})()

describe.skipIf(pythonWithTorch === undefined)("tools/sid_training_state.py (needs Python 3 with torch, e.g. Debian's python3-torch)", () => {
  const python = pythonWithTorch!
  const tool = (...args: Array<string>) => execFileSync(python, ["tools/sid_training_state.py", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })

  it.each(["mlp", "songunet"])("a %s state → SiD's training-state-*.pt → sid-ts gives the same state, bit for bit", async (kind) => {
    const { file } = stateFiles.get(kind)!
    const out = await mkdtemp(join(dir, `pt-${kind}-`))
    tool("to-pt", file, out)
    const pt = join(out, "training-state-000000.pt")
    expect(existsSync(pt)).toBe(true)
    const back = join(out, "back.safetensors")
    tool("to-sid-ts", pt, back)
    const same = (s: TrainingState) => ({ ...s, tensors: [...s.tensors].map(([n, a]) => [n, a.shape, bytesOf(a).toString("base64")]).sort() })
    expect(same(decodeTrainingState(await readFileBytes(back)))).toEqual(same(decodeTrainingState(await readFileBytes(file))))
  })

  it("the .pt loads as SiD's loop loads it, and one torch Adam step from its state equals one step of sid-ts's Adam", async () => {
    const { file, checkpoint, network } = stateFiles.get("songunet")!
    const out = await mkdtemp(join(dir, "adam-"))
    tool("to-pt", file, out)
    const result = join(out, "adam.safetensors")
    const beta1 = 0.9
    execFileSync(python, ["test/support/torch_adam_check.py", join(out, "training-state-000000.pt"), result, String(beta1)], { stdio: ["ignore", "pipe", "pipe"] })
    const { tensors, metadata } = decodeSafetensors(await readFileBytes(result))
    const groups = JSON.parse(metadata["groups"]!) as Record<string, { lr: number; betas: Array<number>; eps: number; steps: Array<number> }>
    const config = checkpoint.manifest.config as { generatorLr: number; fakeLr: number; beta2: number; epsilon: number }
    const steps = checkpoint.manifest.optimizerSteps
    expect(groups["G"]).toEqual({ lr: config.generatorLr, betas: [beta1, config.beta2], eps: config.epsilon, steps: [steps.generator + 1] })
    expect(groups["fake_score"]).toEqual({ lr: config.fakeLr, betas: [beta1, config.beta2], eps: config.epsilon, steps: [steps.fakeScore + 1] })
    const before = tf.memory().numTensors
    const worst: Record<string, number> = {}
    for (const [net, prefix, lr, step] of [["G", "generator", config.generatorLr, steps.generator], ["fake_score", "fake_score", config.fakeLr, steps.fakeScore]] as const) {
      tf.tidy(() => {
        const load = (p: string) => {
          const params: Record<string, tf.Tensor> = {}
          for (const name of Object.keys(network.shapes)) {
            const a = checkpoint.tensors.get(`${p}${name}`)!
            params[name] = tf.tensor(a.values, [...a.shape], "float32")
          }
          return params
        }
        const grads = fromEdmStateDict(network.shapes, tensors, { prefix: `${net}.grad.model.` })
        const torchAfter = fromEdmStateDict(network.shapes, tensors, { prefix: `${net}.after.model.` })
        const ours = adamUpdate(
          { learningRate: lr, beta1, beta2: config.beta2, epsilon: config.epsilon },
          load(`${prefix}.params.`),
          grads,
          { step, m: load(`${prefix}.optimizer.m.`), v: load(`${prefix}.optimizer.v.`) }
        )
        worst[net] = Math.max(...Object.keys(network.shapes).map((n) => tf.max(tf.abs(tf.sub(ours.params[n]!, torchAfter[n]!))).dataSync()[0]!))
        const moved = Math.max(...Object.keys(network.shapes).map((n) => tf.max(tf.abs(tf.sub(ours.params[n]!, load(`${prefix}.params.`)[n]!))).dataSync()[0]!))
        expect(moved).toBeGreaterThan(lr / 2)
      })
    }
    expect(tf.memory().numTensors).toBe(before)
    expect(worst["G"]).toBeLessThanOrEqual(1e-6)
    expect(worst["fake_score"]).toBeLessThanOrEqual(1e-6)
  })
})
