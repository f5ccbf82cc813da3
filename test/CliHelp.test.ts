import { readdir, readFile } from "node:fs/promises"
import { join } from "node:path"
import { Console, Effect } from "effect"
import { describe, expect, it } from "vitest"
import { checkArgv, didYouMean } from "../src/cli/Argv.js"
import { sidHelp } from "../src/cli/Cli.js"
import { distillHelp } from "../src/cli/Distill.js"
import { shownValue } from "../src/cli/Flags.js"
import { allNodes, DEFAULT_HELP_WIDTH, findNode, helpStyleFor, renderHelp, withoutAnsi } from "../src/cli/Help.js"
import { CLI_REFERENCE_COMMAND, CLI_REFERENCE_PATH, cliReference } from "../src/cli/Reference.js"
import { teacherTrainHelp } from "../src/cli/Teacher.js"
import { DISTILL_SETTINGS } from "../src/domain/config/DistillConfig.js"
import { DISTILL_RUN_SETTINGS, TEACHER_RUN_SETTINGS } from "../src/domain/config/RunSettings.js"
import type { SettingTable } from "../src/domain/config/Setting.js"
import { TEACHER_SETTINGS } from "../src/domain/config/TeacherTrainingConfig.js"
import { spawnSid } from "./support/cli.js"

const plain = { width: DEFAULT_HELP_WIDTH, color: false }
const help = (path: ReadonlyArray<string>) => renderHelp(findNode(sidHelp, path)!, plain)
const check = (...args: ReadonlyArray<string>) => checkArgv(args, sidHelp, plain)
const invalid = (...args: ReadonlyArray<string>) => {
  const result = check(...args)
  return result._tag === "Invalid" ? result.message : `not rejected: ${result._tag}`
}

/** The help entry of a flag: its line and the lines wrapped under it, joined. */
const entry = (text: string, flag: string): string => {
  const lines = text.split("\n")
  const start = lines.findIndex((l) => new RegExp(`^ {2}--(\\[no-\\])?${flag}( |$)`).test(l))
  if (start < 0) return ""
  const end = lines.findIndex((l, i) => i > start && !l.startsWith(" ".repeat(26)))
  return lines.slice(start, end < 0 ? undefined : end).map((l) => l.trim()).join(" ")
}

describe("sid --help", () => {
  it("reads `sid <command> [flags]`, without @effect/cli's per-flag boilerplate or ANSI, within the width", () => {
    for (const node of allNodes(sidHelp)) {
      const text = renderHelp(node, plain)
      expect(text.split("\n")[0]).toBe(`Usage: ${["sid", ...node.path].join(" ")} ${node.subcommands ? "<command> " : ""}[flags]`)
      expect(text).not.toMatch(/\$ |A user-defined piece of text|This setting is optional|\u001b\[/)
      for (const line of text.split("\n")) expect(line.length, line).toBeLessThanOrEqual(DEFAULT_HELP_WIDTH)
    }
    expect(help(["teacher", "train"]).split("\n")[0]).toBe("Usage: sid teacher train [flags]")
    expect(help([])).toMatch(/^ {2}teacher train +train a small image UNet/m)
  })

  it("shows every setting's flag with the default of its table row, and the teacher's accepted forms", () => {
    const tables: ReadonlyArray<readonly [ReadonlyArray<string>, SettingTable]> = [
      [["distill"], DISTILL_RUN_SETTINGS],
      [["teacher", "train"], TEACHER_SETTINGS],
      [["teacher", "train"], TEACHER_RUN_SETTINGS]
    ]
    for (const [path, table] of tables) {
      const text = help(path)
      for (const row of Object.values(table)) {
        const shown = row.defaultText ?? (typeof row.default === "boolean" ? (row.default ? "on" : "off") : shownValue(row.default))
        expect(entry(text, row.flag), `${path.join(" ")} --${row.flag}`).toContain(`(default: ${shown})`)
      }
    }
    const distill = help(["distill"])
    for (const row of Object.values(DISTILL_SETTINGS)) expect(entry(distill, row.flag), row.flag).toMatch(/\(default: .+\)$/)
    expect(entry(distill, "tmax")).toContain("(default: preset lowDimensional 600, images 800)")
    expect(entry(distill, "teacher")).toContain("(default: gmm:ring8)")
    expect(entry(distill, "run-dir")).toContain("(default: runs/distill)")
    expect(entry(distill, "eval-samples")).toContain("(default: 10000)")
    for (const form of ["gmm:<name>", "gmm-dsm:<name>", "edm:<file>", "teacher file"]) expect(entry(distill, "teacher")).toContain(form)
    expect(entry(help(["sample"]), "teacher")).toContain("edm:<file>")
  })

  it("is plain text off a terminal or with NO_COLOR, bold on a terminal, and as wide as the terminal within 60–100", () => {
    expect(helpStyleFor({}, {})).toEqual({ width: 80, color: false })
    expect(helpStyleFor({ isTTY: true, columns: 500 }, {})).toEqual({ width: 100, color: true })
    expect(helpStyleFor({ isTTY: true, columns: 40 }, { NO_COLOR: "1" })).toEqual({ width: 60, color: false })
    expect(renderHelp(distillHelp, { width: 100, color: true })).toContain("\u001b[1mUsage:\u001b[0m sid distill")
    const printed: Array<unknown> = []
    Effect.runSync(Console.consoleWith((console) =>
      Console.withConsole(withoutAnsi(Console.log("\u001b[0;1mUSAGE\u001b[0m", 3)), {
        ...console,
        log: (...args: ReadonlyArray<unknown>) => Effect.sync(() => printed.push(...args))
      })
    ))
    expect(printed).toEqual(["USAGE", 3])
  })
})

describe("the command-line check", () => {
  it("names the flag of a missing or non-numeric value and suggests the flag or command meant", () => {
    expect(invalid("distill", "--alpha")).toMatch(/^--alpha needs a value <x>: α of the SiD loss/)
    expect(invalid("distill", "--alpha", "--tmax", "600")).toMatch(/^--alpha needs a value/)
    expect(invalid("distill", "--alpha", "abc")).toMatch(/^--alpha: 'abc' is not a number/)
    expect(invalid("distill", "--batch=1x")).toMatch(/^--batch: '1x' is not a number/)
    expect(invalid("teacher", "train", "--channel-mult", "1,x")).toMatch(/^--channel-mult: '1,x' is not a comma-separated list/)
    expect(invalid("distill", "--engine", "gpu")).toMatch(/^--engine: 'gpu' is not one of/)
    expect(invalid("distill", "--alpah", "1")).toMatch(/^unknown flag --alpah for sid distill; did you mean --alpha\?/)
    expect(invalid("distill", "--no-normaliser")).toMatch(/did you mean --no-normalizer\?/)
    expect(invalid("distill", "--zzzzzz")).not.toMatch(/did you mean/)
    expect(invalid("distil")).toMatch(/^unknown command 'distil' for sid; did you mean 'distill'\?/)
    expect(invalid("teacher", "trian")).toMatch(/did you mean 'train'\?/)
    expect(invalid("distill", "1.2")).toMatch(/^unexpected argument '1.2'/)
    expect(invalid("distill", "--resume=yes")).toMatch(/--resume is a switch/)
    expect(didYouMean("lr", ["glr", "ls", "lsd"])).toBeDefined()
  })

  it("names a required flag that is missing, with what it is for", () => {
    expect(invalid("export")).toMatch(/^sid export needs --out:\n {2}--out <file>: the safetensors file to write\n/)
    expect(invalid("export", "--weights", "live")).toMatch(/^sid export needs --out/)
    expect(invalid("state", "export", "--run-dir", "r")).toMatch(/^sid state export needs --out/)
    expect(invalid("state", "import")).toMatch(/^sid state import needs --file/)
    expect(check("export", "--out=g.safetensors")._tag).toBe("Run")
  })

  it("passes what is well formed to @effect/cli, and --help anywhere shows the help of the command", () => {
    for (
      const args of [
        ["distill", "--alpha", "-1", "--no-normalizer", "--tmax=600", "--dropout", "null", "--teacher", "gmm:ring8"],
        ["teacher", "train", "--channel-mult", "1,2", "--conditional"],
        ["sample", "--teacher", "gmm:ring8", "--count", "8"],
        ["export", "--out", "g.safetensors", "--weights", "live"],
        ["--version"]
      ]
    ) expect(check(...args), args.join(" ")).toEqual({ _tag: "Run" })
    expect(check("distill", "--alpha", "1", "--help")).toEqual({ _tag: "Help", text: help(["distill"]) })
    expect(check("teacher", "-h")).toEqual({ _tag: "Help", text: help(["teacher"]) })
    expect(check()).toEqual({ _tag: "Help", text: help([]) })
  })
})

describe("one source of truth per setting", () => {
  it("src/cli restates no default of a settings table (as a string, or a number after `default`, `??` or its key)", async () => {
    const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&")
    const patterns = [DISTILL_SETTINGS, DISTILL_RUN_SETTINGS, TEACHER_SETTINGS, TEACHER_RUN_SETTINGS]
      .flatMap((table: SettingTable) => Object.entries(table))
      .flatMap(([key, row]) => {
        const value = row.default
        if (typeof value === "string" && /[:/]/.test(value)) return [[String(value), new RegExp(`["'\`]${escape(value)}["'\`]`)] as const]
        if (typeof value !== "number" || value === 0 || value === 1) return []
        const forms = [String(value), value.toExponential(), value.toLocaleString("en-US", { maximumFractionDigits: 20 }).replace(/,/g, "_")]
        const number = `(${[...new Set(forms)].map(escape).join("|")})(?![\\w.])`
        return [[`${key} = ${value}`, new RegExp(`(default\\W{0,3}|withDefault\\(|\\?\\? |\\b${key}: )${number}`, "i")] as const]
      })
    const dir = new URL("../src/cli/", import.meta.url).pathname
    for (const file of await readdir(dir)) {
      const text = await readFile(join(dir, file), "utf8")
      for (const [what, pattern] of patterns) expect(pattern.test(text), `${file} restates ${what}`).toBe(false)
    }
    expect(patterns.some(([, p]) => p.test(`(default 10000)`))).toBe(true)
    expect(patterns.some(([, p]) => p.test(`evalSamples: 10_000,`))).toBe(true)
    expect(patterns.some(([, p]) => p.test(`Options.withDefault("runs/teacher")`))).toBe(true)
  })
})

describe(`${CLI_REFERENCE_PATH}`, () => {
  it(`is the --help of every command (run \`${CLI_REFERENCE_COMMAND}\` to refresh it)`, async () => {
    const committed = await readFile(new URL(`../${CLI_REFERENCE_PATH}`, import.meta.url), "utf8").catch(() => "")
    expect(committed === cliReference(), `${CLI_REFERENCE_PATH} is stale: run \`${CLI_REFERENCE_COMMAND}\` and commit it`).toBe(true)
    for (const node of allNodes(sidHelp)) expect(committed).toContain(renderHelp(node, plain).trimEnd())
  })

  it("matches what the executable prints (piped: plain, 80 columns), and a misspelt flag exits 1 with a suggestion", async () => {
    const shown = spawnSid(["teacher", "train", "--help"], { NO_COLOR: "" })
    expect(await shown.exit).toBe(0)
    expect(shown.output()).toBe(renderHelp(teacherTrainHelp, plain))
    const misspelt = spawnSid(["distill", "--alpah", "1"])
    expect(await misspelt.exit).toBe(1)
    expect(misspelt.output()).toMatch(/^error: unknown flag --alpah for sid distill; did you mean --alpha\?/)
  })
})
