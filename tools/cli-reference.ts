/**
 * Writes docs/cli.md, the CLI reference, from the `--help` of every command (`npm run docs:cli`).
 * With `--check`, writes nothing and exits 1 when the committed file is stale.
 */
import { readFile, writeFile } from "node:fs/promises"
import { CLI_REFERENCE_COMMAND, CLI_REFERENCE_PATH, cliReference } from "../src/cli/Reference.js"

const text = cliReference()
if (process.argv.includes("--check")) {
  const committed = await readFile(CLI_REFERENCE_PATH, "utf8").catch(() => "")
  if (committed !== text) {
    console.error(`${CLI_REFERENCE_PATH} is stale: run \`${CLI_REFERENCE_COMMAND}\` and commit it.`)
    process.exit(1)
  }
  console.log(`${CLI_REFERENCE_PATH} is up to date.`)
} else {
  await writeFile(CLI_REFERENCE_PATH, text)
  console.log(`wrote ${CLI_REFERENCE_PATH}`)
}
