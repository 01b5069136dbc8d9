/** Helpers shared by xapi-sim's tests. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** packages/xapi-sim, found from the compiled test file's location. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir)
    if (up === dir) throw new Error('packages/xapi-sim/package.json not found above the test file')
    dir = up
  }
  return dir
}

export const fixtures = (...p: string[]): string => join(packageRoot(), 'test', 'fixtures', ...p)

/** A temporary directory removed when the callback settles. */
export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  try {
    return await fn(dir)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
