/**
 * The demo's MNIST tab: a small one-step MNIST generator that the command line distilled and exported
 * (`public/mnist/generator.safetensors`, with `public/mnist/provenance.json`: the command that made it and its
 * MNIST-FID), sampled in the page with `sid-ts/browser` on TF.js's cpu backend (the numbers Node gives for the same
 * seed). A grid of samples, a reseed button, and the provenance. Without the shipped file the tab says so.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { loadOneStepGenerator, type OneStepGenerator } from "../../src/browser/OneStepGenerator.js"

/** Samples in the grid (8 × 8). */
export const GRID = 64
const COLUMNS = 8
/** Screen pixels per image pixel. */
const ZOOM = 3
const GENERATOR_URL = "./mnist/generator.safetensors"
const PROVENANCE_URL = "./mnist/provenance.json"

/** What the page knows of the tab (exposed as `window.sidDemo.mnist` for the browser test). */
export const mnistState = {
  seed: 0,
  /** The grid's sample values, [GRID, ...dataShape] flattened. */
  values: undefined as Array<number> | undefined,
  dataShape: undefined as ReadonlyArray<number> | undefined
}

let generator: OneStepGenerator | undefined
let loading: Promise<OneStepGenerator | undefined> | undefined

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T

const showMessage = (text: string | undefined) => {
  const el = $("mnist-message")
  el.hidden = text === undefined
  el.textContent = text ?? ""
}

const fetchBytes = async (url: string): Promise<Uint8Array | undefined> => {
  const response = await fetch(url)
  if (response.status === 404) return undefined
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`)
  // Vite's dev server answers an unknown path with index.html: not a file of ours.
  if ((response.headers.get("content-type") ?? "").includes("text/html")) return undefined
  return new Uint8Array(await response.arrayBuffer())
}

const describeValue = (value: unknown): string =>
  typeof value === "number" ? (Number.isInteger(value) ? value.toLocaleString("en") : value.toFixed(2)) : String(value)

const showProvenance = (provenance: Record<string, unknown>) => {
  const list = $("mnist-provenance")
  list.replaceChildren()
  const labels: Record<string, string> = {
    command: "made by",
    fid: "MNIST-FID (one step)",
    teacherFid: "teacher's MNIST-FID (Heun-35)",
    iterations: "SiD iterations"
  }
  const keys = [...Object.keys(labels).filter((k) => k in provenance), ...Object.keys(provenance).filter((k) => !(k in labels))]
  for (const key of keys) {
    const term = document.createElement("dt")
    term.textContent = labels[key] ?? key
    const value = document.createElement("dd")
    const text = typeof provenance[key] === "object" ? JSON.stringify(provenance[key]) : describeValue(provenance[key])
    if (key === "command") {
      const code = document.createElement("code")
      code.textContent = text
      value.append(code)
    } else value.textContent = text
    list.append(term, value)
  }
}

/** Draws `values` ([n, H, W, C] in about [-1, 1]) as a grid of grey (C = 1) or colour (C = 3) images. */
const drawGrid = (values: Float32Array, shape: ReadonlyArray<number>) => {
  const [h = 1, w = 1, c = 1] = shape
  const rows = Math.ceil(GRID / COLUMNS)
  const canvas = $<HTMLCanvasElement>("mnist-grid")
  canvas.width = COLUMNS * (w * ZOOM + 2)
  canvas.height = rows * (h * ZOOM + 2)
  const context = canvas.getContext("2d")!
  context.fillStyle = "#fff"
  context.fillRect(0, 0, canvas.width, canvas.height)
  const image = context.createImageData(w * ZOOM, h * ZOOM)
  const byte = (v: number) => Math.max(0, Math.min(255, Math.round((v + 1) * 127.5)))
  for (let n = 0; n < GRID; n++) {
    for (let y = 0; y < h * ZOOM; y++) {
      for (let x = 0; x < w * ZOOM; x++) {
        const at = ((n * h + Math.floor(y / ZOOM)) * w + Math.floor(x / ZOOM)) * c
        const out = (y * w * ZOOM + x) * 4
        for (let k = 0; k < 3; k++) image.data[out + k] = byte(values[at + (c === 1 ? 0 : k)]!)
        image.data[out + 3] = 255
      }
    }
    context.putImageData(image, (n % COLUMNS) * (w * ZOOM + 2) + 1, Math.floor(n / COLUMNS) * (h * ZOOM + 2) + 1)
  }
}

const load = (): Promise<OneStepGenerator | undefined> =>
  (loading ??= (async () => {
    const bytes = await fetchBytes(GENERATOR_URL)
    if (bytes === undefined) {
      document.body.dataset["mnist"] = "missing"
      showMessage(
        "No MNIST generator is shipped with this build: put an exported one-step generator and its provenance in " +
          "examples/web/public/mnist/ (generator.safetensors, provenance.json; see docs/web-demo.md)."
      )
      return undefined
    }
    const provenanceBytes = await fetchBytes(PROVENANCE_URL)
    showProvenance(provenanceBytes === undefined ? {} : JSON.parse(new TextDecoder().decode(provenanceBytes)) as Record<string, unknown>)
    await tf.setBackend("cpu")
    generator = loadOneStepGenerator(bytes)
    if (generator.dataShape.length !== 3) {
      throw new Error(`this tab draws image generators; the file's samples have shape [${generator.dataShape.join(", ")}]`)
    }
    return generator
  })())

/** Samples the grid for `seed` (the latents `sid sample --seed` draws) and draws it. */
const sample = async (seed: number) => {
  const g = await load()
  if (g === undefined) return
  await tf.setBackend("cpu")
  const started = performance.now()
  const samples = g.generate(GRID, seed)
  const values = samples.dataSync() as Float32Array
  samples.dispose()
  drawGrid(values, g.dataShape)
  mnistState.seed = seed
  mnistState.values = Array.from(values)
  mnistState.dataShape = g.dataShape
  $("mnist-seed").textContent = String(seed)
  $("mnist-ms").textContent = (performance.now() - started).toFixed(0)
  document.body.dataset["mnist"] = "ready"
  document.body.dataset["mnistSeed"] = String(seed)
  showMessage(undefined)
}

const guarded = (seed: number) =>
  sample(seed).catch((e: unknown) => {
    document.body.dataset["mnist"] = "error"
    showMessage(`Cannot sample the MNIST generator: ${e instanceof Error ? e.message : String(e)}`)
  })

/** Wires the tab: the first opening loads the generator and draws seed 0; reseed draws the next seed. */
export const setUpMnistTab = (): { readonly open: () => void } => {
  $<HTMLButtonElement>("mnist-reseed").addEventListener("click", () => void guarded(mnistState.seed + 1))
  let opened = false
  return {
    open: () => {
      if (opened) return
      opened = true
      void guarded(0)
    }
  }
}
