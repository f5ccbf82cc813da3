import { execFile } from "node:child_process"

/**
 * Runs one check of test/support/apiChecks.ts in a child process (node with tsx's loader) without blocking this
 * process's event loop, and returns its findings.
 */
export const runApiCheck = (check: "tags" | "guide"): Promise<Array<string>> =>
  new Promise((resolve, reject) =>
    execFile(
      process.execPath,
      ["--import", "tsx", "test/support/apiChecks.ts", check],
      { maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) =>
        error === null
          ? resolve(JSON.parse(stdout) as Array<string>)
          : reject(new Error(`apiChecks ${check} failed: ${error.message}\n${stderr}`))
    )
  )
