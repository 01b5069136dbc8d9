// Where the Fuel test corpus lives: ../shared/corpus/fuel relative to the repository root.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** Absolute path of the corpus directory; throws a clear error when it is missing. */
export function corpusDir(): string {
  // dist/test/plugins/<file>.js → repository root is five levels up, its parent six.
  const dir = fileURLToPath(new URL('../../../../../../shared/corpus/fuel', import.meta.url))
  if (!existsSync(dir)) {
    throw new Error(
      `the Fuel test corpus is missing: expected it at ${dir} (../shared/corpus/fuel from the repository root)`,
    )
  }
  return dir
}

/** The values fuel-plugin-xenserver's Makefile substitutes (branding.inc; version as on master). */
export const XENSERVER_DEFINES = {
  HYPERVISOR_NAME: 'XenServer',
  HYPERVISOR_LOWER: 'xenserver',
  PLUGIN_NAME: 'fuel-plugin-xenserver',
  PLUGIN_VERSION: '4.90',
  PLUGIN_REVISION: '1',
}
