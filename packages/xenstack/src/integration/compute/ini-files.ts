/**
 * The rendered keys of one configuration file as node resources: one IniSetting per key (written or removed),
 * and the services that read the file, restarted only when one of those settings changed in this apply.
 */
import { IniSetting, Service, type MaybeSecret, type Resource } from '../../node/index.js'
import { filePath, renderFile, servicesOf, type ConfigFile } from './config-table.js'
import type { OpenStackRelease } from './release.js'

export interface IniFileResources {
  path: string
  settings: IniSetting[]
  /** Services reading the file; restartOn = settings (plus `alsoRestartOn`). */
  services: Service[]
}

export function iniFileResources(
  file: ConfigFile,
  release: OpenStackRelease,
  values: Record<string, MaybeSecret | undefined>,
  alsoRestartOn: Resource[] = [],
): IniFileResources {
  const path = filePath(file, release)
  const settings = renderFile(file, release, values).map((k) =>
    k.value === null
      ? new IniSetting({ path, section: k.section, key: k.key, ensure: 'absent' })
      : new IniSetting({ path, section: k.section, key: k.key, value: k.value }),
  )
  const services = servicesOf(file, release).map(
    (name) => new Service({ name, restartOn: [...settings, ...alsoRestartOn] }),
  )
  return { path, settings, services }
}
