/**
 * A check of the command line against the commands' flag documentation, made before `@effect/cli` parses it, so that
 * the mistakes people make read well: a misspelt command or flag gets a did-you-mean (`--alpah` → `--alpha`), a flag
 * without its value is named (`--alpha needs a value`), and a number that is not one is named with its flag
 * (`--alpha: 'abc' is not a number`). `--help` anywhere shows the help of the command it follows ({@link renderHelp}).
 * Everything that passes is left to `@effect/cli`.
 *
 * @module
 */
import { isNumberText, type FlagDoc } from "./Flags.js"
import { type CliNode, renderHelp, type HelpStyle } from "./Help.js"

/** What to do with a command line: run it, print help, or fail with a message. */
export type ArgvCheck =
  | { readonly _tag: "Run" }
  | { readonly _tag: "Help"; readonly text: string }
  | { readonly _tag: "Invalid"; readonly message: string }

/** `@effect/cli`'s own flags, accepted everywhere: name → whether it takes a value. */
const BUILT_IN: Readonly<Record<string, boolean>> = { version: false, wizard: false, completions: true, "log-level": true }

/** The optimal-string-alignment distance (edits, with a swap of neighbours counted as one). */
export const editDistance = (a: string, b: string): number => {
  const d: Array<Array<number>> = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)))
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1)
      d[i]![j] = best
    }
  }
  return d[a.length]![b.length]!
}

/** The candidate nearest to `word`, if it is close enough to be what was meant. */
export const didYouMean = (word: string, candidates: ReadonlyArray<string>): string | undefined => {
  let best: string | undefined
  let bestDistance = Infinity
  for (const c of candidates) {
    const distance = editDistance(word, c)
    if (distance < bestDistance) {
      best = c
      bestDistance = distance
    }
  }
  return bestDistance <= Math.max(1, Math.min(3, Math.floor(word.length / 3))) ? best : undefined
}

const invalid = (message: string): ArgvCheck => ({ _tag: "Invalid", message })

const commandName = (node: CliNode) => ["sid", ...node.path].join(" ")

const isFlag = (token: string) => token.startsWith("-") && token.length > 1 && !isNumberText(token)

/** Checks a value against its flag's kind; a message naming the flag when it does not fit. */
const checkValue = (flag: FlagDoc, value: string): string | undefined => {
  if (flag.choices !== undefined) {
    return flag.choices.includes(value) ? undefined : `--${flag.name}: '${value}' is not one of ${flag.choices.join(", ")}`
  }
  if (flag.nullable === true && value === "null") return undefined
  switch (flag.value) {
    case "number":
      return isNumberText(value) ? undefined : `--${flag.name}: '${value}' is not a number`
    case "integer":
      return isNumberText(value) && Number.isInteger(Number(value)) ? undefined : `--${flag.name}: '${value}' is not a whole number`
    case "list":
      return value.split(",").every(isNumberText) ? undefined : `--${flag.name}: '${value}' is not a comma-separated list of numbers`
    default:
      return undefined
  }
}

/**
 * Checks `args` (the words after `sid`) against the tree of commands: finds the command, then reads its flags.
 * `--help`/`-h` anywhere gives the help of the command named before it.
 */
export const checkArgv = (args: ReadonlyArray<string>, root: CliNode, style: HelpStyle): ArgvCheck => {
  let node = root
  let i = 0
  while (node.subcommands !== undefined) {
    const token = args[i]
    if (token === undefined || token === "--help" || token === "-h") return { _tag: "Help", text: renderHelp(node, style) }
    if (isFlag(token)) {
      const name = token.replace(/^-+/, "").split("=")[0]!
      if (name in BUILT_IN) return { _tag: "Run" }
      const suggestion = didYouMean(name, [...Object.keys(BUILT_IN), "help"])
      return invalid(
        `unknown flag ${token} for ${commandName(node)}` + (suggestion === undefined ? "" : `; did you mean --${suggestion}?`) +
          `\nRun '${commandName(node)} --help' for the commands.`
      )
    }
    const next = node.subcommands.find((c) => c.path[c.path.length - 1] === token)
    if (next === undefined) {
      const names = node.subcommands.map((c) => c.path[c.path.length - 1]!)
      const suggestion = didYouMean(token, names)
      return invalid(
        `unknown command '${token}' for ${commandName(node)}` +
          (suggestion === undefined ? "" : `; did you mean '${suggestion}'?`) +
          `\nCommands: ${names.join(", ")}. Run '${commandName(node)} --help' for more.`
      )
    }
    node = next
    i++
  }
  const flags = (node.sections ?? []).flatMap((s) => s.flags)
  const byName = new Map<string, FlagDoc>()
  for (const flag of flags) {
    byName.set(flag.name, flag)
    if (flag.negatable === true) byName.set(`no-${flag.name}`, flag)
  }
  const rest = args.slice(i)
  if (rest.includes("--help") || rest.includes("-h")) return { _tag: "Help", text: renderHelp(node, style) }
  const seeHelp = `\nRun '${commandName(node)} --help' for its flags.`
  const given = new Set<string>()
  for (let j = 0; j < rest.length; j++) {
    const token = rest[j]!
    if (!token.startsWith("--")) {
      return invalid(
        isFlag(token)
          ? `unknown flag ${token} for ${commandName(node)}: flags are spelt out with two dashes (--name)${seeHelp}`
          : `unexpected argument '${token}': ${commandName(node)} takes flags only (--name value)${seeHelp}`
      )
    }
    const eq = token.indexOf("=")
    const name = eq < 0 ? token.slice(2) : token.slice(2, eq)
    const inline = eq < 0 ? undefined : token.slice(eq + 1)
    if (name in BUILT_IN) {
      if (BUILT_IN[name] === true && inline === undefined) j++
      continue
    }
    const flag = byName.get(name)
    if (flag === undefined) {
      const suggestion = didYouMean(name, [...byName.keys()])
      return invalid(
        `unknown flag --${name} for ${commandName(node)}` + (suggestion === undefined ? "" : `; did you mean --${suggestion}?`) + seeHelp
      )
    }
    given.add(flag.name)
    if (flag.value === "switch") {
      if (inline !== undefined) return invalid(`--${name} is a switch and takes no value (got '${inline}')`)
      continue
    }
    const value = inline ?? rest[j + 1]
    if (value === undefined || (inline === undefined && isFlag(value)) || value.length === 0) {
      return invalid(`--${name} needs a value ${flag.placeholder ?? ""}: ${flag.description}`.replace(/ +:/, ":"))
    }
    if (inline === undefined) j++
    const problem = checkValue(flag, value)
    if (problem !== undefined) return invalid(`${problem} (${flag.description})`)
  }
  const missing = flags.filter((flag) => flag.required === true && !given.has(flag.name))
  if (missing.length > 0) {
    const lines = missing.map((flag) => `--${flag.name} ${flag.placeholder ?? ""}: ${flag.description}`.replace(/ +:/, ":"))
    return invalid(`${commandName(node)} needs ${missing.map((f) => `--${f.name}`).join(" and ")}:\n  ${lines.join("\n  ")}${seeHelp}`)
  }
  return { _tag: "Run" }
}
