/**
 * Test helpers shared by xenstack's packages.
 *
 * A test that needs something from the machine (a binary, root, a kernel feature) asks for it through
 * `requirePrerequisite`. Outside CI a missing prerequisite skips the test with its name; in CI
 * (`CI=true`) it fails the test with the name of what is missing — CI never skips.
 */
import { execFileSync } from 'node:child_process'
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after } from 'node:test'
import type { TestContext } from 'node:test'

export const inCI = (): boolean => /^(1|true|yes)$/i.test(process.env.CI ?? '')

export class MissingPrerequisiteError extends Error {
  constructor(readonly prerequisite: string) {
    super(`missing prerequisite: ${prerequisite} (install it with ./scripts/setup.sh)`)
    this.name = 'MissingPrerequisiteError'
  }
}

/**
 * Returns true when the prerequisite holds. When it does not: in CI, throws (the test fails naming it);
 * elsewhere, marks the test skipped and returns false so the caller can `return`.
 */
export function requirePrerequisite(t: TestContext, name: string, holds: () => boolean): boolean {
  let ok = false
  try {
    ok = holds()
  } catch {
    ok = false
  }
  if (ok) return true
  if (inCI()) throw new MissingPrerequisiteError(name)
  t.skip(`missing prerequisite: ${name}`)
  return false
}

/** True when an executable is found at the absolute path or on PATH. */
export function hasExecutable(nameOrPath: string): boolean {
  if (nameOrPath.includes('/')) {
    try {
      accessSync(nameOrPath, constants.X_OK)
      return true
    } catch {
      return false
    }
  }
  try {
    execFileSync('sh', ['-c', `command -v ${JSON.stringify(nameOrPath)}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

export const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0

/** Debian's system Python (python3-os-xenapi installs into it, not into any pyenv). */
export const SYSTEM_PYTHON = '/usr/bin/python3'

/** True when the system Python can import the module. */
export function hasPythonModule(module: string, python = SYSTEM_PYTHON): boolean {
  try {
    execFileSync(python, ['-c', `import ${module}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/**
 * Returns `tmp(prefix)`, which makes a fresh directory under the OS temp dir; every directory it made is removed
 * when the test file's tests are done.
 */
export function scratchDirs(): (prefix: string) => string {
  const dirs: string[] = []
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))
  return (prefix) => {
    const d = mkdtempSync(join(tmpdir(), prefix))
    dirs.push(d)
    return d
  }
}
export * from './fuzz.js'
export * from './tls.js'
