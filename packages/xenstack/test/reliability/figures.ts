// Where the reliability tests leave their figures: test-artifacts/reliability/<name>.json at the repository's root,
// which docs/reliability.md quotes.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** test-artifacts/reliability/ (this file is compiled to packages/xenstack/dist/test/reliability/). */
const ARTIFACTS = fileURLToPath(new URL('../../../../../test-artifacts/reliability/', import.meta.url))

/** Writes `figures` as test-artifacts/reliability/<name>.json (indented JSON); returns the path. */
export function writeFigures(name: string, figures: unknown): string {
  mkdirSync(ARTIFACTS, { recursive: true })
  const file = join(ARTIFACTS, `${name}.json`)
  writeFileSync(file, JSON.stringify(figures, null, 2) + '\n')
  return file
}
