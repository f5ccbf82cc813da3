/**
 * The checkpoint store (issue 17, points 7 and 9): keep the newest N plus the best, list and load any step, report a
 * damaged newest checkpoint with the intact older steps, remove crash leftovers, and report failed writes.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Either, Option, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { NamedArray } from "../src/domain/data/Safetensors.js"
import { decodeTeacherTrainingConfig } from "../src/domain/config/TeacherTrainingConfig.js"
import { isTempFileName, writeFileAtomic } from "../src/platform/AtomicFile.js"
import * as CheckpointStore from "../src/services/node/CheckpointStore.js"
import * as TeacherCheckpointStore from "../src/services/node/TeacherCheckpointStore.js"
import {
  type Checkpoint,
  CHECKPOINT_FORMAT,
  type CheckpointError,
  CheckpointManifest,
  CheckpointStore as StoreTag,
  type CheckpointStoreShape,
  KeepCount
} from "../src/services/node/CheckpointStore.js"
import { TEACHER_CHECKPOINT_FORMAT, TeacherCheckpointManifest } from "../src/services/node/TeacherCheckpointStore.js"

let dir: string
let counter = 0
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sid-store-"))
})
afterAll(() => rm(dir, { recursive: true, force: true }))

const freshDir = () => join(dir, `store-${counter++}`)

const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)
const fails = async <A>(effect: Effect.Effect<A, CheckpointError>): Promise<CheckpointError> => {
  const result = await Effect.runPromise(Effect.either(effect))
  if (Either.isRight(result)) throw new Error("expected a failure")
  return result.left
}

const tensors = (step: number): Map<string, NamedArray> =>
  new Map<string, NamedArray>([
    ["generator.w", { dtype: "float32", shape: [2, 3], values: Float32Array.from({ length: 6 }, (_, i) => step + i / 10) }],
    ["generator.step", { dtype: "int32", shape: [1], values: Int32Array.of(step) }]
  ])

const checkpoint = (step: number): Checkpoint => ({
  manifest: new CheckpointManifest({
    format: CHECKPOINT_FORMAT,
    step,
    imagesSeen: step * 8,
    config: { steps: 100 },
    teacher: "test",
    network: { kind: "mlp", spec: {} },
    sigmaInit: 2.5,
    sigmaData: 0.5,
    optimizerSteps: { generator: step, fakeScore: step },
    sampler: { fake: [1, 2, 3, 4] },
    weightsFile: "",
    weightsSha256: "",
    tensors: {},
    createdAt: "2026-01-01T00:00:00.000Z"
  }),
  tensors: tensors(step)
})

const stepOf = (c: { readonly tensors: ReadonlyMap<string, NamedArray> }) => c.tensors.get("generator.step")!.values[0]

const directory = (path: string, options: CheckpointStore.DirectoryStoreOptions = {}): Promise<CheckpointStoreShape> =>
  run(CheckpointStore.directoryStore(CheckpointStore.distillationFormat, path, options))
const memory = (options: CheckpointStore.StoreOptions = {}): Promise<CheckpointStoreShape> =>
  run(CheckpointStore.memoryStore(CheckpointStore.distillationFormat, options))

const kinds = [
  ["directory", (keep: number) => directory(freshDir(), { keep })],
  ["memory", (keep: number) => memory({ keep })]
] as const

const summaryOf = (store: Pick<CheckpointStoreShape, "list">) =>
  Effect.map(store.list, (entries) => entries.map((e) => `${e.best ? "best " : ""}${e.step} ${e.status._tag}`))

const corruptLastByte = async (path: string) => {
  const bytes = await readFile(path)
  bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff
  await writeFile(path, bytes)
}

const weightsOf = async (root: string, step: number): Promise<string> =>
  (JSON.parse(await readFile(join(root, `ckpt-${String(step).padStart(8, "0")}.json`), "utf8")) as { weightsFile: string }).weightsFile

describe("CheckpointStore keep policy (issue 17 §7)", () => {
  for (const [kind, make] of kinds) {
    it(`${kind}: keeps the newest N plus the best, which is never rotated away`, async () => {
      const store = await make(2)
      expect(store.keep).toBe(2)
      for (let step = 1; step <= 6; step++) {
        await run(store.save(checkpoint(step)))
        await run(store.saveBest(checkpoint(step), { metric: "fid", value: step === 2 ? 0.5 : 10 + step }))
      }
      expect(await run(summaryOf(store))).toEqual(["6 Intact", "5 Intact", "best 2 Intact"])
      const best = Option.getOrThrow(await run(store.best))
      expect(best.score).toMatchObject({ step: 2, metric: "fid", value: 0.5, lowerIsBetter: true })
      expect(stepOf(best.checkpoint)).toBe(2)
      expect(stepOf(await run(store.load(2)))).toBe(2)
      expect(stepOf(Option.getOrThrow(await run(store.latest)))).toBe(6)
      const missing = await fails(store.load(1))
      expect(missing.kind).toBe("not-found")
      expect(missing.intactSteps).toEqual([6, 5, 2])
      expect(missing.message).toMatch(/no checkpoint at step 1/)
      if (kind === "directory") {
        const names = (await readdir(store.location)).sort()
        expect(names.filter((n) => n.endsWith(".json"))).toEqual(["ckpt-00000005.json", "ckpt-00000006.json"])
        expect(names.filter((n) => n.endsWith(".safetensors"))).toHaveLength(2)
        expect(names).toContain("best")
        const best = (await readdir(join(store.location, "best"))).sort()
        expect(best).toHaveLength(3)
        expect(best).toEqual(expect.arrayContaining(["best.json", "ckpt-00000002.json"]))
        const score = JSON.parse(await readFile(join(store.location, "best", "best.json"), "utf8")) as Record<string, unknown>
        expect(score).toMatchObject({ step: 2, metric: "fid", value: 0.5 })
      }
    })
  }

  it("keep must be an integer of at least 1", async () => {
    for (const keep of [0, -1, 1.5]) {
      const e = await fails(CheckpointStore.directoryStore(CheckpointStore.distillationFormat, freshDir(), { keep }))
      expect(e.kind).toBe("invalid")
      expect(e.message).toMatch(/keep = .*at least 1/)
      expect((await fails(CheckpointStore.memoryStore(CheckpointStore.distillationFormat, { keep }))).kind).toBe("invalid")
      expect(Either.isLeft(Schema.decodeUnknownEither(KeepCount)(keep))).toBe(true)
    }
    expect((await memory()).keep).toBe(3)
    const store = await memory({ keep: 1 })
    for (const step of [1, 2, 3]) await run(store.save(checkpoint(step)))
    expect(await run(summaryOf(store))).toEqual(["3 Intact"])
  })

  it("a save at an older step than the kept ones is never pruned itself", async () => {
    const store = await directory(freshDir(), { keep: 2 })
    for (const step of [10, 20, 30]) await run(store.save(checkpoint(step)))
    await run(store.save(checkpoint(15)))
    expect(await run(summaryOf(store))).toEqual(["30 Intact", "15 Intact"])
  })
})

describe("CheckpointStore best checkpoint (issue 17 §7)", () => {
  for (const [kind, make] of kinds) {
    it(`${kind}: replaces the best only with a strictly better value; NaN never wins`, async () => {
      const store = await make(3)
      expect(Option.isNone(await run(store.best))).toBe(true)
      const nan = await run(store.saveBest(checkpoint(1), { metric: "fid", value: Number.NaN }))
      expect(nan).toEqual({ replaced: false, best: Option.none(), previous: Option.none() })
      const first = await run(store.saveBest(checkpoint(2), { metric: "fid", value: 10 }))
      expect(first.replaced).toBe(true)
      expect(Option.isNone(first.previous)).toBe(true)
      const valueOf = (o: Option.Option<{ readonly value: number; readonly step: number }>) =>
        Option.getOrThrow(o).step + ":" + Option.getOrThrow(o).value
      for (const [step, value] of [[3, 12], [4, Number.NaN], [5, 10], [6, Infinity], [7, -Infinity]] as const) {
        const outcome = await run(store.saveBest(checkpoint(step), { metric: "fid", value }))
        expect(outcome.replaced).toBe(false)
        expect(valueOf(outcome.best)).toBe("2:10")
      }
      const better = await run(store.saveBest(checkpoint(8), { metric: "fid", value: 8 }))
      expect(better.replaced).toBe(true)
      expect(valueOf(better.previous)).toBe("2:10")
      expect(valueOf(better.best)).toBe("8:8")
      const best = Option.getOrThrow(await run(store.best))
      expect(best.score.value).toBe(8)
      expect(stepOf(best.checkpoint)).toBe(8)
      if (kind === "directory") {
        const files = await readdir(join(store.location, "best"))
        expect(files.sort()).toEqual(["best.json", expect.stringMatching(/^ckpt-00000008-.*\.safetensors$/), "ckpt-00000008.json"])
      }
      const other = await fails(store.saveBest(checkpoint(9), { metric: "mmd", value: 0.1 }))
      expect(other.kind).toBe("invalid")
      expect(other.message).toMatch(/chosen by fid \(lower is better\), not by mmd/)
      const flipped = await fails(store.saveBest(checkpoint(9), { metric: "fid", value: 1, lowerIsBetter: false }))
      expect(flipped.kind).toBe("invalid")
      expect(Option.getOrThrow(await run(store.best)).score.step).toBe(8)
    })
  }

  it("higher is better when the score says so", async () => {
    const store = await memory()
    const offer = (step: number, value: number) =>
      run(Effect.map(store.saveBest(checkpoint(step), { metric: "precision", value, lowerIsBetter: false }), (o) => o.replaced))
    expect([await offer(1, 0.5), await offer(2, 0.4), await offer(3, 0.5), await offer(4, 0.7)]).toEqual([true, false, false, true])
    expect(Option.getOrThrow(await run(store.best)).score).toMatchObject({ step: 4, value: 0.7, lowerIsBetter: false })
  })
})

describe("CheckpointStore damage (issue 17 §7)", () => {
  it("reports a damaged newest checkpoint with the intact older steps, and load(step) loads an older one", async () => {
    const root = freshDir()
    const store = await directory(root)
    for (const step of [1, 2, 3]) await run(store.save(checkpoint(step)))
    await corruptLastByte(join(root, await weightsOf(root, 3)))

    const latest = await fails(store.latest)
    expect(latest._tag).toBe("CheckpointError")
    expect(latest.kind).toBe("damaged")
    expect(latest.step).toBe(3)
    expect(latest.path).toBe(join(root, "ckpt-00000003.json"))
    expect(latest.intactSteps).toEqual([2, 1])
    expect(latest.message).toMatch(/newest checkpoint \(step 3\) is damaged: weights file .* is corrupt \(checksum mismatch\)/)
    expect(latest.message).toMatch(/intact checkpoints at steps: 2, 1/)
    expect(latest.message).toMatch(/--resume-from 2/)

    const entries = await run(store.list)
    expect(entries.map((e) => [e.step, e.status._tag])).toEqual([[3, "Damaged"], [2, "Intact"], [1, "Intact"]])
    expect(entries[0]!.status._tag === "Damaged" && entries[0]!.status.reason).toMatch(/checksum mismatch/)
    expect(entries[0]!.path).toBe(join(root, "ckpt-00000003.json"))

    const older = await run(store.load(2))
    expect(older.manifest.step).toBe(2)
    expect(stepOf(older)).toBe(2)
    const direct = await fails(store.load(3))
    expect(direct.kind).toBe("damaged")
    expect(direct.intactSteps).toEqual([2, 1])
  })

  it("a manifest whose weights are missing, or that is torn, is damaged and stays; no intact step is said so", async () => {
    const root = freshDir()
    const store = await directory(root)
    for (const step of [1, 2]) await run(store.save(checkpoint(step)))
    await rm(join(root, await weightsOf(root, 2)))
    const missing = await fails(store.latest)
    expect(missing.message).toMatch(/step 2\) is damaged: its weights file .* is missing/)
    expect(missing.intactSteps).toEqual([1])
    expect((await run(store.recover)).removed).toEqual([])
    expect(await readdir(root)).toContain("ckpt-00000002.json")
    expect(await run(summaryOf(store))).toEqual(["2 Damaged", "1 Intact"])

    await writeFile(join(root, "ckpt-00000001.json"), "{ torn")
    const none = await fails(store.latest)
    expect(none.intactSteps).toEqual([])
    expect(none.message).toMatch(/no intact older checkpoint is left/)
    const entries = await run(store.list)
    expect(entries[1]!.status._tag === "Damaged" && entries[1]!.status.reason).toMatch(/corrupt manifest/)
  })

  it("load(step) of a damaged step falls back to the intact best copy of the same step", async () => {
    const root = freshDir()
    const store = await directory(root)
    await run(store.save(checkpoint(4)))
    await run(store.saveBest(checkpoint(4), { metric: "fid", value: 1 }))
    await corruptLastByte(join(root, await weightsOf(root, 4)))
    expect(stepOf(await run(store.load(4)))).toBe(4)
    expect(stepOf(Option.getOrThrow(await run(store.latest)))).toBe(4)
    expect(await run(summaryOf(store))).toEqual(["4 Damaged", "best 4 Intact"])
  })
})

describe("CheckpointStore crash leftovers (issue 17 §7)", () => {
  it("removes temp files and orphan weights on recover and reports them; keeps damaged manifests", async () => {
    const root = freshDir()
    const store = await directory(root)
    for (const step of [1, 2]) await run(store.save(checkpoint(step)))
    await run(store.saveBest(checkpoint(2), { metric: "fid", value: 3 }))
    const leftovers = [
      ".ckpt-00000003.json.0a1b2c3d4e5f.tmp",
      ".deadbeefcafe.tmp",
      "ckpt-00000003-0123456789abcdef.safetensors",
      "ckpt-00000001.safetensors",
      join("best", ".best.json.00aa11bb22cc.tmp"),
      join("best", "ckpt-00000009.json"),
      join("best", "ckpt-00000009-fedcba9876543210.safetensors")
    ]
    for (const name of leftovers) await writeFile(join(root, name), "leftover")
    // A checkpoint whose manifest is torn: its weights are kept (the manifest might still be repaired by hand).
    await writeFile(join(root, "ckpt-00000005.json"), "{ torn")
    await writeFile(join(root, "ckpt-00000005-00112233aabbccdd.safetensors"), "weights")
    // A manifest whose weights are missing: damaged, not removed.
    const manifest2 = JSON.parse(await readFile(join(root, "ckpt-00000002.json"), "utf8")) as Record<string, unknown>
    await writeFile(join(root, "ckpt-00000004.json"), JSON.stringify({ ...manifest2, step: 4, weightsFile: "ckpt-00000004-0000000000000000.safetensors" }))
    await mkdir(join(root, "stray.safetensors"))

    const report = await run(store.recover)
    expect([...report.removed].sort()).toEqual(leftovers.map((n) => join(root, n)).sort())
    const names = await readdir(root)
    for (const kept of ["ckpt-00000004.json", "ckpt-00000005.json", "ckpt-00000005-00112233aabbccdd.safetensors", "stray.safetensors"]) {
      expect(names).toContain(kept)
    }
    expect(names.filter(isTempFileName)).toEqual([])
    expect(await run(summaryOf(store))).toEqual(["5 Damaged", "4 Damaged", "2 Intact", "1 Intact", "best 2 Intact"])
    expect((await run(store.recover)).removed).toEqual([])
    expect(stepOf(await run(store.load(1)))).toBe(1)
  })

  it("an uncommitted best (best.json never written) is a leftover; an unreadable best.json keeps everything", async () => {
    const root = freshDir()
    const store = await directory(root)
    await mkdir(join(root, "best"), { recursive: true })
    await writeFile(join(root, "best", "ckpt-00000003.json"), "{}")
    await writeFile(join(root, "best", "ckpt-00000003-aaaaaaaaaaaaaaaa.safetensors"), "w")
    expect([...(await run(store.recover)).removed].sort()).toEqual([
      join(root, "best", "ckpt-00000003-aaaaaaaaaaaaaaaa.safetensors"),
      join(root, "best", "ckpt-00000003.json")
    ])
    await run(store.saveBest(checkpoint(3), { metric: "fid", value: 3 }))
    await writeFile(join(root, "best", "best.json"), "{ torn")
    expect((await run(store.recover)).removed).toEqual([])
    const e = await fails(store.best)
    expect(e.kind).toBe("damaged")
    expect(e.message).toMatch(/corrupt best.json/)
    expect(await run(summaryOf(store))).toEqual(["best 3 Damaged"])
  })

  it("the memory store has nothing to recover", async () => {
    const store = await memory()
    await run(store.save(checkpoint(1)))
    expect(await run(store.recover)).toEqual({ removed: [] })
  })
})

describe("CheckpointStore write failures (issue 17 §9)", () => {
  const failing = (codeFor: (path: string) => string | undefined) =>
  (path: string, bytes: Uint8Array): Effect.Effect<void, Error> => {
    const code = codeFor(path)
    return code === undefined
      ? writeFileAtomic(path, bytes)
      : Effect.fail(Object.assign(new Error(`${code}: simulated failure, write '${path}'`), { code }))
  }

  it("a failed save is a typed error naming the path, the cause and what to do; the previous newest stays newest", async () => {
    const root = freshDir()
    let fail: string | undefined
    const store = await directory(root, { writeFile: failing((path) => (path.endsWith(".json") ? fail : undefined)) })
    await run(store.save(checkpoint(1)))
    const before = (await readdir(root)).sort()
    fail = "ENOSPC"
    const e = await fails(store.save(checkpoint(2)))
    expect(e._tag).toBe("CheckpointError")
    expect(e.kind).toBe("write-failed")
    expect(e.code).toBe("ENOSPC")
    expect(e.step).toBe(2)
    expect(e.path).toBe(join(root, "ckpt-00000002.json"))
    expect(e.message).toMatch(/could not write the manifest/)
    expect(e.message).toMatch(/free some space/)
    expect(e.message).toMatch(/--run-dir/)
    expect(e.message).toMatch(/checkpoints stored before are unchanged/)
    expect((await readdir(root)).sort()).toEqual(before)
    expect(stepOf(Option.getOrThrow(await run(store.latest)))).toBe(1)
    expect(await run(summaryOf(store))).toEqual(["1 Intact"])

    fail = "EROFS"
    const readOnly = await fails(store.save(checkpoint(3)))
    expect(readOnly.code).toBe("EROFS")
    expect(readOnly.message).toMatch(/not writable.*writable --run-dir/)
  })

  it("a failed best write keeps the previous best", async () => {
    const root = freshDir()
    let fail: string | undefined
    const store = await directory(root, { writeFile: failing((path) => (path.endsWith("best.json") ? fail : undefined)) })
    await run(store.saveBest(checkpoint(1), { metric: "fid", value: 5 }))
    const before = (await readdir(join(root, "best"))).sort()
    fail = "EACCES"
    const e = await fails(store.saveBest(checkpoint(2), { metric: "fid", value: 3 }))
    expect(e.kind).toBe("write-failed")
    expect(e.path).toBe(join(root, "best", "best.json"))
    expect(e.message).toMatch(/writable --run-dir/)
    expect((await readdir(join(root, "best"))).sort()).toEqual(before)
    expect(Option.getOrThrow(await run(store.best)).score).toMatchObject({ step: 1, value: 5 })
  })

  it("on disk: a store under a file, or a best/ that is a file, fails with ENOTDIR-like errors and advice", async () => {
    const file = join(dir, `a-file-${counter++}`)
    await writeFile(file, "not a directory")
    const under = await directory(join(file, "checkpoints"))
    const e = await fails(under.save(checkpoint(1)))
    expect(e.kind).toBe("write-failed")
    expect(e.code).toBe("ENOTDIR")
    expect(e.path.startsWith(join(file, "checkpoints"))).toBe(true)
    expect(e.message).toMatch(/a part of the path is a file.*--run-dir/)

    const root = freshDir()
    const store = await directory(root)
    await run(store.save(checkpoint(1)))
    await writeFile(join(root, "best"), "in the way")
    const best = await fails(store.saveBest(checkpoint(1), { metric: "fid", value: 1 }))
    expect(best.kind).toBe("write-failed")
    expect(["ENOTDIR", "EEXIST"]).toContain(best.code)
    expect(stepOf(Option.getOrThrow(await run(store.latest)))).toBe(1)
  })

  it("writeFileAtomic fails with a typed AtomicWriteError and leaves no temp file", async () => {
    const file = join(dir, `b-file-${counter++}`)
    await writeFile(file, "x")
    const result = await Effect.runPromise(Effect.either(writeFileAtomic(join(file, "y.json"), new Uint8Array(1))))
    const e = Either.getLeft(result).pipe(Option.getOrThrow)
    expect(e._tag).toBe("AtomicWriteError")
    expect(["ENOTDIR", "EEXIST"]).toContain(e.code)
    expect(e.message).toMatch(/could not write .*y\.json.*--run-dir/)
    const target = join(dir, `target-${counter++}`)
    await mkdir(target)
    await Effect.runPromise(writeFileAtomic(join(target, "ok.bin"), Uint8Array.of(1, 2, 3)))
    expect(await readdir(target)).toEqual(["ok.bin"])
    expect(isTempFileName(".ok.bin.0a1b2c3d4e5f.tmp") && isTempFileName(".0a1b2c3d4e5f.tmp") && !isTempFileName("ok.tmp")).toBe(true)
  })
})

describe("CheckpointStore parity (issue 17 §7)", () => {
  it("the memory store behaves like the directory store", async () => {
    const scenario = (store: CheckpointStoreShape) =>
      Effect.gen(function*() {
        const log: Array<unknown> = []
        for (const [step, value] of [[1, 9], [2, 7], [3, 8], [4, Number.NaN], [5, 6], [6, 6.5]] as const) {
          yield* store.save(checkpoint(step))
          const outcome = yield* store.saveBest(checkpoint(step), { metric: "fid", value })
          log.push([step, outcome.replaced, Option.map(outcome.best, (b) => [b.step, b.value])])
        }
        log.push(yield* summaryOf(store))
        log.push(stepOf(yield* store.load(5)), stepOf(Option.getOrThrow(yield* store.latest)))
        const best = Option.getOrThrow(yield* store.best)
        log.push([best.score.step, best.score.metric, best.score.value, [...best.checkpoint.tensors.keys()]])
        const missing = yield* Effect.flip(store.load(2))
        log.push([missing.kind, missing.intactSteps])
        log.push((yield* store.recover).removed)
        return log
      })
    const onDisk = await run(scenario(await directory(freshDir(), { keep: 2 })))
    const inMemory = await run(scenario(await memory({ keep: 2 })))
    expect(inMemory).toEqual(onDisk)
    expect(onDisk[6]).toEqual(["6 Intact", "5 Intact", "best 5 Intact"])
  })

  it("the layers provide the extended service, and the teacher store offers the same API", async () => {
    const viaLayer = await run(
      Effect.gen(function*() {
        const store = yield* StoreTag
        yield* store.save(checkpoint(1))
        yield* store.saveBest(checkpoint(1), { metric: "fid", value: 2 })
        return yield* summaryOf(store)
      }).pipe(Effect.provide(CheckpointStore.layerDirectory(freshDir(), { keep: 1 })))
    )
    expect(viaLayer).toEqual(["1 Intact", "best 1 Intact"])

    const config = Either.getOrThrow(decodeTeacherTrainingConfig({}))
    const teacherCheckpoint = (step: number) => ({
      manifest: new TeacherCheckpointManifest({
        format: TEACHER_CHECKPOINT_FORMAT,
        step,
        imagesSeen: step,
        optimizerStep: step,
        streams: { data: [1, 2, 3, 4], sigma: [5, 6, 7, 8], noise: [9, 10, 11, 12] },
        config,
        dataset: "test",
        network: { kind: "unet", spec: {} },
        weightsFile: "",
        weightsSha256: "",
        tensors: {},
        createdAt: "2026-01-01T00:00:00.000Z"
      }),
      tensors: tensors(step)
    })
    for (const teacherStore of [
      await run(TeacherCheckpointStore.makeMemory),
      await run(CheckpointStore.directoryStore(TeacherCheckpointStore.teacherFormat, freshDir(), { keep: 2 }))
    ]) {
      for (const step of [1, 2, 3, 4]) {
        await run(teacherStore.save(teacherCheckpoint(step)))
        await run(teacherStore.saveBest(teacherCheckpoint(step), { metric: "loss", value: step === 1 ? 0.1 : step }))
      }
      const kept = teacherStore.keep
      expect(await run(summaryOf(teacherStore))).toEqual([
        ...[4, 3, 2].slice(0, kept).map((s) => `${s} Intact`),
        "best 1 Intact"
      ])
      expect(Option.getOrThrow(await run(teacherStore.best)).checkpoint.manifest.dataset).toBe("test")
      expect((await run(teacherStore.load(1))).manifest.step).toBe(1)
    }
  })
})
