// Locates the reference datamodel for tests (../shared/reference next to the repository).
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url)) // packages/xapi-wire/dist/test
export const repoRoot = resolve(here, '..', '..', '..', '..')
export const datamodelJson =
  process.env.XENSTACK_DATAMODEL ?? join(repoRoot, '..', 'shared', 'reference', 'xenapi-datamodel.json')
export const hasDatamodelJson = (): boolean => existsSync(datamodelJson)
