/**
 * The help of `sid` and its commands, rendered from the commands' {@link CliNode} descriptions (which hold the
 * {@link FlagDoc}s the flags were built with): usage lines that read `sid distill [flags]`, every flag with its value,
 * one-line description and default, wrapped to a readable width, and plain text unless stdout is a terminal and
 * `NO_COLOR` is unset. `--help` prints it (see `Argv.ts`), and `tools/cli-reference.ts` writes it to `docs/cli.md`.
 *
 * @module
 */
import { Console, type Effect } from "effect"
import type { FlagDoc } from "./Flags.js"

/** A group of flags under a heading. */
export interface FlagSection {
  readonly title: string
  readonly flags: ReadonlyArray<FlagDoc>
}

/** A command (with flags) or a group of commands (with subcommands), as the help describes it. */
export interface CliNode {
  /** The words after `sid` (empty for `sid` itself). */
  readonly path: ReadonlyArray<string>
  /** One line, for the command lists. */
  readonly summary: string
  /** A paragraph or more, for the command's own help. */
  readonly description: string
  readonly sections?: ReadonlyArray<FlagSection>
  /** Paragraphs after the flags (examples, forms of a value). */
  readonly notes?: ReadonlyArray<string>
  readonly subcommands?: ReadonlyArray<CliNode>
}

/** How help is rendered: the line width, and whether headings are bold (ANSI). */
export interface HelpStyle {
  readonly width: number
  readonly color: boolean
}

/** The width of help when it is not shown on a terminal (and of `docs/cli.md`). */
export const DEFAULT_HELP_WIDTH = 80

/**
 * The style for a stream: ANSI only on a terminal with `NO_COLOR` unset (https://no-color.org), the terminal's width
 * between 60 and 100 columns, else {@link DEFAULT_HELP_WIDTH}.
 */
export const helpStyleFor = (
  stream: { readonly isTTY?: boolean; readonly columns?: number },
  env: Readonly<Record<string, string | undefined>>
): HelpStyle => {
  const tty = stream.isTTY === true
  const noColor = env["NO_COLOR"] !== undefined && env["NO_COLOR"] !== ""
  const width = tty && stream.columns !== undefined ? Math.max(60, Math.min(100, stream.columns)) : DEFAULT_HELP_WIDTH
  return { width, color: tty && !noColor && env["TERM"] !== "dumb" }
}

/** Words of `text` in lines of at most `width` characters (a longer word stands on its own line). */
export const wrap = (text: string, width: number): ReadonlyArray<string> => {
  const lines: Array<string> = []
  let line = ""
  for (const word of text.split(/\s+/).filter((w) => w.length > 0)) {
    if (line.length === 0) line = word
    else if (line.length + 1 + word.length <= width) line += ` ${word}`
    else {
      lines.push(line)
      line = word
    }
  }
  if (line.length > 0) lines.push(line)
  return lines
}

const indent = (lines: ReadonlyArray<string>, by: number): ReadonlyArray<string> => lines.map((l) => " ".repeat(by) + l)

const heading = (text: string, style: HelpStyle): string => (style.color ? `\u001b[1m${text}\u001b[0m` : text)

/** `--name <value>`, `--[no-]name` for a negatable switch. */
export const flagLabel = (flag: FlagDoc): string =>
  flag.value === "switch"
    ? flag.negatable === true ? `--[no-]${flag.name}` : `--${flag.name}`
    : `--${flag.name} ${flag.placeholder ?? "<value>"}`

/** The description of a flag with its default. */
export const flagText = (flag: FlagDoc): string =>
  flag.default === undefined ? flag.description : `${flag.description} (default: ${flag.default})`

const LABEL_COLUMN = 26

/** Two columns: labels, then text wrapped beside them (under them where a label is too long). */
const table = (rows: ReadonlyArray<readonly [string, string]>, style: HelpStyle): ReadonlyArray<string> => {
  const textWidth = style.width - LABEL_COLUMN
  const out: Array<string> = []
  for (const [label, text] of rows) {
    const lines = wrap(text, textWidth)
    const left = `  ${label}`
    if (left.length <= LABEL_COLUMN - 2) {
      out.push(left.padEnd(LABEL_COLUMN) + (lines[0] ?? ""))
      out.push(...indent(lines.slice(1), LABEL_COLUMN))
    } else {
      out.push(left)
      out.push(...indent(lines, LABEL_COLUMN))
    }
  }
  return out
}

const commandName = (node: CliNode): string => ["sid", ...node.path].join(" ")

/** The leaf commands under a node, in order (a group lists its subcommands' leaves). */
export const leaves = (node: CliNode): ReadonlyArray<CliNode> =>
  node.subcommands === undefined ? [node] : node.subcommands.flatMap(leaves)

/** Every node of the tree, depth first (the root first). */
export const allNodes = (node: CliNode): ReadonlyArray<CliNode> => [node, ...(node.subcommands ?? []).flatMap(allNodes)]

const HELP_FLAG: FlagDoc = { name: "help", value: "switch", description: "show this help (also -h)" }

/** The help of one command or group, as lines of text ending in a newline. */
export const renderHelp = (node: CliNode, style: HelpStyle): string => {
  const out: Array<string> = []
  const isGroup = node.subcommands !== undefined
  out.push(`${heading("Usage:", style)} ${commandName(node)} ${isGroup ? "<command> [flags]" : "[flags]"}`, "")
  for (const paragraph of node.description.split("\n\n")) out.push(...wrap(paragraph, style.width), "")
  if (isGroup) {
    out.push(heading("Commands:", style))
    out.push(...table(leaves(node).map((leaf) => [leaf.path.slice(node.path.length).join(" "), leaf.summary] as const), style), "")
  }
  const own = node.sections ?? []
  const last = own.at(-1)
  const sections = isGroup && last !== undefined
    ? [...own.slice(0, -1), { title: last.title, flags: [...last.flags, HELP_FLAG] }]
    : [...own, { title: isGroup ? "Flags" : "Help", flags: [HELP_FLAG] }]
  for (const section of sections) {
    out.push(heading(`${section.title}:`, style))
    out.push(...table(section.flags.map((f) => [flagLabel(f), flagText(f)] as const), style), "")
  }
  for (const note of node.notes ?? []) out.push(...wrap(note, style.width), "")
  if (isGroup) out.push(...wrap(`Run '${commandName(node)} <command> --help' for the flags of a command.`, style.width), "")
  while (out.at(-1) === "") out.pop()
  return out.join("\n") + "\n"
}

/** The node at `path` (words after `sid`), if there is one. */
export const findNode = (root: CliNode, path: ReadonlyArray<string>): CliNode | undefined =>
  path.length === 0
    ? root
    : (() => {
      const next = root.subcommands?.find((c) => c.path[c.path.length - 1] === path[0])
      return next === undefined ? undefined : findNode(next, path.slice(1))
    })()

/** ANSI escape sequences (SGR and other CSI sequences). */
const ANSI = /\u001b\[[0-?]*[ -/]*[@-~]/g

/** `text` without ANSI escape sequences (non-strings pass unchanged). */
export const stripAnsi = <A>(value: A): A => (typeof value === "string" ? value.replace(ANSI, "") as A : value)

/**
 * Runs `effect` with a console that drops ANSI escapes from what it prints (`@effect/cli` colours its messages
 * whatever the stream), for output that is not a terminal or where `NO_COLOR` is set.
 */
export const withoutAnsi = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Console.consoleWith((console) => {
    const plain = (f: (...args: ReadonlyArray<unknown>) => void) => (...args: ReadonlyArray<unknown>) => f(...args.map(stripAnsi))
    const unsafe = { ...console.unsafe, log: plain(console.unsafe.log), error: plain(console.unsafe.error) }
    return Console.withConsole(effect, {
      ...console,
      log: (...args: ReadonlyArray<unknown>) => console.log(...args.map(stripAnsi)),
      error: (...args: ReadonlyArray<unknown>) => console.error(...args.map(stripAnsi)),
      unsafe
    })
  })
