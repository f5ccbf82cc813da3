/**
 * Command-line flags of the example programs: `--name` switches, `--name value` options and numeric options that
 * reject what is not a number.
 *
 * @since 0.1.0
 */

/** Readers over one argument list. */
export interface Args {
  /** Whether `--name` is present. */
  readonly flag: (name: string) => boolean
  /** The value after `--name`, if given. */
  readonly option: (name: string) => string | undefined
  /** The number after `--name`, or `fallback`; throws an Error naming the flag when the value is not a finite number. */
  readonly num: (name: string, fallback: number) => number
}

/** Readers over `argv` (default: this process's arguments after the script). */
export const readArgs = (argv: ReadonlyArray<string> = process.argv.slice(2)): Args => {
  const option = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`)
    return i >= 0 ? argv[i + 1] : undefined
  }
  return {
    flag: (name) => argv.includes(`--${name}`),
    option,
    num: (name, fallback) => {
      const v = option(name)
      if (v === undefined) return fallback
      const n = Number(v)
      if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got "${v}"`)
      return n
    }
  }
}
