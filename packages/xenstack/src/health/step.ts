/**
 * Step-numbered outcomes (fuel-ostf's `verify(…, step, msg)`), mapped to statuses the way its nose adapter did:
 * a failed expectation → `failure` with `Step N failed: <expected …, found …>`; `SkipTest` → `skipped`; any other
 * exception → `error` (`Step N: <error>`), so a broken check is never mistaken for a broken environment.
 */
import type { Evidence } from './types.js'

/** An expectation that did not hold (status `failure`). */
export class StepFailure extends Error {
  constructor(
    readonly expected: string,
    readonly found: string,
    readonly evidence: Evidence[] = [],
    public stepNumber?: number,
  ) {
    super(`expected ${expected}; found ${found}`)
    this.name = 'StepFailure'
  }
}

/** The test does not apply to what it found (status `skipped`). */
export class SkipTest extends Error {
  constructor(readonly reason: string) {
    super(reason)
    this.name = 'SkipTest'
  }
}

/** An unexpected error inside step N (status `error`). */
export class StepError extends Error {
  constructor(
    readonly stepNumber: number,
    readonly original: unknown,
  ) {
    super(`Step ${stepNumber}: ${original instanceof Error ? original.message : String(original)}`)
    this.name = 'StepError'
  }
}

/** `Step N failed: expected …; found …` — the line users see. */
export function failureMessage(f: StepFailure): string {
  return `${f.stepNumber !== undefined ? `Step ${f.stepNumber} failed` : 'Failed'}: ${f.message}`
}

/** Output of a command as evidence: the command line, exit code and the last lines of stdout/stderr. */
export function commandEvidence(
  label: string,
  r: { code: number; stdout: string; stderr: string },
  command?: string,
): Evidence {
  const tail = (s: string) => s.trimEnd().split('\n').slice(-30).join('\n')
  return {
    label,
    value: {
      ...(command ? { command } : {}),
      exitCode: r.code,
      ...(r.stdout.trim() ? { stdout: tail(r.stdout) } : {}),
      ...(r.stderr.trim() ? { stderr: tail(r.stderr) } : {}),
    },
  }
}
