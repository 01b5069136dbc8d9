/**
 * Secrets that must be written correctly but never shown: passwords in config files, passwords on command lines.
 *
 * A `Secret` prints as `***` in every ordinary way (string conversion, JSON, `util.inspect`), so passing one to a
 * logger or embedding it in an error message cannot leak it; `reveal()` is the one explicit way to get the value.
 * Every secret's value is also remembered process-wide so `redact()` can scrub it from text that came back from a
 * node (stderr of a failed command, a diff of a config file) even when the text was not built from the object.
 */
import { inspect } from 'node:util'

export const REDACTED = '***'

/** Values shorter than this are not scrubbed from free text: they would mangle unrelated words. */
const MIN_SCRUB_LENGTH = 4

const knownValues = new Set<string>()

export class Secret {
  readonly #value: string

  constructor(value: string) {
    this.#value = value
    if (value.length >= MIN_SCRUB_LENGTH) knownValues.add(value)
  }

  /** The real value: only for writing it where it belongs (a config file, a login). */
  reveal(): string {
    return this.#value
  }

  toString(): string {
    return REDACTED
  }

  toJSON(): string {
    return REDACTED
  }

  [inspect.custom](): string {
    return `Secret(${REDACTED})`
  }

  static is(value: unknown): value is Secret {
    return value instanceof Secret
  }
}

/** A value that may be secret. */
export type MaybeSecret = string | Secret

export function reveal(value: MaybeSecret): string {
  return value instanceof Secret ? value.reveal() : value
}

export function display(value: MaybeSecret): string {
  return value instanceof Secret ? REDACTED : value
}

/** Replaces every known secret value (and the extra ones given) in `text` with `***`. */
export function redact(text: string, extra: readonly MaybeSecret[] = []): string {
  const values = new Set<string>(knownValues)
  for (const e of extra) {
    const v = reveal(e)
    if (v.length >= MIN_SCRUB_LENGTH) values.add(v)
  }
  let out = text
  // Longest first, so a secret that contains another is scrubbed whole.
  for (const v of [...values].sort((a, b) => b.length - a.length)) {
    if (out.includes(v)) out = out.split(v).join(REDACTED)
  }
  return out
}
