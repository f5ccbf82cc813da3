/**
 * The demo page: controls, the mixture canvas, the live panels and the run's life cycle. Training runs in
 * `worker.ts` (one worker per run), so the page stays responsive; a run's settings and its IndexedDB store name are
 * kept in `localStorage`, so a reload continues it from its newest checkpoint.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { loadOneStepGenerator } from "../../src/browser/OneStepGenerator.js"
import { mnistState, setUpMnistTab } from "./mnist.js"
import { type Axes, axesFor, drawCurves, drawModes, drawScatter, type Mode, type Point } from "./plot.js"
import type { FromWorker, RunSettings, ToWorker } from "./protocol.js"

const STORE = "sid-web-demo"
/** `?threads=N`: the wasm threads (default: TF.js's choice, half the logical cores). */
const threadsParam = new URLSearchParams(location.search).get("threads")
const SAVED = "sid-web-demo-run"

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T
const canvas = (id: string) => $<HTMLCanvasElement>(id)
const input = (id: string) => $<HTMLInputElement>(id)
const select = (id: string) => $<HTMLSelectElement>(id)
const setText = (id: string, text: string) => void ($(id).textContent = text)

interface Saved {
  readonly settings: RunSettings
  readonly paused: boolean
}

/** What the page knows of the current run (also exposed as `window.sidDemo` for the browser test). */
const state = {
  worker: undefined as Worker | undefined,
  settings: undefined as RunSettings | undefined,
  modes: [] as Array<Mode>,
  step: 0,
  teacherFd: Number.NaN,
  teacherMmd: Number.NaN,
  curve: [] as Array<Point & { mmd: number }>,
  recentMs: [] as Array<number>,
  /** Every iteration's duration in this run (ms), for benchmarks. */
  iterationMs: [] as Array<number>,
  lastTick: { time: 0, step: 0 },
  exported: undefined as Uint8Array | undefined,
  loadedSamples: undefined as Array<number> | undefined,
  inputEvents: 0,
  mnist: mnistState
}
;(window as unknown as { sidDemo: typeof state }).sidDemo = state

const fmt = (v: number) => (Number.isFinite(v) ? v.toExponential(2) : "–")

const showMessage = (text: string | undefined) => {
  const el = $("message")
  el.hidden = text === undefined
  el.textContent = text ?? ""
}

const setState = (s: "idle" | "starting" | "running" | "paused" | "done" | "error") => {
  document.body.dataset["state"] = s
  $<HTMLButtonElement>("pause").disabled = s !== "running"
  $<HTMLButtonElement>("resume").disabled = !(s === "paused" || s === "error")
  $<HTMLButtonElement>("download").disabled = !(s === "running" || s === "paused" || s === "done")
}

const mixtureModes = (settings: RunSettings | undefined): Array<Mode> => {
  const choice = settings?.mixture ?? { kind: "preset", name: select("preset").value } as RunSettings["mixture"]
  if (choice.kind === "drawn") return [...choice.modes]
  if (choice.name === "ring8") {
    return Array.from({ length: 8 }, (_, k) => ({ x: 0.702 * Math.cos((2 * Math.PI * k) / 8), y: 0.702 * Math.sin((2 * Math.PI * k) / 8), std: 0.06 }))
  }
  const spacing = Math.sqrt((0.25 - 0.05 * 0.05) / 2)
  return Array.from({ length: 25 }, (_, k) => ({ x: ((k % 5) - 2) * spacing, y: (Math.floor(k / 5) - 2) * spacing, std: 0.05 }))
}

let axes: Axes = axesFor([])
const redrawMixture = () => {
  const modes = select("preset").value === "drawn" ? state.modes : mixtureModes(undefined)
  axes = select("preset").value === "drawn" ? axesFor([]) : axesFor(modes)
  drawModes(canvas("draw"), modes, axes)
}

const settingsFromControls = (): RunSettings => {
  const preset = select("preset").value
  return {
    mixture: preset === "drawn" ? { kind: "drawn", modes: state.modes } : { kind: "preset", name: preset as "ring8" | "grid25" },
    teacher: select("teacher").value as "exact" | "dsm",
    alpha: Number(input("alpha").value),
    tmax: Number(input("tmax").value),
    learningRate: Number(input("lr").value),
    steps: Number(input("steps").value),
    evalEvery: 100,
    checkpointEvery: 100,
    engine: select("engine").value as RunSettings["engine"],
    seed: 0,
    ...(threadsParam === null ? {} : { threads: Number(threadsParam) })
  }
}

const send = (message: ToWorker) => state.worker?.postMessage(message)

const clearPanels = () => {
  state.step = 0
  state.curve = []
  state.recentMs = []
  state.iterationMs = []
  state.teacherFd = Number.NaN
  state.teacherMmd = Number.NaN
  for (const id of ["teacher-panel", "generator-panel"]) drawScatter(canvas(id), new Float32Array(), axes)
  drawCurves(canvas("curves"), [], Number.NaN, Number.NaN)
  for (const id of ["step", "rate", "ms", "fd", "mmd", "teacher-fd", "teacher-mmd", "checkpoint"]) setText(id, "–")
  for (const key of ["fd", "fdStep", "step", "teacherFd", "checkpoint", "resumed", "pausedAt", "lastGood"]) delete document.body.dataset[key]
}

const save = (paused: boolean) => {
  if (state.settings !== undefined) localStorage.setItem(SAVED, JSON.stringify({ settings: state.settings, paused } satisfies Saved))
}

const onWorker = (message: FromWorker) => {
  switch (message.type) {
    case "engine": {
      const threads = message.name === "wasm" ? `, ${message.threads} thread${message.threads === 1 ? "" : "s"}${message.simd ? ", SIMD" : ""}` : ""
      const text = `${message.name}${message.adapter === undefined ? "" : ` (${message.adapter})`}${threads}` +
        `${message.crossOriginIsolated ? "" : ", not cross-origin isolated"} — ${message.reason}`
      setText("engine-info", text)
      document.body.dataset["engine"] = message.name
      document.body.dataset["threads"] = String(message.threads)
      return
    }
    case "phase":
      return setText("phase", message.text)
    case "teacher":
      state.teacherFd = message.fd
      state.teacherMmd = message.mmd
      setText("teacher-fd", fmt(message.fd))
      setText("teacher-mmd", fmt(message.mmd))
      document.body.dataset["teacherFd"] = String(message.fd)
      drawScatter(canvas("teacher-panel"), message.samples, axes)
      drawCurves(canvas("curves"), state.curve, state.teacherFd, state.teacherMmd)
      return
    case "resumed":
      document.body.dataset["resumed"] = String(message.step)
      showMessage(undefined)
      return
    case "running":
      setState("running")
      save(false)
      return
    case "step": {
      state.step = message.step
      state.recentMs = [...state.recentMs.slice(-49), message.iterationMs]
      state.iterationMs.push(message.iterationMs)
      const now = performance.now()
      if (now - state.lastTick.time > 1000) {
        if (state.lastTick.time > 0 && message.step > state.lastTick.step) {
          setText("rate", ((message.step - state.lastTick.step) / ((now - state.lastTick.time) / 1000)).toFixed(1))
        }
        state.lastTick = { time: now, step: message.step }
      }
      const sorted = [...state.recentMs].sort((a, b) => a - b)
      setText("ms", sorted[Math.floor(sorted.length / 2)]!.toFixed(1))
      setText("step", String(message.step))
      document.body.dataset["step"] = String(message.step)
      return
    }
    case "evaluation":
      state.curve = [...state.curve.filter((p) => p.x < message.step), { x: message.step, y: message.fd, mmd: message.mmd }]
      setText("fd", fmt(message.fd))
      setText("mmd", fmt(message.mmd))
      document.body.dataset["fd"] = String(message.fd)
      document.body.dataset["fdStep"] = String(message.step)
      drawScatter(canvas("generator-panel"), message.samples, axes)
      drawCurves(canvas("curves"), state.curve, state.teacherFd, state.teacherMmd)
      return
    case "checkpoint":
      setText("checkpoint", `step ${message.step} (IndexedDB)`)
      document.body.dataset["checkpoint"] = String(message.step)
      return
    case "paused":
      setState("paused")
      setText("phase", `paused at iteration ${message.step} (checkpoint saved)`)
      setText("checkpoint", `step ${message.step} (IndexedDB)`)
      document.body.dataset["checkpoint"] = String(message.step)
      document.body.dataset["pausedAt"] = String(message.step)
      setText("step", String(message.step))
      save(true)
      return
    case "done":
      setState("done")
      setText("phase", `done: ${message.step} iterations`)
      return
    case "exported": {
      state.exported = message.bytes
      const blob = new Blob([message.bytes as Uint8Array<ArrayBuffer>], { type: "application/octet-stream" })
      const a = document.createElement("a")
      a.href = URL.createObjectURL(blob)
      a.download = `sid-generator-step${message.step}.safetensors`
      document.body.append(a)
      a.click()
      a.remove()
      setTimeout(() => URL.revokeObjectURL(a.href), 10_000)
      return
    }
    case "error":
      setState("error")
      setText("phase", "stopped by an error")
      showMessage(
        message.lastGood === undefined
          ? message.message
          : `${message.message}\nThe last good checkpoint (iteration ${message.lastGood}) is kept: press Resume to continue from it.`
      )
      if (message.lastGood !== undefined) document.body.dataset["lastGood"] = String(message.lastGood)
      return
  }
}

const launch = (settings: RunSettings, resume: boolean, paused: boolean) => {
  state.worker?.terminate()
  state.settings = settings
  if (!resume) clearPanels()
  axes = settings.mixture.kind === "drawn" ? axesFor([]) : axesFor(mixtureModes(settings))
  drawModes(canvas("draw"), mixtureModes(settings), axes)
  setText("total", String(settings.steps))
  // The controls show the run's settings (after a reload too).
  select("preset").value = settings.mixture.kind === "drawn" ? "drawn" : settings.mixture.name
  if (settings.mixture.kind === "drawn") state.modes = [...settings.mixture.modes]
  select("teacher").value = settings.teacher
  select("engine").value = settings.engine
  input("alpha").value = String(settings.alpha)
  input("tmax").value = String(settings.tmax)
  input("lr").value = String(settings.learningRate)
  input("steps").value = String(settings.steps)
  setState("starting")
  showMessage(undefined)
  for (const key of ["resumed", "pausedAt", "lastGood", "engine"]) delete document.body.dataset[key]
  const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" })
  worker.onmessage = (event: MessageEvent<FromWorker>) => onWorker(event.data)
  worker.onerror = (event) => {
    setState("error")
    showMessage(`The worker failed: ${event.message}`)
  }
  state.worker = worker
  save(paused)
  send({ type: "start", settings, store: STORE, resume, paused })
}

$("start").addEventListener("click", () => {
  const settings = settingsFromControls()
  if (settings.mixture.kind === "drawn" && settings.mixture.modes.length === 0) {
    // Still sent: the library refuses it with its own message (MixtureInvalid), and nothing is stored.
  }
  launch(settings, false, false)
})
$("pause").addEventListener("click", () => send({ type: "pause" }))
$("resume").addEventListener("click", () => {
  if (document.body.dataset["state"] === "error" && state.settings !== undefined) {
    // After an error the worker is gone or stopped: a new one continues from the newest intact checkpoint.
    return launch(state.settings, true, false)
  }
  send({ type: "resume" })
})
$("reset").addEventListener("click", () => {
  state.worker?.terminate()
  state.worker = undefined
  localStorage.removeItem(SAVED)
  indexedDB.deleteDatabase(STORE)
  clearPanels()
  setState("idle")
  setText("phase", "idle")
  showMessage(undefined)
})
$("download").addEventListener("click", () => send({ type: "export" }))
$("clear").addEventListener("click", () => {
  state.modes = []
  redrawMixture()
})
for (const id of ["alpha", "tmax", "lr", "steps"]) {
  input(id).addEventListener("input", () => {
    state.inputEvents += 1
    document.body.dataset["inputEvents"] = String(state.inputEvents)
    setText("settings-note", state.worker === undefined ? "settings apply when a run starts" : "changed: applies when the next run starts (Start)")
  })
}
select("preset").addEventListener("change", redrawMixture)

// Drawing: press to place a mode, drag to set its standard deviation.
{
  const draw = canvas("draw")
  let pressed: { x: number; y: number } | undefined
  const toData = (event: PointerEvent) => {
    const r = draw.getBoundingClientRect()
    return {
      x: axes.min + ((event.clientX - r.left) / r.width) * (axes.max - axes.min),
      y: axes.max - ((event.clientY - r.top) / r.height) * (axes.max - axes.min)
    }
  }
  draw.addEventListener("pointerdown", (event) => {
    if (select("preset").value !== "drawn") {
      select("preset").value = "drawn"
      axes = axesFor([])
    }
    pressed = toData(event)
    state.modes.push({ ...pressed, std: 0.06 })
    drawModes(draw, state.modes, axes)
  })
  draw.addEventListener("pointermove", (event) => {
    if (pressed === undefined) return
    const p = toData(event)
    state.modes[state.modes.length - 1] = { ...pressed, std: Math.max(0.02, Math.hypot(p.x - pressed.x, p.y - pressed.y)) }
    drawModes(draw, state.modes, axes)
  })
  draw.addEventListener("pointerup", () => void (pressed = undefined))
}

// A generator file, sampled here with sid-ts/browser (the pure-JS cpu backend: the same numbers as in Node).
input("load").addEventListener("change", async () => {
  const file = input("load").files?.[0]
  if (file === undefined) return
  try {
    await tf.setBackend("cpu")
    const generator = loadOneStepGenerator(new Uint8Array(await file.arrayBuffer()))
    if (generator.dataShape.length !== 1 || generator.dataShape[0] !== 2) {
      generator.dispose()
      throw new Error(`this page draws 2-D generators; the file's samples have shape [${generator.dataShape.join(", ")}]`)
    }
    const samples = generator.generate(2000, 0)
    const values = samples.dataSync() as Float32Array
    state.loadedSamples = Array.from(values.subarray(0, 64))
    drawScatter(canvas("loaded-panel"), values, axes)
    samples.dispose()
    generator.dispose()
    setText("loaded-caption", `${file.name}: 2,000 samples, seed 0 (sid-ts/browser)`)
    document.body.dataset["loaded"] = file.name
    showMessage(undefined)
  } catch (e) {
    showMessage(`Cannot load ${file.name}: ${e instanceof Error ? e.message : String(e)}`)
    document.body.dataset["loadError"] = "1"
  } finally {
    input("load").value = ""
  }
})

// Tabs: the 2-D distillation, and the shipped MNIST generator (loaded when its tab first opens).
const mnistTab = setUpMnistTab()
const showTab = (tab: "2d" | "mnist") => {
  $("page-2d").hidden = tab !== "2d"
  $("page-mnist").hidden = tab !== "mnist"
  $("tab-2d").setAttribute("aria-selected", String(tab === "2d"))
  $("tab-mnist").setAttribute("aria-selected", String(tab === "mnist"))
  document.body.dataset["tab"] = tab
  if (tab === "mnist") mnistTab.open()
}
$("tab-2d").addEventListener("click", () => showTab("2d"))
$("tab-mnist").addEventListener("click", () => showTab("mnist"))

// A saved run continues from its newest checkpoint (paused if it was paused).
redrawMixture()
clearPanels()
const savedText = localStorage.getItem(SAVED)
if (savedText !== null) {
  try {
    const saved = JSON.parse(savedText) as Saved
    launch(saved.settings, true, saved.paused)
  } catch {
    localStorage.removeItem(SAVED)
  }
}
